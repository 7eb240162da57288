"""BalancedKMeans and the balanced E-step (lesson 12, issue 21): exact sizes, the brute-force optimum on tiny
problems, k-means-constrained on small ones, scikit-learn's protocol, clear errors."""
import itertools
import numpy as np
import pytest
import torch
from sklearn.datasets import make_blobs
from sklearn.utils.estimator_checks import parametrize_with_checks

from kmeans_lessons.balanced import (BalancedKMeans, sinkhorn_potentials, exact_potentials, round_to_sizes,
                                     check_sizes)
from kmeans_lessons import kmeans_plusplus


def d2(X, C): return ((X[:, None] - C[None]) ** 2).sum(-1)


def brute_force(cost, lo, hi):
    "The cheapest labelling with lo <= sizes <= hi, by trying every labelling."
    N, k = cost.shape
    best = None
    for lab in itertools.product(range(k), repeat=N):
        counts = np.bincount(lab, minlength=k)
        if counts.min() < lo or counts.max() > hi: continue
        c = cost[np.arange(N), lab].sum()
        if best is None or c < best: best = c
    return best


@pytest.mark.parametrize('seed', range(6))
@pytest.mark.parametrize('N,k,lo,hi', [(8, 2, 4, 4), (9, 3, 3, 3), (8, 3, 2, 3), (9, 3, 1, 5)])
def test_rounding_is_optimal_on_tiny_problems(N, k, lo, hi, seed):
    rng = np.random.default_rng(seed)
    X, C = rng.normal(size=(N, 2)), rng.normal(size=(k, 2))
    cost = torch.from_numpy(d2(X, C))
    eps = 0.1 * float(cost.min(1).values.mean())
    g, _ = sinkhorn_potentials(cost, lo, hi, eps, n_iter=200)
    g, _ = exact_potentials(cost, lo, hi, g, n_sweeps=10)
    lab = round_to_sizes(cost, g, lo, hi)
    counts = torch.bincount(lab, minlength=k)
    assert counts.min() >= lo and counts.max() <= hi
    ours = float(cost[torch.arange(N), lab].sum())
    assert ours <= brute_force(cost.numpy(), lo, hi) * (1 + 1e-9) + 1e-12


@pytest.mark.parametrize('seed', range(4))
def test_round_to_sizes_meets_the_bounds_from_any_potentials(seed):
    rng = np.random.default_rng(seed)
    cost = torch.from_numpy(rng.exponential(size=(300, 7)))
    g = torch.from_numpy(rng.normal(size=7) * 3)
    for lo, hi in [(0, 43), (42, 43), (30, 60), (10, 300), (0, 300)]:
        c = torch.bincount(round_to_sizes(cost, g, lo, hi), minlength=7)
        assert c.sum() == 300 and c.min() >= lo and c.max() <= hi, (lo, hi, c)


def test_sinkhorn_column_sums_and_no_overflow():
    rng = np.random.default_rng(0)
    cost = torch.from_numpy(d2(rng.normal(size=(500, 2)) * 30, rng.normal(size=(5, 2)) * 30))
    eps = 1e-3 * float(cost.min(1).values.mean())              # exp(-cost/eps) underflows to 0
    assert (torch.exp(-cost / eps) == 0).any()                           # underflow: the naive kernel fails
    g, _ = sinkhorn_potentials(list(cost.split(128)), 100, 100, eps, n_iter=50)
    assert torch.isfinite(g).all() and torch.softmax((g - cost) / eps, 1).isfinite().all()
    eps = 0.1 * float(cost.min(1).values.mean())
    g, _ = sinkhorn_potentials(list(cost.split(128)), 100, 100, eps, n_iter=3000, tol=1e-3)
    s = torch.softmax((g - cost) / eps, 1).sum(0)                       # the plan block by block = whole
    assert (s - 100).abs().max() < 0.2, s


SHAPES = [(600, 2, 4, 'equal'), (1000, 5, 10, 'box'), (777, 3, 7, 'min'), (1200, 8, 20, 'max'),
          (500, 16, 5, 'equal')]


