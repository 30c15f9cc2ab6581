"""ekfac against a float64 brute force on a tiny model (DPO pairs: two rows per pair, padded in the engine).

The brute force runs each row alone (unpadded) with plain forward hooks and ``loss.backward()``, builds the token
covariances A, S by explicit loops over tokens, takes their eigenbases with numpy, the eigenvalue correction from
torch.func per-pair gradients (tests/attribution/oracles.py), and the inverse either with the EK-FAC formula or
as a literal dense matrix inverted with ``np.linalg.inv``. The engine goes through hook capture on padded batches,
:mod:`trustattr.attribution.ekfac`, the projector's ops and :mod:`trustattr.attribution.methods`.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.attribution import oracles
from trustattr import reference
from trustattr.attribution import ekfac
from trustattr.attribution.arguments import ScoreArguments
from trustattr.attribution.attributor import Attributor, reference_logprobs
from trustattr.attribution.ekfac import FactorStore, PreconditionedProjector, fit_factors
from trustattr.attribution.exact import ExactGradients
from trustattr.attribution.losses import make_loss
from trustattr.attribution.methods import FeatureSet, get_method
from trustattr.attribution.modules import select_modules
from trustattr.attribution.projector import Projector
from trustattr.models import load_tokenizer, tiny_model

ENC = {"max_length": 48, "max_prompt_length": 24}
BETA = 0.1
TRAIN, TEST = oracles.PAIRS[:6], oracles.PAIRS[6:9]


def _model(seed):
    model = tiny_model(seed=seed).to(torch.float64)
    model.set_attn_implementation("sdpa")  # eager attention takes its softmax in float32
    return model


def token_covariances(model, tokenizer, pairs, modules, ref):
    """{name: (A, S)} by explicit loops over the tokens of each unpadded row; and the token count."""
    a_sum = {n: np.zeros((m.in_features, m.in_features)) for n, m in modules.items()}
    s_sum = {n: np.zeros((m.out_features, m.out_features)) for n, m in modules.items()}
    count = 0
    for index, pair in enumerate(pairs):
        saved = {n: [] for n in modules}

        def keep(module, args, output, name):
            output.retain_grad()
            saved[name].append((args[0].detach(), output))

        hooks = [m.register_forward_hook(lambda mod, args, out, n=n: keep(mod, args, out, n))
                 for n, m in modules.items()]
        try:
            logps = []
            for ids, mask, response in oracles.pair_rows(tokenizer, pair, **ENC):
                logits = model(input_ids=ids, attention_mask=mask).logits[0]
                logps.append(oracles.row_logprob(logits, ids[0], response[0]))
                count += ids.shape[1]
        finally:
            for h in hooks:
                h.remove()
        loss = -F.logsigmoid(BETA * ((logps[0] - ref[index, 0]) - (logps[1] - ref[index, 1])))
        model.zero_grad()
        loss.backward()
        for name in modules:
            for x, out in saved[name]:
                for t in range(x.shape[1]):
                    a, g = x[0, t].numpy(), out.grad[0, t].numpy()
                    a_sum[name] += np.outer(a, a)
                    s_sum[name] += np.outer(g, g)
    model.zero_grad()
    return {n: (a_sum[n] / count, s_sum[n] / count) for n in modules}, count


class BruteEKFAC:
    """EK-FAC of one module from explicit A, S and per-pair gradients [N, d_out, d_in]."""

    def __init__(self, a_cov, s_cov, grads):
        self.q_a = np.linalg.eigh(a_cov)[1]
        self.q_s = np.linalg.eigh(s_cov)[1]
        self.lam = np.mean([(self.q_s.T @ g @ self.q_a) ** 2 for g in grads], axis=0)  # [d_out, d_in]

    def damping(self, damping=0.1):
        return damping * self.lam.mean()

    def ihvp(self, v, damping=0.1):  # v [d_out, d_in]
        return self.q_s @ ((self.q_s.T @ v @ self.q_a) / (self.lam + self.damping(damping))) @ self.q_a.T

    def dense_inverse(self, damping=0.1):
        """``(Q diag(vec Lambda + lam) Q^T)^-1`` built and inverted literally, Q = Q_S x Q_A (row-major vec)."""
        q = np.kron(self.q_s, self.q_a)
        h = q @ np.diag(self.lam.flatten() + self.damping(damping)) @ q.T
        return np.linalg.inv(h)


class Setup:
    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.model = _model(3)
        self.modules = select_modules(self.model, last_k_blocks=1)
        self.names = list(self.modules)
        self.loss = make_loss("dpo", **ENC, beta=BETA)
        ref_model = _model(4)
        self.ref_train = reference_logprobs(ref_model, tokenizer, self.loss, TRAIN, 4)
        self.ref_test = reference_logprobs(ref_model, tokenizer, self.loss, TEST, 4)
        self.covariances, self.num_tokens = token_covariances(self.model, tokenizer, TRAIN, self.modules,
                                                              self.ref_train)
        kw = dict(beta=BETA, **ENC)
        self.g_train = {n: g.numpy() for n, g in oracles.per_pair_gradients(
            self.model, tokenizer, TRAIN, self.names, "dpo", ref=self.ref_train, **kw).items()}
        self.g_test = {n: g.numpy() for n, g in oracles.per_pair_gradients(
            self.model, tokenizer, TEST, self.names, "dpo", ref=self.ref_test, **kw).items()}
        self.brute = {n: BruteEKFAC(*self.covariances[n], self.g_train[n]) for n in self.names}
        self.factors = fit_factors(self.model, tokenizer, self.loss, self.modules, TRAIN, self.ref_train, batch_size=4)

    def features(self, projector, pairs, ref):
        return Attributor(self.model, self.tokenizer, self.loss, self.modules, projector, batch_size=4).features(
            pairs, ref)

    def brute_ihvp(self, name, damping=0.1):
        return np.stack([self.brute[name].ihvp(v, damping) for v in self.g_test[name]])  # [Q, d_out, d_in]


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("tiny")


@pytest.fixture(scope="module")
def setup(tokenizer):
    return Setup(tokenizer)


def test_covariances_are_token_averages_over_non_padding_tokens(setup, tokenizer):
    sink = ekfac._CovarianceSink(setup.modules, keep_gradients=False)
    Attributor(setup.model, tokenizer, setup.loss, setup.modules, sink, batch_size=4).features(TRAIN, setup.ref_train)
    assert sink.num_tokens == setup.num_tokens
    for i, name in enumerate(setup.names):
        a_cov, s_cov = setup.covariances[name]
        np.testing.assert_allclose(sink.a_cov[i].numpy() / sink.num_tokens, a_cov, rtol=1e-9, atol=1e-14)
        np.testing.assert_allclose(sink.s_cov[i].numpy() / sink.num_tokens, s_cov, rtol=1e-9,
                                   atol=1e-12 * np.abs(s_cov).max())


def test_eigenvalue_correction_matches_per_pair_gradients_in_the_eigenbasis(setup):
    assert setup.factors.num_pairs == len(TRAIN) and setup.factors.num_tokens == setup.num_tokens
    for factors in setup.factors.modules:
        brute = setup.brute[factors.name]
        lam = factors.eigenvalue_correction.numpy()
        assert lam.shape == brute.lam.shape and lam.max() > 0
        np.testing.assert_allclose(lam, brute.lam, rtol=1e-6, atol=1e-9 * brute.lam.max())
        # the bases are orthonormal eigenvectors of A and S (each column up to sign)
        a_cov, s_cov = setup.covariances[factors.name]
        q_a, q_s = factors.q_a.numpy(), factors.q_s.numpy()
        np.testing.assert_allclose(q_a.T @ q_a, np.eye(len(q_a)), atol=1e-10)
        off = q_a.T @ a_cov @ q_a
        assert np.abs(off - np.diag(np.diag(off))).max() < 1e-10 * np.abs(a_cov).max()
        off = q_s.T @ s_cov @ q_s
        assert np.abs(off - np.diag(np.diag(off))).max() < 1e-10 * np.abs(s_cov).max()


def test_ihvp_is_the_literal_inverse_of_the_eigenvalue_corrected_kronecker_matrix(setup):
    name = "model.layers.1.self_attn.k_proj"  # 32 x 64: a 2048 x 2048 dense matrix
    index = setup.names.index(name)
    inverse = setup.brute[name].dense_inverse()
    v = setup.g_test[name]  # [Q, 32, 64]
    want = np.stack([(inverse @ q.flatten()).reshape(q.shape) for q in v])
    got = setup.factors.modules[index].ihvp(torch.from_numpy(v), 0.1).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-8 * np.abs(want).max())
    # and the damping is relative: lam = 0.1 x mean(Lambda)
    assert setup.factors.modules[index].damping_value(0.1) == pytest.approx(0.1 * setup.brute[name].lam.mean(),
                                                                            rel=1e-6)


def _brute_scores(setup, project, damping=0.1):
    """-mean_q sum_l <P(G_il), P(IHVP_l(V_ql))> with ``project(name, index, matrices) -> [n, cols]`` (summed)."""
    train = sum(project(n, i, setup.g_train[n]) for i, n in enumerate(setup.names))
    test = sum(project(n, i, setup.brute_ihvp(n, damping)) for i, n in enumerate(setup.names))
    return -(train @ test.T).mean(1)


def _exact_columns(setup):
    total = sum(m.in_features * m.out_features for m in setup.modules.values())
    offsets = np.cumsum([0] + [m.in_features * m.out_features for m in setup.modules.values()])

    def project(name, index, mats):
        out = np.zeros((len(mats), total))
        out[:, offsets[index] : offsets[index + 1]] = mats.reshape(len(mats), -1)
        return out

    return project


def test_scores_on_exact_gradients_match_brute_force(setup):
    exact = ExactGradients(setup.modules)
    train = setup.features(exact, TRAIN, setup.ref_train)
    test = setup.features(PreconditionedProjector(exact, setup.factors, 0.1), TEST, setup.ref_test)
    got = get_method("ekfac").scores([FeatureSet(train, test, 1.0, exact.blocks)]).numpy()
    want = _brute_scores(setup, _exact_columns(setup))
    assert np.abs(want).max() > 0
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9 * np.abs(want).max())
    # the same scores per query: -<g_i, H^-1 v_q> for every (i, q)
    matrix = get_method("ekfac").score_matrix([FeatureSet(train, test)]).numpy()
    q = 1
    want_q = -sum(np.einsum("nij,ij->n", setup.g_train[n], setup.brute_ihvp(n)[q]) for n in setup.names)
    np.testing.assert_allclose(matrix[:, q], want_q, rtol=1e-6, atol=1e-9 * np.abs(want_q).max())


@pytest.mark.parametrize("kind", ["factored", "outer"])
def test_scores_on_projected_features_match_projected_brute_force(setup, kind):
    k, seed = (4, 7) if kind == "factored" else (48, 9)
    projector = Projector(setup.modules, kind, k, seed)
    train = setup.features(projector, TRAIN, setup.ref_train)
    test = setup.features(PreconditionedProjector(projector, setup.factors, 0.1), TEST, setup.ref_test)
    got = get_method("ekfac").scores([FeatureSet(train, test, 1.0, projector.blocks)]).numpy()
    if kind == "factored":
        def project(name, index, mats):
            out = np.zeros((len(mats), projector.dim))
            m = projector.layout[index]
            out[:, m.column : m.column + k * k] = oracles.project_factored_oracle(torch.from_numpy(mats), k,
                                                                                  m.seed).numpy()
            return out
    else:
        def project(name, index, mats):
            m = projector.layout[index]
            r = reference.random_matrix(m.d_out * m.d_in, k, seed, feature_offset=m.feature_offset,
                                        dtype=torch.float64).numpy()
            return mats.reshape(len(mats), -1) @ r
    want = _brute_scores(setup, project)
    assert np.abs(want).max() > 0
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9 * np.abs(want).max())


@pytest.mark.parametrize("kind,k", [("factored", 5), ("factored", 100), ("outer", 5), ("exact", 0)])
def test_project_matrices_equals_projecting_the_captured_gradient(setup, kind, k):
    # factored k = 100 exceeds some module sides: those sides are kept exact, in sink and in project_matrices alike
    projector = ExactGradients(setup.modules) if kind == "exact" else Projector(setup.modules, kind, k, 11)
    if k == 100:
        assert any(m.k_in == m.d_in or m.k_out == m.d_out for m in projector.layout)
    captured = setup.features(projector, TRAIN, setup.ref_train).numpy()
    built = np.zeros_like(captured)
    for index, name in enumerate(setup.names):
        block = projector.project_matrices(index, torch.from_numpy(setup.g_train[name])).numpy()
        built[:, projector.columns(index)] += block
    np.testing.assert_allclose(built, captured, rtol=1e-8, atol=1e-12 * np.abs(captured).max())


def test_huge_damping_turns_ekfac_into_per_module_scaled_gradient_dot(setup):
    exact = ExactGradients(setup.modules)
    train = setup.features(exact, TRAIN, setup.ref_train)
    damping = 1e9
    test = setup.features(PreconditionedProjector(exact, setup.factors, damping), TEST, setup.ref_test)
    got = get_method("ekfac", damping).scores([FeatureSet(train, test)]).numpy()
    plain = setup.features(exact, TEST, setup.ref_test)
    want = np.zeros(len(TRAIN))
    for index, (lo, hi) in enumerate(zip(exact.blocks[:-1], exact.blocks[1:], strict=True)):
        lam = setup.factors.modules[index].damping_value(damping)
        want -= (train[:, lo:hi] @ plain[:, lo:hi].T).numpy().mean(1) / lam
    np.testing.assert_allclose(got, want, rtol=1e-5)
    # one tracked module: proportional to gradient_dot (same ranking)
    lo, hi = exact.blocks[0], exact.blocks[1]
    one = FeatureSet(train[:, lo:hi], test[:, lo:hi])
    dot = get_method("gradient_dot").scores([FeatureSet(train[:, lo:hi], plain[:, lo:hi])]).numpy()
    lam0 = setup.factors.modules[0].damping_value(damping)
    np.testing.assert_allclose(get_method("ekfac", damping).scores([one]).numpy() * lam0, dot, rtol=1e-5)
    assert (np.argsort(get_method("ekfac", damping).scores([one]).numpy()) == np.argsort(dot)).all()
    # while at the default damping the curvature changes the ranking
    default = setup.features(PreconditionedProjector(exact, setup.factors, 0.1), TEST, setup.ref_test)
    ekfac_default = get_method("ekfac").scores([FeatureSet(train[:, lo:hi], default[:, lo:hi])]).numpy()
    assert not np.allclose(ekfac_default / np.abs(ekfac_default).max(), dot / np.abs(dot).max(), atol=1e-2)


def test_two_pass_fit_equals_the_cached_one_and_resumes_after_the_first_pass(setup, tokenizer, tmp_path,
                                                                             monkeypatch):
    path = tmp_path / "covariance.npz"
    two = fit_factors(setup.model, tokenizer, setup.loss, setup.modules, TRAIN, setup.ref_train, batch_size=2,
                      cache_bytes=0, covariance_path=path)
    assert path.exists()
    for a, b in zip(two.modules, setup.factors.modules, strict=True):
        np.testing.assert_allclose(a.eigenvalue_correction.numpy(), b.eigenvalue_correction.numpy(), rtol=1e-9,
                                   atol=1e-14 * float(b.eigenvalue_correction.max()))

    class NoCovariance:
        def __init__(self, *args, **kwargs):
            raise AssertionError("the covariance pass ran again")

    monkeypatch.setattr(ekfac, "_CovarianceSink", NoCovariance)
    again = fit_factors(setup.model, tokenizer, setup.loss, setup.modules, TRAIN, setup.ref_train, batch_size=2,
                        covariance_path=path)  # loads the first pass, runs only the second
    for a, b in zip(again.modules, two.modules, strict=True):
        assert torch.equal(a.eigenvalue_correction, b.eigenvalue_correction)


def test_factor_store_reloads_without_refitting_and_keys_by_arguments(setup, tmp_path):
    calls = []

    def fit(covariance_path):
        calls.append(covariance_path)
        return setup.factors

    store = FactorStore(tmp_path, {"model": "m", "data": {"sha1": "x"}})
    first = store.load_or_fit(setup.names, fit)
    assert len(calls) == 1 and store.complete()
    again = FactorStore(tmp_path, {"data": {"sha1": "x"}, "model": "m"}).load_or_fit(
        setup.names, lambda path: pytest.fail("refitted"))
    for a, b in zip(again.modules, first.modules, strict=True):
        assert a.name == b.name
        for x, y in ((a.q_a, b.q_a), (a.q_s, b.q_s), (a.eigenvalue_correction, b.eigenvalue_correction)):
            assert torch.equal(x, y)
    other = FactorStore(tmp_path, {"model": "m", "data": {"sha1": "y"}})
    assert other.dir != store.dir and not other.complete()
    with np.load(store.factors_path, allow_pickle=False) as data:  # plain arrays, no pickles
        assert all(data[key].dtype != object for key in data.files)


def test_zero_gradient_module_scores_nothing():
    q = torch.eye(3, dtype=torch.float64)
    zero = ekfac.ModuleFactors("m", q, q[:2, :2], torch.zeros(2, 3, dtype=torch.float64))
    assert zero.damping_value(0.1) == 0.0
    assert torch.equal(zero.ihvp(torch.ones(4, 2, 3), 0.1), torch.zeros(4, 2, 3, dtype=torch.float64))


def test_normalize_gives_cosines_in_the_inverse_curvature(setup):
    exact = ExactGradients(setup.modules)
    train = setup.features(exact, TRAIN, setup.ref_train)
    test = setup.features(PreconditionedProjector(exact, setup.factors, 0.1), TEST, setup.ref_test)
    form = ekfac.QuadraticForm(setup.modules, setup.factors, 0.1)
    train_norms = setup.features(form, TRAIN, setup.ref_train)[:, 0]
    test_norms = setup.features(form, TEST, setup.ref_test)[:, 0]
    got = get_method("ekfac", normalize=True).score_matrix(
        [FeatureSet(train, test, 1.0, exact.blocks, None, train_norms, test_norms)]).numpy()
    # brute force: <G_i, H^-1 V_q> / sqrt(<G_i, H^-1 G_i> <V_q, H^-1 V_q>), H^-1 by the brute-force factors
    cross = sum(np.einsum("nij,qij->nq", setup.g_train[n], setup.brute_ihvp(n)) for n in setup.names)
    g_self = sum(np.einsum("nij,nij->n", setup.g_train[n], np.stack([setup.brute[n].ihvp(g)
                                                                       for g in setup.g_train[n]]))
                 for n in setup.names)
    v_self = sum(np.einsum("qij,qij->q", setup.g_test[n], setup.brute_ihvp(n)) for n in setup.names)
    want = -cross / np.sqrt(g_self[:, None] * v_self[None, :])
    np.testing.assert_allclose(train_norms.numpy(), g_self, rtol=1e-6)
    np.testing.assert_allclose(test_norms.numpy(), v_self, rtol=1e-6)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9)
    assert np.abs(got).max() <= 1 + 1e-9
    # a train pair taken as its own query: cosine 1, i.e. raw score -1
    own_test = setup.features(PreconditionedProjector(exact, setup.factors, 0.1), TRAIN, setup.ref_train)
    own = get_method("ekfac", normalize=True).score_matrix(
        [FeatureSet(train, own_test, 1.0, exact.blocks, None, train_norms, train_norms)]).numpy()
    np.testing.assert_allclose(np.diag(own), -1.0, rtol=1e-9)
    with pytest.raises(ValueError, match="normalize"):  # norms are not recoverable from the features
        get_method("ekfac", normalize=True).scores([FeatureSet(train, test)])
    assert get_method("ekfac").preconditions_queries and not get_method("trak").preconditions_queries
    assert get_method("ekfac").damping == 0.1


def test_score_runs_ekfac_end_to_end_and_resumes_its_factors(tmp_path, monkeypatch):
    from trustattr.attribution import score

    args = ScoreArguments.from_preset("tiny", limit=4, test_limit=2, benchmarks="ethics", policy="tiny",
                                      method="ekfac", out=str(tmp_path / "run"))
    first = score(args, progress=False, log=lambda message: None)
    assert np.isfinite(first.raw).all() and np.abs(first.raw).max() > 0
    assert "ekfac factors" in first.timings and "ekfac factors" in first.summary["timings_s"]
    stored = list((tmp_path / "run" / "work" / "features" / "final" / "ekfac").glob("*/factors.npz"))
    assert len(stored) == 1

    def no_fit(*args, **kwargs):
        raise AssertionError("the factors were fitted again")

    monkeypatch.setattr(ekfac, "fit_factors", no_fit)
    # another damping: same factors, other (recomputed) test features, other scores
    other = score(args.replace(damping=10.0), progress=False, log=lambda message: None)
    assert not np.allclose(other.raw, first.raw)
    # normalize: the same factors, cosines in H^-1 (norms from one more pass over train and test pairs)
    cosine = score(args.replace(normalize=True), progress=False, log=lambda message: None)
    assert "ekfac norms" in cosine.timings and np.isfinite(cosine.raw).all()
    assert (np.sign(cosine.raw) == np.sign(first.raw)).all() and not np.allclose(cosine.raw, first.raw)

    def no_features(*args, **kwargs):
        raise AssertionError("features were recomputed")

    monkeypatch.setattr(Attributor, "batch_features", no_features)
    again = score(args, progress=False, log=lambda message: None)
    np.testing.assert_array_equal(again.raw, first.raw)
