"""BalancedKMeans and the balanced E-step (lesson 12, issue 21): exact sizes, the brute-force optimum on tiny
problems, k-means-constrained on small ones, scikit-learn's protocol, clear errors."""
import itertools
import math
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


# the estimator's E-step (Under the hood): candidates, all potentials at once, the costs block by block
from kmeans_lessons.balanced import CostBlocks, candidates, jacobi_potentials, fast_balanced_assign


@pytest.mark.parametrize('seed', range(6))
@pytest.mark.parametrize('N,k,lo,hi', [(8, 2, 4, 4), (9, 3, 3, 3), (8, 3, 2, 3), (9, 3, 1, 5)])
def test_fast_assign_is_optimal_on_tiny_problems(N, k, lo, hi, seed):
    rng = np.random.default_rng(seed)
    X, C = rng.normal(size=(N, 2)), rng.normal(size=(k, 2))
    lab, _ = fast_balanced_assign(torch.from_numpy(X), torch.from_numpy(C), lo, hi, sinkhorn_iter=200, n_sweeps=20)
    counts = np.bincount(lab.numpy(), minlength=k)
    assert counts.min() >= lo and counts.max() <= hi
    cost = d2(X, C)
    assert cost[np.arange(N), lab.numpy()].sum() <= brute_force(cost, lo, hi) * (1 + 1e-9) + 1e-12


def test_cost_blocks_match_the_whole_matrix():
    rng = np.random.default_rng(0)
    X, C = torch.from_numpy(rng.normal(size=(5000, 3))), torch.from_numpy(rng.normal(size=(7, 3)))
    w = torch.from_numpy(rng.uniform(0.5, 2, 5000))
    whole, lazy = CostBlocks(X, C, w), CostBlocks(X, C, w, memory_budget=2**14)
    assert whole.whole is not None and lazy.whole is None and len(list(lazy)) > 1
    ref = torch.from_numpy(d2(X.numpy(), C.numpy()) * w.numpy()[:, None])
    torch.testing.assert_close(torch.cat(list(lazy)), ref)
    torch.testing.assert_close(torch.cat(list(whole)), ref)
    idx = torch.tensor([4999, 3, 17])
    torch.testing.assert_close(lazy[idx], ref[idx])
    g = torch.from_numpy(rng.normal(size=7))
    for lo, hi in [(700, 720), (714, 715), (0, 800), (650, 5000)]:
        a, b = round_to_sizes(lazy, g, lo, hi), round_to_sizes(ref, g, lo, hi)
        torch.testing.assert_close(ref[torch.arange(5000), a].sum(), ref[torch.arange(5000), b].sum())
        c = torch.bincount(a, minlength=7)
        assert c.min() >= lo and c.max() <= hi


def test_jacobi_potentials_balance_without_the_repair():
    "All g_j at once on the candidates: the plain argmin under cost - g gets much closer to the sizes."
    X = torch.from_numpy(make_blobs(6000, 2, centers=20, cluster_std=[0.3 + 0.2 * j for j in range(20)],
                                    random_state=0)[0])
    cost = CostBlocks(X, X[:20].clone())
    def imbalance(g): return int((torch.bincount((cost.whole - g).argmin(1), minlength=20) - 300).abs().max())
    g, _ = sinkhorn_potentials(cost, 300, 300, 0.1 * float(cost.whole.min(1).values.mean()), n_iter=100)
    cc, ci = candidates(cost, g, 8)
    assert cc.shape == (6000, 8) and (cc == cost.whole.gather(1, ci)).all()
    adj = cost.whole - g                                                # the 8 best under cost - g
    torch.testing.assert_close(adj.gather(1, ci).sort(1).values, adj.sort(1).values[:, :8])
    g2 = jacobi_potentials(cc, ci, 300, 300, g, n_sweeps=30)
    assert imbalance(torch.zeros(20, dtype=X.dtype)) > 500 and imbalance(g2) <= imbalance(g) / 3


