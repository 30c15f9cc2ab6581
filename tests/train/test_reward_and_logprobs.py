"""Where rewards are read, how response log-probs are summed, and how pairs are cut to length."""

from __future__ import annotations

import pytest
import torch

from trustattr.models import load_tokenizer
from trustattr.preference_data import PreferencePair, load_preference_pairs
from trustattr.train.config import SFTArguments
from trustattr.train.data import RESPONSE_SEPARATOR, fit_pair, fit_pairs
from trustattr.train.loading import load_reward_model
from trustattr.train.logprobs import sequence_logprobs, tokenize_responses
from trustattr.train.reward import last_token_index, reward_at_last_token


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("tiny")


@pytest.fixture(scope="module")
def reward_model():
    model, _ = load_reward_model("tiny", seed=0)
    return model  # float32: transformers' eager attention gives NaN for left padding in float64


def test_reward_is_the_head_at_the_last_non_pad_token(reward_model, tokenizer):
    pad = tokenizer.pad_token_id
    ids = torch.tensor([[11, 12, 13, pad, pad], [pad, 21, 22, 23, 24]])  # right- and left-padded
    mask = (ids != pad).long()
    with torch.no_grad():
        reward = reward_at_last_token(reward_model, ids, mask)
        hidden = reward_model.model(input_ids=ids, attention_mask=mask).last_hidden_state  # [2, 5, d]
        index = last_token_index(ids, pad)
        expected = reward_model.score(hidden[torch.arange(2), index]).squeeze(-1)
    assert index.tolist() == [2, 4]
    torch.testing.assert_close(reward, expected)


def test_reward_ignores_trailing_eos_and_extra_padding(reward_model, tokenizer):
    pad = tokenizer.pad_token_id  # SmolLM2: pad == eos, so an appended eos is not where the reward is read
    assert pad == tokenizer.eos_token_id
    short = torch.tensor([[31, 32, 33]])
    longer = torch.tensor([[31, 32, 33, pad, pad, pad]])
    with torch.no_grad():
        a = reward_at_last_token(reward_model, short, torch.ones_like(short))
        b = reward_at_last_token(reward_model, longer, torch.tensor([[1, 1, 1, 1, 0, 0]]))
    torch.testing.assert_close(a, b)


def test_reward_needs_a_pad_token(tokenizer):
    model, _ = load_reward_model("tiny", seed=0)
    model.config.pad_token_id = None
    with pytest.raises(ValueError, match="pad_token_id"):
        reward_at_last_token(model, torch.tensor([[1, 2]]), torch.ones(1, 2, dtype=torch.long))


def test_sequence_logprobs_equal_a_per_token_sum_and_ignore_batching(tokenizer):
    from trustattr.models import tiny_model

    model = tiny_model(seed=0).double()
    prompts = ["Human: hi\n\nAssistant:", "Human: a much longer question here?\n\nAssistant:", "Human: x\n\nAssistant:"]
    responses = ["Hello there.", "No.", "Sure, here is a longer answer."]
    batched = sequence_logprobs(model, tokenizer, prompts, responses, batch_size=3)
    one_by_one = sequence_logprobs(model, tokenizer, prompts, responses, batch_size=1)
    # transformers' LlamaRMSNorm computes in float32 even for float64 models: float32-level agreement
    torch.testing.assert_close(batched, one_by_one, atol=0, rtol=1e-6)
    # by hand for the first pair: log p of each response token (incl. eos) given everything before it
    prompt_ids = tokenizer(prompts[0], add_special_tokens=False)["input_ids"]
    full = tokenizer(prompts[0] + RESPONSE_SEPARATOR + responses[0] + tokenizer.eos_token,
                     add_special_tokens=False)["input_ids"]
    assert full[: len(prompt_ids)] == prompt_ids
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([full])).logits[0]  # [T, V]
    logp = torch.log_softmax(logits, -1)
    expected = sum(logp[t - 1, full[t]].item() for t in range(len(prompt_ids), len(full)))
    assert batched[0].item() == pytest.approx(expected, rel=1e-6)


def test_response_mask_covers_response_and_eos_only(tokenizer):
    batch = tokenize_responses(tokenizer, ["Human: q\n\nAssistant:"], ["Yes."])
    ids = batch.input_ids[0][batch.response_mask[0]].tolist()
    assert tokenizer.decode(ids) == " Yes." + tokenizer.eos_token


def test_fit_pair_keeps_the_end_of_the_prompt_and_the_start_of_responses(tokenizer):
    long_prompt = "Human: " + "blah " * 200 + "final question?\n\nAssistant:"
    pair = PreferencePair("p", long_prompt, "Good answer " * 50, "Bad answer " * 50)
    fitted = fit_pair(tokenizer, pair, max_length=48, max_prompt_length=24)
    assert fitted.prompt.endswith("final question?\n\nAssistant:")
    assert pair.chosen.startswith(fitted.chosen) and pair.rejected.startswith(fitted.rejected)
    for response in (fitted.chosen, fitted.rejected):
        text = fitted.prompt + RESPONSE_SEPARATOR + response + tokenizer.eos_token
        assert len(tokenizer(text, add_special_tokens=False)["input_ids"]) <= 48
    assert len(tokenizer(fitted.prompt, add_special_tokens=False)["input_ids"]) <= 24


def test_fit_pairs_on_shipped_data_respects_max_length_and_drops_ties(tokenizer):
    args = SFTArguments(max_length=40, max_prompt_length=24)
    pairs = load_preference_pairs("hh", limit=64)
    fitted = fit_pairs(tokenizer, pairs, args)
    assert 0 < len(fitted) <= len(pairs)
    for pair in fitted:
        assert pair.chosen.strip() != pair.rejected.strip()
        for response in (pair.chosen, pair.rejected):
            text = pair.prompt + RESPONSE_SEPARATOR + response + tokenizer.eos_token
            assert len(tokenizer(text, add_special_tokens=False)["input_ids"]) <= 40
