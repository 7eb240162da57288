"""The KMeans estimator against independent references: scikit-learn's Lloyd, brute force, and toy cases."""
import warnings
import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans as SKMeans
from sklearn.datasets import make_blobs

import kmeans_lessons as kl
from kmeans_lessons import KMeans, kmeans, ConvergenceWarning, NotFittedError
from kmeans_lessons.lloyd import init_forgy, init_kmeans_plusplus, init_random_partition


def datasets():
    rng = np.random.default_rng(0)
    yield 'blobs-2d', make_blobs(2000, 2, centers=6, random_state=1)[0], 6
    yield 'blobs-10d', make_blobs(3000, 10, centers=12, cluster_std=3.0, random_state=2)[0], 12
    yield 'gaussian-noise', rng.standard_normal((5000, 8)), 20
    yield 'uniform-3d', rng.uniform(-1, 1, (4000, 3)), 7
    yield 'anisotropic', make_blobs(1500, 2, centers=4, random_state=3)[0] @ np.array([[0.6, -0.6], [-0.4, 0.8]]), 4
    yield 'course-blobs', kl.sample_blobs(6, 250, seed=42, dtype=torch.float64)[0].numpy(), 6


@pytest.mark.parametrize('name,X,k', list(datasets()), ids=lambda v: v if isinstance(v, str) else '')
def test_matches_sklearn_lloyd_with_same_init(name, X, k):
    init = X[np.random.default_rng(5).choice(len(X), k, replace=False)]
    sk = SKMeans(k, init=init, n_init=1, tol=0, max_iter=300, algorithm='lloyd').fit(X)
    ours = KMeans(k, init=torch.from_numpy(init), tol=0, max_iter=300).fit(X)
    assert isinstance(ours.labels_, np.ndarray)                       # NumPy in, NumPy out
    assert np.array_equal(sk.labels_, ours.labels_)
    assert sk.n_iter_ == ours.n_iter_
    np.testing.assert_allclose(ours.cluster_centers_, sk.cluster_centers_, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(ours.inertia_, sk.inertia_, rtol=1e-9)


def test_tol_scaled_by_mean_variance_like_sklearn():
    X = make_blobs(3000, 5, centers=8, cluster_std=4.0, random_state=7)[0] * 1000.0   # large scale: tol must scale
    init = X[:8]
    for tol in (1e-2, 1e-4):
        sk = SKMeans(8, init=init, n_init=1, tol=tol, algorithm='lloyd').fit(X)
        ours = KMeans(8, init=torch.from_numpy(init), tol=tol).fit(X)
        assert sk.n_iter_ == ours.n_iter_
        assert np.array_equal(sk.labels_, ours.labels_)


def test_max_iter_respected_and_history_lengths():
    X = make_blobs(2000, 2, centers=10, random_state=0)[0]
    km = KMeans(10, init='forgy', n_init=1, max_iter=3, tol=0, random_state=0, keep_history=True).fit(X)
    assert km.n_iter_ == 3 and len(km.history_) == 4 and len(km.inertia_history_) == 4
    assert km.inertia_history_[-1] == pytest.approx(km.inertia_)
    assert all(a >= b - 1e-9 * a for a, b in zip(km.inertia_history_, km.inertia_history_[1:]))
    # history_[i] really is what Lloyd produced: one more step from history_[1] gives history_[2]
    X_t = torch.from_numpy(X)
    h1, h2 = torch.from_numpy(km.history_[1]), torch.from_numpy(km.history_[2])
    lab = ((X_t[:, None] - h1[None]) ** 2).sum(-1).argmin(1)
    step = torch.stack([X_t[lab == j].mean(0) for j in range(10)])
    torch.testing.assert_close(step, h2)


def test_labels_are_brute_force_nearest_centre():
    X = torch.randn(3000, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    km = KMeans(15, random_state=3).fit(X)
    brute = ((X[:, None] - km.cluster_centers_[None]) ** 2).sum(-1)      # (N, k), no expansion
    assert torch.equal(km.labels_, brute.argmin(1))
    assert km.inertia_ == pytest.approx(brute.min(1).values.sum().item(), rel=1e-10)
    torch.testing.assert_close(km.transform(X), brute.sqrt())
    assert km.score(X) == pytest.approx(-km.inertia_, rel=1e-10)


def test_seed_reproducible_and_inits():
    X, _, _ = kl.sample_blobs(5, 100, seed=1)
    for init in ('k-means++', 'forgy', 'random-partition'):
        a, b = KMeans(5, init=init, random_state=11).fit(X), KMeans(5, init=init, random_state=11).fit(X)
        assert torch.equal(a.cluster_centers_, b.cluster_centers_) and torch.equal(a.labels_, b.labels_)
    c1 = KMeans(5, init='forgy', n_init=1, random_state=1, keep_history=True).fit(X).history_[0]   # the starts
    c2 = KMeans(5, init='forgy', n_init=1, random_state=2, keep_history=True).fit(X).history_[0]
    assert not torch.equal(c1, c2)


def test_forgy_without_replacement():
    X = torch.arange(10.).reshape(10, 1)
    for s in range(50):
        c = init_forgy(X, 10, torch.Generator().manual_seed(s))
        assert sorted(c.flatten().tolist()) == list(range(10))


def test_random_partition_no_empty_cluster():
    X = torch.randn(12, 2, generator=torch.Generator().manual_seed(0))
    for s in range(50):
        c = init_random_partition(X, 12, torch.Generator().manual_seed(s))
        assert torch.isfinite(c).all()
        # with 12 clusters over 12 points each cluster holds exactly one point: centres are the points
        assert torch.equal(torch.sort(c[:, 0]).values, torch.sort(X[:, 0]).values)


def test_kmeans_plusplus_greedy_quality_vs_sklearn():
    from sklearn.cluster import kmeans_plusplus
    X = make_blobs(5000, 2, centers=25, cluster_std=0.5, random_state=4)[0]
    ours = [KMeans(25, max_iter=1, random_state=s).fit(X).inertia_history_[0] for s in range(8)]
    Xt = torch.from_numpy(X)
    theirs = []
    for s in range(8):
        c, _ = kmeans_plusplus(X, 25, random_state=s)
        theirs.append(((Xt[:, None] - torch.from_numpy(c)[None]) ** 2).sum(-1).min(1).values.sum().item())
    # the same greedy algorithm: the medians of the starting inertia agree within 15%
    assert np.median(ours) == pytest.approx(np.median(theirs), rel=0.15)
    forgy = [KMeans(25, init='forgy', n_init=1, max_iter=1, random_state=s).fit(X).inertia_history_[0] for s in range(8)]
    assert np.median(ours) < 0.5 * np.median(forgy)


def test_kmeans_plusplus_picks_distinct_data_points():
    X = torch.randn(500, 3, generator=torch.Generator().manual_seed(0))
    c = init_kmeans_plusplus(X, 40, torch.Generator().manual_seed(0))
    d = ((c[:, None] - X[None]) ** 2).sum(-1)
    assert (d.min(1).values == 0).all() and len(torch.unique(c, dim=0)) == 40


def test_input_types_and_dtypes():
    X64 = make_blobs(300, 3, centers=3, random_state=0)[0]
    ref = KMeans(3, init='forgy', n_init=1, random_state=0).fit(torch.from_numpy(X64))
    for X in (X64, X64.tolist()):                                   # NumPy and lists: NumPy out
        km = KMeans(3, init='forgy', n_init=1, random_state=0).fit(X)
        assert isinstance(km.cluster_centers_, np.ndarray) and km.cluster_centers_.dtype == np.float64
        assert np.array_equal(km.labels_, ref.labels_.numpy())
        assert isinstance(km.predict(X), np.ndarray) and isinstance(km.transform(X), np.ndarray)
    assert torch.is_tensor(ref.cluster_centers_) and ref.cluster_centers_.dtype == torch.float64
    assert torch.is_tensor(ref.predict(torch.from_numpy(X64))) and isinstance(ref.predict(X64), np.ndarray)
    km32 = KMeans(3, init='forgy', n_init=1, random_state=0).fit(X64.astype(np.float32))
    assert km32.cluster_centers_.dtype == np.float32 and np.array_equal(km32.labels_, ref.labels_.numpy())
    ints = np.array([[0, 0], [0, 1], [10, 10], [10, 11]])
    km = KMeans(2, random_state=0).fit(ints)
    assert km.cluster_centers_.dtype == np.float64                  # integers give float64, as in scikit-learn
    assert sorted(km.cluster_centers_.tolist()) == [[0.0, 0.5], [10.0, 10.5]]
    half = KMeans(2, random_state=0).fit(torch.tensor(ints, dtype=torch.float16))
    assert half.cluster_centers_.dtype == torch.get_default_dtype()
    assert sorted(half.cluster_centers_.tolist()) == [[0.0, 0.5], [10.0, 10.5]]
    ro = X64.copy(); ro.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        KMeans(3, random_state=0).fit(ro)                       # no "non-writable array" warning from torch


def test_caller_data_never_modified():
    X = make_blobs(500, 2, centers=4, random_state=0)[0]
    Xn, Xt = X.copy(), torch.from_numpy(X.copy())
    init = torch.from_numpy(X[:4].copy()); init_copy = init.clone()
    KMeans(4, init=init, tol=0).fit(Xn)
    km = KMeans(4, init=init, tol=0).fit(Xt)
    km.predict(Xt); km.transform(Xn)
    assert np.array_equal(Xn, X) and torch.equal(Xt, torch.from_numpy(X)) and torch.equal(init, init_copy)
    km.cluster_centers_.add_(1)                          # results do not alias the init tensor either
    assert torch.equal(init, init_copy)


def test_requires_grad_input():
    X = torch.randn(100, 2, requires_grad=True)
    km = KMeans(3, random_state=0).fit(X)
    assert not km.cluster_centers_.requires_grad


BAD = [
    (lambda X: KMeans(0).fit(X), ValueError, 'n_clusters must be an int >= 1; got 0'),
    (lambda X: KMeans(-3).fit(X), ValueError, 'n_clusters'),
    (lambda X: KMeans(2.0).fit(X), TypeError, 'n_clusters must be an int'),
    (lambda X: KMeans(True).fit(X), TypeError, 'n_clusters must be an int'),
    (lambda X: KMeans(11).fit(X[:10]), ValueError, 'n_samples=10 should be >= n_clusters=11'),
    (lambda X: KMeans(2).fit(X[:, 0]), ValueError, '2-D'),
    (lambda X: KMeans(2).fit(X[None]), ValueError, '2-D'),
    (lambda X: KMeans(2).fit(X[:0]), ValueError, 'empty'),
    (lambda X: KMeans(2).fit(torch.empty(5, 0)), ValueError, 'empty'),
    (lambda X: KMeans(2).fit(torch.tensor([[1., float('nan')], [0., 0.], [1., 1.]])), ValueError, 'NaN or inf'),
    (lambda X: KMeans(2).fit(torch.tensor([[1., float('inf')], [0., 0.], [1., 1.]])), ValueError, 'NaN or inf'),
    (lambda X: KMeans(2).fit([['a', 'b'], ['c', 'd']]), TypeError, 'real numbers'),
    (lambda X: KMeans(2).fit([[1., 2.], [3.]]), TypeError, 'ragged'),
    (lambda X: KMeans(2).fit(torch.ones(3, 2, dtype=torch.complex64)), ValueError, 'Complex data not supported'),
    (lambda X: KMeans(2).fit(np.ones((3, 2), dtype=complex)), ValueError, 'Complex data not supported'),
    (lambda X: KMeans(2).fit('not data'), TypeError, 'real numbers'),
    (lambda X: KMeans(3, init=torch.zeros(2, 2)).fit(X), ValueError, 'init has shape (2, 2)'),
    (lambda X: KMeans(3, init=torch.zeros(3, 5)).fit(X), ValueError, 'expected (3, 2)'),
    (lambda X: KMeans(2, init=torch.tensor([[0., float('nan')], [1., 1.]])).fit(X), ValueError, 'init contains NaN'),
    (lambda X: KMeans(3, init='kmeans++').fit(X), ValueError, "init must be one of"),
    (lambda X: KMeans(3, max_iter=0).fit(X), ValueError, 'max_iter'),
    (lambda X: KMeans(3, n_init=0).fit(X), ValueError, 'n_init'),
    (lambda X: KMeans(3, tol=-1).fit(X), ValueError, 'tol'),
    (lambda X: KMeans(3, tol=float('nan')).fit(X), ValueError, 'tol'),
    (lambda X: KMeans(3, random_state=-1).fit(X), ValueError, 'random_state must be an int in [0, 2**63)'),
    (lambda X: KMeans(3, distance='manhattan').fit(X), ValueError, "unknown distance 'manhattan'"),
    (lambda X: KMeans(3, distance=42).fit(X), TypeError, 'distance must be'),
    (lambda X: KMeans(3).predict(X), NotFittedError, 'not fitted'),
    (lambda X: KMeans(3).transform(X), NotFittedError, 'not fitted'),
    (lambda X: KMeans(3, random_state=0).fit(X).predict(torch.zeros(4, 3)), ValueError, 'X has 3 features, but KMeans is expecting 2'),
]


@pytest.mark.parametrize('call,exc,msg', BAD, ids=[b[2][:30] for b in BAD])
def test_bad_input_gets_clear_error(call, exc, msg):
    X = torch.randn(50, 2, generator=torch.Generator().manual_seed(0))
    with pytest.raises(exc) as e:
        call(X)
    assert msg in str(e.value)


def test_not_fitted_is_value_error():
    with pytest.raises(ValueError):
        KMeans(2).predict([[0., 0.]])


def test_fewer_distinct_points_than_k_warns_and_stays_finite():
    X = [[0., 0.]] * 4 + [[5., 5.]] * 3
    for init in ('k-means++', 'forgy', 'random-partition'):
        with pytest.warns(ConvergenceWarning, match='2 distinct clusters'):
            km = KMeans(4, init=init, random_state=0).fit(X)
        assert np.isfinite(km.cluster_centers_).all()
        assert km.inertia_ == pytest.approx(0.0, abs=1e-12)   # exact up to the rounding of the centring
        got = {tuple(np.round(c, 9)) for c in km.cluster_centers_.tolist()}   # centring rounds in the last bit
        assert got == {(0.0, 0.0), (5.0, 5.0)}


def test_empty_cluster_relocated_to_farthest_point():
    # centre 2 is far from everything: it gets no points in the first assignment
    X = torch.tensor([[0., 0.], [0., 1.], [10., 0.], [10., 1.], [30., 0.]])
    init = torch.tensor([[0., 0.5], [12., 0.5], [100., 100.]])
    km = KMeans(3, init=init, tol=0).fit(X)
    assert torch.isfinite(km.cluster_centers_).all()
    # the point farthest from its centre, (30, 0), founds the empty cluster, as in scikit-learn
    sk = SKMeans(3, init=init.numpy(), n_init=1, tol=0, algorithm='lloyd').fit(X.numpy())
    np.testing.assert_allclose(km.cluster_centers_.numpy(), sk.cluster_centers_, atol=1e-6)
    assert np.array_equal(km.labels_.numpy(), sk.labels_)


def test_n_init_keeps_best_and_explicit_init_warns():
    X = make_blobs(1000, 2, centers=8, random_state=5)[0]
    runs = [KMeans(8, init='forgy', random_state=0, n_init=1).fit(X)]
    best = KMeans(8, init='forgy', random_state=0, n_init=6).fit(X)
    assert best.inertia_ <= runs[0].inertia_ + 1e-9
    with pytest.warns(RuntimeWarning, match='n_init=3 was set to 1'):
        KMeans(8, init=torch.from_numpy(X[:8]), n_init=3).fit(X)


def test_functional_form_and_fit_predict():
    X, y, _ = kl.sample_blobs(4, 100, seed=3)
    c, lab = kmeans(X, 4, random_state=0, n_init=3)
    km = KMeans(4, random_state=0, n_init=3)
    assert torch.equal(km.fit_predict(X), lab) and torch.equal(km.cluster_centers_, c)
    from sklearn.metrics import adjusted_rand_score
    assert adjusted_rand_score(y.numpy(), lab.numpy()) == 1.0      # well-separated blobs recovered exactly


def test_predict_on_other_data_and_repr():
    X, _, _ = kl.sample_blobs(3, 50, seed=0)
    km = KMeans(3, random_state=0).fit(X)
    new = km.cluster_centers_ + 0.01
    assert torch.equal(km.predict(new), torch.arange(3))
    assert np.array_equal(km.predict(new.numpy()), np.arange(3))
    assert repr(KMeans(5, init='forgy')) == "KMeans(n_clusters=5, init='forgy')"


def test_device_argument_cpu():
    X, _, _ = kl.sample_blobs(3, 50, seed=0)
    km = KMeans(3, random_state=0, device='cpu').fit(X)
    assert km.cluster_centers_.device.type == 'cpu' and km.labels_.device.type == 'cpu'
    assert isinstance(KMeans(3, random_state=0, device='cpu').fit(X.numpy()).cluster_centers_, np.ndarray)
    assert kl.get_device('cpu') == torch.device('cpu')


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')
def test_cuda_matches_cpu():
    X = torch.from_numpy(make_blobs(5000, 4, centers=10, random_state=0)[0])
    init = X[:10]
    cpu = KMeans(10, init=init, tol=0).fit(X)
    gpu = KMeans(10, init=init.cuda(), tol=0).fit(X.cuda())
    assert gpu.labels_.device.type == 'cuda'
    assert torch.equal(cpu.labels_, gpu.labels_.cpu())


@pytest.mark.parametrize('offset', [1e3, 1e4, 3e4])
def test_float32_far_from_origin_matches_float64(offset):
    # without centring, the float32 expansion mislabels about a third of these points at offset 1e4
    X = torch.from_numpy(make_blobs(1500, 2, centers=6, cluster_std=2.0, random_state=0)[0]) + offset
    init = X[torch.arange(0, 1500, 250)]
    ref = KMeans(6, init=init, tol=0).fit(X)
    f32 = KMeans(6, init=init.float(), tol=0, keep_history=True).fit(X.float())
    assert torch.equal(ref.labels_, f32.labels_)          # (the float32 start is rounded, so n_iter_ may differ by one)
    torch.testing.assert_close(f32.cluster_centers_, ref.cluster_centers_.float(), rtol=0, atol=offset * 1e-6)
    assert f32.history_[0].sub(init.float()).abs().max() <= offset * 1e-6     # history is in the caller's coordinates


@pytest.mark.parametrize('algorithm', ['lloyd', 'hamerly', 'yinyang', 'elkan', 'auto'])
def test_every_algorithm_gives_lloyds_result(algorithm):
    X = make_blobs(4000, 4, centers=60, random_state=0)[0]
    ref = KMeans(150, algorithm='lloyd', random_state=0, tol=0).fit(X)
    km = KMeans(150, algorithm=algorithm, random_state=0, tol=0).fit(X)
    assert np.array_equal(km.labels_, ref.labels_) and km.n_iter_ == ref.n_iter_
    np.testing.assert_allclose(km.cluster_centers_, ref.cluster_centers_, rtol=1e-12, atol=1e-12)
    # k >= 100 at D=4: 'auto' times Lloyd against a trial of Hamerly (tests/test_bounds.py::test_auto_measures)
    assert km.algorithm_ in (('lloyd', 'hamerly') if algorithm == 'auto' else (algorithm,))


def test_elkan_runs_and_its_budget_is_enforced():
    X = np.random.default_rng(0).normal(size=(200, 2))
    assert KMeans(3, algorithm='elkan', random_state=0).fit(X).algorithm_ == 'elkan'
    with pytest.raises(ValueError, match="algorithm='elkan' keeps 200 x 3 lower bounds.*'hamerly'.*'yinyang'"):
        KMeans(3, algorithm='elkan', memory_budget=1000).fit(X)
    with pytest.raises(ValueError, match="algorithm must be one of"):
        KMeans(3, algorithm='fast').fit(X)


def test_weighted_bounds_run_what_was_asked():
    X, w = make_blobs(600, 3, centers=5, random_state=1)[0], np.random.default_rng(1).uniform(0.5, 2, 600)
    ref = KMeans(5, algorithm='lloyd', random_state=0, tol=0).fit(X, sample_weight=w)
    for a in ('hamerly', 'yinyang', 'elkan'):
        km = KMeans(5, algorithm=a, random_state=0, tol=0).fit(X, sample_weight=w)
        assert km.algorithm_ == a and km.n_iter_ == ref.n_iter_ and np.array_equal(km.labels_, ref.labels_)
        np.testing.assert_allclose(km.cluster_centers_, ref.cluster_centers_, rtol=1e-12, atol=1e-12)


def test_cosine_with_bounds_runs_and_auto_runs_lloyd_at_few_centres():
    "Cosine with the bounds gives cosine Lloyd's fit from the same seed; 'auto' with 3 centres runs Lloyd."
    X = np.random.default_rng(0).normal(size=(100, 3))
    ref = KMeans(3, algorithm='lloyd', distance='cosine', random_state=0).fit(X)
    for a in ('hamerly', 'yinyang', 'elkan'):
        km = KMeans(3, algorithm=a, distance='cosine', random_state=0).fit(X)
        assert km.algorithm_ == a and km.n_iter_ == ref.n_iter_ and np.array_equal(km.labels_, ref.labels_)
        np.testing.assert_allclose(km.cluster_centers_, ref.cluster_centers_, rtol=0, atol=1e-12)
    assert KMeans(3, distance='cosine', random_state=0).fit(X).algorithm_ == 'lloyd'


@pytest.mark.parametrize('dtype', [np.float32, np.float64])
def test_inertia_is_the_true_sum_of_squares_with_an_outlier(dtype):
    "One row at 1e30 in O(1) data: the expansion cancels to 0; direct differences give scikit-learn's 2.7e26."
    X = np.random.default_rng(0).normal(size=(300, 2)).astype(dtype)
    X[7] = 1e30 if dtype == np.float64 else 1e6      # float32: |x|^2 = 1e12 would swamp the O(1) terms
    km = KMeans(3, random_state=0, n_init=1).fit(X)
    c, lab = km.cluster_centers_.astype(np.float64), km.labels_
    true = float(((X.astype(np.float64) - c[lab]) ** 2).sum())
    assert true > 0 and km.inertia_ == pytest.approx(true, rel=1e-5)
    if dtype == np.float64:
        sk = SKMeans(3, random_state=0, n_init=1).fit(X)      # centred at 3e27, the O(1) rows' digits are lost:
        assert km.inertia_ <= sk.inertia_ * (1 + 1e-3)        # ours may land nearer (the kernel's exact ties)
