"""Mean shift, side by side in one process (the N=200,000 case in a child process, to measure its peak memory).

1. per-point loop vs batched `meanshift_step` on the course's 1,500 blob points (fastai's lesson 12 notebook's setup) (5 blurring steps, Gaussian, bandwidth 2.5);
2. 10,000 2-D points, same bandwidth and kernel (flat), ours vs `sklearn.cluster.MeanShift`: time, clusters, ARI;
3. the nearest-neighbour variant (n_neighbors=100) on 200,000 2-D points on CPU: time and peak RSS;
4. on a GPU, when there is one: N=100,000, full and nearest-neighbour.

Run: python benchmarks/bench_meanshift.py [--threads-200k 1]
"""
import argparse, json, math, os, subprocess, sys, time
import math
import torch
from sklearn.cluster import MeanShift as SkMeanShift
from sklearn.metrics import adjusted_rand_score as ari
from kmeans_lessons.bench import peak_memory_mb
from kmeans_lessons.data import sample_blobs
from kmeans_lessons.meanshift import MeanShift, meanshift_step

def gaussian(d, bw):
    "The lesson's Gaussian kernel of distances `d` with standard deviation `bw` (fastai's lesson 12)."
    return torch.exp(-0.5 * (d / bw) ** 2) / (bw * math.sqrt(2 * math.pi))

def loop_step(X, bw=2.5):
    "The lesson's fixed per-point loop: reads the old X, writes a new tensor."
    new = torch.empty_like(X)
    for i, x in enumerate(X):
        w = gaussian(((x - X) ** 2).sum(1).sqrt(), bw)             # (N,)
        new[i] = (w[:, None] * X).sum(0) / w.sum()
    return new

def run_steps(step, X, n=5):
    for _ in range(n): X = step(X)
    return X

def best_of(f, n):
    ts = []
    for _ in range(n):
        t = time.perf_counter(); r = f(); ts.append(time.perf_counter() - t)
    return min(ts), r

def many_clusters(n_clusters, per=200, seed=1):
    "Many small clusters at a fixed density: the case the nearest-neighbour variant is made for."
    return sample_blobs(n_clusters, per, seed=seed, box=10 * math.sqrt(n_clusters), var=1.0)[:2]

def child(n_clusters, threads):
    "Fit the nearest-neighbour variant on n_clusters * 200 points; print time, peak RSS and ARI as JSON."
    if threads: torch.set_num_threads(threads)
    X, y = many_clusters(n_clusters)
    rss0 = peak_memory_mb()
    t = time.perf_counter(); ms = MeanShift(1.0, n_neighbors=100).fit(X); dt = time.perf_counter() - t
    peak = peak_memory_mb()
    print(json.dumps(dict(N=len(X), time=dt, peak_mb=peak, before_mb=rss0, clusters=len(ms.cluster_centers_),
                          ari=ari(y, ms.labels_), n_iter=ms.n_iter_, threads=torch.get_num_threads())))

def main():
    p = argparse.ArgumentParser()
    p.add_argument('--threads-200k', type=int, default=1, help='torch threads for the 200k child (0: torch default)')
    p.add_argument('--child', type=int, default=0); p.add_argument('--threads', type=int, default=0)
    args = p.parse_args()
    if args.child: return child(args.child, args.threads)
    rows = []
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, cuda: {torch.cuda.is_available()}", flush=True)

    # 1. loop vs batched, 1,500 points
    data = sample_blobs(6, 250, seed=42)[0]
    t_loop, a = best_of(lambda: run_steps(loop_step, data), 1)
    t_bat, b = best_of(lambda: run_steps(lambda X: meanshift_step(X, X, 2.5), data), 5)
    assert (a - b).abs().max() < 1e-3
    rows += [('1,500 pts, 5 steps', 'per-point loop', t_loop, ''), ('1,500 pts, 5 steps', 'batched CPU', t_bat, f'{t_loop / t_bat:.0f}x faster than the loop')]
    t_fit, ms = best_of(lambda: MeanShift(2.5).fit(data), 3)
    rows.append(('1,500 pts', 'MeanShift(2.5).fit, to convergence', t_fit, f'{len(ms.cluster_centers_)} clusters, {ms.n_iter_} steps'))
    print(*rows[-3:], sep='\n', flush=True)

    # 2. 10,000 points vs scikit-learn, flat kernel, same bandwidth
    X, y = sample_blobs(6, 1667, seed=0, box=35, var=5.0)[:2]
    X, y = X[:10_000], y[:10_000]
    bw = 4.0
    t_ours, ours = best_of(lambda: MeanShift(bw, kernel='flat', merge_radius=1.0).fit(X), 1)
    t_sk, sk = best_of(lambda: SkMeanShift(bandwidth=bw).fit(X.numpy()), 1)
    rows += [('10,000 pts, flat, bw 4', 'ours', t_ours, f'{len(ours.cluster_centers_)} clusters, ARI vs truth {ari(y, ours.labels_):.4f}'),
             ('10,000 pts, flat, bw 4', 'sklearn MeanShift', t_sk, f'{len(sk.cluster_centers_)} clusters, ARI vs truth {ari(y, sk.labels_):.4f}, '
              f'ARI ours vs sklearn {ari(sk.labels_, ours.labels_):.4f}; ours {t_sk / t_ours:.1f}x faster')]
    print(*rows[-2:], sep='\n', flush=True)

    # 3. nearest-neighbour variant, 200,000 points, in a child process for its peak RSS
    out = subprocess.run([sys.executable, __file__, '--child', '1000', '--threads', str(args.threads_200k)],
                         capture_output=True, text=True, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    rows.append(('200,000 pts, CPU', f"n_neighbors=100 ({r['threads']} thread{'s' if r['threads'] > 1 else ''})", r['time'],
                 f"peak RSS {r['peak_mb']:.0f} MB (after imports and data {r['before_mb']:.0f} MB), {r['clusters']} clusters "
                 f"(1000 true), ARI {r['ari']:.3f}, {r['n_iter']} steps"))
    print(rows[-1], flush=True)

    # 4. GPU
    if torch.cuda.is_available():
        X, y = many_clusters(500)                                     # 100,000 points
        Xg = X.cuda()
        for name, kw in [('full', {}), ('n_neighbors=100', dict(n_neighbors=100))]:
            MeanShift(1.0, **kw).fit(Xg[:2000]); torch.cuda.synchronize()   # warm up
            t = time.perf_counter(); ms = MeanShift(1.0, **kw).fit(Xg); torch.cuda.synchronize(); dt = time.perf_counter() - t
            rows.append(('100,000 pts, GPU', name, dt, f'{len(ms.cluster_centers_)} clusters, ARI {ari(y, ms.labels_.cpu()):.3f}'))
    else: rows.append(('100,000 pts, GPU', 'full and n_neighbors=100', float('nan'), 'no GPU on this machine: not run'))

    print('\n' + f"{'case':24s} {'method':42s} {'time':>10s}  notes")
    for case, name, t, note in rows: print(f"{case:24s} {name:42s} {t:9.3f}s  {note}")

if __name__ == '__main__': main()
