"""AttributionCallback: checkpoints + learning rate (+ Adam moments, + projected features) during training.

Works with any ``transformers.Trainer`` (trl's SFTTrainer / DPOTrainer / RewardTrainer included). Every
``every_n_steps`` optimizer steps and at the end of training it writes ``output_dir/checkpoint-<step>/`` in the
layout of :mod:`trustattr.attribution.checkpoints` (read by ``trustattr score --method tracin|less
--checkpoints output_dir``). It only observes: hooks are installed and removed inside each save, the model's
train/eval mode is restored, no parameter ``.grad`` is touched, and the trainer's model, tokenizer and
arguments are never modified. The time it spends is reported in ``output_dir/callback.json``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import TrainerCallback

from trustattr.attribution.attributor import Attributor, reference_logprobs
from trustattr.attribution.checkpoints import CHECKPOINT_FILE, OPTIMIZER_FILE
from trustattr.attribution.losses import make_loss
from trustattr.attribution.modules import select_modules
from trustattr.attribution.projector import Projector
from trustattr.paths import atomic_path

__all__ = ["AttributionCallback"]


class AttributionCallback(TrainerCallback):
    """Save attribution checkpoints every ``every_n_steps`` steps and at the end of training.

    Args:
        output_dir: where ``checkpoint-<step>/`` directories and ``callback.json`` go.
        every_n_steps: save period in optimizer steps (>= 1).
        tokenizer: the tokenizer the pairs are encoded with (needed when features are saved).
        train_pairs / test_pairs: preference pairs (``id``, ``prompt``, ``chosen``, ``rejected``) whose projected
            gradient features are saved with each checkpoint; ``test_pairs`` may be a dict {name: pairs}.
        loss: ``"dpo"`` or ``"sft"`` (the per-pair loss of the features), with ``beta``, ``max_length``,
            ``max_prompt_length`` as in ``trustattr score``.
        reference_model: the DPO reference; default for a PEFT model: the model with its adapters disabled.
        modules, last_k_blocks, projection, k, seed: which modules are tracked and how they are projected.
        save_model: save the model (PEFT: only the adapter) in each checkpoint, with the tokenizer (``tokenizer``,
            else the trainer's ``processing_class``) in the same directory.
        save_optimizer_state: save the Adam moments of the tracked weights (for the less method).
    """

    def __init__(
        self,
        output_dir: str | Path,
        every_n_steps: int = 10,
        *,
        tokenizer: Any = None,
        train_pairs: Sequence | None = None,
        test_pairs: Sequence | dict[str, Sequence] | None = None,
        loss: str = "dpo",
        beta: float = 0.1,
        max_length: int = 192,
        max_prompt_length: int = 128,
        reference_model: torch.nn.Module | None = None,
        modules: str | None = None,
        last_k_blocks: int = 4,
        projection: str = "factored",
        k: int = 16,
        seed: int = 0,
        batch_size: int = 8,
        save_model: bool = True,
        save_optimizer_state: bool = True,
    ) -> None:
        if every_n_steps < 1:
            raise ValueError(f"`every_n_steps` must be >= 1, got {every_n_steps}")
        if loss not in ("dpo", "sft"):
            raise ValueError(f"`loss` must be 'dpo' or 'sft', got {loss!r}")
        self.feature_sets: dict[str, Sequence] = {}
        if train_pairs:
            self.feature_sets["train"] = list(train_pairs)
        if isinstance(test_pairs, dict):
            self.feature_sets.update({f"test-{name}": list(p) for name, p in test_pairs.items()})
        elif test_pairs:
            self.feature_sets["test"] = list(test_pairs)
        if self.feature_sets and tokenizer is None:
            raise ValueError("`tokenizer` is needed to save features of train_pairs / test_pairs")
        self.output_dir = Path(output_dir)
        self.every_n_steps = every_n_steps
        self.tokenizer, self.reference_model = tokenizer, reference_model
        self.loss = make_loss(loss, max_length, max_prompt_length, beta)
        self.pair_loss = make_loss("dpo", max_length, max_prompt_length, beta)
        self.module_pattern, self.last_k_blocks = modules, last_k_blocks
        self.projection, self.k, self.seed, self.batch_size = projection, k, seed, batch_size
        self.save_model, self.save_optimizer_state = save_model, save_optimizer_state
        self.seconds = 0.0
        self.saved_steps: list[int] = []
        self._reference: dict[str, torch.Tensor] = {}
        self._train_start = 0.0
        self._step_lr = float("nan")  # learning rate of the latest optimizer step

    # --------------------------------------------------------------- callbacks
    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self._train_start = time.perf_counter()
        select_modules(model, self.module_pattern, self.last_k_blocks)  # fail early if the selection is empty
        if self.loss.name == "dpo" and self.feature_sets and state.is_world_process_zero:
            start = time.perf_counter()
            with self._reference_context(model) as ref:
                self._reference = {name: reference_logprobs(ref, self.tokenizer, self.pair_loss, pairs, self.batch_size)
                                   for name, pairs in self.feature_sets.items()}
            self.seconds += time.perf_counter() - start

    def on_step_begin(self, args, state, control, lr_scheduler=None, **kwargs):
        if lr_scheduler is not None:
            self._step_lr = float(lr_scheduler.get_last_lr()[0])  # the rate this step's update uses

    def on_step_end(self, args, state, control, model=None, optimizer=None, **kwargs):
        if state.global_step % self.every_n_steps == 0:
            self._save(state, model, optimizer, self._model_tokenizer(kwargs))

    def on_train_end(self, args, state, control, model=None, optimizer=None, **kwargs):
        if state.global_step not in self.saved_steps:
            self._save(state, model, optimizer, self._model_tokenizer(kwargs))
        if state.is_world_process_zero:
            total = time.perf_counter() - self._train_start
            report = {"saved_steps": self.saved_steps, "callback_seconds": round(self.seconds, 3),
                      "train_seconds": round(total, 3),
                      "overhead_fraction": round(self.seconds / max(total - self.seconds, 1e-9), 4)}
            with atomic_path(self.output_dir / "callback.json") as tmp:
                tmp.write_text(json.dumps(report, indent=2))

    # ------------------------------------------------------------------- saving
    def _reference_context(self, model):
        if self.reference_model is not None:
            return nullcontext(self.reference_model)
        if hasattr(model, "disable_adapter"):
            return _AdapterDisabled(model)
        raise ValueError("the dpo loss needs `reference_model` (or a PEFT model, whose adapters are disabled)")

    def _model_tokenizer(self, kwargs: dict) -> Any:
        """The tokenizer saved with the model: ours, else the trainer's (``processing_class`` / ``tokenizer``)."""
        if self.tokenizer is not None:
            return self.tokenizer
        trainer_side = kwargs.get("processing_class") or kwargs.get("tokenizer")
        return trainer_side if hasattr(trainer_side, "save_pretrained") else None

    def _save(self, state, model, optimizer, tokenizer=None) -> None:
        if not state.is_world_process_zero:
            return
        start = time.perf_counter()
        modules = select_modules(model, self.module_pattern, self.last_k_blocks)
        lr = self._step_lr
        group = optimizer.param_groups[0] if optimizer is not None else {}
        meta = {"step": state.global_step, "epoch": state.epoch, "learning_rate": lr,
                "model_kind": "adapter" if hasattr(model, "peft_config") else "full",
                "optimizer_state": False, "adam": {"betas": list(group.get("betas", (0.9, 0.999))),
                                                   "eps": group.get("eps", 1e-8)},
                "features": {}}
        with atomic_path(self.output_dir / f"checkpoint-{state.global_step}") as tmp:
            tmp.mkdir()
            if self.save_model:
                model.save_pretrained(tmp / "model")
                if tokenizer is not None:  # a checkpoint is loadable (and scorable) on its own
                    tokenizer.save_pretrained(tmp / "model")
            if self.save_optimizer_state and optimizer is not None:
                meta["optimizer_state"] = _save_adam_moments(tmp / OPTIMIZER_FILE, model, modules, optimizer)
            if self.feature_sets:
                meta["features"] = self._save_features(tmp / "features", model, modules)
            (tmp / CHECKPOINT_FILE).write_text(json.dumps(meta, indent=2))
        self.saved_steps.append(state.global_step)
        self.seconds += time.perf_counter() - start

    def _save_features(self, root: Path, model, modules) -> dict[str, Any]:
        root.mkdir()
        projector = Projector(modules, self.projection, self.k, self.seed)
        attributor = Attributor(model, self.tokenizer, self.loss, modules, projector, self.batch_size)
        info = {}
        for name, pairs in self.feature_sets.items():
            feats = attributor.features(pairs, self._reference.get(name) if self.loss.name == "dpo" else None)
            np.save(root / f"{name}.npy", feats.numpy().astype(np.float32))
            info[name] = {"ids": [p.id for p in pairs], "loss": self.loss.describe(),
                          "projection": projector.describe(), "blocks": projector.blocks}
        (root / "features.json").write_text(json.dumps(info, indent=2))
        return {name: f"features/{name}.npy" for name in info}


class _AdapterDisabled:
    """A PEFT model with its adapters disabled, as a context manager yielding the model."""

    def __init__(self, model) -> None:
        self.model = model

    def __enter__(self):
        self._ctx = self.model.disable_adapter()
        self._ctx.__enter__()
        return self.model

    def __exit__(self, *exc_info):
        return self._ctx.__exit__(*exc_info)


def _save_adam_moments(path: Path, model, modules, optimizer) -> bool:
    from safetensors.torch import save_file

    weights = {id(module.weight): name for name, module in modules.items()}
    tensors = {}
    for param in (p for group in optimizer.param_groups for p in group["params"]):
        name = weights.get(id(param))
        state = optimizer.state.get(param, {})
        if name is not None and "exp_avg" in state:
            tensors[f"{name}.weight.exp_avg"] = state["exp_avg"].detach().float().contiguous().clone()
            tensors[f"{name}.weight.exp_avg_sq"] = state["exp_avg_sq"].detach().float().contiguous().clone()
    if tensors:
        save_file(tensors, str(path))
    return bool(tensors)
