"""Each per-pair loss against a float64 reference written independently (full logits, unpadded rows)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.attribution import oracles
from trustattr.attribution.attributor import Attributor, reference_logprobs
from trustattr.attribution.loading import load_reward_model
from trustattr.attribution.losses import make_loss, sequence_logprobs
from trustattr.attribution.modules import select_modules
from trustattr.attribution.projector import Projector
from trustattr.models import load_tokenizer, tiny_model
from trustattr.train.reward import reward_at_last_token

ENC = {"max_length": 48, "max_prompt_length": 24}
PAIRS = oracles.PAIRS[:6]


def _float64(model):
    model = model.to(torch.float64)
    model.set_attn_implementation("sdpa")  # eager attention takes its softmax in float32
    return model


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("tiny")


@pytest.fixture(scope="module")
def policy():
    return _float64(tiny_model(seed=3))


@pytest.fixture(scope="module")
def rows_logprobs(tokenizer, policy):
    """Oracle (chosen, rejected) summed response log-probs per pair, each row run alone."""
    out = []
    with torch.no_grad():
        for pair in PAIRS:
            out.append([oracles.row_logprob(policy(input_ids=i, attention_mask=m).logits[0], i[0], r[0])
                        for i, m, r in oracles.pair_rows(tokenizer, pair, **ENC)])
    return torch.tensor(out, dtype=torch.float64)


def test_sequence_logprobs_sum_response_tokens_only(tokenizer, policy, rows_logprobs):
    batch = make_loss("dpo", **ENC).encode(tokenizer, PAIRS)
    with torch.no_grad():
        gathered = sequence_logprobs(policy, batch.rows)
        full = sequence_logprobs(policy, batch.rows, full_logits=True)
    want = torch.cat([rows_logprobs[:, 0], rows_logprobs[:, 1]])
    torch.testing.assert_close(gathered, want, rtol=1e-12, atol=1e-10)
    torch.testing.assert_close(full, want, rtol=1e-12, atol=1e-10)


def test_sft_loss_is_token_mean_cross_entropy_on_chosen(tokenizer, policy, rows_logprobs):
    loss = make_loss("sft", **ENC)
    with torch.no_grad():
        got = loss.losses(policy, loss.encode(tokenizer, PAIRS))
    counts = torch.tensor([float(oracles.pair_rows(tokenizer, p, **ENC)[0][2][0, 1:].sum()) for p in PAIRS],
                          dtype=torch.float64)
    torch.testing.assert_close(got, -rows_logprobs[:, 0] / counts, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("beta", [0.1, 0.5])
def test_dpo_loss_uses_summed_logprobs_and_cached_reference(tokenizer, policy, rows_logprobs, beta):
    reference = _float64(tiny_model(seed=4))
    loss = make_loss("dpo", **ENC, beta=beta)
    ref = reference_logprobs(reference, tokenizer, loss, PAIRS, batch_size=4)  # cached once per pair
    with torch.no_grad():
        ref_oracle = torch.tensor([[oracles.row_logprob(reference(input_ids=i, attention_mask=m).logits[0], i[0], r[0])
                                    for i, m, r in oracles.pair_rows(tokenizer, p, **ENC)] for p in PAIRS],
                                  dtype=torch.float64)
        got = loss.losses(policy, loss.encode(tokenizer, PAIRS, ref))
    torch.testing.assert_close(ref, ref_oracle, rtol=1e-12, atol=1e-10)
    margin = (rows_logprobs[:, 0] - ref_oracle[:, 0]) - (rows_logprobs[:, 1] - ref_oracle[:, 1])
    torch.testing.assert_close(got, -F.logsigmoid(beta * margin), rtol=1e-10, atol=1e-12)
    assert margin.abs().min() > 1e-3  # policy and reference differ, so beta matters


def test_dpo_without_reference_is_an_error(tokenizer, policy):
    loss = make_loss("dpo", **ENC)
    with pytest.raises(ValueError, match="reference log-probs"):
        loss.losses(policy, loss.encode(tokenizer, PAIRS))


def test_reward_loss_is_bradley_terry_where_training_reads_the_reward(tokenizer):
    """trustattr.train reads the reward at the last non-pad token (HF pooling); each row alone, unpadded."""
    model = _float64(load_reward_model("tiny"))
    loss = make_loss("reward", **ENC, reward_fn=reward_at_last_token)
    pad = model.config.pad_token_id
    with torch.no_grad():
        got = loss.losses(model, loss.encode(tokenizer, PAIRS))
        want = []
        for pair in PAIRS:
            rewards = []
            for ids, _, _ in oracles.pair_rows(tokenizer, pair, **ENC):
                last = int((ids[0] != pad).nonzero().max())  # the reward position: last non-pad token
                hidden = model.model(input_ids=ids).last_hidden_state[0, last]
                rewards.append(model.score(hidden)[0])
            want.append(-F.logsigmoid(rewards[0].float() - rewards[1].float()))
    # trustattr.train's reward_at_last_token returns float32 rewards (as in training), hence float32 precision
    torch.testing.assert_close(got, torch.stack(want), rtol=1e-6, atol=1e-7)


def test_reward_pair_gradient_is_the_sum_of_its_rows(tokenizer):
    """Per-pair features of the BT loss == features of the pair's two rows, each alone, summed."""
    model = _float64(load_reward_model("tiny"))
    modules = select_modules(model, last_k_blocks=1)
    projector = Projector(modules, "factored", 4, seed=1)
    loss = make_loss("reward", **ENC, reward_fn=reward_at_last_token)
    pairs = PAIRS[:3]
    got = Attributor(model, tokenizer, loss, modules, projector, batch_size=3).features(pairs)
    batch = loss.encode(tokenizer, pairs)
    # the same loss, but each row in its own segment: rows 0..2 chosen, 3..5 rejected
    split = type(batch)(batch.ids * 2, batch.rows, torch.arange(6), None)
    projector.start(batch.rows.attention_mask, split.segments, 6, torch.float64)
    from trustattr.attribution.capture import GradientCapture

    with GradientCapture(modules, projector.sink) as capture:
        capture.backward(loss.losses(model, batch).sum())
    rows = projector.finish()
    torch.testing.assert_close(got, rows[:3] + rows[3:], rtol=1e-10, atol=1e-14)
