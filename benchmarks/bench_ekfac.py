"""EK-FAC factor fitting vs the train feature pass, on the settings of a `trustattr score` preset.

    PYTHONPATH=. python benchmarks/bench_ekfac.py --preset tiny --repeats 3
    PYTHONPATH=. python benchmarks/bench_ekfac.py --preset smol --pairs 64 --repeats 2

Both passes run on the same model, tracked modules, DPO loss, pairs and batch size as `trustattr score --preset
PRESET --method ekfac` (smol: the reference plus a LoRA r=8 adapter on the last --last-k-blocks blocks, as the
auto policy, with its B factors set to small random values so every factor has a gradient). The two are timed
alternately, ``--repeats`` times each; the minimum and the median wall time are reported (the machine may be
shared), and the process CPU time, which other processes on the machine disturb less.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from trustattr.attribution.arguments import ScoreArguments
from trustattr.attribution.attributor import Attributor, reference_logprobs
from trustattr.attribution.ekfac import fit_factors
from trustattr.attribution.loading import DTYPE_BY_NAME, load_causal_lm, load_tokenizer
from trustattr.attribution.losses import make_loss
from trustattr.attribution.modules import find_blocks, select_modules
from trustattr.attribution.projector import Projector
from trustattr.preference_data import load_preference_pairs


def _policy(args: ScoreArguments):
    model = load_causal_lm(args.reference, DTYPE_BY_NAME[args.dtype])
    if args.policy != "auto":
        return model, model
    from peft import LoraConfig, get_peft_model

    from trustattr.attribution.default_policy import LORA_SETTINGS, _target_names

    reference = load_causal_lm(args.reference, DTYPE_BY_NAME[args.dtype])
    prefix, count = find_blocks(model)
    config = LoraConfig(r=LORA_SETTINGS["r"], lora_alpha=LORA_SETTINGS["lora_alpha"], lora_dropout=0.0,
                        target_modules=_target_names(model, prefix),
                        layers_to_transform=list(range(count - args.last_k_blocks, count)))
    torch.manual_seed(0)
    policy = get_peft_model(model, config)
    with torch.no_grad():
        for name, p in policy.named_parameters():
            if ".lora_B." in name:
                p.normal_(0, 1e-3)
    return policy.eval(), reference


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="tiny", choices=["tiny", "smol"])
    parser.add_argument("--pairs", type=int, default=None, help="training pairs (default: the preset's limit)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=None, help="write the timings as JSON here")
    cli = parser.parse_args()
    args = ScoreArguments.from_preset(cli.preset, limit=cli.pairs)
    pairs = load_preference_pairs(args.train_data, split=args.split, limit=args.limit or None, seed=args.seed)
    tokenizer = load_tokenizer(args.reference)
    policy, reference = _policy(args)
    loss = make_loss("dpo", args.max_length, args.max_prompt_length, args.beta)
    ref = reference_logprobs(reference, tokenizer, loss, pairs, args.batch_size)
    modules = select_modules(policy, args.modules, args.last_k_blocks)
    projector = Projector(modules, args.projection, args.k, args.seed)
    features, factors, features_cpu, factors_cpu = [], [], [], []
    for _ in range(cli.repeats):
        start, cpu = time.perf_counter(), time.process_time()
        Attributor(policy, tokenizer, loss, modules, projector, args.batch_size).features(pairs, ref)
        features.append(time.perf_counter() - start)
        features_cpu.append(time.process_time() - cpu)
        start, cpu = time.perf_counter(), time.process_time()
        fit_factors(policy, tokenizer, loss, modules, pairs, ref, args.batch_size)
        factors.append(time.perf_counter() - start)
        factors_cpu.append(time.process_time() - cpu)
    result = {
        "preset": cli.preset, "pairs": len(pairs), "modules": len(modules), "batch_size": args.batch_size,
        "max_length": args.max_length, "threads": torch.get_num_threads(),
        "train_features_s": {"min": min(features), "median": statistics.median(features), "all": features},
        "ekfac_factors_s": {"min": min(factors), "median": statistics.median(factors), "all": factors},
        "ratio_min": min(factors) / min(features),
        "ratio_median": statistics.median(factors) / statistics.median(features),
        "cpu_s": {"train_features": features_cpu, "ekfac_factors": factors_cpu,
                  "ratio_min": min(factors_cpu) / min(features_cpu)},
    }
    print(json.dumps(result, indent=2))
    if cli.out:
        with open(cli.out, "w") as handle:
            json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()
