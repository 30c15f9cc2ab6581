"""Damped curvature estimates built from per-pair gradient features, and their inverses applied to vectors.

Every estimate here is the (weighted) second moment of the rows of a gradient matrix ``G`` [N, D],
``F = G^T G / N``, plus a damping ``lam I`` whose size is *relative*: ``lam = damping x`` the mean non-zero
eigenvalue of ``F`` (``tr F / rank F``), as Kronfluence's heuristic damping (0.1 x the mean eigenvalue).
A relative damping means the same setting for blocks whose gradient scales differ by orders of magnitude,
and the same setting whether ``D`` is larger than ``N`` (then ``F`` has ``D - N`` zero eigenvalues that must not
dilute the mean) or not.

``(F + lam I)^-1 V`` is solved in the primal ([D, D]) when ``D <= N`` and in the dual ([N, N]) otherwise:
``(G^T G / N + lam I)^-1 = (I - G^T (G G^T + N lam I)^-1 G) / lam`` (Woodbury). All arithmetic is float64.
"""

from __future__ import annotations

import torch

__all__ = ["DampedInverse", "mean_nonzero_eigenvalue"]


def mean_nonzero_eigenvalue(gram: torch.Tensor, scale: float) -> float:
    """Mean non-zero eigenvalue of ``gram / scale`` (a symmetric PSD matrix); 0 for a zero matrix."""
    eigenvalues = torch.linalg.eigvalsh(gram / scale).clamp_min(0)  # ascending
    top = float(eigenvalues[-1]) if eigenvalues.numel() else 0.0
    if top <= 0:
        return 0.0
    nonzero = eigenvalues[eigenvalues > top * gram.shape[0] * torch.finfo(torch.float64).eps]
    return float(nonzero.mean())


class DampedInverse:
    """``V -> (G^T G / N + lam I)^-1 V`` for one block ``G`` [N, D], ``lam = damping x mean non-zero eigenvalue``.

    A block whose gradients are all zero gives the zero map (it carries no information, so it scores nothing).
    """

    def __init__(self, grads: torch.Tensor, damping: float) -> None:
        g = grads.to(torch.float64)  # [N, D]
        self.n, self.dim = g.shape
        self.dual = self.dim > self.n
        gram = g @ g.T if self.dual else g.T @ g  # [N, N] or [D, D]; same non-zero spectrum
        mean_eig = mean_nonzero_eigenvalue(gram, self.n) if self.n else 0.0
        self.zero = mean_eig == 0.0
        self.lam = damping * mean_eig
        if self.zero:
            return
        eye = torch.eye(gram.shape[0], dtype=torch.float64)
        if self.dual:
            self.g = g
            self.factor = torch.linalg.cholesky(gram + self.n * self.lam * eye)  # [N, N]
        else:
            self.factor = torch.linalg.cholesky(gram / self.n + self.lam * eye)  # [D, D]

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        """``(F + lam I)^-1 v`` for rows ``v`` [Q, D] -> [Q, D] float64."""
        v = v.to(torch.float64)
        if self.zero:
            return torch.zeros_like(v)
        if not self.dual:
            return torch.cholesky_solve(v.T, self.factor).T
        inner = torch.cholesky_solve(self.g @ v.T, self.factor)  # [N, Q]
        return (v - (self.g.T @ inner).T) / self.lam
