"""Held-out implicit-reward accuracy of a DPO model, with its standard error and a sign test.

Reuses the reference (starting model) log-probs that ``trustattr train dpo`` saves in its "before" evaluation
(``OUT/checkpoints/reference_logprobs.pt``), on the same held-out pairs and tokenization:

    python tools/dpo_heldout_accuracy.py runs/smol-final/stages/dpo/model \
        runs/dpo-512/checkpoints/reference_logprobs.pt --preset smol --eval-limit 256
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math

import torch

from trustattr.models import load_model
from trustattr.train.data import fit_pairs, load_stage_pairs
from trustattr.train.evaluation import dpo_margins, pair_logprobs
from trustattr.train.presets import get_preset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="the trained DPO model (a checkpoint directory)")
    parser.add_argument("reference_logprobs", help="reference_logprobs.pt of a `trustattr train dpo` run")
    parser.add_argument("--preset", default="smol", help="preset whose DPO settings tokenized the pairs")
    parser.add_argument("--eval-limit", type=int, default=256, help="held-out pairs (as in that run)")
    parser.add_argument("--beta", type=float, default=0.1, help="DPO beta")
    args = parser.parse_args()

    stage = dataclasses.replace(get_preset(args.preset).dpo, eval_limit=args.eval_limit)
    model, tokenizer = load_model(args.model)
    pairs = fit_pairs(tokenizer, load_stage_pairs(stage, "eval"), stage)
    ref_chosen, ref_rejected = torch.load(args.reference_logprobs, weights_only=True)  # [N], [N]
    if len(ref_chosen) != len(pairs):
        raise SystemExit(f"reference_logprobs: expected {len(pairs)} pairs (eval-limit {args.eval_limit}), "
                         f"got {len(ref_chosen)}")
    chosen, rejected = pair_logprobs(model, tokenizer, pairs, stage.batch_size)  # [N], [N]
    margin = dpo_margins((chosen, rejected), (ref_chosen, ref_rejected), args.beta)  # [N]
    n, wins, ties = len(pairs), int((margin > 0).sum()), int((margin == 0).sum())
    accuracy = (wins + ties / 2) / n
    decided = n - ties
    print(json.dumps({
        "pairs": n,
        "implicit_reward_accuracy": accuracy,
        "standard_error": math.sqrt(accuracy * (1 - accuracy) / n),
        "sign_test_z": (wins - decided / 2) / math.sqrt(decided / 4) if decided else 0.0,
        "mean_margin": margin.mean().item(),
        "logprob_accuracy_policy": (chosen > rejected).float().mean().item(),
        "logprob_accuracy_reference": (ref_chosen > ref_rejected).float().mean().item(),
    }, indent=1))


if __name__ == "__main__":
    main()
