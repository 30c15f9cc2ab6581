"""AttributionCallback: saved features == features recomputed from its checkpoints; training is unchanged;
tracin/less over its checkpoints through the engine agree with the saved features."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import Trainer, TrainingArguments

from trustattr.attribution.arguments import ScoreArguments
from trustattr.attribution.attributor import Attributor, reference_logprobs
from trustattr.attribution.checkpoints import list_checkpoints
from trustattr.attribution.loading import load_causal_lm
from trustattr.attribution.losses import make_loss
from trustattr.attribution.modules import select_modules
from trustattr.attribution.pipeline import score
from trustattr.attribution.projector import Projector
from trustattr.attribution.trust_side import target_test_pairs
from trustattr.integrations.trl import AttributionCallback
from trustattr.models import load_tokenizer, tiny_model
from trustattr.preference_data import load_preference_pairs

ENC = {"max_length": 48, "max_prompt_length": 24}
FEATURES = {"last_k_blocks": 2, "k": 4, "seed": 3}


class _LMData(torch.utils.data.Dataset):
    def __init__(self, tokenizer, pairs):
        enc = tokenizer([p.prompt + " " + p.chosen for p in pairs], truncation=True, max_length=48,
                        padding="max_length", return_tensors="pt")
        self.ids, self.mask = enc["input_ids"], enc["attention_mask"]

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "attention_mask": self.mask[i],
                "labels": self.ids[i].masked_fill(self.mask[i] == 0, -100)}


def _train(tmp, tokenizer, pairs, callback=None):
    torch.manual_seed(0)  # lora_A's init draws from the global generator
    model = get_peft_model(tiny_model(), LoraConfig(r=4, lora_alpha=8,
                                                    target_modules=["q_proj", "v_proj", "up_proj", "down_proj"]))
    args = TrainingArguments(str(tmp), max_steps=4, per_device_train_batch_size=2, learning_rate=1e-2, report_to=[],
                             use_cpu=True, save_strategy="no", logging_strategy="no", seed=0, disable_tqdm=True)
    Trainer(model=model, args=args, train_dataset=_LMData(tokenizer, pairs),
            callbacks=[callback] if callback else []).train()
    return model


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tokenizer = load_tokenizer("tiny")
    pairs = load_preference_pairs("hh", limit=8, seed=FEATURES["seed"])  # what the engine loads for these arguments
    tests = {"ethics": target_test_pairs("ethics", 3, FEATURES["seed"])}
    out = tmp_path_factory.mktemp("callback")
    callback = AttributionCallback(out / "ckpts", every_n_steps=2, tokenizer=tokenizer, train_pairs=pairs,
                                   test_pairs=tests, loss="dpo", **ENC, **FEATURES)
    with_cb = _train(out / "a", tokenizer, pairs, callback)
    without_cb = _train(out / "b", tokenizer, pairs)
    return {"dir": out, "tokenizer": tokenizer, "pairs": pairs, "tests": tests, "with": with_cb, "without": without_cb}


def test_callback_does_not_change_training(trained):
    a = dict(trained["with"].named_parameters())
    b = dict(trained["without"].named_parameters())
    lora = [n for n in a if "lora_B" in n]
    assert lora and any(a[n].abs().max() > 0 for n in lora)  # training did move the adapters
    for name in a:
        assert torch.equal(a[name], b[name]), name
    report = json.loads((trained["dir"] / "ckpts" / "callback.json").read_text())
    assert report["saved_steps"] == [2, 4] and report["callback_seconds"] > 0


def test_saved_features_match_recomputed_from_checkpoint(trained):
    tokenizer, pairs = trained["tokenizer"], trained["pairs"]
    checkpoints = list_checkpoints(trained["dir"] / "ckpts")
    assert [c.step for c in checkpoints] == [2, 4]
    assert checkpoints[0].learning_rate > checkpoints[1].learning_rate > 0  # linear decay, per step
    reference = tiny_model()
    loss = make_loss("dpo", **ENC)
    ref = reference_logprobs(reference, tokenizer, loss, pairs)
    for ckpt in checkpoints:
        model = load_causal_lm(str(ckpt.model_path), base="tiny")
        modules = select_modules(model, last_k_blocks=FEATURES["last_k_blocks"])
        assert all(".lora_" in name for name in modules)
        projector = Projector(modules, "factored", FEATURES["k"], FEATURES["seed"])
        recomputed = Attributor(model, tokenizer, loss, modules, projector).features(pairs, ref).numpy()
        saved = np.load(ckpt.path / "features" / "train.npy")
        assert np.abs(saved).max() > 0
        np.testing.assert_allclose(saved, recomputed, rtol=1e-5, atol=1e-6 * np.abs(saved).max())


@pytest.mark.slow
@pytest.mark.parametrize("method", ["tracin", "less"])
def test_engine_over_callback_checkpoints(trained, tmp_path, method):
    args = ScoreArguments(reference="tiny", limit=8, benchmarks=("ethics",), test_limit=3,
                          method=method, checkpoints=str(trained["dir"] / "ckpts"), out=str(tmp_path / "out"),
                          batch_size=4, shard_size=4, **ENC, **FEATURES)
    result = score(args, progress=False, log=lambda m: None)
    checkpoints = list_checkpoints(trained["dir"] / "ckpts")
    assert result.summary["states"] == ["checkpoint-2", "checkpoint-4"]
    if method == "tracin":  # brute force from the callback's own saved features
        expected = np.zeros(8)
        for ckpt in checkpoints:
            train = np.load(ckpt.path / "features" / "train.npy").astype(np.float64)
            test = np.load(ckpt.path / "features" / "test-ethics.npy").astype(np.float64)
            expected += ckpt.learning_rate * -(train @ test.mean(0))
        np.testing.assert_allclose(result.raw[:, 0], expected, rtol=1e-4, atol=1e-6 * np.abs(expected).max())
    else:  # a learning-rate weighted mean of cosines: bounded by the summed rates, and not all zero
        bound = sum(ckpt.learning_rate for ckpt in checkpoints)
        assert np.abs(result.raw).max() > 0 and np.all(np.abs(result.raw) <= bound * (1 + 1e-6))


def test_full_model_checkpoints_carry_their_tokenizer_and_are_scored(tmp_path):
    """A full (non-PEFT) model trained with the callback, as `trustattr train --attribution-every N` does: each
    checkpoint's model directory holds the tokenizer, and scoring the checkpoint directory works end to end."""
    from trustattr.models import load_tokenizer as load_saved_tokenizer

    tokenizer = load_tokenizer("tiny")
    pairs = load_preference_pairs("hh", limit=4, seed=0)
    torch.manual_seed(0)
    model = tiny_model()
    args = TrainingArguments(str(tmp_path / "trainer"), max_steps=2, per_device_train_batch_size=2,
                             learning_rate=1e-3, report_to=[], use_cpu=True, save_strategy="no",
                             logging_strategy="no", seed=0, disable_tqdm=True)
    callback = AttributionCallback(tmp_path / "ckpts", every_n_steps=1, tokenizer=tokenizer, loss="dpo")
    Trainer(model=model, args=args, train_dataset=_LMData(tokenizer, pairs), callbacks=[callback]).train()
    checkpoints = list_checkpoints(tmp_path / "ckpts")
    assert [c.step for c in checkpoints] == [1, 2] and checkpoints[0].meta["model_kind"] == "full"
    saved = load_saved_tokenizer(str(checkpoints[0].model_path))
    assert saved("Hello there").input_ids == tokenizer("Hello there").input_ids
    out = tmp_path / "out"
    result = score(ScoreArguments(reference="tiny", limit=4, benchmarks=("ethics",), test_limit=2, method="tracin",
                                  checkpoints=str(tmp_path / "ckpts"), out=str(out), batch_size=4, shard_size=4,
                                  **ENC, last_k_blocks=1, k=4), progress=False, log=lambda m: None)
    assert result.summary["states"] == ["checkpoint-1", "checkpoint-2"]
    assert np.isfinite(result.raw).all() and np.abs(result.raw).max() > 0


@pytest.mark.slow
def test_trak_over_checkpoints_is_the_mean_of_its_members(trained, tmp_path):
    from trustattr.attribution.methods import FeatureSet, get_method

    args = ScoreArguments(reference="tiny", limit=8, benchmarks=("ethics",), test_limit=3, method="trak",
                          checkpoints=str(trained["dir"] / "ckpts"), out=str(tmp_path / "out"),
                          batch_size=4, shard_size=4, **ENC, **FEATURES)
    result = score(args, progress=False, log=lambda m: None)

    def read(store):
        return torch.from_numpy(np.concatenate([np.load(p) for p in sorted(store.glob("shard-*.npy"))])).double()

    members = []
    for state in result.summary["states"]:
        root = tmp_path / "out" / "work" / "features" / state
        fs = FeatureSet(read(root / "train"), read(root / "test-ethics"), 1.0, [], read(root / "residuals")[:, 0])
        members.append(get_method("trak").scores([fs]).numpy())
    assert len(members) == 2 and not np.allclose(members[0], members[1])
    np.testing.assert_allclose(result.raw[:, 0], np.mean(members, axis=0), rtol=1e-6)
