"""Bound-based k-means (lesson 05b) side by side with scikit-learn (lloyd and elkan) and faiss, in one process, on the
same data and the same initial centres.

    python benchmarks/bench_bounds.py            # everything (several minutes on 2 cores)
    python benchmarks/bench_bounds.py --quick    # small N, for development

Tables:
1. Total time of 20 iterations from the same init (tol=0), every peer at the same count (a peer that converges
   earlier stops earlier; the iteration counts are printed). Ours: `lloyd`, `hamerly`, `yinyang`, and `auto`, what
   `choose_algorithm` picks. "skipped" is Hamerly's mean share of points whose distances were skipped (iterations 2..).
2. Time to convergence (labels unchanged, at most 100 iterations) for ours (`auto`) and scikit-learn's lloyd and
   elkan: the same stopping rule, so the iteration counts should agree up to rounding.
3. The crossover grid behind `choose_algorithm`: 20 iterations at N=20,000 over D = 2..256 and k = 10..2000.
4. The E-step alone at N=1e5 in blocks of about 4 MB: `SqEuclidean.nearest` (GEMM + index-returning `min(1)`) against
   `nearest2` given last iteration's labels (value-only `amin` over the other centres, `min(1)` only where the label
   may change).
5. Where Hamerly's time goes, part by part, and its mean share of points skipped: why a shape misses.
6. (`--elkan`, alone) Elkan's exact algorithm against Yinyang and scikit-learn's elkan, N=1e5, D in {2, 16, 64},
   k in {100, 1000}, on blobs and on structureless normal data: time of a fixed number of iterations from the same
   init (one run each, interleaved) and the share of the N*(k-1) distances to other centres our bounds computed
   (iterations 2..).
The per-iteration Lloyd table stays in benchmarks/bench_kmeans.py (`make bench`).

Our data are centred first, as `KMeans.fit` does. All peers run float32 on the CPU.

Faster assignment at small D: what was tried (ms for the E-step of N=1e5 points in 4 MB blocks, one thread, on a
shared 2-core machine, so provisional; "base" is GEMM + `min(1)` in the same run):
- kept: warm start from last iteration's labels (`nearest2`): 44.5 vs base 66 (D=4, k=200), 61.5 vs 111 (D=16,
  k=256), 594 vs 731 (D=100, k=1000), with 5% of the labels changed. It also returns the second-smallest score that
  Hamerly's bound needs. Table 4 re-measures it.
- no gain: value-only `amin` alone costs 10.7 ms against 51 for `min(1)` (D=4, k=200), but recovering the index
  is the problem:
  - equality mask (amin, then the first column equal to it via `where` + `amax`): 41 vs 36, 63 vs 41, 475 vs 149
    (D=4 k=1000);
  - tiled reduction over k (amin per tile of 8/16/32 columns, min over tiles, argmin inside the winning tile):
    33-56 vs 36 (D=4), 44-64 vs 41 (D=16), 236-324 vs 149 (D=4, k=1000);
  - transposed layout, scores (k, n) reduced with `min(0)`: 51 vs 51 (D=4), 108 vs 68 (D=16);
  - pairwise tree over k with `torch.minimum` / `torch.where` (exact lowest-index ties): 68-74 vs 33 (D=4),
    135 vs 40 (D=16);
  - one int64 key per score (order-preserving float bits << 32 | column) and `amin`: 191 vs 36 (D=4);
  - `torch.compile` (inductor, dynamic shapes) of the GEMM + `min(1)` block: 62 vs 43 (D=4), 146 vs 128 (D=16),
    496 vs 498 (D=100, k=1000), after a 27 s first compile (5 s from inductor's cache); a fully fused version
    without the GEMM (broadcast, sum over D): 172, 254, 1276. Not kept: no gain on one thread, and the compile
    time is paid per process.
"""
import argparse, os, sys, time, warnings
# Three OpenMP runtimes share this process (torch's, scikit-learn's, faiss's). By default an idle OpenMP thread
# spins, stealing a core from whichever library runs next; passive waiting makes the runs fair.
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_kmeans import data            # the same blobs recipe: k/2 centres, init = k distinct points

warnings.filterwarnings('ignore')


def med(xs): return float(np.median(xs))


