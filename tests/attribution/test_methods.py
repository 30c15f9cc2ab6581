"""Each attribution method against a brute-force implementation on a tiny float64 model.

The brute force starts from torch.func per-pair gradients (tests/attribution/oracles.py), projects them with
materialized random matrices, and applies each method's formula literally (explicit matrix inverses, loops);
the engine goes through hook capture, the ops and trustattr.attribution.methods.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.attribution import oracles
from trustattr import reference
from trustattr.attribution import kernels
from trustattr.attribution.attributor import Attributor
from trustattr.attribution.losses import make_loss
from trustattr.attribution.methods import METHOD_REGISTRY, FeatureSet, get_method, sign_normalize
from trustattr.attribution.modules import select_modules
from trustattr.attribution.preconditioning import AdamProjector
from trustattr.attribution.projector import Projector
from trustattr.models import load_tokenizer, tiny_model

ENC = {"max_length": 48, "max_prompt_length": 24}
K = 4
TRAIN, TEST = oracles.PAIRS[:6], oracles.PAIRS[6:9]


def _model(seed):
    model = tiny_model(seed=seed).to(torch.float64)
    model.set_attn_implementation("sdpa")  # eager attention takes its softmax in float32
    return model


class _State:
    """One model state: engine features and oracle gradients of the train and test pairs."""

    def __init__(self, seed, tokenizer):
        self.model = _model(seed)
        self.modules = select_modules(self.model, last_k_blocks=1)
        self.loss = make_loss("sft", **ENC)
        self.projector = Projector(self.modules, "factored", K, seed=7)
        attributor = Attributor(self.model, tokenizer, self.loss, self.modules, self.projector, batch_size=4)
        self.train, self.test = attributor.features(TRAIN), attributor.features(TEST)
        names = list(self.modules)
        self.grads_train = oracles.per_pair_gradients(self.model, tokenizer, TRAIN, names, "sft", **ENC)
        self.grads_test = oracles.per_pair_gradients(self.model, tokenizer, TEST, names, "sft", **ENC)

    def oracle_features(self, grads):
        return torch.cat([oracles.project_factored_oracle(grads[name], K, m.seed)
                          for name, m in zip(self.modules, self.projector.layout, strict=True)], dim=1).numpy()

    def blocks(self):
        return self.projector.blocks


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("tiny")


@pytest.fixture(scope="module")
def states(tokenizer):
    return [_State(3, tokenizer), _State(5, tokenizer)]


def _brute_datainf(train, test, blocks):
    scores = np.zeros(train.shape[0])
    for lo, hi in zip(blocks[:-1], blocks[1:], strict=True):
        g, v = train[:, lo:hi], test[:, lo:hi].mean(0)
        lam = 0.1 * np.mean(g**2)
        eye = np.eye(hi - lo)
        h_inv = np.mean([np.linalg.inv(lam * eye + np.outer(gi, gi)) for gi in g], axis=0)
        scores -= g @ (h_inv @ v)
    return scores


def _relative_lambda(gram_over_n, damping=1.0):  # the default of the exact inverses
    eig = np.linalg.eigvalsh(gram_over_n)
    nonzero = eig[eig > eig.max() * len(eig) * np.finfo(float).eps]
    return damping * nonzero.mean()


def _brute_trak(train, test, residual):
    """TRAK literally: Phi = output-function gradients, kernel (Phi^T Phi / N + lam I)^-1, train side -r_i Phi_i."""
    n, k = train.shape
    phi = -train / residual[:, None]
    gram = phi.T @ phi / n
    lam = _relative_lambda(gram)
    train_side = residual[:, None] * phi  # Q Phi, = -g
    return (train_side @ np.linalg.inv(gram + lam * np.eye(k)) @ test.T).mean(1)


def _brute_block_inverse(train, test, blocks, cosine):
    """Exact damped block inverse, lam_l = 1.0 x the block's mean non-zero eigenvalue; optionally its cosine."""
    dots = np.zeros((train.shape[0], test.shape[0]))
    g_norm = np.zeros(train.shape[0])
    t_norm = np.zeros(test.shape[0])
    for lo, hi in zip(blocks[:-1], blocks[1:], strict=True):
        g, t = train[:, lo:hi], test[:, lo:hi]
        gram = g.T @ g / len(g)
        h_inv = np.linalg.inv(gram + _relative_lambda(gram) * np.eye(hi - lo))
        dots -= g @ h_inv @ t.T
        g_norm += np.einsum("nd,de,ne->n", g, h_inv, g)
        t_norm += np.einsum("qd,de,qe->q", t, h_inv, t)
    if cosine:
        dots /= np.sqrt(g_norm)[:, None] * np.sqrt(t_norm)[None, :]
    return dots.mean(1)


def _cos(a, b):
    return a @ b / (np.linalg.norm(a) * np.linalg.norm(b))


