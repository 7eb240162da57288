"""BalancedKMeans (lesson 12) against k-means-constrained, side by side in one process, on one thread.

Part 1: equal sizes (size_min = size_max = N/k) on 2-D Gaussian blobs, the same k-means++ start for both
(n_init=1), the two fits interleaved seed by seed; prints each fit and the means of the time ratio and of the
inertia ratio (ours / theirs).
Part 2 (skipped with --quick): the scale. k-means-constrained in a subprocess with a time limit (LIMIT_S) at
growing N and k, to find where it stops being usable; ours at the same shapes, and at N = 1e6, k = 1000 for a
few iterations (the (N, k) costs, 8 GB in float64, never exist: they are computed block by block).
The machine is shared: times move by tens of percent from run to run; ratios from one process are steadier."""
import sys, time, subprocess, resource
import numpy as np
import torch
from sklearn.datasets import make_blobs
from kmeans_lessons.balanced import BalancedKMeans
from kmeans_lessons import kmeans_plusplus

torch.set_num_threads(1)
SHAPES = [(5000, 10), (5000, 50), (20000, 10), (20000, 50)]
SEEDS = 3
LIMIT_S = 60


def data(N, k, seed):
    X, _ = make_blobs(N, 2, centers=k, cluster_std=2.0, random_state=seed)
    init, _ = kmeans_plusplus(X, k, random_state=seed)
    return X, init


def fit_ours(X, init, k, **kw):
    size = len(X) // k
    t = time.perf_counter()
    km = BalancedKMeans(k, size_min=size, size_max=size, init=init, n_init=1, **kw).fit(X)
    t = time.perf_counter() - t
    assert (np.bincount(km.labels_, minlength=k) == size).all()
    return t, km


def fit_theirs(X, init, k):
    from k_means_constrained import KMeansConstrained
    size = len(X) // k
    t = time.perf_counter()
    km = KMeansConstrained(k, size_min=size, size_max=size, init=init, n_init=1, n_jobs=1).fit(X)
    t = time.perf_counter() - t
    assert (np.bincount(km.labels_, minlength=k) == size).all()
    return t, km


def side_by_side():
    print("| N | k | seed | ours s | ours iters | k-means-constrained s | its iters | time ratio | inertia ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    summary = []
    for N, k in SHAPES:
        tr, ir = [], []
        for seed in range(SEEDS):
            X, init = data(N, k, seed)
            t1, a = fit_ours(X, init, k)
            t2, b = fit_theirs(X, init, k)
            tr.append(t1 / t2); ir.append(a.inertia_ / b.inertia_)
            print(f"| {N} | {k} | {seed} | {t1:.3f} | {a.n_iter_} | {t2:.2f} | {b.n_iter_} | {t1 / t2:.3f} "
                  f"| {a.inertia_ / b.inertia_:.4f} |", flush=True)
        summary.append((N, k, np.mean(tr), np.median(tr), np.mean(ir)))
    print("\n| N | k | time ratio, mean | time ratio, median | inertia ratio, mean |")
    print("|---|---|---|---|---|")
    for N, k, m, md, i in summary: print(f"| {N} | {k} | {m:.3f} | {md:.3f} | {i:.4f} |")


def child(which, N, k, max_iter):
    "One fit in this process; prints seconds, iterations and peak memory."
    X, init = data(N, k, 0)
    if which == 'ours': t, km = fit_ours(X, init, k, max_iter=max_iter)
    else: t, km = fit_theirs(X, init, k)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"{t:.1f} s, {km.n_iter_} iterations, peak memory {rss:.1f} GiB")


def scale():
    print("\n| N | k | k-means-constrained (limit %d s) | ours |" % LIMIT_S)
    print("|---|---|---|---|")
    for N, k, max_iter, kmc in [(50_000, 100, 300, True), (100_000, 100, 300, True),
                                (1_000_000, 1000, 3, False)]:
        row = []
        for which in ['theirs', 'ours'] if kmc else ['ours']:
            cmd = [sys.executable, __file__, '--child', which, str(N), str(k), str(max_iter)]
            try:
                r = subprocess.run(cmd, capture_output=True, text=True, timeout=LIMIT_S if which == 'theirs' else 600)
                row.append(r.stdout.strip() or r.stderr.strip().splitlines()[-1])
            except subprocess.TimeoutExpired: row.append(f"not done in {LIMIT_S} s")
        if not kmc: row.insert(0, 'not tried')
        note = f" (max_iter={max_iter})" if max_iter < 300 else ""
        print(f"| {N} | {k} | {row[0]} | {row[1]}{note} |", flush=True)


if __name__ == '__main__':
    if '--child' in sys.argv:
        i = sys.argv.index('--child')
        child(sys.argv[i + 1], *map(int, sys.argv[i + 2:i + 5]))
    else:
        side_by_side()
        if '--quick' not in sys.argv: scale()
