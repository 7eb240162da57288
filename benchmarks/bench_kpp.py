"""k-means++ alone: the engine's compiled steps (`pp_scores`, `pp_draw`) against its torch steps (lesson 04's code,
`engine.KERNEL = False`) and scikit-learn's `kmeans_plusplus`, on the same data, in one process, best of `--repeat`
runs. Run: python benchmarks/bench_kpp.py [--repeat 3]"""
import argparse, time
import numpy as np, torch
from sklearn.cluster import kmeans_plusplus
from sklearn.datasets import load_digits
from kmeans_lessons import engine
from kmeans_lessons.engine import kmeans_plusplus_rows, Rows
from kmeans_lessons.distances import get_distance

def best(f, repeat):
    f(0); ts = []
    for s in range(repeat):
        t = time.perf_counter(); f(s); ts.append(time.perf_counter() - t)
    return min(ts) * 1e3

def main(repeat):
    dist = get_distance('sqeuclidean')
    rng = np.random.default_rng(0)
    cases = [('digits', load_digits().data.astype(np.float32), 10)]
    cases += [(f'normal {n}x{D}', rng.standard_normal((n, D), dtype=np.float32), k)
              for n, D, k in [(10_000, 8, 10), (100_000, 8, 20), (100_000, 64, 20), (100_000, 128, 100),
                              (20_000, 2048, 10)]]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    print("| data | k | compiled ms | torch steps ms | scikit-learn ms | compiled / torch | compiled / scikit-learn |")
    print("|---|---|---|---|---|---|---|")
    for name, X, k in cases:
        T = torch.from_numpy(X)
        ours = lambda s: kmeans_plusplus_rows(Rows(T), k, torch.Generator().manual_seed(s), dist)
        engine.KERNEL = True; a = best(ours, repeat)
        engine.KERNEL = False; b = best(ours, repeat)
        engine.KERNEL = True
        c = best(lambda s: kmeans_plusplus(X, k, random_state=s), repeat)
        print(f"| {name} | {k} | {a:.1f} | {b:.1f} | {c:.1f} | {a / b:.2f} | {a / c:.2f} |")

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('--repeat', type=int, default=3)
    main(p.parse_args().repeat)
