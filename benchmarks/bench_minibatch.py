"""Side-by-side benchmark: kmeans_lessons' MiniBatchKMeans against scikit-learn's, in one process, interleaved.

    python benchmarks/bench_minibatch.py            # 12 seeds on each data set (a few minutes on 2 cores)
    python benchmarks/bench_minibatch.py --seeds 4  # fewer
    python benchmarks/bench_minibatch.py --src DIR  # the kmeans_lessons package under DIR instead (another version)

For each data set and seed both estimators fit the same data with their defaults (k-means++ on an `init_size`
sample, batch_size=1024, scikit-learn's stopping rule), each with its own random draws. Reported: the inertia on all
the points averaged over seeds (their ratio is what the 1% claim is about), the median fit time, and the steps.
Run under `flock -x /tmp/bench.lock` on a shared machine.
"""
import argparse, os, sys, time, warnings
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')   # two OpenMP runtimes share the cores: no spinning
if '--src' in sys.argv:                               # before the import: another checkout's package
    sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in type(f).__name__.lower()]
    sys.path.insert(0, sys.argv[sys.argv.index('--src') + 1])
import numpy as np
import torch
from sklearn.cluster import MiniBatchKMeans as SK
from kmeans_lessons import MiniBatchKMeans, sample_blobs

warnings.filterwarnings('ignore')


def datasets():
    X, _, _ = sample_blobs(40, 1500, 8, seed=0)                       # (60000, 8): 40 blobs (issue 17's data)
    yield '60k x 8, 40 blobs, k=40', X.numpy()[np.random.default_rng(0).permutation(len(X))], 40
    yield '20k x 4, one Gaussian, k=20', np.random.default_rng(0).standard_normal((20_000, 4)).astype(np.float32), 20
    X, _, _ = sample_blobs(100, 2000, 16, box=10.0, var=4.0, seed=1)  # (200000, 16)
    yield '200k x 16, 100 blobs, k=100', X.numpy(), 100


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--seeds', type=int, default=12)
    p.add_argument('--src', default=None)
    a = p.parse_args()
    import kmeans_lessons
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {kmeans_lessons.__file__}")
    print(f"| data | seeds | inertia ours / scikit-learn (mean over seeds) | time ours (median s) | "
          f"time scikit-learn (median s) | ratio | steps ours / scikit-learn (median) |")
    print("|---|---|---|---|---|---|---|")
    for name, Xn, k in datasets():
        Xt = torch.from_numpy(Xn)
        res = {'ours': [], 'sk': []}
        for s in range(a.seeds):
            for who in (('ours', 'sk') if s % 2 == 0 else ('sk', 'ours')):       # interleaved, alternating order
                t = time.perf_counter()
                km = MiniBatchKMeans(k, random_state=s).fit(Xt) if who == 'ours' else SK(k, random_state=s).fit(Xn)
                res[who].append((time.perf_counter() - t, float(km.inertia_), km.n_steps_))
        o, q = np.array(res['ours']), np.array(res['sk'])
        r = o[:, 1].mean() / q[:, 1].mean()
        to, tq = np.median(o[:, 0]), np.median(q[:, 0])
        print(f"| {name} | {a.seeds} | {r:.4f} ({100 * (r - 1):+.2f}%) | {to:.3f} | {tq:.3f} | {to / tq:.2f} | "
              f"{np.median(o[:, 2]):.0f} / {np.median(q[:, 2]):.0f} |", flush=True)


if __name__ == '__main__':
    main()
