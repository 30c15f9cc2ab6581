"""The default policy of ``trustattr score`` (``--policy auto``): the reference plus a small LoRA-DPO run.

Why not the RLHF pipeline's DPO stage (``trustattr.train.dpo.train_dpo``, trl's DPOTrainer)? Measured on this
2-core CPU it takes about 200 s per optimizer step of 8 pairs (LoRA on every block, full-vocabulary logits at
every position, a reference forward per step), i.e. hours for 256 pairs, while the default ``trustattr score``
must finish in 20 minutes. Models from the pipeline are used by passing them: ``--policy RUN/stages/dpo/model``.
This loop trains the same objective cheaply: LoRA (r=8, alpha=16) on every Linear of the last K blocks only (the
backward stops there), the engine's DPO loss (logits only at response positions, tokenized exactly as
trustattr.train tokenizes), the reference log-probs the engine computes anyway, AdamW, one epoch. The adapter
is saved unmerged (the engine tracks its lora_A / lora_B, as the paper does) under ``cache_dir()/policies/``,
keyed by everything that determines it, so it is trained once.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from trustattr.attribution.losses import DPOLoss
from trustattr.attribution.modules import find_blocks
from trustattr.paths import atomic_path, cache_dir

__all__ = ["LORA_SETTINGS", "auto_policy", "with_lora"]

LORA_SETTINGS = {"r": 8, "lora_alpha": 16, "learning_rate": 5e-4, "epochs": 1}


def _target_names(model: torch.nn.Module, prefix: str) -> list[str]:
    return sorted({name.rsplit(".", 1)[-1] for name, m in model.named_modules()
                   if isinstance(m, torch.nn.Linear) and name.startswith(prefix + ".")})


def with_lora(model: torch.nn.Module, last_k_blocks: int, seed: int) -> torch.nn.Module:
    """``model`` wrapped with fresh LoRA adapters (LORA_SETTINGS) on every Linear of its last ``last_k_blocks``
    blocks (0 = all), initialized from ``seed`` (the global RNG is left as it was)."""
    from peft import LoraConfig, get_peft_model

    prefix, count = find_blocks(model)
    layers = list(range(count - last_k_blocks, count)) if last_k_blocks > 0 else None
    config = LoraConfig(r=LORA_SETTINGS["r"], lora_alpha=LORA_SETTINGS["lora_alpha"], lora_dropout=0.0,
                        target_modules=_target_names(model, prefix), layers_to_transform=layers)
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        return get_peft_model(model, config)
    finally:
        torch.random.set_rng_state(generator_state)


def auto_policy(
    reference: str,
    reference_fingerprint: str,
    pairs: Sequence,
    reference_logprobs: torch.Tensor,
    tokenizer,
    loss: DPOLoss,
    *,
    last_k_blocks: int,
    seed: int,
    batch_size: int,
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Directory of the LoRA-DPO adapter trained from ``reference`` on ``pairs`` (trained now if not cached)."""
    from trustattr.attribution.loading import load_causal_lm

    settings = {**LORA_SETTINGS, "reference": reference_fingerprint, "ids": [p.id for p in pairs],
                "loss": loss.describe(), "last_k_blocks": last_k_blocks, "seed": seed, "batch_size": batch_size}
    key = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    target = cache_dir() / "policies" / f"lora-dpo-{key}"
    if (target / "adapter_config.json").exists():
        return target
    peft_model = with_lora(load_causal_lm(reference), last_k_blocks, seed)
    optimizer = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad],
                                  lr=LORA_SETTINGS["learning_rate"])
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    peft_model.train()
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        batch = loss.encode(tokenizer, [pairs[i] for i in chunk], reference_logprobs[chunk])
        loss.losses(peft_model, batch).mean().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if progress:
            progress(len(chunk))
    peft_model.eval()
    with atomic_path(target) as tmp:
        peft_model.save_pretrained(tmp)
        adapter_config = json.loads((tmp / "adapter_config.json").read_text())
        adapter_config["base_model_name_or_path"] = reference
        (tmp / "adapter_config.json").write_text(json.dumps(adapter_config, indent=2))
        (tmp / "trustattr_policy.json").write_text(json.dumps(settings | {"ids": len(pairs)}, indent=2))
    return target
