"""Per-call overhead, memory and default fits against scikit-learn, side by side in one process (issue 18).

    python benchmarks/bench_overhead.py            # everything (a few minutes on 2 cores)
    python benchmarks/bench_overhead.py --small    # only the small-data calls (digits, colour quantisation)
    python benchmarks/bench_overhead.py --cold     # only the first fit in a fresh process (import + fit)
    python benchmarks/bench_overhead.py --memory   # only the peak memory of an in-memory fit (in a subprocess)
    python benchmarks/bench_overhead.py --default  # only the default fits, KMeans(k, random_state=s).fit(X)

Every timing is the median of interleaved runs (ours, then scikit-learn's, then ours...), after a warm-up; each
ratio is ours over scikit-learn's. Run it under `flock -x /tmp/bench.lock` on a shared machine.
"""
import argparse, os, subprocess, sys, time, warnings
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')   # torch's and scikit-learn's OpenMP threads share 2 cores
import numpy as np
import torch

warnings.filterwarnings('ignore')

def med(xs): return float(np.median(xs))

def interleaved(fns, repeats):
    "Median seconds of each function in `fns` (a dict), run in turn `repeats` times after one warm-up each."
    for f in fns.values(): f()
    res = {name: [] for name in fns}
    for _ in range(repeats):
        for name, f in fns.items():
            t = time.perf_counter(); f(); res[name].append(time.perf_counter() - t)
    return {name: med(v) for name, v in res.items()}

def row(label, t, note=''):
    ours, sk = t['ours'], t['sklearn']
    print(f"| {label} | {ours * 1e3:8.1f} | {sk * 1e3:8.1f} | {ours / sk:5.2f} | {note}", flush=True)

def header(title):
    print(f"\n{title}\n\n| call | ours ms | scikit-learn ms | ratio | note\n|---|---|---|---|---|", flush=True)

def main_small(repeats):
    from sklearn.datasets import load_digits, load_sample_image
    from sklearn.cluster import KMeans as SK
    from kmeans_lessons import KMeans
    header("Small data (digits 1797 x 64 float64; china.jpg 273280 pixels x 3 float32)")
    X = load_digits().data                                                      # (1797, 64) float64
    for n_init in (1, 10):
        t = interleaved({'ours': lambda: KMeans(10, n_init=n_init, random_state=0).fit(X),
                         'sklearn': lambda: SK(10, n_init=n_init, random_state=0).fit(X)}, repeats)
        a, b = KMeans(10, n_init=n_init, random_state=0).fit(X), SK(10, n_init=n_init, random_state=0).fit(X)
        row(f"digits fit k=10 n_init={n_init}", t, f"inertia {a.inertia_:.0f} vs {b.inertia_:.0f}")
    ours, sk = KMeans(10, random_state=0).fit(X), SK(10, random_state=0).fit(X)
    row("digits predict (1797 rows)", interleaved({'ours': lambda: ours.predict(X), 'sklearn': lambda: sk.predict(X)},
                                                  repeats * 5))
    row("digits transform (1797 rows)", interleaved({'ours': lambda: ours.transform(X),
                                                     'sklearn': lambda: sk.transform(X)}, repeats * 5))
    few = X[:10]
    row("transform 10 rows", interleaved({'ours': lambda: ours.transform(few), 'sklearn': lambda: sk.transform(few)},
                                         repeats * 20))
    row("predict 10 rows", interleaved({'ours': lambda: ours.predict(few), 'sklearn': lambda: sk.predict(few)},
                                       repeats * 20))
    image = load_sample_image('china.jpg')                                      # (427, 640, 3) uint8
    pixels = (image.reshape(-1, 3) / 255).astype(np.float32)                    # (273280, 3), as lesson 09
    sample = pixels[np.random.default_rng(0).permutation(len(pixels))[:10_000]]
    ours, sk = KMeans(64, random_state=0).fit(sample), SK(64, random_state=0).fit(sample)
    row("colour fit k=64 on 10,000 pixels", interleaved({'ours': lambda: KMeans(64, random_state=0).fit(sample),
                                                         'sklearn': lambda: SK(64, random_state=0).fit(sample)},
                                                        repeats))
    row("colour predict k=64, all pixels (NumPy)", interleaved({'ours': lambda: ours.predict(pixels),
                                                                'sklearn': lambda: sk.predict(pixels)}, repeats))
    pt, ours_t = torch.from_numpy(pixels), KMeans(64, random_state=0).fit(torch.from_numpy(sample))
    row("colour predict k=64, all pixels (tensor)", interleaved({'ours': lambda: ours_t.predict(pt),
                                                                 'sklearn': lambda: sk.predict(pixels)}, repeats))

COLD = {'ours': "from kmeans_lessons import KMeans",
        'sklearn': "from sklearn.cluster import KMeans"}

