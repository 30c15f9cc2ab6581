"""The five trust benchmarks of "More RLHF, More Trust?" (DecodingTrust protocols), offline, for any causal LM.

    from trustattr.models import load_model
    from trustattr.trust import evaluate, get_benchmark, paper_pairs

    model, tokenizer = load_model("smol")
    metrics = evaluate(model, tokenizer, out_dir="eval/base", limit=100)       # {benchmark: {metric: value}}
    pairs = get_benchmark("truthfulness").target_pairs(limit=50)               # list[PreferencePair]
    pairs = paper_pairs("eval/sft/toxicity", "eval/base/toxicity")             # after vs before a stage

Benchmarks: toxicity, stereotype, ethics, truthfulness, privacy (``BENCHMARKS``); each has a "fast" and a
"paper" protocol preset whose fields can be overridden one by one.
"""

from trustattr.trust.base import BENCHMARKS, Protocol, TrustBenchmark, TrustPrompt, benchmark_class, get_benchmark
from trustattr.trust.evaluate import evaluate, recompute_metrics
from trustattr.trust.pairs import paper_pairs

__all__ = [
    "BENCHMARKS",
    "Protocol",
    "TrustBenchmark",
    "TrustPrompt",
    "benchmark_class",
    "evaluate",
    "get_benchmark",
    "paper_pairs",
    "recompute_metrics",
]
