"""Side-by-side benchmark: milliseconds per Lloyd iteration for kmeans_lessons, scikit-learn, faiss and a naive
torch k-means, on the same data and the same initial centroids, in one process.

    python benchmarks/bench_kmeans.py            # the CPU table (a few minutes on 2 cores)
    python benchmarks/bench_kmeans.py --quick    # smaller repeats
    python benchmarks/bench_kmeans.py --growth   # also: time and memory as N grows (D=4, K=200)
    python benchmarks/bench_kmeans.py --fit      # only (`make bench`): Lloyd's whole fit at equal work, 5 iterations
                                                 # from the same init, ours / scikit-learn / faiss, N=1e5 grid
    python benchmarks/bench_kmeans.py --fit --save benchmarks/results/fit.json   # (`make bench-save`) and keep
                                                 # the table for lesson 05, which prints it; re-execute 05_gpu after
    python benchmarks/bench_kmeans.py --estep    # only: one Lloyd iteration (E-step + sums), kernels.lloyd_pass
                                                 # against the torch path, scikit-learn and faiss, N=1e5 grid

Per-iteration time is measured by differencing: (t(m2 iterations) - t(m1 iterations)) / (m2 - m1), so set-up,
validation and the final assignment cancel out. Each number is the median of several runs, interleaved.
"""
import argparse, os, platform, subprocess, sys, time, warnings
from pathlib import Path
# Three OpenMP runtimes share this process (torch's, scikit-learn's, faiss's) and 2 cores. By default an idle
# OpenMP thread spins, stealing a core from whichever library runs next; passive waiting makes the runs fair.
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
import numpy as np
import torch

warnings.filterwarnings('ignore')

def med(xs): return float(np.median(xs))

def run_ours(X, init, m, device='cpu'):
    from kmeans_lessons import KMeans
    Xt, it = torch.from_numpy(X).to(device), torch.from_numpy(init).to(device)
    def f():
        km = KMeans(len(init), init=it, max_iter=m, tol=0, keep_history=False).fit(Xt)
        if device != 'cpu': torch.cuda.synchronize()
        assert km.n_iter_ == m
    return f

def run_sklearn(X, init, m):
    from sklearn.cluster import KMeans as SK
    def f():
        km = SK(len(init), init=init, n_init=1, max_iter=m, tol=0, algorithm='lloyd').fit(X)
        assert km.n_iter_ == m
    return f

def run_faiss(X, init, m):
    import faiss
    def f():
        km = faiss.Kmeans(X.shape[1], len(init), niter=m, max_points_per_centroid=10**9, min_points_per_centroid=1,
                          seed=1, verbose=False)
        km.train(X, init_centroids=init)
    return f

def run_naive(X, init, m):
    "The textbook torch version: full cdist, argmin, scatter_reduce mean."
    Xt, C0 = torch.from_numpy(X), torch.from_numpy(init)
    def f():
        C = C0.clone()
        for _ in range(m):
            lab = torch.cdist(Xt, C).argmin(1)                                            # (N,)
            C = C.scatter_reduce(0, lab[:, None].expand_as(Xt), Xt, 'mean', include_self=False)
    return f

def timed(f):
    t = time.perf_counter(); f(); return time.perf_counter() - t

def per_iter(makers, X, init, m1, m2, repeats):
    "ms per iteration for each runner, interleaved runs, median of `repeats`."
    fns = {name: (mk(X, init, m1), mk(X, init, m2)) for name, mk in makers.items()}
    for f1, f2 in fns.values(): f1()                        # warm-up
    res = {name: [] for name in fns}
    for _ in range(repeats):
        for name, (f1, f2) in fns.items():
            t = time.perf_counter(); f1(); t1 = time.perf_counter() - t
            t = time.perf_counter(); f2(); t2 = time.perf_counter() - t
            res[name].append((t2 - t1) / (m2 - m1) * 1e3)
    return {k: med(v) for k, v in res.items()}