def main_cold(repeats):
    "Import + first fit in a fresh interpreter, wall time of the whole process and of the fit alone."
    header("First fit in a fresh process (digits, KMeans(10, n_init=10, random_state=0)); the note: the fit alone")
    code = ("import time; t0 = time.perf_counter(); {imp}; from sklearn.datasets import load_digits; "
            "X = load_digits().data; t1 = time.perf_counter(); KMeans(10, n_init=10, random_state=0).fit(X); "
            "t2 = time.perf_counter(); print(t1 - t0, t2 - t1)")
    res = {name: [] for name in COLD}
    for _ in range(repeats):
        for name, imp in COLD.items():
            t = time.perf_counter()
            out = subprocess.run([sys.executable, '-c', code.format(imp=imp)], capture_output=True, text=True,
                                 check=True).stdout.split()
            res[name].append((time.perf_counter() - t, float(out[0]), float(out[1])))
    t = {name: med([r[0] for r in v]) for name, v in res.items()}
    fit = {name: med([r[2] for r in v]) for name, v in res.items()}
    imp = {name: med([r[1] for r in v]) for name, v in res.items()}
    row("process: start + import + load + first fit", t,
        f"import+load {imp['ours'] * 1e3:.0f} vs {imp['sklearn'] * 1e3:.0f} ms; "
        f"first fit {fit['ours'] * 1e3:.0f} vs {fit['sklearn'] * 1e3:.0f} ms")

MEM_CHILD = r"""
import os, resource, sys, numpy as np
from kmeans_lessons import KMeans
N, D, dtype = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
X, rng = np.empty((N, D), dtype), np.random.default_rng(0)
for s in range(0, N, 65536): X[s:s + 65536] = rng.standard_normal((len(X[s:s + 65536]), D))   # no big temporary
base = int(open('/proc/self/statm').read().split()[1]) * os.sysconf('SC_PAGE_SIZE')           # RSS now
KMeans(20, random_state=0, max_iter=5).fit(X)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(base, peak, X.nbytes)
"""

def main_memory(nbytes):
    print(f"\nPeak RSS of an in-memory NumPy fit, KMeans(20, random_state=0, max_iter=5), in a subprocess; 'extra': "
          "peak RSS minus the RSS just before the fit (the data already in memory)\n\n"
          "| N x D | dtype | data MB | extra MB | extra / data | peak / data |\n|---|---|---|---|---|---|")
    for D, dtype in ((64, 'float32'), (64, 'float64'), (4, 'float32')):
        N = nbytes // (D * np.dtype(dtype).itemsize)
        out = subprocess.run([sys.executable, '-c', MEM_CHILD, str(N), str(D), dtype], capture_output=True,
                             text=True, check=True).stdout.split()
        base, peak, size = (int(v) for v in out)
        print(f"| {N} x {D} | {dtype} | {size / 1e6:.0f} | {(peak - base) / 1e6:.0f} | {(peak - base) / size:.2f} | "
              f"{peak / size:.2f} |", flush=True)

def dataset(kind, N, D, seed):
    rng = np.random.default_rng(seed)
    if kind == 'normal': return rng.standard_normal((N, D)).astype(np.float32)
    centres = rng.standard_normal((20, D)).astype(np.float32) * 3
    return centres[rng.integers(0, 20, N)] + rng.standard_normal((N, D)).astype(np.float32)

def main_default(N, k, seeds, Ds):
    "Default fits, KMeans(k, random_state=s).fit(X) against scikit-learn's defaults: time and inertia per seed."
    from sklearn.cluster import KMeans as SK
    from kmeans_lessons import KMeans
    print(f"\nDefault fits, N={N}, k={k}, float32; medians over seeds {list(seeds)} (one fit each, interleaved)\n\n"
          "| data | D | ours s | scikit-learn s | ratio | iterations (ours, sk) | inertia ours / sk (mean) |\n"
          "|---|---|---|---|---|---|---|", flush=True)
    for kind in ('blobs', 'normal'):
        for D in Ds:
            X = dataset(kind, N, D, 0)
            KMeans(k, random_state=0, max_iter=2).fit(X[:2000]); SK(k, random_state=0, max_iter=2).fit(X[:2000])
            ts, ratios, its = {'ours': [], 'sklearn': []}, [], []
            for s in seeds:
                t = time.perf_counter(); a = KMeans(k, random_state=s).fit(X); ts['ours'].append(time.perf_counter() - t)
                t = time.perf_counter(); b = SK(k, random_state=s).fit(X); ts['sklearn'].append(time.perf_counter() - t)
                ratios.append(a.inertia_ / b.inertia_); its.append((a.n_iter_, b.n_iter_))
            o, s_ = med(ts['ours']), med(ts['sklearn'])
            print(f"| {kind} | {D} | {o:.3f} | {s_:.3f} | {o / s_:.2f} | {its} | {np.mean(ratios):.4f} |",
                  flush=True)

def main():
    ap = argparse.ArgumentParser()
    for m in ('small', 'cold', 'memory', 'default'): ap.add_argument(f'--{m}', action='store_true')
    ap.add_argument('--repeats', type=int, default=7)
    ap.add_argument('--seeds', type=int, default=3)
    ap.add_argument('--mem-mb', type=int, default=400)              # the data's size for --memory
    a = ap.parse_args()
    every = not (a.small or a.cold or a.memory or a.default)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    if every or a.small: main_small(a.repeats)
    if every or a.cold: main_cold(max(3, a.repeats // 2))
    if every or a.memory: main_memory(a.mem_mb * 10**6)
    if every or a.default: main_default(100_000, 20, range(a.seeds), (8, 32, 64))

if __name__ == '__main__':
    main()