def test_estimator_with_a_small_memory_budget():
    "The (N, k) costs never kept whole: sizes and inertia still hold, and the fit is the same."
    X, _ = make_blobs(3000, 2, centers=6, random_state=3)
    a = BalancedKMeans(6, size_min=500, size_max=500, random_state=0).fit(X)
    b = BalancedKMeans(6, size_min=500, size_max=500, random_state=0, memory_budget=2**13).fit(X)
    assert (np.bincount(b.labels_) == 500).all()
    np.testing.assert_allclose(b.inertia_, ((X - b.cluster_centers_[b.labels_]) ** 2).sum(), rtol=1e-10)
    np.testing.assert_allclose(a.inertia_, b.inertia_, rtol=1e-3)


@pytest.mark.parametrize('rows', [10**6, 50, 1])
def test_thresholds_per_cluster_in_groups(rows):
    "The padded tables, one or many groups of clusters, give each cluster's split of its own values."
    from kmeans_lessons.balanced import _thresholds, _split_mid
    rng = np.random.default_rng(1)
    js = torch.from_numpy(np.sort(rng.integers(0, 6, 200)))
    js[js == 4] = 3                                                     # cluster 4 has no values
    cnt = torch.bincount(js, minlength=6)
    start = torch.cumsum(cnt, 0) - cnt
    m = torch.from_numpy(rng.normal(size=200))
    lo, hi, top = _thresholds(m, js, torch.arange(200) - start[js], start, 6, int(cnt.max()), 20, 30, rows)
    for j in range(6):
        mj = m[js == j]
        if len(mj) == 0: assert lo[j] == math.inf and top[j] == -math.inf; continue
        assert lo[j] == _split_mid(mj, 20) and hi[j] == _split_mid(mj, 30) and top[j] == mj.max()


def unequal_blobs(seed=0):
    "Blobs of 240, 120, 60 and 60 points: Lloyd's clusters come out unequal, balanced ones have 120 each."
    X, _ = make_blobs([240, 120, 60, 60], centers=[[0, 0], [9, 1], [4, 8], [-6, 7]], cluster_std=1.5,
                      random_state=seed)
    return X


def test_history_of_labels_and_inertias():
    "keep_history=True: per entry of history_, labels that meet the bounds and their true inertia; the next centres are their means."
    X = unequal_blobs()
    lo, hi = 110, 130
    bk = BalancedKMeans(4, size_min=lo, size_max=hi, init=X[[0, 1, 2, 3]], keep_history=True).fit(X)
    n = bk.n_iter_
    assert n >= 3 and len(bk.history_) == len(bk.labels_history_) == len(bk.inertia_history_) == n + 1
    for i, (C, lab) in enumerate(zip(bk.history_, bk.labels_history_)):
        counts = np.bincount(lab, minlength=4)
        assert counts.min() >= lo and counts.max() <= hi, (i, counts)
        assert math.isclose(bk.inertia_history_[i], d2(X, C)[np.arange(len(X)), lab].sum(), rel_tol=1e-9)
        means = np.stack([X[lab == j].mean(0) for j in range(4)])
        if i < n - 1: assert np.allclose(bk.history_[i + 1], means)    # the next centres are their means
    assert np.allclose(bk.history_[n], means)       # the last frame: the result (the best state seen), means too
    assert np.array_equal(bk.labels_history_[-1], bk.labels_) and bk.inertia_history_[-1] == bk.inertia_
    assert np.allclose(bk.history_[-1], bk.cluster_centers_)


def test_no_history_unless_asked():
    "The default keeps no history, so a pickled fit stays small."
    import pickle
    X = unequal_blobs()
    plain = BalancedKMeans(4, size_min=120, size_max=120, random_state=0).fit(X)
    kept = BalancedKMeans(4, size_min=120, size_max=120, random_state=0, keep_history=True).fit(X)
    assert plain.history_ == plain.labels_history_ == plain.inertia_history_ == []
    assert np.array_equal(plain.labels_, kept.labels_) and plain.n_iter_ == kept.n_iter_ >= 2
    assert len(pickle.dumps(kept)) - len(pickle.dumps(plain)) >= kept.n_iter_ * X.shape[0] * kept.labels_.itemsize