def data(N, D, K, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(K // 2, 1), D)).astype(np.float32) * 3
    X = (centres[rng.integers(0, len(centres), N)] + rng.standard_normal((N, D)).astype(np.float32))
    init = X[rng.choice(N, K, replace=False)].copy()
    return np.ascontiguousarray(X, dtype=np.float32), init

def peak_rss_child(N, D, K, iters=2):
    "Peak RSS (MB) of a fresh process that fits N x D data with K clusters, and the RSS with only the data loaded."
    code = f"""
import torch, numpy as np
from kmeans_lessons import KMeans
from kmeans_lessons.bench import peak_memory_mb
X = torch.randn({N}, {D}, generator=torch.Generator().manual_seed(0))
base = peak_memory_mb()
KMeans({K}, init='forgy', max_iter={iters}, tol=0, random_state=0, keep_history=False).fit(X)
print(base, peak_memory_mb())
"""
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout.split()
    return float(out[0]), float(out[1])

def estep_runners(X, init):
    "One Lloyd iteration (nearest centre + the M-step's sums) for each implementation, as a function of no arguments."
    from threadpoolctl import threadpool_limits
    from sklearn.cluster._k_means_lloyd import lloyd_iter_chunked_dense
    from kmeans_lessons.kernels import lloyd_pass
    from kmeans_lessons.assignment import assign
    from kmeans_lessons.update import cluster_means
    Xt, Ct, k = torch.from_numpy(X), torch.from_numpy(init), len(init)
    sw, cn, wic = np.ones(len(X), X.dtype), np.empty_like(init), np.empty(k, X.dtype)
    lab, shift, nt = np.empty(len(X), np.int32), np.empty(k, X.dtype), torch.get_num_threads()
    def sklearn_iter():          # what KMeans(algorithm='lloyd').fit runs per iteration, BLAS limited as it does
        with threadpool_limits(1, user_api='blas'):
            lloyd_iter_chunked_dense(X, sw, init, cn, wic, lab, shift, nt, True)
    return {'kernel': lambda: lloyd_pass(Xt, Ct),
            'torch path': lambda: cluster_means(Xt, assign(Xt, Ct)[0], k),
            'scikit-learn': sklearn_iter}

def compile_cost():
    "Seconds for the first lloyd_pass in a fresh process: with an empty kernel cache (build), then with it cached."
    import tempfile
    code = ("import time, torch; t = time.perf_counter(); from kmeans_lessons.kernels import lloyd_pass; "
            "lloyd_pass(torch.randn(1000, 4), torch.randn(10, 4)); print(time.perf_counter() - t)")
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, KMEANS_LESSONS_CACHE=cache)
        run = lambda: float(subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True,
                                           check=True).stdout.split()[-1])
        return run(), run()

