"""``trustattr run``: the paper end to end, base → SFT → {DPO, RM → PPO}, trust benchmarks after each stage.

Run directory (INTERFACES.md E)::

    RUN/run.json                  run arguments + per-stage status (trustattr.train.runner)
    RUN/stages/<stage>/model      checkpoint of each training stage (base: stage.json names the model)
    RUN/eval/<stage>/results.json trust benchmarks of base, sft, dpo, ppo
    RUN/score/<stage>/            attribution of each benchmark to the stage's training pairs (trustattr score):
                                  sft (SFT loss, SFT vs base), dpo (DPO loss, DPO vs SFT), ppo (Bradley-Terry loss
                                  of the reward model, through which the pairs reach PPO; paper.md §4.3)
    RUN/summary.json, summary.md  per-stage held-out metrics and trust results; curves.png

Each stage is one entry of :func:`build_stages`; the runner skips complete stages and refuses changed ones.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trustattr.train.presets import Preset, get_preset
from trustattr.train.runner import Stage, StageRunner
from trustattr.train.stage_dir import write_json

__all__ = ["RunArguments", "build_stages", "run_pipeline"]

TRAINING_STAGES = ("sft", "dpo", "rm", "ppo")
GENERATIVE_STAGES = ("base", "sft", "dpo", "ppo")  # the models the trust benchmarks evaluate


@dataclass(frozen=True)
class RunArguments:
    """Arguments of ``trustattr run``."""

    out: Path = field(metadata={"help": "run directory (created; rerunning resumes it)"})
    preset: str = field(default="tiny", metadata={"help": "stage settings: tiny (tests) or smol (SmolLM2-135M, LoRA)"})
    model: str | None = field(default=None, metadata={"help": "base model instead of the preset's (name or path)"})
    eval_limit: int | None = field(default=None, metadata={"help": "prompts per trust benchmark (default: preset)"})
    benchmarks: tuple[str, ...] | None = field(default=None, metadata={"help": "trust benchmarks (default: all five)"})
    evaluate: bool = field(default=True, metadata={"help": "run the trust benchmarks after each stage"})
    attribute: bool = field(default=True, metadata={"help": "score each stage's training pairs per trust benchmark"})
    method: str = field(default="datainf", metadata={"help": "attribution method of the score stages"})
    seed: int = field(default=0, metadata={"help": "seed of every stage"})

    def __post_init__(self) -> None:
        get_preset(self.preset)  # raises ValueError naming "preset"
        if self.eval_limit is not None and self.eval_limit < 1:
            raise ValueError(f"eval_limit: expected an integer >= 1 or None, got {self.eval_limit}")
        if self.model is not None and not self.model:
            raise ValueError("model: expected a model name or path, got ''")
        from trustattr.attribution.arguments import CHECKPOINT_METHODS, METHODS

        # tracin/less need callback checkpoints: score those with trustattr score --checkpoints
        run_methods = tuple(m for m in METHODS if m not in CHECKPOINT_METHODS)
        if self.method not in run_methods:
            raise ValueError(f"method: expected one of {', '.join(run_methods)}, got {self.method!r}")


def _stage_preset(args: RunArguments) -> Preset:
    preset = get_preset(args.preset)
    changes: dict[str, Any] = {"seed": args.seed}
    if args.model is not None:
        changes["model"] = args.model
    return dataclasses.replace(
        preset, **{name: dataclasses.replace(getattr(preset, name), **changes) for name in TRAINING_STAGES}
    )


def build_stages(args: RunArguments) -> list[Stage]:
    """The ordered stages of a run (base, eval-base, sft, eval-sft, dpo, eval-dpo, rm, ppo, eval-ppo,
    score-sft, score-dpo, score-ppo)."""
    run = Path(args.out)
    preset = _stage_preset(args)
    base_model = preset.sft.model

    def model_of(stage: str) -> str:
        if stage == "base":
            return json.loads((run / "stages" / "base" / "stage.json").read_text())["model"]
        return str(run / "stages" / stage / "model")

    def base() -> dict[str, Any]:
        return _materialise_base(base_model, args.seed, run / "stages" / "base")

    def train(kind: str, **models: str):
        def go() -> dict[str, Any]:
            from trustattr.train.stages import train_stage

            stage_args = dataclasses.replace(getattr(preset, kind), **{k: model_of(v) for k, v in models.items()})
            result = train_stage(kind, stage_args, run / "stages" / kind)
            return {"seconds": result.seconds, "resumed_from_step": result.resumed_from_step,
                    "before": result.metrics.get("before"), "after": result.metrics.get("after")}

        arguments = {**getattr(preset, kind).to_dict(), **{k: f"stage:{v}" for k, v in models.items()}}
        return Stage(kind, arguments, go, lambda: (run / "stages" / kind / "stage.json").exists(),
                     needs=tuple(models.values()))

    def evaluate(stage: str) -> Stage:
        eval_args = {"model": f"stage:{stage}", "benchmarks": list(args.benchmarks) if args.benchmarks else None,
                     "limit": args.eval_limit or preset.eval_limit, "seed": args.seed,
                     "batch_size": preset.eval_batch_size}

        def go() -> dict[str, Any]:
            from trustattr.train.loading import load_policy
            from trustattr.trust import evaluate as trust_evaluate

            model, tokenizer = load_policy(model_of(stage), seed=args.seed)
            return trust_evaluate(model, tokenizer, benchmarks=args.benchmarks, limit=eval_args["limit"],
                                  out_dir=run / "eval" / stage, seed=args.seed, batch_size=preset.eval_batch_size)

        return Stage(f"eval-{stage}", eval_args, go, lambda: (run / "eval" / stage / "results.json").exists(),
                     needs=(stage,))

    def score(stage: str, loss: str, policy: str, reference: str, trained_by: str) -> Stage:
        """Attribution of the trust benchmarks to the pairs ``trained_by`` trained on (the same subsample)."""
        trained = getattr(preset, trained_by)
        settings = {"train_data": trained.data, "split": "train", "limit": trained.train_limit or 0,
                    "loss": loss, "beta": getattr(trained, "beta", 0.1), "max_length": trained.max_length,
                    "max_prompt_length": trained.max_prompt_length, "seed": args.seed, "method": args.method,
                    "benchmarks": tuple(args.benchmarks) if args.benchmarks else None,
                    "test_limit": args.eval_limit}
        arguments = {**settings, "benchmarks": list(args.benchmarks or ()), "policy": f"stage:{policy}",
                     "reference": f"stage:{reference}", "preset": args.preset}

        def go() -> dict[str, Any]:
            from trustattr.attribution import ScoreArguments
            from trustattr.attribution import score as attribution_score

            score_args = ScoreArguments.from_preset(  # the run presets (tiny, smol) are also score presets
                args.preset, policy=model_of(policy), reference=model_of(reference),
                out=str(run / "score" / stage), **settings)
            result = attribution_score(score_args, progress=True)
            return {"pairs": len(result.pair_ids), "seconds": result.timings}

        return Stage(f"score-{stage}", arguments, go, lambda: (run / "score" / stage / "summary.json").exists(),
                     needs=(policy, reference))

    stages = [
        Stage("base", {"model": base_model, "seed": args.seed}, base,
              lambda: (run / "stages" / "base" / "stage.json").exists()),
        train("sft", model="base"),
        train("dpo", model="sft"),
        train("rm", model="sft"),
        train("ppo", model="sft", reward_model="rm"),
    ]
    if args.evaluate:
        for stage in reversed(GENERATIVE_STAGES):  # eval-X right after X
            position = next(i for i, s in enumerate(stages) if s.name == stage) + 1
            stages.insert(position, evaluate(stage))
    if args.attribute:
        stages += [score("sft", "sft", policy="sft", reference="base", trained_by="sft"),
                   score("dpo", "dpo", policy="dpo", reference="sft", trained_by="dpo"),
                   score("ppo", "reward", policy="rm", reference="sft", trained_by="rm")]
    return stages


def run_pipeline(args: RunArguments, only: list[str] | None = None, overwrite: bool = False) -> dict[str, Any]:
    """Run (or resume) the pipeline; writes RUN/run.json, RUN/summary.json/.md and RUN/curves.png."""
    runner = StageRunner(Path(args.out), dataclasses.asdict(args))
    status = runner.run(build_stages(args), only=only, overwrite=overwrite)
    from trustattr.train.summary import write_summary

    write_summary(Path(args.out), status)
    return status


def _materialise_base(model: str, seed: int, target: Path) -> dict[str, Any]:
    """``tiny`` is saved as a checkpoint (it exists only in memory); anything else is referenced as is."""
    from trustattr.models import resolve_model_path

    if model == "tiny":
        from trustattr.train.loading import load_policy
        from trustattr.train.trainer_common import save_model

        policy, tokenizer = load_policy("tiny", seed=seed)
        save_model(policy, tokenizer, target / "model")
        path = str(target / "model")
    else:
        path = resolve_model_path(model)
    write_json(target / "stage.json", {"kind": "base", "model": path, "seed": seed})
    return {"model": path}