def test_side_by_side_animation_of_plain_and_balanced():
    """One player, two panels (lesson 12): as many frames as the longer fit, each panel's centres and labels at
    frame i those of its fit (the shorter one stays on its last), the same colours, balanced sizes in every frame."""
    from kmeans_lessons.estimators import KMeans
    from kmeans_lessons.data import cluster_colors
    from kmeans_lessons.animation import animate_side_by_side
    X = unequal_blobs()
    C0 = X[[0, 1, 2, 3]]                                     # one blob holds every start: many iterations
    km = KMeans(4, init=C0, n_init=1, keep_history=True).fit(X)
    bk = BalancedKMeans(4, size_min=120, size_max=120, init=C0, keep_history=True).fit(X)
    assert km.n_iter_ != bk.n_iter_ and min(km.n_iter_, bk.n_iter_) >= 3
    anim = animate_side_by_side(X, [km, bk], titles=['Lloyd', 'balanced'], dpi=30)
    assert anim.n_frames == max(km.n_iter_, bk.n_iter_) + 1
    left, right = anim.scenes
    assert left.ax.get_position().x1 <= right.ax.get_position().x0              # two panels, side by side
    for i in [anim.n_frames - 1, 0, 2, min(km.n_iter_, bk.n_iter_) + 1]:         # in any order
        anim.draw(i)
        for sc, fit, name in [(left, km, 'Lloyd'), (right, bk, 'balanced')]:
            t = min(i, fit.n_iter_)
            assert np.allclose(sc.cross_k.get_xydata(), fit.history_[t])
            assert sc.ax.get_title().startswith(f"{name} · iteration {t} · ")
        nearest = d2(X, km.history_[min(i, km.n_iter_)]).argmin(1)                 # Lloyd's: the nearest centre
        assert np.array_equal(left.scatter.get_array(), nearest)
        lab = np.asarray(right.scatter.get_array())
        assert np.array_equal(lab, bk.labels_history_[min(i, bk.n_iter_)])
        assert (np.bincount(lab.astype(int), minlength=4) == 120).all()
    anim.draw(anim.n_frames - 1)                                                 # the last frame: the fits' own
    assert left.ax.get_title() == f"Lloyd · iteration {km.n_iter_} · inertia {km.inertia_:,.1f}"
    assert right.ax.get_title() == f"balanced · iteration {bk.n_iter_} · inertia {bk.inertia_:,.1f}"
    colours = cluster_colors(4)
    for sc in (left, right):
        assert np.allclose(sc.cmap.colors, colours)
        assert all(np.allclose(mpl_colour(line.get_color()), colours[j]) for j, line in enumerate(sc.trails))
    assert left.ax.get_xlim() == right.ax.get_xlim() and left.ax.get_ylim() == right.ax.get_ylim()


def mpl_colour(c):
    from matplotlib.colors import to_rgba
    return np.array(to_rgba(c))


def test_side_by_side_refuses_bad_input():
    from kmeans_lessons.animation import animate_side_by_side
    X = unequal_blobs()
    bk = BalancedKMeans(4, size_min=120, size_max=120, random_state=0, keep_history=True).fit(X)
    with pytest.raises(ValueError, match='fits is empty'): animate_side_by_side(X, [])
    with pytest.raises(ValueError, match='2 fits need 2 titles'): animate_side_by_side(X, [bk, bk], titles=['a'])
    with pytest.raises(ValueError, match='one per frame'):
        animate_side_by_side(X, [bk.history_], labels=[bk.labels_history_[:-1]])
    with pytest.raises(ValueError, match=r'labels\[0\] must be'):
        animate_side_by_side(X, [bk.history_], labels=[[np.full(len(X), 7)] * len(bk.history_)])
    with pytest.raises(ValueError, match='kept no history'):
        animate_side_by_side(X, [BalancedKMeans(4, size_min=120, size_max=120, random_state=0).fit(X)])


# the optimal E-step for few clusters (Under the hood): Newton's steps on the dual, shortest paths between clusters
from kmeans_lessons.balanced import transport_assign, newton_potentials, EXACT_MAX_K, exact_max_k


