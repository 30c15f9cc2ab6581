"""The PPO stage: prompts from the preference data, reward from a trained reward model, checkpoints, resume.

Checkpoints (``OUT/checkpoints/checkpoint-<iteration>/``) hold the trainable weights (LoRA adapters or all
weights, plus the value head) in ``model.safetensors``, ``optimizer.pt`` (optimizer + scheduler) and
``trainer_state.json`` (iteration, KL coefficient, log history). Prompt order and sampling are seeded per
iteration, so a resumed run continues exactly where the interrupted one stopped.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from trustattr.errors import CheckpointError
from trustattr.paths import atomic_path
from trustattr.preference_data import PreferencePair
from trustattr.train.config import PPOArguments
from trustattr.train.data import fit_pairs, load_stage_pairs
from trustattr.train.evaluation import rewards_of
from trustattr.train.loading import load_policy, load_reward_model
from trustattr.train.plots import plot_curves
from trustattr.train.ppo import CompactPPO, Scorer
from trustattr.train.ppo_rollout import Rollout
from trustattr.train.stage_dir import StageDir, StageResult, latest_checkpoint, write_json
from trustattr.train.trainer_common import lora_config, num_layers, save_model

__all__ = ["RewardModelScorer", "train_ppo"]


class RewardModelScorer:
    """Scores decoded responses with a reward model; ``delta`` subtracts the reward of the chosen response."""

    def __init__(self, reward_model: PreTrainedModel, reward_tokenizer: PreTrainedTokenizerBase,
                 policy_tokenizer: PreTrainedTokenizerBase, chosen_by_prompt: dict[str, str] | None = None,
                 batch_size: int = 8):
        self.reward_model = reward_model.eval().requires_grad_(False)
        self.reward_tokenizer = reward_tokenizer
        self.policy_tokenizer = policy_tokenizer
        self.chosen_by_prompt = chosen_by_prompt
        self.batch_size = batch_size
        self._baseline: dict[str, float] = {}
        self.last_raw_mean = 0.0

    def responses(self, rollout: Rollout) -> list[str]:
        return [text.strip() for text in self.policy_tokenizer.batch_decode(rollout.response_ids, skip_special_tokens=True)]

    def raw(self, prompts: list[str], responses: list[str]) -> torch.Tensor:
        return rewards_of(self.reward_model, self.reward_tokenizer, prompts, responses, self.batch_size)

    def __call__(self, prompts: list[str], rollout: Rollout) -> torch.Tensor:
        scores = self.raw(prompts, self.responses(rollout))  # [B]
        self.last_raw_mean = scores.mean().item()
        if self.chosen_by_prompt is None:
            return scores
        missing = [p for p in dict.fromkeys(prompts) if p not in self._baseline]
        if missing:
            baseline = self.raw(missing, [self.chosen_by_prompt[p] for p in missing])
            self._baseline.update(zip(missing, baseline.tolist()))
        return scores - torch.tensor([self._baseline[p] for p in prompts])


def train_ppo(args: PPOArguments, out_dir: str | Path, overwrite: bool = False,
              scorer: Scorer | None = None) -> StageResult:
    """PPO ``args.model`` against the reward model ``args.reward_model``; writes ``OUT/model`` (policy only).

    ``scorer`` replaces the reward model (e.g. a toy reward in tests). The held-out evaluation reports the
    mean raw reward of sampled responses to held-out prompts before and after.
    """
    if scorer is None and not args.reward_model:
        raise ValueError("reward_model: expected a reward-model directory (trustattr train rm) or tiny, got ''")
    stage = StageDir(Path(out_dir), "ppo", args.to_dict())
    finished = stage.begin(overwrite=overwrite)
    if finished is not None:
        return finished
    start = time.perf_counter()
    resume = latest_checkpoint(stage.checkpoints)
    policy, tokenizer = load_policy(args.model, seed=args.seed)
    train_pairs = fit_pairs(tokenizer, load_stage_pairs(args, "train"), args)
    eval_pairs = fit_pairs(tokenizer, load_stage_pairs(args, "eval"), args) if args.eval_limit else []
    rm_scorer = None
    if scorer is None:
        reward_model, reward_tokenizer = load_reward_model(args.reward_model, seed=args.seed)
        chosen = {p.prompt: p.chosen for p in train_pairs} if args.delta_reward else None
        rm_scorer = RewardModelScorer(reward_model, reward_tokenizer, tokenizer, chosen, batch_size=args.batch_size)
        scorer = rm_scorer
    reference = None
    if args.lora:
        from peft import get_peft_model

        policy = get_peft_model(policy, lora_config(args, "CAUSAL_LM", num_layers(policy)))
    else:
        reference = load_policy(args.model, seed=args.seed)[0]
    ppo = CompactPPO(policy, args, scorer, tokenizer.eos_token_id, tokenizer.pad_token_id, reference=reference)
    metrics: dict[str, Any] = {"log_history": []}
    if resume is not None:
        metrics = _load_checkpoint(ppo, resume)
    elif rm_scorer is not None and eval_pairs:
        metrics["before"] = _evaluate(ppo, rm_scorer, tokenizer, eval_pairs, args)
    prompts = [p.prompt for p in train_pairs]
    progress = tqdm(range(ppo.iteration, args.steps), desc="ppo", unit="step", initial=ppo.iteration, total=args.steps)
    for iteration in progress:
        batch = _batch_prompts(prompts, iteration, args.rollout_batch_size, args.seed)
        query = tokenizer(batch, add_special_tokens=False, padding=True, padding_side="left", return_tensors="pt")
        torch.manual_seed(args.seed * 1_000_003 + iteration)
        stats = ppo.step(query.input_ids, query.attention_mask, batch)
        if rm_scorer is not None:
            stats["reward"] = rm_scorer.last_raw_mean
        metrics["log_history"].append({"step": iteration + 1, **stats})
        progress.set_postfix(score=f"{stats['score']:.3f}", kl=f"{stats['kl']:.3f}")
        if (iteration + 1) % args.save_steps == 0 or iteration + 1 == args.steps:
            _save_checkpoint(ppo, metrics, stage.checkpoints / f"checkpoint-{iteration + 1}")
    if rm_scorer is not None and eval_pairs:
        metrics["after"] = _evaluate(ppo, rm_scorer, tokenizer, eval_pairs, args)
    metrics["global_step"] = ppo.iteration
    with atomic_path(stage.root / "value_head.safetensors") as tmp:
        save_file(ppo.model.value_head.state_dict(), str(tmp))
    save_model(ppo.model.policy, tokenizer, stage.model)
    write_json(stage.root / "metrics.json", metrics)
    plot_curves(metrics["log_history"], ("score", "reward", "kl", "kl_coef", "policy_loss", "value_loss"),
                stage.root / "curves.png", title=f"ppo ({args.model})")
    resumed = int(resume.name.split("-")[1]) if resume is not None else None
    return stage.finish(StageResult("ppo", stage.root, metrics, time.perf_counter() - start, resumed))


def _batch_prompts(prompts: Sequence[str], iteration: int, batch_size: int, seed: int) -> list[str]:
    """Prompts of one iteration: consecutive slices of a seeded permutation per pass over the prompts."""
    out = []
    for k in range(batch_size):
        position = iteration * batch_size + k
        epoch, index = divmod(position, len(prompts))
        order = torch.randperm(len(prompts), generator=torch.Generator().manual_seed(seed * 7919 + epoch))
        out.append(prompts[int(order[index])])
    return out


@torch.no_grad()
def _evaluate(ppo: CompactPPO, scorer: RewardModelScorer, tokenizer: PreTrainedTokenizerBase,
              pairs: Sequence[PreferencePair], args: PPOArguments) -> dict[str, float]:
    """Mean raw reward of one seeded sample per held-out prompt."""
    prompts = [p.prompt for p in pairs]
    rewards, lengths = [], []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        for begin in range(0, len(prompts), args.rollout_batch_size):
            batch = prompts[begin : begin + args.rollout_batch_size]
            query = tokenizer(batch, add_special_tokens=False, padding=True, padding_side="left", return_tensors="pt")
            rollout = ppo.generate(query.input_ids, query.attention_mask)
            rewards.append(scorer.raw(batch, scorer.responses(rollout)))
            lengths.append(rollout.response_mask.sum(-1).float())
    return {"mean_reward": torch.cat(rewards).mean().item(), "mean_response_length": torch.cat(lengths).mean().item(),
            "prompts": float(len(prompts))}


def _save_checkpoint(ppo: CompactPPO, metrics: dict[str, Any], target: Path) -> None:
    with atomic_path(target) as tmp:
        tmp.mkdir()
        save_file(ppo.trainable_state(), str(tmp / "model.safetensors"))
        torch.save({"optimizer": ppo.optimizer.state_dict(), "scheduler": ppo.scheduler.state_dict()},
                   tmp / "optimizer.pt")
        write_json(tmp / "trainer_state.json",
                   {"global_step": ppo.iteration, "kl_coef": ppo.kl.value, "metrics": metrics})
    for older in target.parent.glob("checkpoint-*"):  # keep the newest two
        if older.name != target.name and int(older.name.split("-")[1]) < ppo.iteration - ppo.args.save_steps:
            shutil.rmtree(older, ignore_errors=True)


def _load_checkpoint(ppo: CompactPPO, path: Path) -> dict[str, Any]:
    state = json.loads((path / "trainer_state.json").read_text())
    missing = ppo.load_trainable_state(load_file(str(path / "model.safetensors")))
    if missing:
        raise CheckpointError(f"checkpoint '{path}' lacks trainable tensors {missing[:3]}…; "
                              "it was written with other arguments; rerun with --overwrite")
    try:
        saved = torch.load(path / "optimizer.pt", weights_only=True)
        ppo.optimizer.load_state_dict(saved["optimizer"])
        ppo.scheduler.load_state_dict(saved["scheduler"])
    except Exception as exc:  # torch.load raises several types on garbage
        raise CheckpointError(f"checkpoint file '{path / 'optimizer.pt'}' is corrupt ({exc})") from exc
    ppo.iteration = int(state["global_step"])
    ppo.kl.value = float(state["kl_coef"])
    return state["metrics"]
