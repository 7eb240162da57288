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


_PEAK_CODE = """
import os, resource, sys, zlib, numpy as np
from kmeans_lessons import KMeans
N, D, dtype, init, n_init = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
X, rng = np.empty((N, D), dtype), np.random.default_rng(0)
for s in range(0, N, 65536):                       # no temporary as big as the data
    X[s:s + 65536] = rng.standard_normal((len(X[s:s + 65536]), D)) + 5     # off the origin: the fit centres
crc = zlib.crc32(X)
rss = int(open('/proc/self/statm').read().split()[1]) * os.sysconf('SC_PAGE_SIZE')
km = KMeans(20, init=init, n_init=n_init, max_iter=3, random_state=0).fit(X)
peak = int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1]) * 1024   # not ru_maxrss: a child inherits its parent's
assert len(km.labels_) == N and np.isfinite(km.cluster_centers_).all()
print(rss, peak, X.nbytes, int(zlib.crc32(X) == crc))
"""

@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='reads /proc/self/statm')
@pytest.mark.parametrize('D,dtype,init,n_init', [(4, 'float32', 'k-means++', 1), (4, 'float32', 'random', 2),
                                                 (64, 'float64', 'k-means++', 1)])
def test_in_memory_fit_needs_at_most_one_more_copy_of_the_data(D, dtype, init, n_init):
    """The peak RSS of an in-memory fit of 256 MB of NumPy data is at most twice the data, plus a fixed allowance
    (the interpreter, torch, the allocator's cached blocks): no centred or converted copy is made, labels take the
    smallest integer type, and the caller's array comes back unchanged (issue 18). D=4 float32 is the hardest
    case: the per-row vectors (labels, distances, k-means++'s) weigh most against 16 bytes of data per row."""
    nbytes = 256 * 10**6
    N = nbytes // (D * np.dtype(dtype).itemsize)
    out = subprocess.run([sys.executable, '-c', _PEAK_CODE, str(N), str(D), dtype, init, str(n_init)],
                         capture_output=True, text=True, check=True).stdout.split()
    rss, peak, size, unchanged = (int(v) for v in out)
    assert unchanged == 1, "the fit modified the caller's data"
    allowance = 96 * 2**20
    assert peak - rss <= size + allowance, f"the fit took {(peak - rss) / 1e6:.0f} MB beyond {size / 1e6:.0f} MB of data"


@pytest.mark.parametrize('n', [1, 5, 2**16, 2**16 + 1, 5 * 2**16 + 17])
def test_kmeans_plusplus_draws_search_the_running_sums_a_block_at_a_time(n):
    "k-means++'s draws hold a block of running sums at a time, and find exactly what one float64 cumsum finds."
    from kmeans_lessons.engine import _Cumulated
    g = torch.Generator().manual_seed(n)
    m = torch.rand(n, generator=g)
    m[torch.rand(n, generator=g) < 0.3] = 0                           # zero masses: ties in the running sums
    full = torch.cumsum(m, 0, dtype=torch.float64)                     # (n,) the reference, all at once
    c = _Cumulated(m)
    assert c.total().item() == full[-1].item()
    r = torch.cat([torch.rand(200, generator=g, dtype=torch.float64) * full[-1],
                   full[torch.randint(n, (50,), generator=g)],        # exactly on a running sum
                   full[-1:] * 1.5, torch.zeros(1, dtype=torch.float64)])
    assert torch.equal(c.search(r), torch.searchsorted(full, r).clamp_max_(n - 1))
