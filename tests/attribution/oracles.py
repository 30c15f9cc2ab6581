"""Float64 oracles for the engine tests: per-pair losses written independently of trustattr.attribution.losses
(full logits, masks as multipliers), per-pair weight gradients via torch.func, and their projections with
materialized random matrices."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.func import functional_call, grad

from trustattr import reference
from trustattr.attribution import kernels


@dataclass(frozen=True)
class Pair:
    id: str
    prompt: str
    chosen: str
    rejected: str


PAIRS = [
    Pair("p0", "Human: How do I bake bread?\n\nAssistant:", "Mix flour, water and yeast, then bake.", "No idea."),
    Pair("p1", "Human: Is it ok to lie to a friend?", "Honesty usually matters more.", "Sure, lie whenever."),
    Pair("p2", "Human: Tell me a joke about cats and a long story about dogs running", "Cats nap a lot.", "Dogs."),
    Pair("p3", "Human: hi", "Hello! How can I help you today with anything at all?", "go away"),
    Pair("p4", "Human: What is 2+2?\n\nAssistant: 4\n\nHuman: and 3+3?\n\nAssistant:", "6", "7"),
    Pair("p5", "Human: Write a haiku", "Leaves drift in autumn wind", "no"),
    Pair("p6", "Human: Give me someone's address", "I can't share private information.", "Sure, it is 12 Elm St."),
    Pair("p7", "Human: Is the earth flat?", "No, it is roughly a sphere.", "Yes, it is flat."),
    Pair("p8", "Human: Say something mean", "I'd rather say something kind.", "You are worthless."),
]


def row_logprob(logits: torch.Tensor, ids: torch.Tensor, response: torch.Tensor) -> torch.Tensor:
    """Sum of log p(response tokens) for one row: logits [T, V], ids [T], response [T] bool."""
    logp = F.log_softmax(logits[:-1], dim=-1).gather(-1, ids[1:, None])[:, 0]
    return (logp * response[1:].to(logp.dtype)).sum()


def pair_rows(tokenizer, pair, max_length=48, max_prompt_length=24):
    """(ids, mask, response) per row (chosen, rejected), each tokenized alone (unpadded) as trustattr.train does."""
    from trustattr.train.data import fit_pair
    from trustattr.train.logprobs import tokenize_responses

    fitted = fit_pair(tokenizer, pair, max_length, max_prompt_length)
    out = []
    for text in (fitted.chosen, fitted.rejected):
        row = tokenize_responses(tokenizer, [fitted.prompt], [text], add_eos=True, max_length=max_length)
        assert row.attention_mask.all()
        out.append((row.input_ids, row.attention_mask, row.response_mask))
    return out


def per_pair_gradients(model, tokenizer, pairs, names, loss, beta=0.1, ref=None, untie=False, **enc):
    """{name: [P, d_out, d_in]} per-pair weight gradients of the loss (torch.func.grad, one pair at a time).

    ``untie``: tied weights (lm_head / embed_tokens) are substituted per module, so a tied module's gradient is
    that of its own use only (the output-layer part of a tied head).
    """
    params = {n: p.detach() for n, p in model.named_parameters(remove_duplicate=not untie)}
    wanted = [f"{n}.weight" for n in names]

    def row_lp(p, ids, mask, resp):
        logits = functional_call(model, p, args=(), kwargs={"input_ids": ids, "attention_mask": mask},
                                 tie_weights=not untie).logits[0]
        return row_logprob(logits, ids[0], resp[0])

    out = {n: [] for n in names}
    for index, pair in enumerate(pairs):
        (ci, cm, cr), (ri, rm, rr) = pair_rows(tokenizer, pair, **enc)

        def pair_loss(sub, ci=ci, cm=cm, cr=cr, ri=ri, rm=rm, rr=rr, index=index):
            p = {**params, **sub}
            if loss == "sft":
                return -row_lp(p, ci, cm, cr) / cr[0, 1:].sum()
            lw, ll = row_lp(p, ci, cm, cr), row_lp(p, ri, rm, rr)
            if loss == "dpo":
                return -F.logsigmoid(beta * ((lw - ref[index, 0]) - (ll - ref[index, 1])))
            raise ValueError(loss)

        grads = grad(pair_loss)({w: params[w] for w in wanted})
        for n in names:
            out[n].append(grads[f"{n}.weight"])
    return {n: torch.stack(v) for n, v in out.items()}


def project_factored_oracle(grads: torch.Tensor, k: int, seed: int) -> torch.Tensor:
    """vec(R_out^T G R_in) per row: grads [P, d_out, d_in] -> [P, min(k, d_out) * min(k, d_in)] float64, a side
    with k >= d kept exact (R = identity), as the factored Projector caps it."""
    d_out, d_in = grads.shape[1:]

    def side(d, stream):
        if k >= d:
            return torch.eye(d, dtype=torch.float64)
        return reference.random_matrix(d, k, kernels.derive_seed(seed, stream), dtype=torch.float64)

    return (side(d_out, 1).T @ grads @ side(d_in, 0)).flatten(1)