@pytest.mark.parametrize('N,D,k,kind', SHAPES)
def test_sizes_hold_exactly_and_inertia_is_true(N, D, k, kind):
    X, _ = make_blobs(N, D, centers=k, cluster_std=[0.5 + j for j in range(k)], random_state=N)
    lo, hi = {'equal': (N // k, -(-N // k)), 'box': (int(0.8 * N / k), int(1.2 * N / k)),
              'min': (N // k - 5, None), 'max': (None, N // k + 5)}[kind]
    km = BalancedKMeans(k, size_min=lo, size_max=hi, random_state=0).fit(X)
    c = np.bincount(km.labels_, minlength=k)
    assert c.min() >= (lo or 0) and c.max() <= (hi or N)
    np.testing.assert_allclose(km.inertia_, ((X - km.cluster_centers_[km.labels_]) ** 2).sum(), rtol=1e-10)
    # held-out data of the same shape: a new fit meets the bounds too; predict is the nearest centre
    Xh, _ = make_blobs(N, D, centers=k, random_state=N + 1)
    ch = np.bincount(BalancedKMeans(k, size_min=lo, size_max=hi, random_state=1).fit_predict(Xh), minlength=k)
    assert ch.min() >= (lo or 0) and ch.max() <= (hi or N)
    np.testing.assert_array_equal(km.predict(Xh), d2(Xh, km.cluster_centers_).argmin(1))


@pytest.mark.parametrize('N,k,lo,hi', [(300, 3, 100, 100), (400, 5, 60, 100), (500, 10, 50, 50)])
def test_inertia_close_to_k_means_constrained(N, k, lo, hi):
    kmc = pytest.importorskip('k_means_constrained')
    ratios = []
    for seed in range(3):
        X, _ = make_blobs(N, 2, centers=k, cluster_std=2.0, random_state=seed)
        init, _ = kmeans_plusplus(X, k, random_state=seed)
        ours = BalancedKMeans(k, size_min=lo, size_max=hi, init=init, n_init=1).fit(X)
        theirs = kmc.KMeansConstrained(k, size_min=lo, size_max=hi, init=init, n_init=1).fit(X)
        ratios.append(ours.inertia_ / theirs.inertia_)
    assert np.mean(ratios) < 1.02, ratios


def test_tensors_stay_tensors_and_weights():
    X = torch.from_numpy(make_blobs(400, 2, centers=4, random_state=0)[0])
    km = BalancedKMeans(4, size_min=100, size_max=100, random_state=0).fit(X)
    assert torch.is_tensor(km.labels_) and km.cluster_centers_.device == X.device
    assert torch.is_tensor(km.predict(X)) and isinstance(km.predict(X.numpy()), np.ndarray)
    w = np.random.default_rng(0).uniform(0.5, 2, 400)
    kw = BalancedKMeans(4, size_min=100, size_max=100, random_state=0).fit(X.numpy(), sample_weight=w)
    assert (np.bincount(kw.labels_) == 100).all()                       # sizes count points, not weights
    Xn = X.numpy()
    means = np.stack([np.average(Xn[kw.labels_ == j], axis=0, weights=w[kw.labels_ == j]) for j in range(4)])
    np.testing.assert_allclose(kw.cluster_centers_, means, rtol=1e-9)
    true = (((Xn - kw.cluster_centers_[kw.labels_]) ** 2).sum(1) * w).sum()
    np.testing.assert_allclose(kw.inertia_, true, rtol=1e-10)


@pytest.mark.parametrize('lo,hi,msg', [(5, 3, 'size_min=5 must be <= size_max=3'),
                                       (30, None, 'size_min=30 is infeasible: 4 clusters of at least 30'),
                                       (None, 20, 'size_max=20 is infeasible: 4 clusters of at most 20')])
def test_infeasible_sizes_are_clear_errors(lo, hi, msg):
    X = np.random.default_rng(0).normal(size=(100, 2))
    with pytest.raises(ValueError, match=msg):
        BalancedKMeans(4, size_min=lo, size_max=hi).fit(X)
    with pytest.raises(ValueError, match='size_min must be'):
        BalancedKMeans(4, size_min=-1).fit(X)
    assert check_sizes(100, 4, None, None) == (0, 100)


def test_input_is_not_changed():
    X = np.random.default_rng(0).normal(size=(90, 3))
    before = X.copy()
    BalancedKMeans(3, size_min=30, size_max=30, random_state=0).fit(X)
    np.testing.assert_array_equal(X, before)


@pytest.mark.filterwarnings("ignore:Estimator .* does not inherit")
@parametrize_with_checks([BalancedKMeans(3, size_min=1, random_state=0, max_iter=20)],
                         expected_failed_checks=lambda est: {
                             'check_sample_weight_equivalence_on_dense_data':
                             'sizes count points, so repeating a point is not the same as doubling its weight'})
def test_check_estimator(estimator, check):
    check(estimator)