def _brute_single(name, train, test, blocks, residual):
    if name == "datainf":
        return _brute_datainf(train, test, blocks)
    if name == "gradient_dot":
        return np.array([-sum(g @ t for t in test) / len(test) for g in train])
    if name == "gradient_cosine":
        return np.array([-np.mean([_cos(g, t) for t in test]) for g in train])
    if name == "trak":
        return _brute_trak(train, test, residual)
    if name in ("datainf_exact", "whitened_cosine"):
        return _brute_block_inverse(train, test, blocks, cosine=name == "whitened_cosine")
    raise ValueError(name)


def test_registry_names_every_method():
    assert set(METHOD_REGISTRY) == {"datainf", "datainf_exact", "gradient_dot", "gradient_cosine", "tracin", "trak",
                                    "less", "whitened_cosine", "ekfac"}


SINGLE = ["datainf", "datainf_exact", "gradient_dot", "gradient_cosine", "trak", "whitened_cosine"]


def _residual(n):
    return np.linspace(0.2, 0.8, n)  # sigma(-f_i) of n pairs


@pytest.mark.parametrize("name", SINGLE)
def test_single_state_methods_match_brute_force(states, name):
    s = states[0]
    train, test = s.oracle_features(s.grads_train), s.oracle_features(s.grads_test)
    np.testing.assert_allclose(s.train.numpy(), train, rtol=1e-8, atol=1e-12)  # the engine's features are exact
    residual = _residual(len(train))
    want = _brute_single(name, train, test, s.blocks(), residual)
    fs = FeatureSet(s.train, s.test, 1.0, s.blocks(), torch.from_numpy(residual))
    got = get_method(name).scores([fs]).numpy()
    assert np.abs(want).max() > 0
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9 * np.abs(want).max())


@pytest.mark.parametrize("name", SINGLE)
def test_score_matrix_is_per_query_and_scores_its_mean(states, name):
    s = states[0]
    fs = FeatureSet(s.train, s.test, 1.0, s.blocks(), torch.from_numpy(_residual(len(TRAIN))))
    method = get_method(name)
    matrix = method.score_matrix([fs])
    assert matrix.shape == (len(TRAIN), len(TEST))
    for q in range(len(TEST)):  # column q is the method on query q alone
        alone = FeatureSet(s.train, s.test[q : q + 1], 1.0, s.blocks(), fs.train_residual)
        np.testing.assert_allclose(method.score_matrix([alone])[:, 0].numpy(), matrix[:, q].numpy(), rtol=1e-9)
    np.testing.assert_allclose(method.scores([fs]).numpy(), matrix.mean(1).numpy(), rtol=1e-12)


def test_normalize_makes_every_method_a_cosine_in_its_metric(states):
    s = states[0]
    fs = FeatureSet(s.train, s.test, 1.0, s.blocks())
    dot = get_method("gradient_dot", normalize=True).scores([fs]).numpy()
    np.testing.assert_allclose(dot, get_method("gradient_cosine").scores([fs]).numpy(), rtol=1e-9)
    exact = get_method("datainf_exact", normalize=True).scores([fs]).numpy()
    np.testing.assert_allclose(exact, get_method("whitened_cosine").scores([fs]).numpy(), rtol=1e-9)
    scaled = FeatureSet(s.train * torch.logspace(-3, 3, len(TRAIN), dtype=torch.float64)[:, None], s.test, 1.0,
                        s.blocks())
    for name in SINGLE:  # a cosine does not see a train row's norm
        method = get_method(name, normalize=True)
        np.testing.assert_allclose(method.scores([scaled]).numpy() if name == "gradient_dot" else
                                   get_method(name, normalize=True).scores([fs]).numpy(),
                                   method.scores([fs]).numpy(), rtol=1e-7)


def test_relative_damping_does_not_depend_on_block_scale(states):
    s = states[0]
    blocks = s.blocks()
    scale = torch.ones(s.train.shape[1], dtype=torch.float64)
    scale[blocks[0] : blocks[1]] = 1e4  # one block's gradients four orders larger on both sides
    plain = FeatureSet(s.train, s.test, 1.0, blocks)
    scaled = FeatureSet(s.train * scale, s.test * scale, 1.0, blocks)  # M of that block shrinks by 1e-8
    for name in ("datainf", "datainf_exact", "whitened_cosine"):
        np.testing.assert_allclose(get_method(name).scores([scaled]).numpy(),
                                   get_method(name).scores([plain]).numpy(), rtol=1e-6)
    dot = [get_method("gradient_dot").scores([fs]).numpy() for fs in (scaled, plain)]
    assert not np.allclose(*dot)  # without a metric, the large block dominates


def test_datainf_method_is_the_datainf_op_on_the_mean_query(states):
    s = states[0]
    fs = FeatureSet(s.train, s.test, 1.0, s.blocks())
    op = kernels.datainf_scores(s.train, s.test.mean(0), None, s.blocks())
    np.testing.assert_allclose(get_method("datainf").scores([fs]).numpy(), op.numpy(), rtol=1e-9)


