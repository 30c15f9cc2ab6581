"""Which nn.Linear modules are tracked: the last K transformer blocks, a name pattern, LoRA A/B for PEFT models."""

from __future__ import annotations

import re

from torch import nn

from trustattr.errors import TrustAttrError

__all__ = ["ModuleSelectionError", "find_blocks", "is_lora_model", "select_modules"]


class ModuleSelectionError(TrustAttrError):
    """A module selection that matches nothing (or a model without recognisable transformer blocks)."""


def find_blocks(model: nn.Module) -> tuple[str, int]:
    """(name prefix, count) of the transformer blocks: the longest nn.ModuleList in the model."""
    best: tuple[str, int] = ("", 0)
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) > best[1]:
            best = (name, len(module))
    if best[1] == 0:
        raise ModuleSelectionError(f"{type(model).__name__} has no nn.ModuleList of transformer blocks")
    return best


def is_lora_model(model: nn.Module) -> bool:
    return any(".lora_A." in f".{name}." for name, _ in model.named_modules())


def _in_last_blocks(name: str, prefix: str, first: int) -> bool:
    match = re.match(re.escape(prefix) + r"\.(\d+)\.", name)
    return match is not None and int(match.group(1)) >= first


def _is_lora_factor(name: str) -> bool:
    return re.search(r"\.lora_[AB]\.[^.]+$", name) is not None


def select_modules(model: nn.Module, pattern: str | None = None, last_k_blocks: int = 4) -> dict[str, nn.Linear]:
    """Tracked modules by name, in the model's module order.

    Candidates are the nn.Linear modules (for a PEFT LoRA model: only the ``lora_A`` / ``lora_B`` factors) of
    the last ``last_k_blocks`` transformer blocks (0 = all blocks); ``lm_head`` is never a default candidate.
    ``pattern`` (a regular expression, ``re.search`` on the full name) then filters them; when ``pattern`` is
    given with ``last_k_blocks == 0`` every Linear of the model is a candidate, ``lm_head`` included.
    """
    linears = [(name, module) for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if is_lora_model(model):
        linears = [(name, module) for name, module in linears if _is_lora_factor(name)]
    prefix, count = find_blocks(model)
    if last_k_blocks > 0:
        first = max(0, count - last_k_blocks)
        candidates = [(n, m) for n, m in linears if _in_last_blocks(n, prefix, first)]
    elif pattern is None:
        candidates = [(n, m) for n, m in linears if _in_last_blocks(n, prefix, 0)]
    else:
        candidates = linears
    if pattern is not None:
        try:
            regex = re.compile(pattern)
        except re.error as exc:
            raise ModuleSelectionError(f"--modules '{pattern}' is not a valid regular expression: {exc}") from exc
        candidates = [(n, m) for n, m in candidates if regex.search(n)]
    if not candidates:
        where = f"the last {last_k_blocks} blocks" if last_k_blocks > 0 else "the model"
        examples = ", ".join(name for name, _ in linears[-6:]) or "none"
        raise ModuleSelectionError(
            f"--modules '{pattern}' matches no nn.Linear module in {where}; available names include: {examples}"
        )
    return dict(candidates)
