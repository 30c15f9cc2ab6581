"""Hook capture + factored projection == torch.func per-pair gradients projected by materialized matrices (float64)."""

from __future__ import annotations

import pytest
import torch

from tests.attribution import oracles
from trustattr.attribution.attributor import Attributor
from trustattr.attribution.losses import make_loss
from trustattr.attribution.modules import select_modules
from trustattr.attribution.projector import Projector
from trustattr.models import load_tokenizer, tiny_model

K = 6
ENC = {"max_length": 48, "max_prompt_length": 24}


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("tiny")


def _float64_model(seed: int):
    """HF's eager attention takes its softmax in float32 even for float64 models; sdpa stays in float64."""
    model = tiny_model(seed=seed).to(torch.float64)
    model.set_attn_implementation("sdpa")
    return model


@pytest.fixture(scope="module")
def model64():
    return _float64_model(3)


def _reference(tokenizer, pairs):
    ref_model = _float64_model(4)
    out = []
    with torch.no_grad():
        for pair in pairs:
            rows = oracles.pair_rows(tokenizer, pair, **ENC)
            out.append([oracles.row_logprob(ref_model(input_ids=i, attention_mask=m).logits[0], i[0], r[0])
                        for i, m, r in rows])
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("loss_name", ["dpo", "sft"])
def test_capture_matches_torch_func_float64(tokenizer, model64, loss_name):
    pairs = oracles.PAIRS[:5]
    modules = select_modules(model64, last_k_blocks=1)
    assert len(modules) == 7, list(modules)
    ref = _reference(tokenizer, pairs) if loss_name == "dpo" else None
    projector = Projector(modules, "factored", K, seed=11)
    attributor = Attributor(model64, tokenizer, make_loss(loss_name, **ENC, beta=0.1), modules, projector, batch_size=5)
    got = attributor.features(pairs, ref)  # [P, 7*K*K]
    grads = oracles.per_pair_gradients(model64, tokenizer, pairs, list(modules), loss_name, 0.1, ref, **ENC)
    want = torch.cat([oracles.project_factored_oracle(grads[name], K, m.seed)
                      for name, m in zip(modules, projector.layout, strict=True)], dim=1)
    assert got.dtype == torch.float64
    assert want.abs().max() > 1e-3  # the gradients are not trivially zero
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)
    assert all(p.grad is None for p in model64.parameters())  # capture never touches .grad


def test_outer_projection_matches_global_projection_of_flat_gradient(tokenizer, model64):
    pairs = oracles.PAIRS[:3]
    modules = select_modules(model64, last_k_blocks=1, pattern=r"mlp")
    projector = Projector(modules, "outer", 40, seed=5)
    attributor = Attributor(model64, tokenizer, make_loss("sft", **ENC), modules, projector, batch_size=2)
    got = attributor.features(pairs)
    grads = oracles.per_pair_gradients(model64, tokenizer, pairs, list(modules), "sft", **ENC)
    flat = torch.cat([grads[name].flatten(1) for name in modules], dim=1)  # [P, sum d_out*d_in]
    from trustattr import reference

    want = reference.project(flat, 40, 5)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


def test_batch_size_does_not_change_features(tokenizer):
    """batch 1 vs batch 8 (different padding widths): float32, equal to fp32 round-off (rtol 1e-5)."""
    model = tiny_model(seed=3)
    pairs = oracles.PAIRS[:8]
    modules = select_modules(model, last_k_blocks=2)
    projector = Projector(modules, "factored", K, seed=0)
    loss = make_loss("dpo", **ENC)
    ref = torch.zeros(len(pairs), 2, dtype=torch.float64) - 30.0
    one = Attributor(model, tokenizer, loss, modules, projector, batch_size=1).features(pairs, ref)
    eight = Attributor(model, tokenizer, loss, modules, projector, batch_size=8).features(pairs, ref)
    assert one.abs().max() > 0
    torch.testing.assert_close(eight, one, rtol=1e-5, atol=1e-6 * float(one.abs().max()))


def test_batch_size_float64_is_exact_to_roundoff(tokenizer, model64):
    pairs = oracles.PAIRS[:8]
    modules = select_modules(model64, last_k_blocks=2)
    projector = Projector(modules, "factored", K, seed=0)
    loss = make_loss("sft", **ENC)
    one = Attributor(model64, tokenizer, loss, modules, projector, batch_size=1).features(pairs)
    eight = Attributor(model64, tokenizer, loss, modules, projector, batch_size=8).features(pairs)
    torch.testing.assert_close(eight, one, rtol=1e-11, atol=1e-14)


