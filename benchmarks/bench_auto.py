"""Does `algorithm='auto'` pick well? Side by side in one process: the whole fit's time for each algorithm
(lloyd, hamerly, yinyang, elkan) and for 'auto', from the same initial centres, tol=0, a fixed number of
iterations, on structureless (normal) and blob data. Prints auto's time over the best algorithm's (issue 18's
goal: <= 1.1 on every row). Runs are interleaved; each number is the median of `--repeats` runs, and for lloyd
and auto (whose ratio is usually the one that matters) of up to EXTRA_RUNS runs.

    python benchmarks/bench_auto.py             # the table (about 10 minutes on 2 cores)
    python benchmarks/bench_auto.py --quick     # fewer shapes, one repeat
"""
import argparse, os, time, warnings
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
import numpy as np
import torch
from kmeans_lessons import KMeans

warnings.filterwarnings('ignore')
ALGOS = ('lloyd', 'hamerly', 'yinyang', 'elkan', 'auto')
EXTRA_RUNS, EXTRA_SECONDS = 15, 4.0   # lloyd and auto, interleaved, up to this many runs while they take less time:
                                     # a fit of 10-70 ms moves by 20-40% from run to run on this VM

def make(kind, N, D, k, seed=0):
    rng = np.random.default_rng(seed)
    if kind == 'normal': X = rng.standard_normal((N, D), dtype=np.float32)
    else:
        centres = rng.standard_normal((k, D)).astype(np.float32) * 4
        X = centres[rng.integers(0, k, N)] + rng.standard_normal((N, D), dtype=np.float32)
    return torch.from_numpy(X), torch.from_numpy(X[rng.choice(N, k, replace=False)].copy())

def fit(X, C0, algorithm, m):
    t = time.perf_counter()
    km = KMeans(len(C0), init=C0, max_iter=m, tol=0, algorithm=algorithm).fit(X)
    return time.perf_counter() - t, km

def row(kind, N, D, k, m, repeats, budget):
    X, C0 = make(kind, N, D, k)
    algos = [a for a in ALGOS if not (a == 'elkan' and N * k * 4 > budget)]   # Elkan's (N, k) bounds
    times = {a: [] for a in algos}
    fit(X[:2000], C0, 'lloyd', 1)                                             # warm-up (kernel load)
    chose, iters = None, None
    for _ in range(repeats):
        for a in algos:
            t, km = fit(X, C0, a, m)
            times[a].append(t)
            if a == 'auto': chose = km.algorithm_
            if a == 'lloyd': iters = km.n_iter_
    close = [a for a in ('lloyd', 'auto') if a in times]     # the pair the ratio usually compares: more runs
    while min(len(times[a]) for a in close) < EXTRA_RUNS and sum(sum(times[a]) for a in close) < EXTRA_SECONDS:
        for a in close: times[a].append(fit(X, C0, a, m)[0])
    med = {a: float(np.median(v)) for a, v in times.items()}
    best = min((a for a in med if a != 'auto'), key=med.get)
    return med, best, chose, iters

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--quick', action='store_true')
    ap.add_argument('--repeats', type=int, default=3)
    args = ap.parse_args()
    N = 50_000
    shapes = [(2, 100), (16, 100), (16, 1000), (64, 1000)] if not args.quick else [(16, 100), (64, 1000)]
    iters = (5, 50)
    repeats = 1 if args.quick else args.repeats
    budget = 512 * 2**20
    print(f"N = {N:,}, float32, torch {torch.__version__}, {torch.get_num_threads()} threads; seconds per whole fit "
          f"(median of {repeats}; lloyd and auto: of up to {EXTRA_RUNS} interleaved runs, while they take under "
          f"{EXTRA_SECONDS:.0f} s); elkan only where its (N, k) bounds fit in {budget >> 20} MiB\n")
    cols = ' | '.join(ALGOS)
    print(f"| data | D | k | max_iter | iterations run | {cols} | best | auto ran | auto / best |")
    print('|' + '---|' * (9 + len(ALGOS) - 3))
    worst = 0.0
    for kind in ('normal', 'blobs'):
        for D, k in shapes:
            for m in iters:
                med, best, chose, n = row(kind, N, D, k, m, repeats, budget)
                r = med['auto'] / med[best]
                worst = max(worst, r)
                cells = ' | '.join(f"{med[a]:.3f}" if a in med else '-' for a in ALGOS)
                print(f"| {kind} | {D} | {k} | {m} | {n} | {cells} | {best} | {chose} | {r:.2f} |", flush=True)
    print(f"\nworst auto / best: {worst:.2f}")

if __name__ == '__main__':
    main()