def lsa_optimum(cost, lo, hi):
    """The cheapest labelling with lo <= sizes <= hi, by scipy's assignment on replicated columns: lo copies of each
    cluster that must be filled (a large bonus) and hi - lo copies that may be."""
    from scipy.optimize import linear_sum_assignment
    N, k = cost.shape
    cols = np.concatenate([np.repeat(np.arange(k), lo), np.repeat(np.arange(k), hi - lo)])
    bonus = np.concatenate([np.full(k * lo, -1e6 * (np.abs(cost).max() + 1)), np.zeros(k * (hi - lo))])
    r, c = linear_sum_assignment(cost[:, cols] + bonus)
    lab = np.empty(N, np.int64)
    lab[r] = cols[c]
    return cost[np.arange(N), lab].sum()


@pytest.mark.parametrize('seed', range(40))
def test_transport_assign_is_optimal_from_any_potentials(seed):
    "Random shapes and bounds, continuous and tied (integer) costs, any start: scipy's optimum, and the certificate."
    rng = np.random.default_rng(seed)
    k = int(rng.integers(1, 6))
    N = int(rng.integers(k, 30))
    lo = int(rng.integers(0, N // k + 1))
    hi = int(rng.integers(max(lo, -(-N // k)), N + 1))
    if seed % 3 == 0 and N % k == 0: lo = hi = N // k
    cost = rng.exponential(size=(N, k)) if seed % 2 else rng.integers(0, 3, size=(N, k)).astype(float)
    g = torch.from_numpy(rng.normal(size=k) * (seed % 4))
    lab, g_opt = transport_assign(torch.from_numpy(cost), g, lo, hi)
    counts = np.bincount(lab.numpy(), minlength=k)
    assert counts.min() >= lo and counts.max() <= hi, (counts, lo, hi)
    ref = lsa_optimum(cost, lo, hi)
    assert cost[np.arange(N), lab.numpy()].sum() <= ref + 1e-9 * (1 + abs(ref))
    adj = cost - g_opt.numpy()                                         # each point in its best cluster of cost - g
    assert (adj[np.arange(N), lab.numpy()] <= adj.min(1) + 1e-9).all()
    assert brute_force(cost, lo, hi) == pytest.approx(ref) if N <= 8 and k <= 3 else True


@pytest.mark.parametrize('N,k,lo,hi', [(120, 4, 30, 30), (97, 5, 10, 25), (150, 3, 0, 60), (80, 8, 10, 10)])
def test_fast_assign_exact_matches_scipy_on_points(N, k, lo, hi):
    "The estimator's E-step on points (Newton, then shortest paths): scipy's optimum and exact sizes, sizes held out."
    rng = np.random.default_rng(N + k)
    X, C = rng.normal(size=(N, 2)), rng.normal(size=(k, 2))
    for g in [None, torch.from_numpy(rng.normal(size=k))]:
        lab, _ = fast_balanced_assign(torch.from_numpy(X), torch.from_numpy(C), lo, hi, g=g)
        counts = np.bincount(lab.numpy(), minlength=k)
        assert counts.min() >= lo and counts.max() <= hi
        cost = d2(X, C)
        assert cost[np.arange(N), lab.numpy()].sum() == pytest.approx(lsa_optimum(cost, lo, hi), rel=1e-9)


def test_newton_brings_the_sizes_close():
    "From g = 0, eight Newton steps leave far fewer points in the wrong cluster than the plain argmin."
    X = torch.from_numpy(make_blobs(6000, 2, centers=12, cluster_std=[0.3 + 0.2 * j for j in range(12)],
                                    random_state=0)[0])
    cost = CostBlocks(X, X[:12].clone()).whole
    def missed(g):
        n = torch.bincount((cost - g).argmin(1), minlength=12)
        return int((n - 500).abs().sum())
    g0 = torch.zeros(12, dtype=X.dtype)
    g, labels, E = newton_potentials(cost, 500, 500, g0, 0.05 * float(cost.min(1).values.mean()), target=60)
    assert missed(g0) > 3000 and E == missed(g) <= missed(g0) / 5
    assert torch.equal(labels, (cost - g).argmin(1))


@pytest.mark.parametrize('N,k,lo,hi', [(3001, 7, 400, 450), (2400, 12, 200, 200), (1000, 16, 0, 70)])
def test_exact_e_step_sizes_and_inertia_on_held_out_shapes(N, k, lo, hi):
    "Whole fits through the optimal E-step: sizes hold exactly; no worse than the candidates' E-step on average."
    X, _ = make_blobs(N, 3, centers=k, cluster_std=1.5, random_state=k)
    assert k <= EXACT_MAX_K <= exact_max_k()
    km = BalancedKMeans(k, size_min=lo, size_max=hi, random_state=0).fit(X)
    counts = np.bincount(km.labels_, minlength=k)
    assert counts.min() >= lo and counts.max() <= hi and counts.sum() == N
    np.testing.assert_allclose(km.inertia_, ((X - km.cluster_centers_[km.labels_]) ** 2).sum(), rtol=1e-10)
    # the same first centres, then each E-step's labels: the optimum beats any other labelling with these sizes
    C = torch.from_numpy(km.cluster_centers_ - X.mean(0))
    Xc = torch.from_numpy(X - X.mean(0))
    opt, _ = fast_balanced_assign(Xc, C, lo, hi, exact=True)
    approx, _ = fast_balanced_assign(Xc, C, lo, hi, exact=False)
    cost = d2(Xc.numpy(), C.numpy())
    assert cost[np.arange(N), opt.numpy()].sum() <= cost[np.arange(N), approx.numpy()].sum() * (1 + 1e-12)


# ---------------------------------------------------------------- on the engine's one loop (BalancedStep in run_lloyd)
from kmeans_lessons.balanced import BalancedStep, balanced_lloyd, PATIENCE
from kmeans_lessons.engine import Rows, run_lloyd
from kmeans_lessons.distances import SqEuclidean


@pytest.mark.parametrize('budget', [None, 2**12])
def test_a_file_read_block_by_block_gives_the_in_memory_fit(tmp_path, budget):
    """The same fit from an `.npy` path and a memmap (read a block at a time) as from memory: the same start, the
    same labels, sizes exact, the true inertia; with a small budget the costs are never kept whole."""
    X, _ = make_blobs(3000, 3, centers=6, random_state=5)
    path = tmp_path / 'X.npy'
    np.save(path, X)
    kw = dict(size_min=450, size_max=550, random_state=0, memory_budget=budget)
    mem = BalancedKMeans(6, **kw).fit(X)
    for src in (str(path), np.load(path, mmap_mode='r')):
        km = BalancedKMeans(6, **kw).fit(src)
        np.testing.assert_array_equal(km.labels_, mem.labels_)
        np.testing.assert_allclose(km.cluster_centers_, mem.cluster_centers_, rtol=1e-12, atol=1e-12)
        c = np.bincount(km.labels_, minlength=6)
        assert c.min() >= 450 and c.max() <= 550
        np.testing.assert_allclose(km.inertia_, ((X - km.cluster_centers_[km.labels_]) ** 2).sum(), rtol=1e-10)
        assert km.n_iter_ == mem.n_iter_ and km.algorithm_ == 'balanced'


def test_cost_blocks_from_a_file_match_the_tensor():
    "CostBlocks over a streamed `Rows` (minus a shift): the same blocks, rows and indexed rows as over the tensor."
    import tempfile, os
    X = np.random.default_rng(3).normal(size=(1000, 4))
    C, w, sh = torch.from_numpy(X[:7]).clone(), torch.rand(1000, dtype=torch.float64), torch.ones(4, dtype=torch.float64)
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, 'X.npy'); np.save(p, X)
        rows = Rows(p, block_bytes=300 * 4 * 8)                    # 4 blocks of 300 rows and one of 100
        ref = CostBlocks(torch.from_numpy(X) - sh, C, w)
        got = CostBlocks(rows, C, w, memory_budget=2**10, shift=sh)   # never whole
        assert ref.whole is not None and got.whole is None and rows.streamed
        torch.testing.assert_close(torch.cat(list(got)), ref.whole, rtol=1e-12, atol=1e-12)
        idx = torch.tensor([0, 5, 299, 300, 999])
        torch.testing.assert_close(got[idx], ref.whole[idx], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(got[10:20], ref.whole[10:20], rtol=1e-12, atol=1e-12)



def test_fixed_cost_blocks_from_a_file_read_only_their_rows(monkeypatch):
    """CostBlocks with `rows` (across ranks: blocks by row number) over a file: the tensor's blocks bit for bit,
    each read as its own rows, never through an index of all N rows (that made a pass O(N^2 / rows))."""
    import tempfile, os
    X = np.random.default_rng(4).normal(size=(3000, 3))
    C = torch.from_numpy(X[:5]).clone()
    sizes, arange = [], torch.arange
    def spy(*a, **kw):
        out = arange(*a, **kw)
        sizes.append(len(out))
        return out
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, 'X.npy'); np.save(p, X)
        ref = CostBlocks(torch.from_numpy(X), C, rows=256)                # kept whole
        monkeypatch.setattr(torch, 'arange', spy)
        got = CostBlocks(Rows(p), C, memory_budget=2**10, rows=256)       # a block at a time
        blocks = list(got)
    assert ref.whole is not None and got.whole is None
    assert [len(b) for b in blocks] == [256] * 11 + [184]
    assert torch.equal(torch.cat(blocks), ref.whole)
    assert sizes and max(sizes) <= 256, max(sizes)


def test_engine_step_matches_the_lesson_loop_with_the_optimal_e_step():
    """run_lloyd with BalancedStep against a loop written out here: each E-step the optimum (a brute force of
    tiny problems is in test_fast_assign_is_optimal...), each M-step the means; the same iterates."""
    X, _ = make_blobs(600, 2, centers=4, cluster_std=2.0, random_state=2)
    Xt = torch.from_numpy(X)
    C0 = Xt[[0, 1, 2, 3]].clone()
    r = run_lloyd(Rows(Xt), C0, SqEuclidean(), strategy=BalancedStep, size_min=150, size_max=150, keep_history=True)
    C, g = C0, None
    for i, Ci in enumerate(r['history'][:-1]):
        torch.testing.assert_close(Ci, C, rtol=1e-12, atol=1e-12)
        lab, g = fast_balanced_assign(Xt, C, 150, 150, g=g)
        assert torch.equal(lab, r['labels_history'][i])
        C = torch.stack([Xt[lab == j].mean(0) for j in range(4)])
    assert (torch.bincount(r['labels'].long(), minlength=4) == 150).all() and r['converged']


def test_patience_ends_on_the_best_centres(monkeypatch):
    """Beyond exact_max_k() clusters the E-step is not exact and its labels wander: a run whose inertia has not
    dropped in PATIENCE passes stops, and ends on the best centres it saw, with their labels (frames stay aligned).
    (25 clusters: beyond 16, the limit without the compiled paths, taken here.)"""
    import kmeans_lessons.balanced as balanced
    monkeypatch.setattr(balanced, 'EXACT_MAX_K_COMPILED', 16)
    X, _ = make_blobs(2000, 2, centers=25, cluster_std=3.0, random_state=0)
    km = BalancedKMeans(25, size_min=80, size_max=80, random_state=0, keep_history=True).fit(X)
    ih = km.inertia_history_
    assert (np.bincount(km.labels_, minlength=25) == 80).all()
    np.testing.assert_allclose(km.inertia_, ((X - km.cluster_centers_[km.labels_]) ** 2).sum(), rtol=1e-10)
    best = int(np.argmin(ih[:-1]))                                      # the best pass, before the last ones
    assert best <= km.n_iter_ - PATIENCE and km.n_iter_ < km.max_iter   # stalled: stopped PATIENCE passes later
    assert math.isclose(km.inertia_, ih[best], rel_tol=1e-9)            # ... on its centres and labels
    np.testing.assert_array_equal(km.labels_history_[-1], km.labels_history_[best])
    np.testing.assert_allclose(km.history_[-1], km.history_[best], rtol=0, atol=0)
    assert len(km.history_) == len(km.labels_history_) == len(ih) == km.n_iter_ + 1


def test_lesson_loop_still_balances():
    "balanced_lloyd, the lesson's own loop: exact sizes, the true inertia."
    X = torch.from_numpy(make_blobs(400, 2, centers=4, random_state=0)[0])
    r = balanced_lloyd(X, X[:4].clone(), 100, 100)
    assert (torch.bincount(r['labels'], minlength=4) == 100).all()
    assert math.isclose(r['inertia'], float(((X - r['centres'][r['labels']]) ** 2).sum()), rel_tol=1e-12)


def random_transport_problems(n=300, seed=0):
    "Costs (N, k) (random, or small integers with many ties), bounds and potentials of every kind, some clusters empty."
    rng = np.random.default_rng(seed)
    for trial in range(n):
        N, k = int(rng.integers(5, 400)), int(rng.integers(1, 12))
        cost = torch.from_numpy(rng.random((N, k)) if trial % 3 else rng.integers(0, 4, (N, k)).astype(float))
        lo = int(rng.integers(0, N // k + 1))
        hi = int(rng.integers(max(lo, -(-N // k)), N + 1))
        yield cost, torch.from_numpy(rng.normal(size=k) * (trial % 2)), lo, hi


def test_compiled_shortest_paths_are_the_python_ones():
    "The kernel's paths (95_kernels) against the lesson's Python loop: the same labels and potentials, bit for bit."
    from kmeans_lessons.kernels import kernel_available
    if not kernel_available(): pytest.skip("no compiled kernel here")
    for cost, g, lo, hi in random_transport_problems():
        a = transport_assign(cost, g, lo, hi, kernel=False)
        b = transport_assign(cost, g, lo, hi, kernel=True)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]), (cost.shape, lo, hi)


@pytest.mark.parametrize('kernel', [False, True])
def test_transport_is_optimal_with_empty_clusters(kernel):
    """With size_min = 0 the optimum is an assignment of the points to size_max copies of each cluster (scipy). The
    clusters no point prefers at the start include the last ones: a bug once dropped the last row from the cheapest
    moves out of the last cluster with members (np.minimum.reduceat past empty clusters)."""
    from scipy.optimize import linear_sum_assignment
    checked = 0
    for cost, g, _, hi in random_transport_problems():
        if cost.shape[0] > 150: continue
        lab, pot = transport_assign(cost, g, 0, hi, kernel=kernel)
        Cx = np.repeat(cost.numpy(), hi, axis=1)
        r, c = linear_sum_assignment(Cx)
        np.testing.assert_allclose(float(cost.gather(1, lab[:, None]).sum()), Cx[r, c].sum(), rtol=1e-12, atol=1e-12)
        adj = cost - pot                                                  # the certificate: each its best cluster
        assert (adj.gather(1, lab[:, None])[:, 0] <= adj.min(1).values + 1e-9).all()
        checked += 1
    assert checked >= 20


def test_compiled_paths_make_the_e_step_exact_up_to_64_clusters():
    "With the compiled paths, 17 to 64 clusters get the optimal E-step by default: scipy's assignment's cost."
    from scipy.optimize import linear_sum_assignment
    from kmeans_lessons.kernels import kernel_available
    if not kernel_available(): pytest.skip("no compiled kernel here")
    assert exact_max_k() == 64
    for k, seed in [(17, 0), (40, 1), (64, 2)]:
        X, _ = make_blobs(k * 8, 2, centers=k // 2, cluster_std=2.0, random_state=seed)
        Xt = torch.from_numpy(X)
        C = Xt[torch.randperm(len(X), generator=torch.Generator().manual_seed(seed))[:k]].clone()
        lab, _ = fast_balanced_assign(Xt, C, 8, 8)                        # the default: exact here
        assert (torch.bincount(lab, minlength=k) == 8).all()
        cost = d2(X, C.numpy())
        r, c = linear_sum_assignment(np.repeat(cost, 8, axis=1))
        np.testing.assert_allclose(cost[np.arange(len(X)), lab.numpy()].sum(), np.repeat(cost, 8, axis=1)[r, c].sum(),
                                   rtol=1e-12)
        approx, _ = fast_balanced_assign(Xt, C, 8, 8, exact=False)       # the candidates' E-step: not always
        assert cost[np.arange(len(X)), approx.numpy()].sum() >= cost[np.arange(len(X)), lab.numpy()].sum() - 1e-9


# ---------------------------------------------------------------- the E-step across ranks, walked block by block
from kmeans_lessons.balanced import ranks_balanced_assign, RANK_BLOCK_ROWS
from kmeans_lessons.engine import Comm


def test_ranks_e_step_walks_the_costs_block_by_block(monkeypatch):
    """`ranks_balanced_assign` (here over one rank, `Comm()`) under a tiny memory_budget: the costs are never kept
    whole nor asked for all at once, each pass walks RANK_BLOCK_ROWS-row blocks over every row, and g and the labels
    are those of the costs kept whole, to the bit; where Newton's g meets the sizes, each label is its point's best
    cluster under cost - g (a walk that skipped rows or blocks would miss this)."""
    X, _ = make_blobs(5000, 3, centers=8, cluster_std=1.5, random_state=5)
    X = torch.from_numpy(X)
    N, k = len(X), 8
    C = X[:k].clone()
    seen = dict(pass_rows=[], block=0, ask=0)
    iter_ = CostBlocks.__iter__
    def walk(self):
        n = 0
        for c in iter_(self):
            n += len(c); seen['block'] = max(seen['block'], len(c))
            yield c
        seen['pass_rows'].append(n)
    getitem = CostBlocks.__getitem__
    def ask(self, rows):
        c = getitem(self, rows)
        if self.whole is None: seen['ask'] = max(seen['ask'], len(c))
        return c
    monkeypatch.setattr(CostBlocks, '__iter__', walk)
    monkeypatch.setattr(CostBlocks, '__getitem__', ask)
    for lo, hi in [(500, 800), (625, 625)]:
        seen.update(pass_rows=[], block=0, ask=0)
        tiny, g_tiny = ranks_balanced_assign(X, C, lo, hi, Comm(), memory_budget=3000)
        assert seen['pass_rows'] and set(seen['pass_rows']) == {N}              # every pass: every row
        assert seen['block'] == RANK_BLOCK_ROWS < N and seen['ask'] < N         # never all the rows at once
        whole, g_whole = ranks_balanced_assign(X, C, lo, hi, Comm())
        assert torch.equal(tiny, whole) and torch.equal(g_tiny, g_whole)
        sizes = torch.bincount(tiny, minlength=k)
        assert sizes.min() >= lo and sizes.max() <= hi
        cost = CostBlocks(X, C).whole
        assert torch.equal(tiny, (cost - g_tiny).argmin(1))                      # the sizes held under g
        # one process's Newton steps on the whole costs (comm=None): the same g, up to the sums' rounding
        eps = 0.1 * float(cost.min(1).values.mean())
        g1, labels1, missed = newton_potentials(cost, lo, hi, torch.zeros(k, dtype=X.dtype), eps / 2, 60)
        assert missed == 0 and torch.equal(labels1, tiny)
        assert torch.allclose(g1, g_tiny, rtol=0, atol=1e-6 * float(g1.abs().max()))
    warm, _ = ranks_balanced_assign(X, C + 0.1, lo, hi, Comm(), g=g_tiny, memory_budget=3000)
    assert torch.equal(warm, ranks_balanced_assign(X, C + 0.1, lo, hi, Comm(), g=g_tiny)[0])
    # the hard thresholds of clusters the plan does not reach: the margins, block by block, as from the whole costs
    from kmeans_lessons.balanced import _hard_thresholds
    J, aim = torch.tensor([0, 3, 6]), torch.full((k,), 625.0, dtype=X.dtype)
    blocks = CostBlocks(X, C, memory_budget=3000, rows=RANK_BLOCK_ROWS)
    assert torch.equal(_hard_thresholds(blocks, g_tiny, J, aim, Comm()), _hard_thresholds(cost, g_tiny, J, aim))