def main_estep(reps):
    from kmeans_lessons import kernels
    first, cached = compile_cost()
    print(f"lloyd_pass, first call in a fresh process (import + first pass): {first:.2f} s with an empty cache "
          f"(compiles), {cached:.2f} s with the library cached; kernel available: {kernels.kernel_available()}")
    print("\nOne Lloyd iteration (E-step + sums), N=1e5, float32, normal data, same centres for all; ms (median of "
          f"{reps} interleaved repeats); faiss: faiss.Kmeans per iteration by differencing 3 and 1 iterations\n")
    print("| D | k | path | kernel | torch path | scikit-learn | faiss | kernel / sklearn | kernel / faiss "
          "| torch / sklearn |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for D in (2, 4, 16, 64, 128):
        for k in (8, 100, 1000):
            rng = np.random.default_rng(D * 1000 + k)
            X = rng.standard_normal((100_000, D)).astype(np.float32)
            init = X[rng.choice(len(X), k, replace=False)].copy()
            fns = estep_runners(X, init)
            fa1, fa3 = run_faiss(X, init, 1), run_faiss(X, init, 3)
            for f in fns.values(): f()                                       # warm-up
            fa1()
            res = {name: [] for name in [*fns, 'faiss']}
            for _ in range(reps):
                for name, f in fns.items(): res[name].append(timed(f) * 1e3)
                res['faiss'].append((timed(fa3) - timed(fa1)) / 2 * 1e3)
            r = {name: med(v) for name, v in res.items()}
            path = kernels._auto(len(X), D, k, torch.float32)
            print(f"| {D} | {k} | {path} | {r['kernel']:.1f} | {r['torch path']:.1f} | {r['scikit-learn']:.1f} "
                  f"| {r['faiss']:.1f} | {r['kernel'] / r['scikit-learn']:.2f} | {r['kernel'] / r['faiss']:.2f} "
                  f"| {r['torch path'] / r['scikit-learn']:.2f} |", flush=True)

def first_fit_cost():
    "Seconds for the first and the second KMeans fit in a fresh process (import excluded; the kernel library cached)."
    code = ("import time, torch; from kmeans_lessons import KMeans; X = torch.randn(2000, 8); "
            "t = time.perf_counter(); KMeans(10, init=X[:10].clone(), max_iter=5, tol=0).fit(X); "
            "a = time.perf_counter() - t; t = time.perf_counter(); "
            "KMeans(10, init=X[:10].clone(), max_iter=5, tol=0).fit(X); print(a, time.perf_counter() - t)")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout.split()
    return float(out[-2]), float(out[-1])

def cpu_name():
    "The CPU's model name, and whether it has AVX-512."
    try:
        with open('/proc/cpuinfo') as f: lines = f.read().splitlines()
    except OSError: return platform.processor(), False
    name = next((l.split(':', 1)[1].strip() for l in lines if l.startswith('model name')), platform.processor())
    flags = next((l for l in lines if l.startswith('flags')), '')
    return name, ' avx512f' in flags

def main_fit(quick=False, save=None):
    """Lloyd's whole fit at equal work: 5 iterations from the same init (tol=0), ours against scikit-learn and faiss.
    `save`: a path where the table goes too, as JSON (lesson 05 prints it)."""
    from kmeans_lessons import KMeans, kernels
    from sklearn.cluster import KMeans as SK
    import faiss
    first, second = first_fit_cost()
    print(f"kernel available: {kernels.kernel_available()}; a fresh process's first KMeans fit (2000 x 8, k=10, "
          f"5 iterations) {first * 1e3:.0f} ms, its second {second * 1e3:.0f} ms (the difference: loading the kernel "
          "library once, and torch's first calls)")
    iters = 5
    print(f"\nLloyd's whole fit, {iters} iterations from the same initial centres (tol=0), N=1e5 normal data, float32; "
          "ms, median of interleaved repeats (5; 3 where a fit takes long). ours: KMeans(algorithm='lloyd'); "
          "scikit-learn: KMeans(algorithm='lloyd', n_init=1); faiss: Kmeans(max_points_per_centroid=10**9)\n")
    print("| D | k | kernel path | ours | scikit-learn | faiss | ours / sklearn | ours / faiss |")
    print("|---|---|---|---|---|---|---|---|")
    ratios, rows = [], []
    for D in (2, 4, 16, 64, 128):
        for k in (8, 100, 1000):
            rng = np.random.default_rng(D * 1000 + k)
            X = rng.standard_normal((100_000, D)).astype(np.float32)
            init = X[rng.choice(len(X), k, replace=False)].copy()
            def ours(): return KMeans(k, init=init, max_iter=iters, tol=0, algorithm='lloyd').fit(X).n_iter_
            def sk(): return SK(k, init=init, n_init=1, max_iter=iters, tol=0, algorithm='lloyd').fit(X).n_iter_
            def fa():
                km = faiss.Kmeans(D, k, niter=iters, max_points_per_centroid=10**9, min_points_per_centroid=1,
                                  seed=1, verbose=False)
                km.train(X, init_centroids=init)
            fns = {'ours': ours, 'sklearn': sk, 'faiss': fa}
            n_iter = {name: f() for name, f in fns.items()}                     # warm-up
            assert n_iter['ours'] == n_iter['sklearn'], n_iter
            big = k * D >= 100 * 64
            reps = 2 if quick else 3 if big else 5
            res = {name: [] for name in fns}
            for _ in range(reps):
                for name, f in fns.items(): res[name].append(timed(f) * 1e3)
            r = {name: med(v) for name, v in res.items()}
            ratios.append((r['ours'] / r['sklearn'], r['ours'] / r['faiss']))
            path = kernels.plan(D, k, torch.float32)
            rows.append({'D': D, 'k': k, 'path': path, **{name: round(v, 1) for name, v in r.items()}})
            print(f"| {D} | {k} | {path} | {r['ours']:.1f} | {r['sklearn']:.1f} "
                  f"| {r['faiss']:.1f} | {r['ours'] / r['sklearn']:.2f} | {r['ours'] / r['faiss']:.2f} |", flush=True)
    a, b = np.array(ratios).T
    print(f"\nours / scikit-learn: at most {a.max():.2f} (median {np.median(a):.2f}); "
          f"ours / faiss: at most {b.max():.2f} (median {np.median(b):.2f})")
    if save:
        import json, sklearn, faiss
        cpu, avx512 = cpu_name()
        meta = {'date': time.strftime('%Y-%m-%d'), 'cpu': cpu, 'avx512': avx512, 'threads': torch.get_num_threads(),
                'torch': torch.__version__, 'scikit-learn': sklearn.__version__, 'faiss': faiss.__version__,
                'N': 100_000, 'iterations': iters, 'dtype': 'float32', 'data': 'normal'}
        Path(save).parent.mkdir(parents=True, exist_ok=True)
        Path(save).write_text(json.dumps({'machine': meta, 'rows': rows}, indent=1) + '\n')
        print(f"saved to {save}")

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--quick', action='store_true')
    ap.add_argument('--growth', action='store_true')
    ap.add_argument('--estep', action='store_true')
    ap.add_argument('--fit', action='store_true')
    ap.add_argument('--save', help="with --fit: also write the table to this JSON file (lesson 05 prints it)")
    args = ap.parse_args()
    reps = 3 if args.quick else 5
    import sklearn, faiss
    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads), scikit-learn {sklearn.__version__}, "
          f"faiss {faiss.__version__}, {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}")
    if args.estep: return main_estep(reps)
    if args.fit: return main_fit(args.quick, args.save)
    print("\nCPU, float32, same data and init for all; ms per Lloyd iteration (median):\n")
    print(f"| shape | kmeans_lessons | scikit-learn | faiss | naive torch | ours / sklearn | ours / faiss |")
    print(f"|---|---|---|---|---|---|---|")
    for N, D, K, m1, m2 in [(100_000, 100, 1000, 1, 4), (100_000, 4, 200, 2, 12)]:
        X, init = data(N, D, K)
        makers = {'ours': run_ours, 'sklearn': run_sklearn, 'faiss': run_faiss}
        r = per_iter(makers, X, init, m1, m2, reps)
        naive = per_iter({'naive': run_naive}, X, init, 1, 2, 1)['naive']
        print(f"| N={N:.0e}, D={D}, K={K} | {r['ours']:.1f} | {r['sklearn']:.1f} | {r['faiss']:.1f} | {naive:.0f} "
              f"| {r['ours']/r['sklearn']:.2f} | {r['ours']/r['faiss']:.2f} |", flush=True)

    print("\nk-means++ initialisation (greedy, 2 + ln k candidates), N=1e6, D=4, K=200, float32; seconds (median of 3):\n")
    from sklearn.cluster import kmeans_plusplus
    from kmeans_lessons.lloyd import init_kmeans_plusplus
    X, _ = data(1_000_000, 4, 200)
    Xt = torch.from_numpy(X)
    t_ours = med([timed(lambda: init_kmeans_plusplus(Xt, 200, torch.Generator().manual_seed(s))) for s in range(3)])
    t_sk = med([timed(lambda: kmeans_plusplus(X, 200, random_state=s)) for s in range(3)])
    print(f"| kmeans_lessons | scikit-learn | ours / sklearn |\n|---|---|---|\n| {t_ours:.2f} | {t_sk:.2f} | {t_ours / t_sk:.2f} |")

    if args.growth:
        print("\nGrowth in N (D=4, K=200): ms per iteration, and peak RSS of a fresh process (data alone / whole fit)\n")
        print("| N | ms/iter | ms/iter per 1e4 points | RSS data only (MB) | peak RSS (MB) |")
        print("|---|---|---|---|---|")
        for N in (10_000, 100_000, 1_000_000):
            X, init = data(N, 4, 200)
            t = per_iter({'ours': run_ours}, X, init, 2, 7, 3)['ours']
            base, peak = peak_rss_child(N, 4, 200)
            print(f"| {N:.0e} | {t:.1f} | {t / (N / 1e4):.2f} | {base:.0f} | {peak:.0f} |", flush=True)

    if torch.cuda.is_available():
        print(f"\nGPU: {torch.cuda.get_device_name()}\n")
        for N, D, K in [(1_000_000, 100, 1000), (1_000_000, 4, 200)]:
            X, init = data(N, D, K)
            t = per_iter({'ours': lambda X, i, m: run_ours(X, i, m, 'cuda')}, X, init, 2, 12, 5)['ours']
            print(f"N={N:.0e}, D={D}, K={K}: {t:.2f} ms/iter (fp32)")
    else:
        print("\n(no CUDA GPU here: the GPU rows need one)")

if __name__ == '__main__':
    main()