def test_trak_without_residuals_is_the_damped_empirical_fisher_and_residuals_change_it(states):
    s = states[0]
    fs = FeatureSet(s.train, s.test, 1.0, s.blocks())
    np.testing.assert_allclose(get_method("trak").scores([fs]).numpy(),
                               _brute_trak(s.train.numpy(), s.test.numpy(), np.ones(len(TRAIN))), rtol=1e-7)
    weighted = FeatureSet(s.train, s.test, 1.0, s.blocks(), torch.from_numpy(_residual(len(TRAIN))))
    assert not np.allclose(get_method("trak").scores([weighted]).numpy(), get_method("trak").scores([fs]).numpy())


def test_trak_ensemble_averages_its_members(states):
    sets = [FeatureSet(st.train, st.test, 0.5, st.blocks()) for st in states]
    members = [get_method("trak").scores([FeatureSet(st.train, st.test, 1.0, st.blocks())]) for st in states]
    np.testing.assert_allclose(get_method("trak").scores(sets).numpy(), (0.5 * (members[0] + members[1])).numpy(),
                               rtol=1e-12)


def test_tracin_sums_learning_rate_weighted_checkpoints(states):
    rates = [0.5, 0.25]
    want = np.zeros(len(TRAIN))
    for s, lr in zip(states, rates, strict=True):
        train, test = s.oracle_features(s.grads_train), s.oracle_features(s.grads_test)
        want += lr * -(train @ test.mean(0))
    sets = [FeatureSet(s.train, s.test, lr, s.blocks()) for s, lr in zip(states, rates, strict=True)]
    got = get_method("tracin").scores(sets).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-10 * np.abs(want).max())


def test_less_adam_preconditioned_cosine(states, tokenizer):
    s, k, seed, lr = states[1], 64, 9, 0.3
    gen = torch.Generator().manual_seed(0)
    state = {f"{name}.weight": (torch.randn(m.weight.shape, generator=gen, dtype=torch.float64) * 1e-3,
                                torch.rand(m.weight.shape, generator=gen, dtype=torch.float64) * 1e-6)
             for name, m in s.modules.items()}
    betas, eps = (0.9, 0.999), 1e-8
    train_proj = AdamProjector(s.modules, k, seed, state, betas, eps)
    test_proj = Projector(s.modules, "outer", k, seed)
    train = Attributor(s.model, tokenizer, s.loss, s.modules, train_proj, batch_size=3).features(TRAIN)
    test = Attributor(s.model, tokenizer, s.loss, s.modules, test_proj, batch_size=3).features(TEST)
    got = get_method("less").scores([FeatureSet(train, test, lr)]).numpy()
    # brute force: explicit Adam update of each full per-pair gradient, then the global projection
    updates, flat_test = [], []
    for name in s.modules:
        m, v = state[f"{name}.weight"]
        g = s.grads_train[name]  # [P, d_out, d_in]
        updates.append(((betas[0] * m + (1 - betas[0]) * g) /
                        torch.sqrt(betas[1] * v + (1 - betas[1]) * g**2 + eps)).flatten(1))
        flat_test.append(s.grads_test[name].flatten(1))
    train_b = reference.project(torch.cat(updates, 1), k, seed).numpy()
    test_b = reference.project(torch.cat(flat_test, 1), k, seed).numpy()
    want = lr * np.array([-np.mean([_cos(g, t) for t in test_b]) for g in train_b])
    np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-10)
    plain_train = Attributor(s.model, tokenizer, s.loss, s.modules, test_proj, batch_size=3).features(TRAIN)
    plain = get_method("gradient_cosine").scores([FeatureSet(plain_train, test, lr)]).numpy()
    assert not np.allclose(got, plain)  # the preconditioner changes the scores


def test_sign_normalize_maps_each_sign_to_unit_range():
    raw = torch.tensor([4.0, -2.0, 1.0, 0.0, -0.5], dtype=torch.float64)
    assert sign_normalize(raw).tolist() == [1.0, -1.0, 0.25, 0.0, -0.25]


def test_datainf_zero_block_contributes_nothing(states):
    s = states[0]
    train, test = s.train.clone(), s.test.clone()
    lo, hi = s.blocks()[0], s.blocks()[1]
    base = get_method("datainf").scores([FeatureSet(train, test, 1.0, s.blocks())])
    train[:, lo:hi] = 0
    zeroed = get_method("datainf").scores([FeatureSet(train, test, 1.0, s.blocks())])
    rest = _brute_datainf(train.numpy()[:, hi:], test.numpy()[:, hi:], [b - hi for b in s.blocks()[1:]])
    assert torch.isfinite(zeroed).all() and not torch.allclose(base, zeroed)
    np.testing.assert_allclose(zeroed.numpy(), rest, rtol=1e-6)


def test_exact_gradients_are_the_per_pair_weight_gradients(states, tokenizer):
    from trustattr.attribution.exact import ExactGradients

    s = states[0]
    exact = ExactGradients(s.modules)
    got = Attributor(s.model, tokenizer, s.loss, s.modules, exact, batch_size=4).features(TRAIN)
    want = torch.cat([s.grads_train[name].flatten(1) for name in s.modules], dim=1)
    assert got.shape == want.shape and exact.blocks[-1] == want.shape[1]
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-9, atol=1e-13 * float(want.abs().max()))