def ours(name, X, init, max_iter):
    "A run of one of our algorithms on centred data (as KMeans.fit does): returns (n_iter, skipped)."
    from kmeans_lessons.bounds import ALGORITHMS, choose_algorithm
    Xt, C0 = torch.from_numpy(X), torch.from_numpy(init)
    if name == 'auto': name = choose_algorithm(*X.shape, len(init), 'cpu')
    f = ALGORITHMS[name]
    def run():
        shift = Xt.mean(0)
        r = f(Xt - shift, C0 - shift, max_iter=max_iter, tol=0, keep_history=False)
        return r['n_iter'], r.get('skipped')
    return run


def sklearn_run(algorithm, X, init, max_iter):
    from sklearn.cluster import KMeans as SK
    def run():
        km = SK(len(init), init=init, n_init=1, max_iter=max_iter, tol=0, algorithm=algorithm).fit(X)
        return km.n_iter_, None
    return run


def faiss_run(X, init, max_iter):
    import faiss
    def run():
        km = faiss.Kmeans(X.shape[1], len(init), niter=max_iter, max_points_per_centroid=10**9,
                          min_points_per_centroid=1, seed=1, verbose=False)
        km.train(X, init_centroids=init)
        return max_iter, None
    return run


def interleaved(runs, repeats):
    "Seconds (median of `repeats`, runs interleaved) and the last result of each run."
    times, out = {k: [] for k in runs}, {}
    for _ in range(repeats):
        for k, f in runs.items():
            t = time.perf_counter(); out[k] = f(); times[k].append(time.perf_counter() - t)
    return {k: med(v) for k, v in times.items()}, out


