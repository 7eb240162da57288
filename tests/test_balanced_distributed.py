"""BalancedKMeans over torch.distributed ranks (gloo, CPU): global sizes within the bounds, the same
centres on every rank, the true global inertia, close to one process's fit; a bad input on one rank
makes every rank raise. The ranks run tests/bal_dist_worker.py under a hard time limit (a hang fails)."""
import itertools, sys, time
from pathlib import Path
import numpy as np
import pytest
import torch

from kmeans_lessons.balanced import BalancedKMeans, size_quotas, trim_overfull, fill_underfull

sys.path.insert(0, str(Path(__file__).parent))
from bal_dist_worker import K, LO, HI, data                             # noqa: E402
import test_distributed                                                  # noqa: E402

WORKER = Path(__file__).parent / 'bal_dist_worker.py'


def launch(scenario, W, tmp_path, monkeypatch):
    monkeypatch.setattr(test_distributed, 'WORKER', WORKER)
    return test_distributed.launch(scenario, W, tmp_path)


@pytest.mark.parametrize('W', [2, 3])
def test_ranks_fit_within_the_global_sizes(W, tmp_path, monkeypatch):
    codes, logs, R = launch('fits', W, tmp_path, monkeypatch)
    assert codes == [0] * W, logs
    ratios = []
    for key in [k for k in R[0] if isinstance(k, tuple)]:
        kind, seed = key
        X, y = data(seed)
        Xs = X[torch.argsort(y, stable=True)] if kind == 'sorted' else X
        lab = torch.cat([torch.as_tensor(R[r][key]['labels']) for r in range(W)])
        sizes = torch.bincount(lab, minlength=K)
        assert sizes.min() >= LO and sizes.max() <= HI, (key, sizes)
        C = torch.as_tensor(R[0][key]['centres'])
        for r in range(1, W): assert torch.equal(torch.as_tensor(R[r][key]['centres']), C)
        true = float(((Xs - C[lab]) ** 2).sum())
        for r in range(W): assert R[r][key]['inertia'] == pytest.approx(true, rel=1e-9)
        one = BalancedKMeans(K, size_min=LO, size_max=HI, init=X[:K].clone()).fit(X)
        ratios.append(true / one.inertia_)
    assert np.mean(ratios) < 1.02, ratios
    X, _ = data(0)
    lab = torch.cat([torch.as_tensor(R[r]['equal']['labels']) for r in range(W)])
    assert (torch.bincount(lab, minlength=K) == len(X) // K).all()
    for got, one, sizes in R[0]['big']:                                  # 3 ranks: 3000 points, k = 10
        assert sizes.min() >= 280 and sizes.max() <= 310
    if W == 3: assert np.mean([got / one for got, one, _ in R[0]['big']]) < 1.02, R[0]['big']
    for r in range(W):                  # costs in many blocks (a tiny memory_budget) or whole: the same fit
        (lab, C, inertia), (lab_b, C_b, inertia_b) = R[r]['budget']
        assert torch.equal(lab_b, lab) and torch.equal(C_b, C) and inertia_b == inertia
    sizes = torch.bincount(torch.cat([R[r]['budget'][1][0] for r in range(W)]), minlength=8)
    assert sizes.min() >= 900 and sizes.max() <= 1100, sizes
    ratios = []
    for i, seed in enumerate((0, 1, 2)):             # float32, sample weights, k-means++, n_init=2
        X, _ = data(seed)
        X, w = X.float(), torch.rand(len(X), generator=torch.Generator().manual_seed(seed)) + 0.5
        fits = [R[r]['weighted'][i] for r in range(W)]
        lab = torch.cat([torch.as_tensor(f['labels']) for f in fits])
        sizes = torch.bincount(lab, minlength=K)
        assert sizes.min() >= LO and sizes.max() <= HI, (seed, sizes)
        C = torch.as_tensor(fits[0]['centres'])
        assert C.dtype == torch.float32 and fits[0]['n_init'] == 2
        for f in fits[1:]: assert torch.equal(torch.as_tensor(f['centres']), C)
        true = float((w.double() * ((X.double() - C.double()[lab]) ** 2).sum(1)).sum())
        for f in fits: assert f['inertia'] == pytest.approx(true, rel=1e-5)
        ratios.append(true / fits[0]['one'])
    assert np.mean(ratios) < 1.02, ratios
    for r in range(W):                                                   # a memmap: the tensor's fit
        m, t = R[r]['memmap'], R[r]['tensor']
        assert np.array_equal(np.asarray(m['labels']), np.asarray(t['labels']))
        assert np.allclose(np.asarray(m['centres']), np.asarray(t['centres']), rtol=0, atol=1e-9)
        assert m['inertia'] == pytest.approx(t['inertia'], rel=1e-9)


@pytest.mark.parametrize('W', [2, 3])
def test_a_bad_input_on_one_rank_raises_on_every_rank(W, tmp_path, monkeypatch):
    codes, logs, R = launch('errors', W, tmp_path, monkeypatch)
    assert codes == [0] * W, logs
    expect = dict(nan='NaN', infeasible_min='infeasible', infeasible_max='infeasible',
                  disagree='disagree', bad_param='size_min', raises='boom on rank')
    for r in range(W):
        for name, word in expect.items():
            assert R[r][name] is not None, (r, name)
            assert word in R[r][name][1] and R[r][name][2] < 30, (r, name, R[r][name])
        for name in ('infeasible_min', 'infeasible_max'):                # N counts every rank's points
            assert R[r][name][1].endswith(f"but X has 300 (all {W} ranks together)"), R[r][name]
    for r in range(1, W):
        assert torch.equal(torch.as_tensor(R[r]['after']['centres']),
                           torch.as_tensor(R[0]['after']['centres']))


@pytest.mark.parametrize('seed', range(40))
def test_size_quotas(seed):
    rng = np.random.default_rng(seed)
    R, k = rng.integers(1, 4), rng.integers(2, 6)
    c = torch.from_numpy(rng.integers(0, 12, size=(R, k)))
    N = int(c.sum())
    lo = int(rng.integers(0, N // k + 1)); hi = int(rng.integers(-(-N // k), N + 1))
    q = size_quotas(c, lo, hi)
    assert (q >= 0).all() and torch.equal(q.sum(1), c.sum(1))
    assert q.sum(0).min() >= lo and q.sum(0).max() <= hi
    S = c.sum(0)
    if S.min() >= lo and S.max() <= hi: assert torch.equal(q, c)


def test_size_quotas_infeasible():
    with pytest.raises(ValueError, match='no sizes'):
        size_quotas(torch.tensor([[5, 5]]), 6, 8)


@pytest.mark.parametrize('seed', range(10))
def test_rounding_to_per_cluster_sizes(seed):
    rng = np.random.default_rng(seed)
    N, k = 60, 5
    cost = torch.from_numpy(rng.exponential(size=(N, k)))
    q = torch.from_numpy(rng.multinomial(N, np.ones(k) / k))
    g = torch.from_numpy(rng.normal(size=k))
    lab = (cost - g).argmin(1)
    lab = fill_underfull(cost, trim_overfull(cost, g, lab, q), q)
    assert torch.equal(torch.bincount(lab, minlength=k), q)


def _brute(cost, sizes):
    "The least cost of labels with exactly `sizes` (k,) points per cluster, by enumeration."
    N, k = cost.shape
    best = float('inf')
    for lab in itertools.product(range(k), repeat=N):
        if np.bincount(lab, minlength=k).tolist() == sizes.tolist():
            best = min(best, float(cost[torch.arange(N), torch.tensor(lab)].sum()))
    return best


def test_per_cluster_rounding_on_tiny_problems_against_brute_force():
    rng = np.random.default_rng(0)
    gaps = []
    for _ in range(60):
        N, k = int(rng.integers(1, 8)), int(rng.integers(1, 4))
        cost = torch.from_numpy(rng.random((N, k)))
        q = torch.from_numpy(rng.multinomial(N, np.ones(k) / k))
        g = torch.zeros(k, dtype=torch.float64)
        lab = fill_underfull(cost, trim_overfull(cost, g, cost.argmin(1), q), q)
        assert torch.equal(torch.bincount(lab, minlength=k), q)             # exact sizes
        got, best = float(cost[torch.arange(N), lab].sum()), _brute(cost, q)
        assert got >= best - 1e-12
        gaps.append((got - best) / N)
        lo, hi = (q - 1).clamp_min(0), q + 1                                # bounds, not sizes
        lab = fill_underfull(cost, trim_overfull(cost, g, cost.argmin(1), hi), lo)
        n = torch.bincount(lab, minlength=k)
        assert (n >= lo).all() and (n <= hi).all()
    assert np.mean(gaps) < 0.05, gaps                                       # near the optimum


def test_an_int_bound_and_a_vector_of_it_round_alike():
    rng = np.random.default_rng(1)
    cost, g = torch.from_numpy(rng.random((50, 4))), torch.from_numpy(rng.normal(size=4) / 5)
    for lo, hi in [(8, 15), (12, 13), (0, 50)]:
        a = fill_underfull(cost, trim_overfull(cost, g, (cost - g).argmin(1), hi), lo)
        b = fill_underfull(cost, trim_overfull(cost, g, (cost - g).argmin(1), torch.full((4,), hi)),
                           torch.full((4,), lo))
        assert torch.equal(a, b)