@pytest.mark.parametrize("kind", ["factored", "exact", "adam"])
def test_tracked_output_layer_matches_torch_func_float64(tokenizer, model64, kind):
    """lm_head (tied to the embeddings in the tiny model): features == the output-use part of its gradient
    (factored sketch, exact gradients, and less's Adam-preconditioned global sketch from zero moments)."""
    from trustattr import reference
    from trustattr.attribution.exact import ExactGradients
    from trustattr.attribution.preconditioning import AdamProjector

    pairs = oracles.PAIRS[:3]
    modules = select_modules(model64, r"lm_head", last_k_blocks=0)
    assert list(modules) == ["lm_head"]
    ref = _reference(tokenizer, pairs)
    weight = modules["lm_head"].weight
    projector = {
        "factored": lambda: Projector(modules, "factored", K, seed=2),
        "exact": lambda: ExactGradients(modules),
        "adam": lambda: AdamProjector(modules, 40, 2, {"lm_head.weight": (torch.zeros_like(weight),
                                                                          torch.zeros_like(weight))},
                                      (0.9, 0.999), 1e-8),
    }[kind]()
    with pytest.warns(UserWarning, match="tied"):
        attributor = Attributor(model64, tokenizer, make_loss("dpo", **ENC), modules, projector, batch_size=3)
    got = attributor.features(pairs, ref)
    grads = oracles.per_pair_gradients(model64, tokenizer, pairs, ["lm_head"], "dpo", 0.1, ref, untie=True, **ENC)
    if kind == "factored":
        want = oracles.project_factored_oracle(grads["lm_head"], K, projector.layout[0].seed)
    elif kind == "exact":
        want = grads["lm_head"].flatten(1)
    else:
        flat = grads["lm_head"].flatten(1)
        want = reference.project(0.1 * flat / torch.sqrt(0.001 * flat.square() + 1e-8), 40, 2)
    assert want.abs().max() > 1e-3
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


def test_projector_refuses_misaligned_positions():
    from trustattr.attribution.capture import CaptureError

    projector = Projector({"lin": torch.nn.Linear(3, 2)}, "factored", 2, seed=0)
    projector.start(torch.ones(2, 5), None, 2, torch.float32)
    with pytest.raises(CaptureError, match="positions"):
        projector.sink(0, torch.randn(2, 4, 3), torch.randn(2, 4, 2))


def test_lora_factors_get_blocks_capped_at_the_rank(tokenizer):
    """k = 6 > r = 4: lora_A [r, d_in] gets r x k features, lora_B [d_out, r] k x r (the rank side exact), and the
    features are the per-pair LoRA gradients projected with those capped sizes (float64 torch.func oracle)."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    model = get_peft_model(tiny_model(seed=3), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "down_proj"]))
    model = model.to(torch.float64)
    model.get_base_model().set_attn_implementation("sdpa")
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1)  # B = 0 at init would make lora_A's gradients zero
    modules = select_modules(model, last_k_blocks=1)
    assert len(modules) == 4 and all(".lora_" in n for n in modules)
    projector = Projector(modules, "factored", K, seed=7)
    widths = [hi - lo for lo, hi in zip(projector.blocks[:-1], projector.blocks[1:], strict=True)]
    assert widths == [min(K, m.out_features) * min(K, m.in_features) for m in modules.values()]
    assert widths == [4 * K, K * 4, 4 * K, K * 4] and projector.dim == sum(widths) < len(modules) * K * K
    assert [m[3:] for m in projector.describe()["modules"]] == [[K, 4], [4, K], [K, 4], [4, K]]
    pairs = oracles.PAIRS[:3]
    got = Attributor(model, tokenizer, make_loss("sft", **ENC), modules, projector, batch_size=2).features(pairs)
    grads = oracles.per_pair_gradients(model, tokenizer, pairs, list(modules), "sft", **ENC)
    want = torch.cat([oracles.project_factored_oracle(grads[name], K, m.seed)
                      for name, m in zip(modules, projector.layout, strict=True)], dim=1)
    assert want.abs().max() > 1e-6
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)