def digits_tiled(n, k, seed=0):
    "scikit-learn's digits (1797 x 64), tiled to n rows; init = k distinct rows."
    from sklearn.datasets import load_digits
    X = load_digits().data.astype(np.float32)
    X = np.ascontiguousarray(np.tile(X, (-(-n // len(X)), 1))[:n])
    rng = np.random.default_rng(seed)
    return X, X[rng.choice(len(load_digits().data), k, replace=False)].copy()


def table_fixed(shapes, repeats, iters=20):
    print(f"\n1. {iters} iterations from the same init, seconds (median of {repeats}, interleaved):\n")
    print("| data | lloyd | hamerly | yinyang | auto | sk lloyd | sk elkan | faiss | best ours / best sklearn "
          "| best ours / faiss | skipped | iterations (ours, sk) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    from kmeans_lessons.bounds import choose_algorithm
    for label, X, init in shapes:
        runs = {n: ours(n, X, init, iters) for n in ('lloyd', 'hamerly', 'yinyang')}
        runs.update({'sk lloyd': sklearn_run('lloyd', X, init, iters), 'sk elkan': sklearn_run('elkan', X, init, iters),
                     'faiss': faiss_run(X, init, iters)})
        for f in runs.values(): f()                                    # warm-up
        t, out = interleaved(runs, repeats)
        auto = choose_algorithm(*X.shape, len(init), 'cpu')
        best = min(t['lloyd'], t['hamerly'], t['yinyang'])
        sk = min(t['sk lloyd'], t['sk elkan'])
        skipped = out['hamerly'][1][1:]
        print(f"| {label} | {t['lloyd']:.3f} | {t['hamerly']:.3f} | {t['yinyang']:.3f} | {auto} {t[auto]:.3f} "
              f"| {t['sk lloyd']:.3f} | {t['sk elkan']:.3f} | {t['faiss']:.3f} | {best / sk:.2f} "
              f"| {best / t['faiss']:.2f} | {np.mean(skipped):.0%} | {out['lloyd'][0]}, {out['sk lloyd'][0]} |",
              flush=True)


def table_convergence(shapes, max_iter=100):
    print(f"\n2. Time to convergence (labels unchanged, at most {max_iter} iterations), seconds (one run each):\n")
    print("| data | ours (auto) | iterations | sk lloyd | iterations | sk elkan | iterations | ours / best sklearn |")
    print("|---|---|---|---|---|---|---|---|")
    from kmeans_lessons.bounds import choose_algorithm
    for label, X, init in shapes:
        auto = choose_algorithm(*X.shape, len(init), 'cpu')
        runs = {'ours': ours('auto', X, init, max_iter), 'sk lloyd': sklearn_run('lloyd', X, init, max_iter),
                'sk elkan': sklearn_run('elkan', X, init, max_iter)}
        t, out = interleaved(runs, 1)
        print(f"| {label} | {auto} {t['ours']:.2f} | {out['ours'][0]} | {t['sk lloyd']:.2f} | {out['sk lloyd'][0]} "
              f"| {t['sk elkan']:.2f} | {out['sk elkan'][0]} | {t['ours'] / min(t['sk lloyd'], t['sk elkan']):.2f} |",
              flush=True)


def table_grid(n, iters=20, dims=(2, 8, 32, 128, 256), ks=(10, 50, 200, 1000, 2000)):
    print(f"\n3. Crossover grid: {iters} iterations at N={n}, time relative to lloyd (one run each):\n")
    print("| D | k | lloyd (s) | hamerly / lloyd | yinyang / lloyd | fastest | auto picks |")
    print("|---|---|---|---|---|---|---|")
    from kmeans_lessons.bounds import choose_algorithm
    for d in dims:
        for k in ks:
            X, init = data(n, d, k)
            runs = {a: ours(a, X, init, iters) for a in ('lloyd', 'hamerly', 'yinyang')}
            t, _ = interleaved(runs, 1)
            print(f"| {d} | {k} | {t['lloyd']:.3f} | {t['hamerly'] / t['lloyd']:.2f} | {t['yinyang'] / t['lloyd']:.2f} "
                  f"| {min(t, key=t.get)} | {choose_algorithm(n, d, k, 'cpu')} |", flush=True)


def table_estep(n, repeats):
    from kmeans_lessons.distances import SqEuclidean
    from kmeans_lessons.assignment import chunk_rows
    from kmeans_lessons.lloyd import lloyd
    from kmeans_lessons.bounds import nearest2
    print(f"\n4. The E-step alone, N={n}, ms (median of {repeats}, interleaved); labels from the iteration before:\n")
    print("| D | k | nearest: GEMM + min(1) | nearest2 with last labels | ratio | labels changed |")
    print("|---|---|---|---|---|---|")
    for d, k in [(4, 200), (16, 256), (100, 1000)]:
        X, init = data(n, d, k)
        Xt = torch.from_numpy(X) - torch.from_numpy(X).mean(0)
        C = torch.from_numpy(init) - torch.from_numpy(X).mean(0)
        r = lloyd(Xt, C, max_iter=5, tol=0)
        C4, C5 = r['history'][-2], r['history'][-1]
        rows = chunk_rows(n, k)
        prev = torch.cat([SqEuclidean().nearest(Xt[s:s + rows], C4)[1] for s in range(0, n, rows)])
        cc = (C5 * C5).sum(1)
        def base(): return [SqEuclidean().nearest(Xt[s:s + rows], C5) for s in range(0, n, rows)]
        def warm(): return [nearest2(Xt[s:s + rows], C5, cc, prev[s:s + rows]) for s in range(0, n, rows)]
        lab = torch.cat([b[1] for b in base()])
        assert torch.equal(lab, torch.cat([w[0] for w in warm()]))
        t, _ = interleaved({'base': base, 'warm': warm}, repeats)
        print(f"| {d} | {k} | {1e3 * t['base']:.1f} | {1e3 * t['warm']:.1f} | {t['warm'] / t['base']:.2f} "
              f"| {(lab != prev).float().mean():.1%} |", flush=True)


def table_split(shapes, iters=20):
    "Where Hamerly's time goes: each part of `kmeans_lessons.bounds`, timed by wrapping it (one run each)."
    import kmeans_lessons.bounds as B
    parts = {'first full pass': 'lloyd_dists', 'distance to own centre': 'own_sq_dists', 'centre gaps': 'centre_gaps',
             'nearest2 (all E-steps)': 'nearest2', 'near ties (lloyd_rows)': 'lloyd_rows', 'M-step': 'update_centroids'}
    print(f"\n5. Where Hamerly's time goes, {iters} iterations, share of the total (one run each; nearest2 includes "
          "the first full pass):\n")
    print("| data | total (s) | " + " | ".join(parts) + " | rest | mean skipped |")
    print("|---" * (len(parts) + 4) + "|")
    spent, orig = {}, {name: getattr(B, name) for name in parts.values()}
    def wrap(name, f):
        def g(*a, **k):
            t = time.perf_counter(); r = f(*a, **k); spent[name] += time.perf_counter() - t; return r
        return g
    try:
        for name, f in orig.items(): setattr(B, name, wrap(name, f))
        for label, X, init in shapes:
            spent.update({name: 0.0 for name in orig})
            f = ours('hamerly', X, init, iters)
            t = time.perf_counter(); _, skipped = f(); total = time.perf_counter() - t
            shares = [spent[n] / total for n in parts.values()]
            print(f"| {label} | {total:.3f} | " + " | ".join(f"{x:.0%}" for x in shares)
                  + f" | {1 - sum(shares):.0%} | {np.mean(skipped[1:]):.0%} |", flush=True)
    finally:
        for name, f in orig.items(): setattr(B, name, f)


def table_elkan(n, iters, dims=(2, 16, 64), ks=(100, 1000)):
    "Ours (lloyd, hamerly, yinyang, elkan) and scikit-learn's elkan, `iters` iterations from the same init."
    from kmeans_lessons.bounds import STRATEGIES, run_strategy
    print(f"\n6. Elkan: {iters} iterations from the same init, N={n:.0e}, seconds (one run each, interleaved); "
          "'computed': mean share of the N*(k-1) distances to other centres computed, iterations 2..:\n")
    names = ('lloyd', 'hamerly', 'yinyang', 'elkan')
    print("| data | D | k | " + " | ".join(names) + " | sk elkan | elkan / yinyang | elkan / sk elkan "
          "| computed: hamerly | yinyang | elkan | iterations (ours, sk) |")
    print("|---|---|---|" + "---|" * (len(names) + 7))
    for kind in ('blobs', 'normal'):
        for d in dims:
            for k in ks:
                if kind == 'blobs': X, init = data(n, d, k)
                else:
                    rng = np.random.default_rng(1)
                    X = rng.standard_normal((n, d)).astype(np.float32)
                    init = X[rng.choice(n, k, replace=False)].copy()
                Xt, C0 = torch.from_numpy(X), torch.from_numpy(init)
                shift = Xt.mean(0)                                     # centred, as KMeans.fit does
                Xc, Cc = Xt - shift, C0 - shift
                steps, runs = {}, {}
                for name in names:
                    def run(name=name):
                        def make(*a, **kw):
                            steps[name] = STRATEGIES[name](*a, **kw)
                            return steps[name]
                        r = run_strategy(Xc, Cc, None, make, max_iter=iters, tol=0, keep_history=False,
                                         memory_budget=max(2**28, 2 * n * k * 4))
                        return r['n_iter'], r['labels']
                    runs[name] = run
                runs['sk elkan'] = sklearn_run('elkan', X, init, iters)
                t, out = interleaved(runs, 1)
                for name in names[1:]:                                 # exact: Lloyd's labels
                    assert torch.equal(out[name][1], out['lloyd'][1]), (kind, d, k, name)
                comp = {m: np.mean(steps[m].computed[1:-1]) for m in names[1:]}
                print(f"| {kind} | {d} | {k} | " + " | ".join(f"{t[m]:.2f}" for m in names)
                      + f" | {t['sk elkan']:.2f} | {t['elkan'] / t['yinyang']:.2f} | {t['elkan'] / t['sk elkan']:.2f} | "
                      + " | ".join(f"{comp[m]:.2%}" for m in names[1:])
                      + f" | {out['lloyd'][0]}, {out['sk elkan'][0]} |", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--quick', action='store_true', help='small N, one repeat: for development')
    ap.add_argument('--elkan', action='store_true', help="only table 6, Elkan's algorithm")
    args = ap.parse_args()
    if args.elkan:
        return table_elkan(20_000 if args.quick else 100_000, 10)
    import sklearn, faiss
    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads), scikit-learn {sklearn.__version__}, "
          f"faiss {faiss.__version__}, {os.cpu_count()} CPUs, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    n, big, reps = (10_000, 30_000, 1) if args.quick else (100_000, 1_000_000, 3)
    shapes = [(f"N={n:.0e}, D={d}, k={k}", *data(n, d, k)) for d, k in [(4, 200), (16, 256), (100, 1000)]]
    shapes.append((f"N={big:.0e}, D=4, k=200", *data(big, 4, 200)))
    shapes.append((f"digits tiled, N={n:.0e}, D=64, k=50", *digits_tiled(n, 50)))
    table_fixed(shapes, reps)
    table_split(shapes)
    table_convergence(shapes)
    if args.quick: table_grid(5000, dims=(2, 32), ks=(10, 200))
    else: table_grid(n // 5)
    table_estep(n, 5 if not args.quick else 2)


if __name__ == '__main__':
    main()
