"""Memory stays bounded: the (N, K) distance matrix is never built."""
import subprocess, sys
import numpy as np
import pytest
import torch
from kmeans_lessons import KMeans
from kmeans_lessons.assignment import assign, chunk_rows


def _peak_rss_mb(code):
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout.split()
    return [float(v) for v in out]


def test_two_million_points_2000_centres_two_iterations_under_2gb():
    # N=2e6, D=2, K=2000: the distance matrix alone would be 2e6 * 2000 * 4 B = 16 GB.
    code = """
import torch
from kmeans_lessons import KMeans
from kmeans_lessons.bench import peak_memory_mb
X = torch.rand(2_000_000, 2, generator=torch.Generator().manual_seed(0))
km = KMeans(2000, init='forgy', n_init=1, max_iter=2, tol=0, random_state=0).fit(X)
assert km.n_iter_ == 2 and torch.isfinite(km.cluster_centers_).all()
print(peak_memory_mb(), km.inertia_)
"""
    peak, inertia = _peak_rss_mb(code)
    assert peak < 2048, f"peak RSS {peak:.0f} MB"
    assert inertia > 0


@pytest.mark.parametrize('algorithm,limit', [('lloyd', 64), ('hamerly', 160)])
def test_peak_memory_flat_in_n(algorithm, limit):
    code = """
import sys, torch
from kmeans_lessons import KMeans
from kmeans_lessons.bench import peak_memory_mb
N = int(sys.argv[1])
X = torch.rand(N, 4, generator=torch.Generator().manual_seed(0))
base = peak_memory_mb()
KMeans(500, init='forgy', n_init=1, max_iter=2, tol=0, random_state=0, keep_history=False,
       algorithm=sys.argv[2]).fit(X)
print(peak_memory_mb() - base)
"""
    extra = {}
    for n in (100_000, 1_000_000):
        out = subprocess.run([sys.executable, '-c', code, str(n), algorithm], capture_output=True, text=True,
                             check=True)
        extra[n] = float(out.stdout)
    # Lloyd: beyond the data itself (16 B per point) and O(N) label/distance vectors (16 B per point), nothing
    # grows with N. Hamerly adds its O(N) bounds and bookkeeping (lesson 05b), a few more vectors.
    per_point_bytes = (extra[1_000_000] - extra[100_000]) * 2**20 / 900_000
    assert per_point_bytes < limit, extra


@pytest.mark.parametrize('budget', [4096, 100_000, 10**6, None])
def test_chunked_assign_equals_full_argmin(budget):
    g = torch.Generator().manual_seed(0)
    X = torch.randn(5000, 7, generator=g, dtype=torch.float64)
    C = torch.randn(300, 7, generator=g, dtype=torch.float64)
    brute = ((X[:, None] - C[None]) ** 2).sum(-1)                   # (N, K) reference, no expansion
    labels, d = assign(X, C, memory_budget=budget)
    assert torch.equal(labels, brute.argmin(1))
    torch.testing.assert_close(d, brute.min(1).values)


def test_chunk_rows_respects_budget():
    for k in (1, 10, 1000, 100_000):
        for budget in (2**12, 2**20, 2**28):
            rows = chunk_rows(10**7, k, 4, budget, 'cuda')
            assert rows >= 1 and (rows == 1 or 2 * rows * k * 4 <= budget)
    with pytest.raises(ValueError, match='memory_budget'):
        chunk_rows(10, 10, 4, 0)


def test_small_budget_same_result_as_default():
    X = torch.from_numpy(np.random.default_rng(0).standard_normal((3000, 5)))
    a = KMeans(20, random_state=1).fit(X)
    b = KMeans(20, random_state=1, memory_budget=8192).fit(X)
    assert torch.equal(a.labels_, b.labels_) and torch.equal(a.cluster_centers_, b.cluster_centers_)
