"""Loading the models of an attribution run (plain checkpoints, PEFT LoRA adapters, presets) and fingerprinting them."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from torch import nn

from trustattr.errors import ModelNotFoundError
from trustattr.models import load_model_only, load_tokenizer

__all__ = ["DTYPE_BY_NAME", "fingerprint", "load_causal_lm", "load_reward_model", "load_tokenizer"]

DTYPE_BY_NAME = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float64": torch.float64}


def _adapter_base(path: Path) -> str:
    config = json.loads((path / "adapter_config.json").read_text())
    base = config.get("base_model_name_or_path")
    if not base:
        raise ModelNotFoundError(f"LoRA adapter '{path}' does not name its base model (base_model_name_or_path)")
    return base


def load_causal_lm(name_or_path: str, dtype: torch.dtype = torch.float32, base: str | None = None) -> nn.Module:
    """A causal LM in eval mode: a preset, a local checkpoint, a hub name, or a PEFT LoRA adapter directory.

    For an adapter directory the base model is ``base`` if given, else the adapter's own
    ``base_model_name_or_path``; the adapter is kept unmerged (its lora_A / lora_B are what gets tracked).
    """
    path = Path(name_or_path).expanduser()
    if (path / "adapter_config.json").exists():
        from peft import PeftModel

        model = load_model_only(base or _adapter_base(path), dtype=dtype)
        return PeftModel.from_pretrained(model, str(path)).eval()
    return load_model_only(name_or_path, dtype=dtype).eval()


def fingerprint(model: nn.Module) -> str:
    """sha1 over the names, shapes, dtypes and values of all parameters and buffers (identifies the weights)."""
    digest = hashlib.sha1()
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        data = tensor.detach().contiguous()
        if data.dtype == torch.bfloat16:
            data = data.view(torch.int16)
        digest.update(data.cpu().numpy().tobytes())
    return digest.hexdigest()



def load_reward_model(name_or_path: str, dtype: torch.dtype = torch.float32, seed: int = 0) -> nn.Module:
    """The PPO stage's reward model (``trustattr train rm`` output, or ``tiny``), as trustattr.train loads it."""
    from trustattr.train.loading import load_reward_model as load_rm

    model, _ = load_rm(name_or_path, seed=seed)
    return model.to(dtype).eval()
