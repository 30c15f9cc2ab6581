"""The compact PPO: log-probs consistent with sampling, LoRA reference, and learning a toy reward."""

from __future__ import annotations

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from trustattr.train.config import PPOArguments
from trustattr.train.ppo import CompactPPO
from trustattr.train.ppo_rollout import PolicyWithValue, Rollout, reference_logprobs, score_tokens

EOS = 15
TARGET = 3


def small_lm(seed: int = 0) -> LlamaForCausalLM:
    """A 16-token Llama: small enough that a toy reward is learnable in a few PPO steps."""
    config = LlamaConfig(
        vocab_size=16, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, eos_token_id=EOS, pad_token_id=EOS, bos_token_id=14, tie_word_embeddings=True,
        attn_implementation="eager",
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return LlamaForCausalLM(config).eval()


def left_padded_queries() -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.tensor([[EOS, EOS, 4, 5, 6], [7, 8, 9, 10, 11], [EOS, 1, 2, 3, 4]])
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 1, 1, 1, 1]])
    return ids, mask


def test_recomputed_logprobs_match_the_sampling_distribution():
    model = PolicyWithValue(small_lm())
    query_ids, query_mask = left_padded_queries()
    torch.manual_seed(0)
    out = model.policy.generate(
        input_ids=query_ids, attention_mask=query_mask, do_sample=True, temperature=0.7, top_k=0, top_p=1.0,
        max_new_tokens=6, eos_token_id=-1, pad_token_id=EOS, return_dict_in_generate=True, output_logits=True,
    )
    response = out.sequences[:, query_ids.shape[1]:]  # [B, R]
    sampled_logits = torch.stack(out.logits, dim=1)  # [B, R, V]
    expected = torch.log_softmax(sampled_logits / 0.7, -1).gather(-1, response.unsqueeze(-1)).squeeze(-1)
    rollout = Rollout(query_ids, query_mask, response, torch.ones_like(response))
    with torch.no_grad():
        logprobs, values = score_tokens(model, rollout, temperature=0.7)
    torch.testing.assert_close(logprobs, expected, atol=1e-5, rtol=1e-5)
    assert values.shape == response.shape


def test_lora_reference_is_the_starting_model():
    from peft import LoraConfig, get_peft_model

    base = small_lm()
    reference = small_lm()  # same seed = same weights
    policy = get_peft_model(base, LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, parameter in policy.named_parameters():
            if "lora_B" in name:
                parameter.add_(0.5)  # make the adapter matter
    model = PolicyWithValue(policy)
    query_ids, query_mask = left_padded_queries()
    response = torch.tensor([[1, 2, 3], [4, 5, EOS], [6, 7, 8]])
    rollout = Rollout(query_ids, query_mask, response, torch.ones_like(response))
    via_adapters_off = reference_logprobs(model, None, rollout, temperature=1.0)
    via_copy = reference_logprobs(model, reference, rollout, temperature=1.0)
    torch.testing.assert_close(via_adapters_off, via_copy, atol=1e-6, rtol=1e-6)
    with torch.no_grad():
        adapted, _ = score_tokens(model, rollout, temperature=1.0)
    assert (adapted - via_copy).abs().max() > 1e-3


def test_ppo_raises_a_toy_reward():
    """Reward = share of response tokens equal to TARGET; seeded, ~10 PPO iterations."""
    args = PPOArguments(
        learning_rate=1e-2, steps=10, rollout_batch_size=16, minibatch_size=8, ppo_epochs=2, max_new_tokens=8,
        init_kl_coef=0.01, lr_scheduler="constant", seed=0,
    )

    def share_of_target(prompts, rollout):
        hits = (rollout.response_ids == TARGET).float() * rollout.response_mask
        return hits.sum(-1) / rollout.response_mask.sum(-1).clamp(min=1)

    ppo = CompactPPO(small_lm(), args, share_of_target, EOS, EOS, reference=small_lm())
    generator = torch.Generator().manual_seed(1)
    queries = torch.randint(0, 14, (16, 5), generator=generator)
    scores, kls = [], []
    for iteration in range(args.steps):
        torch.manual_seed(100 + iteration)
        stats = ppo.step(queries, torch.ones_like(queries), [""] * 16)
        scores.append(stats["score"])
        kls.append(stats["kl"])
    first, last = sum(scores[:2]) / 2, sum(scores[-2:]) / 2
    assert first < 0.15  # ~1/16 at the start
    assert last > first + 0.2, scores
    assert kls[-1] > kls[0]  # moving towards the reward moves away from the reference
    assert ppo.iteration == args.steps
