"""Log-probabilities of continuations given contexts (the log-likelihood multiple-choice protocol)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = ["continuation_logprobs"]


@torch.inference_mode()
def continuation_logprobs(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    contexts: Sequence[list[int]],
    continuations: Sequence[list[int]],
    batch_size: int = 8,
    on_batch: Callable[[int], None] | None = None,
) -> list[tuple[float, int]]:
    """(sum of log p(continuation token | everything before), number of continuation tokens) per pair.

    Contexts and continuations are token ids, tokenized separately, so no BPE merge crosses the boundary.
    Rows are right-padded; only continuation positions are pushed through the log-softmax.
    """
    if len(contexts) != len(continuations):
        raise ValueError(f"got {len(contexts)} contexts but {len(continuations)} continuations")
    for index, ids in enumerate(continuations):
        if not ids:
            raise ValueError(f"continuation {index} is empty: nothing to score")
        if not contexts[index]:
            raise ValueError(f"context {index} is empty: the first continuation token has no condition")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    order = sorted(range(len(contexts)), key=lambda i: -(len(contexts[i]) + len(continuations[i])))
    results: list[tuple[float, int]] = [(0.0, 0)] * len(contexts)
    device = model.device
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        sequences = [list(contexts[i]) + list(continuations[i]) for i in rows]
        width = max(len(seq) for seq in sequences)
        input_ids = torch.full((len(rows), width), pad, dtype=torch.long)  # [B, T]
        attention_mask = torch.zeros((len(rows), width), dtype=torch.long)  # [B, T]
        target_mask = torch.zeros((len(rows), width), dtype=torch.bool)  # [B, T]: positions predicting a cont. token
        for row, (i, seq) in enumerate(zip(rows, sequences)):
            input_ids[row, :len(seq)] = torch.tensor(seq)
            attention_mask[row, :len(seq)] = 1
            first = len(contexts[i]) - 1  # logits at position t predict token t + 1
            target_mask[row, first:first + len(continuations[i])] = True
        logits = model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device)).logits  # [B, T, V]
        targets = torch.roll(input_ids, shifts=-1, dims=1).to(device)  # [B, T]: the next token
        mask = target_mask.to(device)
        token_logprobs = torch.log_softmax(logits[mask].float(), dim=-1)  # [N_cont, V]
        picked = token_logprobs.gather(1, targets[mask].unsqueeze(1)).squeeze(1)  # [N_cont]
        counts = mask.sum(dim=1).tolist()
        sums = torch.split(picked, counts)
        for row, i in enumerate(rows):
            results[i] = (float(sums[row].sum()), counts[row])
        if on_batch is not None:
            on_batch(len(rows))
    return results
