"""Rendering, batched generation (left padding, EOS, seeding) and continuation log-probs on the tiny model."""

import pytest
import torch

from trustattr.trust.base import Protocol, TrustPrompt
from trustattr.trust.generation import (
    encode, eos_token_ids, generate_batch, generation_config, plan_batches, render, resolve_chat_template,
)
from trustattr.trust.likelihood import continuation_logprobs

PROMPT = TrustPrompt(id="x", system="Be brief.", user="Is it raining?", answer_prefix=" The answer is")
TEXTS = ["Hello there, how are you today my friend?", "Hi", "The capital of France is"]


def test_render_plain_and_chat():
    assert PROMPT.plain_text() == "Be brief.\nIs it raining? The answer is"
    assert PROMPT.question_text() == "Be brief.\nIs it raining?"
    assert TrustPrompt(id="y", user="u", system="s", plain_joiner=" ").plain_text() == "s u"

    class Tokenizer:
        chat_template = "x"

        def apply_chat_template(self, messages, add_generation_prompt, tokenize):
            assert add_generation_prompt and not tokenize
            return "|".join(f"{m['role']}:{m['content']}" for m in messages) + "|assistant:"

    assert render(PROMPT, Tokenizer(), chat=True) == "system:Be brief.|user:Is it raining?|assistant:The answer is"
    assert render(PROMPT, Tokenizer(), chat=False) == PROMPT.plain_text()


def test_resolve_chat_template(tiny):
    _, tokenizer = tiny
    assert resolve_chat_template(tokenizer, None) is True  # SmolLM2's tokenizer has one
    assert resolve_chat_template(tokenizer, False) is False

    class Plain:
        chat_template = None

    assert resolve_chat_template(Plain(), None) is False
    with pytest.raises(ValueError, match="no chat template"):
        resolve_chat_template(Plain(), True)


def test_plan_batches_groups_similar_lengths_and_covers_every_index():
    batches = plan_batches([5, 1, 9, 3, 7], batch_size=2)
    assert batches == [[2, 4], [0, 3], [1]]
    with pytest.raises(ValueError, match="batch_size"):
        plan_batches([1], 0)


def test_left_padded_batch_matches_one_at_a_time(tiny):
    model, tokenizer = tiny
    config = generation_config(Protocol(max_new_tokens=6), model, tokenizer)
    ids = encode(tokenizer, TEXTS, chat=False)
    assert len({len(i) for i in ids}) == 3  # different lengths: padding matters
    batched = generate_batch(model, tokenizer, ids, config, seed=0)
    alone = [generate_batch(model, tokenizer, [one], config, seed=0)[0] for one in ids]
    assert [g.text for g in batched] == [g.text for g in alone]
    assert all(g.num_new_tokens == 6 and not g.finished for g in batched)


def test_generation_stops_at_the_models_eos(tiny):
    model, tokenizer = tiny
    ids = encode(tokenizer, TEXTS[:1], chat=False)
    first = generate_batch(model, tokenizer, ids, generation_config(Protocol(max_new_tokens=1), model, tokenizer), 0)
    first_token = tokenizer(first[0].text, add_special_tokens=False)["input_ids"][0]
    config = generation_config(Protocol(max_new_tokens=8), model, tokenizer)
    config.eos_token_id = [first_token]  # make the greedy first token the EOS
    stopped = generate_batch(model, tokenizer, ids, config, seed=0)[0]
    assert stopped.finished and stopped.num_new_tokens == 1 and stopped.text == ""
    assert eos_token_ids(model, tokenizer) == [tokenizer.eos_token_id]


def test_sampling_is_seeded_and_leaves_the_global_rng_alone(tiny):
    model, tokenizer = tiny
    config = generation_config(Protocol(max_new_tokens=8, temperature=1.0, top_k=0), model, tokenizer)
    ids = encode(tokenizer, TEXTS, chat=False)
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    one = generate_batch(model, tokenizer, ids, config, seed=7)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert [g.text for g in generate_batch(model, tokenizer, ids, config, seed=7)] == [g.text for g in one]
    assert [g.text for g in generate_batch(model, tokenizer, ids, config, seed=8)] != [g.text for g in one]


def test_continuation_logprobs_match_a_direct_computation_and_do_not_depend_on_batching(tiny):
    model, tokenizer = tiny
    contexts = encode(tokenizer, ["Q: What is 2+2?\nA:", "Q: Name a colour.\nA:"], chat=False)
    continuations = [tokenizer(" four", add_special_tokens=False)["input_ids"],
                     tokenizer(" a deep shade of blue", add_special_tokens=False)["input_ids"]]
    batched = continuation_logprobs(model, tokenizer, contexts, continuations, batch_size=2)
    single = continuation_logprobs(model, tokenizer, contexts, continuations, batch_size=1)
    for (total, count), (total1, count1), context, cont in zip(batched, single, contexts, continuations):
        with torch.no_grad():
            logits = model(torch.tensor([context + cont])).logits[0]  # [T, V]
        logprobs = torch.log_softmax(logits.double(), dim=-1)
        direct = sum(logprobs[len(context) - 1 + i, token].item() for i, token in enumerate(cont))
        assert count == count1 == len(cont)
        assert total == pytest.approx(direct, abs=1e-4) and total1 == pytest.approx(direct, abs=1e-4)
    with pytest.raises(ValueError, match="continuation 0 is empty"):
        continuation_logprobs(model, tokenizer, contexts[:1], [[]])
