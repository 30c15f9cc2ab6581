"""Rendering prompts (chat template or plain text) and batched, seeded generation with left padding.

Generation uses the model's own EOS tokens (the tokenizer's EOS plus any in ``model.generation_config``) and
pad token, an explicit attention mask, and a :class:`transformers.GenerationConfig` built only from the
benchmark protocol, so no setting leaks in from a checkpoint's saved generation defaults.

Sampling is reproducible: batch ``b`` is sampled under ``torch.manual_seed(batch_seed(seed, b))`` inside a
forked RNG (the caller's global RNG state is untouched), and batches are formed from a deterministic order,
so a resumed run produces the same text as an uninterrupted one with the same batch size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import GenerationConfig, PreTrainedModel, PreTrainedTokenizerBase

from trustattr.trust.base import Protocol, TrustPrompt

__all__ = [
    "Generation",
    "batch_seed",
    "encode",
    "eos_token_ids",
    "generate_batch",
    "generation_config",
    "plan_batches",
    "render",
    "resolve_chat_template",
]


@dataclass(frozen=True)
class Generation:
    text: str  # decoded new tokens, special tokens removed
    num_new_tokens: int  # up to and including EOS
    finished: bool  # True when the model emitted EOS before max_new_tokens


def resolve_chat_template(tokenizer: PreTrainedTokenizerBase, use_chat_template: bool | None) -> bool:
    """None -> use the chat template when the tokenizer has one; True without a template is an error."""
    has_template = bool(getattr(tokenizer, "chat_template", None))
    if use_chat_template is None:
        return has_template
    if use_chat_template and not has_template:
        raise ValueError("use_chat_template=True, but the tokenizer has no chat template; pass False (plain text)")
    return bool(use_chat_template)


def render(prompt: TrustPrompt, tokenizer: PreTrainedTokenizerBase, chat: bool) -> str:
    """The exact text the model sees."""
    if not chat:
        return prompt.plain_text()
    messages = [{"role": "system", "content": prompt.system}] if prompt.system is not None else []
    messages.append({"role": "user", "content": prompt.user})
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return text + prompt.answer_prefix.lstrip()


def encode(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], chat: bool) -> list[list[int]]:
    """Token ids; chat-rendered text already holds its special tokens, plain text gets the tokenizer's own."""
    return tokenizer(list(texts), add_special_tokens=not chat)["input_ids"]


def eos_token_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    ids = [] if tokenizer.eos_token_id is None else [tokenizer.eos_token_id]
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in configured if isinstance(configured, list) else [configured]:
        if value is not None and value not in ids:
            ids.append(int(value))
    if not ids:
        raise ValueError("the tokenizer and the model's generation config define no EOS token; generation could not stop")
    return ids


def pad_token_id(tokenizer: PreTrainedTokenizerBase) -> int:
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad is None:
        raise ValueError("the tokenizer has neither a pad nor an EOS token; set tokenizer.pad_token")
    return int(pad)


def generation_config(protocol: Protocol, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> GenerationConfig:
    sampling = {} if protocol.greedy else {
        "temperature": protocol.temperature, "top_k": protocol.top_k, "top_p": protocol.top_p
    }
    return GenerationConfig(
        max_new_tokens=protocol.max_new_tokens,
        do_sample=not protocol.greedy,
        num_beams=1,
        pad_token_id=pad_token_id(tokenizer),
        eos_token_id=eos_token_ids(model, tokenizer),
        **sampling,
    )


def plan_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length (longest first, so memory problems show at once)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]


def batch_seed(seed: int, batch_index: int) -> int:
    return (seed * 1_000_003 + batch_index) % (2**63 - 1)


@torch.inference_mode()
def generate_batch(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    token_ids: Sequence[Sequence[int]],
    config: GenerationConfig,
    seed: int,
) -> list[Generation]:
    """Generate for one batch of token-id lists: left padding, attention mask, the given seed."""
    pad = config.pad_token_id
    width = max(len(ids) for ids in token_ids)
    input_ids = torch.full((len(token_ids), width), pad, dtype=torch.long)  # [B, T]
    attention_mask = torch.zeros((len(token_ids), width), dtype=torch.long)  # [B, T]
    for row, ids in enumerate(token_ids):
        input_ids[row, width - len(ids):] = torch.tensor(ids, dtype=torch.long)
        attention_mask[row, width - len(ids):] = 1
    device = model.device
    cuda = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        output = model.generate(
            input_ids=input_ids.to(device), attention_mask=attention_mask.to(device), generation_config=config
        )
    new_tokens = output[:, width:].cpu()  # [B, new]
    eos = set(config.eos_token_id)
    results = []
    for row in new_tokens.tolist():
        stop = next((i for i, token in enumerate(row) if token in eos), None)
        kept = row if stop is None else row[:stop]  # the EOS token itself is not part of the text
        text = tokenizer.decode(kept, skip_special_tokens=True)
        results.append(Generation(text=text, num_new_tokens=len(row) if stop is None else stop + 1,
                                  finished=stop is not None))
    return results
