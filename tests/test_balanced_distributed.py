"""BalancedKMeans over torch.distributed ranks (gloo, CPU): global sizes within the bounds, the
same centres on every rank, the true global inertia, close to one process's fit; bad input on
one rank raises on every rank. Every multi-process run is a set of subprocesses with a hard time
limit: a hang fails the test, it never blocks it. The ranks run tests/bal_dist_worker.py."""
import itertools, os, subprocess, sys, time
from pathlib import Path
import numpy as np
import pytest
import torch

from kmeans_lessons.balanced import (BalancedKMeans, size_quotas, trim_overfull, fill_underfull,
                                     round_to_sizes)

sys.path.insert(0, str(Path(__file__).parent))
from bal_dist_worker import K, LO, HI, SEEDS, data, shard                # noqa: E402

WORKER = Path(__file__).parent / 'bal_dist_worker.py'
LIMIT = 150   # seconds for a whole multi-process run: ample on a loaded 2-core machine; a hang fails


def launch(scenario, W, tmp_path):
    "Run W ranks of `scenario`; kill them all and fail if they take longer than LIMIT."
    env = dict(os.environ, WORLD_SIZE=str(W), OMP_NUM_THREADS='1')
    logs = [open(tmp_path / f'log{r}', 'w+') for r in range(W)]
    procs = [subprocess.Popen([sys.executable, str(WORKER), scenario, str(tmp_path / 'rdv'),
                               str(tmp_path)], env=dict(env, RANK=str(r)), stdout=logs[r],
                              stderr=subprocess.STDOUT) for r in range(W)]
    deadline = time.monotonic() + LIMIT
    try:
        for p in procs: p.wait(timeout=max(1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        for p in procs: p.kill()
        pytest.fail(f"{scenario} with {W} processes hung (> {LIMIT} s)")
    texts = []
    for f in logs:
        f.seek(0); texts.append(f.read()); f.close()
    assert all(p.returncode == 0 for p in procs), texts
    return [torch.load(tmp_path / f'rank{r}.pt', weights_only=False) for r in range(W)]


@pytest.mark.parametrize('W', [2, 3])
def test_ranks_meet_the_sizes_and_match_one_process(W, tmp_path):
    res = launch('fits', W, tmp_path)
    ratios = {'random': [], 'sorted': []}
    for kind, seed in itertools.product(ratios, SEEDS):
        X, y = data(seed)
        Xs = torch.cat([shard(X, y, W, r, kind) for r in range(W)])       # the ranks' rows, in order
        got = [res[r][(kind, seed)] for r in range(W)]
        assert [len(g['labels']) for g in got] == [len(shard(X, y, W, r, kind)) for r in range(W)]
        C = torch.as_tensor(got[0]['centres'])
        for g in got[1:]:                                                 # the same on every rank
            assert torch.equal(torch.as_tensor(g['centres']), C)
            assert g['inertia'] == got[0]['inertia'] and g['n_iter'] == got[0]['n_iter']
        labels = torch.cat([torch.as_tensor(g['labels']) for g in got])
        sizes = torch.bincount(labels, minlength=K)
        assert int(sizes.min()) >= LO and int(sizes.max()) <= HI, sizes
        true = float(((Xs - C[labels]) ** 2).sum())
        assert got[0]['inertia'] == pytest.approx(true, rel=1e-9)
        one = BalancedKMeans(K, size_min=LO, size_max=HI, init=X[:K].clone()).fit(Xs)
        ratios[kind].append(got[0]['inertia'] / one.inertia_)
    for kind, r in ratios.items():
        assert np.mean(r) < 1.02, (kind, r)
    eq = torch.cat([torch.as_tensor(res[r]['equal']['labels']) for r in range(W)])
    assert torch.bincount(eq, minlength=K).tolist() == [len(eq) // K] * K   # equal sizes exactly


@pytest.mark.parametrize('W', [2, 3])
def test_bad_input_on_one_rank_raises_on_every_rank(W, tmp_path):
    res = launch('errors', W, tmp_path)
    expect = dict(nan=(ValueError, 'NaN|nan|finite'), infeasible_min=(ValueError, 'size_min'),
                  infeasible_max=(ValueError, 'size_max'), disagree=(ValueError, 'size_min'),
                  bad_param=(ValueError, 'size_min'))
    for name, (kind, pattern) in expect.items():
        for r in range(W):
            e = res[r][name]
            assert e is not None, (name, r)
            assert e[0] in (kind.__name__, 'InvalidParameterError'), (name, r, e)
            import re
            assert re.search(pattern, e[1]), (name, r, e)
            assert e[2] < 60, (name, r, e)                               # no waiting on a timeout
    for r in range(1, W):                                                # the group still works
        assert torch.equal(torch.as_tensor(res[r]['after']['centres']),
                           torch.as_tensor(res[0]['after']['centres']))


def feasible(q, c, lo, hi):
    return (bool((q >= 0).all()) and torch.equal(q.sum(1), c.sum(1))
            and bool((q.sum(0) >= lo).all()) and bool((q.sum(0) <= hi).all()))


def test_size_quotas():
    g = torch.Generator().manual_seed(0)
    for _ in range(300):
        R, k = int(torch.randint(1, 5, (1,), generator=g)), int(torch.randint(1, 6, (1,), generator=g))
        c = torch.randint(0, 8, (R, k), generator=g)
        c[0, 0] += 1                                                     # at least one point
        N = int(c.sum())
        lo = int(torch.randint(0, N // k + 1, (1,), generator=g))
        hi = max(lo, -(-N // k)) + int(torch.randint(0, 4, (1,), generator=g))
        q = size_quotas(c, lo, hi)
        assert feasible(q, c, lo, hi), (c, lo, hi, q)
        S = c.sum(0)
        # the fewest units move: each cluster's total as near its count as the bounds allow
        need = int((S - hi).clamp_min(0).sum() + (lo - S).clamp_min(0).sum())
        assert int((q.sum(0) - S).abs().sum()) <= max(need, abs(int(S.clamp(lo, hi).sum()) - N) + need)
        if bool(((S >= lo) & (S <= hi)).all()): assert torch.equal(q, c)     # feasible: unchanged
        assert torch.equal(size_quotas(c.double(), lo, hi), q)               # float64 counts (gather)
    with pytest.raises(ValueError, match='no sizes'): size_quotas(torch.tensor([[5, 5]]), 0, 4)


def brute(cost, sizes):
    "The least cost of labels with exactly `sizes` (k,) points per cluster, by enumeration."
    N, k = cost.shape
    best = float('inf')
    for lab in itertools.product(range(k), repeat=N):
        if torch.bincount(torch.tensor(lab), minlength=k).tolist() == sizes.tolist():
            best = min(best, float(cost[torch.arange(N), torch.tensor(lab)].sum()))
    return best


def test_vector_bounds_rounding():
    g = torch.Generator().manual_seed(1)
    gaps = []
    for _ in range(60):
        N, k = int(torch.randint(1, 8, (1,), generator=g)), int(torch.randint(1, 4, (1,), generator=g))
        cost = torch.rand(N, k, generator=g, dtype=torch.float64)
        sizes = torch.bincount(torch.randint(0, k, (N,), generator=g), minlength=k)
        labels = cost.argmin(1)
        pot = torch.zeros(k, dtype=torch.float64)
        labels = fill_underfull(cost, trim_overfull(cost, pot, labels, sizes), sizes)
        assert torch.equal(torch.bincount(labels, minlength=k), sizes)       # exact sizes
        got = float(cost[torch.arange(N), labels].sum())
        best = brute(cost, sizes)
        assert got >= best - 1e-12
        gaps.append(got - best)
        lo = (sizes - 1).clamp_min(0)                                    # bounds, not exact sizes
        lab2 = fill_underfull(cost, trim_overfull(cost, pot, cost.argmin(1), sizes + 1), lo)
        n2 = torch.bincount(lab2, minlength=k)
        assert bool((n2 >= lo).all() and (n2 <= sizes + 1).all())
    assert np.mean(gaps) < 0.05 * N, gaps                                 # near the optimum
    # an int and a (k,) tensor of that int give the same labels
    cost = torch.rand(40, 4, generator=g, dtype=torch.float64)
    pot = torch.zeros(4, dtype=torch.float64)
    assert torch.equal(round_to_sizes(cost, pot, 8, 12),
                       fill_underfull(cost, trim_overfull(cost, pot, cost.argmin(1),
                                                          torch.full((4,), 12)), torch.full((4,), 8)))
