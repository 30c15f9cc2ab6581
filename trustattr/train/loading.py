"""Loading the models a stage starts from: causal LMs (policies) and reward models.

Local directories are checked first (config + readable weights), so that a missing or corrupt stage output
gives a CheckpointError naming the file instead of a transformers traceback.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from transformers import (
    AutoModelForSequenceClassification,
    LlamaForSequenceClassification,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from trustattr.errors import ModelNotFoundError
from trustattr.models import load_model, load_tokenizer, resolve_model_path, tiny_model
from trustattr.train.stage_dir import validate_model_dir

__all__ = ["load_policy", "load_reward_model"]


def _check_local(name_or_path: str) -> None:
    path = Path(os.path.expanduser(name_or_path))
    if path.is_dir():
        validate_model_dir(path)


def load_policy(name_or_path: str, seed: int = 0) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A causal LM in fp32 (tiny, smol, a stage's ``model`` directory or a hub name) and its tokenizer."""
    _check_local(name_or_path)
    model, tokenizer = load_model(name_or_path, dtype=torch.float32, seed=seed)
    model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def load_reward_model(name_or_path: str, seed: int = 0) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A one-output sequence classifier: a trained reward model, or a new head on a causal LM's trunk.

    ``tiny`` gives a LlamaForSequenceClassification with the trunk of ``tiny_model(seed)``; a causal-LM
    checkpoint gets a fresh, seeded score head. ``config.pad_token_id`` is set: the reward is read at the last
    non-pad token (see :func:`trustattr.train.reward.reward_at_last_token`).
    """
    if not name_or_path:
        raise ModelNotFoundError("reward_model: expected a reward-model directory (trustattr train rm) or tiny, got ''")
    tokenizer = load_tokenizer("tiny" if name_or_path == "tiny" else name_or_path)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if name_or_path == "tiny":
            trunk = tiny_model(seed)
            config = trunk.config
            config.num_labels = 1
            model = LlamaForSequenceClassification(config)
            model.model.load_state_dict(trunk.model.state_dict())
        else:
            _check_local(name_or_path)
            source = resolve_model_path(name_or_path)
            log = logging.getLogger("transformers.modeling_utils")
            level = log.level
            log.setLevel(logging.ERROR)  # silence "score.weight newly initialized": that is the point here
            try:
                model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=1, dtype=torch.float32)
            except OSError as exc:
                raise ModelNotFoundError(f"reward model '{name_or_path}' could not be loaded: {exc}") from exc
            finally:
                log.setLevel(level)
    model.config.pad_token_id = tokenizer.pad_token_id
    return model.eval(), tokenizer
