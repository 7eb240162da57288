"""BalancedKMeans (lesson 12) against k-means-constrained, side by side in one process, on one thread.

Equal sizes (size_min = size_max = N/k) on 2-D Gaussian blobs, the same k-means++ start for both (n_init=1),
over a few seeds; prints seconds, iterations and the inertia ratio (ours / theirs). k-means-constrained is run
only up to N*k = MAX_KMC_NK (past it one fit takes minutes); ours then runs alone, to show where it still runs.
The machine is shared: times move by tens of percent from run to run."""
import sys, time
import numpy as np
import torch
from sklearn.datasets import make_blobs
from kmeans_lessons.balanced import BalancedKMeans
from kmeans_lessons import kmeans_plusplus

torch.set_num_threads(1)
# (N, k, seeds): k-means-constrained runs where N*k <= MAX_KMC_NK, ours alone beyond
SHAPES = [(5000, 10, 2), (5000, 50, 1), (20000, 10, 2), (20000, 20, 1), (20000, 50, 1), (100000, 10, 1)]
MAX_KMC_NK = 10**6 if '--full' in sys.argv else 400_000


def run(N, k, seed):
    X, _ = make_blobs(N, 2, centers=k, cluster_std=2.0, random_state=seed)
    init, _ = kmeans_plusplus(X, k, random_state=seed)
    size = N // k
    t = time.perf_counter()
    ours = BalancedKMeans(k, size_min=size, size_max=size, init=init, n_init=1).fit(X)
    t_ours = time.perf_counter() - t
    assert (np.bincount(ours.labels_, minlength=k) == size).all()
    if N * k > MAX_KMC_NK: return t_ours, ours.n_iter_, None, None, None
    from k_means_constrained import KMeansConstrained
    t = time.perf_counter()
    kc = KMeansConstrained(k, size_min=size, size_max=size, init=init, n_init=1, n_jobs=1).fit(X)
    t_kc = time.perf_counter() - t
    return t_ours, ours.n_iter_, t_kc, kc.n_iter_, ours.inertia_ / kc.inertia_


print("| N | k | ours s | ours iters | k-means-constrained s | its iters | time ratio | inertia ratio |")
print("|---|---|---|---|---|---|---|---|")
for N, k, n_seeds in SHAPES:
    for seed in range(n_seeds):
        t1, i1, t2, i2, r = run(N, k, seed)
        if t2 is None:
            print(f"| {N} | {k} | {t1:.2f} | {i1} | not run (N*k > {MAX_KMC_NK}) | | | |", flush=True)
        else:
            print(f"| {N} | {k} | {t1:.2f} | {i1} | {t2:.2f} | {i2} | {t1 / t2:.3f} | {r:.4f} |", flush=True)
