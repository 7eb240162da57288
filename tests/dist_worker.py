"""One rank of a small distributed k-means job, for tests/test_distributed.py: `python dist_worker.py all|all+die
RENDEZVOUS_FILE OUT_DIR` with RANK and WORLD_SIZE in the environment. Each rank saves what it saw to
OUT_DIR/rank{RANK}.pt; the test compares that with one process's fit."""
import datetime, os, sys, time
import numpy as np
import torch
import torch.distributed as dist
from kmeans_lessons.data import sample_blobs
from kmeans_lessons import distributed
from kmeans_lessons.estimators import KMeans

K = 7
SIZES = {2: [[1395, 5], [600, 800]], 3: [[1100, 295, 5], [900, 500, 0]]}     # uneven; fewer points than k; none at all


def data():
    "1400 points in overlapping blobs, float64: Lloyd needs a dozen iterations; the same on every rank."
    X, _, _ = sample_blobs(K, 200, 4, box=6.0, var=4.0, seed=0, dtype=torch.float64)
    return X[torch.randperm(len(X), generator=torch.Generator().manual_seed(1))]


def distributed_fit(*args, **kwargs):
    "Every fit in this file is across all the ranks."
    return distributed.distributed_fit(*args, process_group=dist.group.WORLD, **kwargs)


def inits(X):
    C0 = X[:K].clone()
    C1 = C0.clone(); C1[2] = 50.0; C1[5] = -60.0                   # two centres no point is near: empty clusters
    return dict(explicit=C0, empty=C1)


def shard(X, sizes, rank):
    lo = sum(sizes[:rank])
    return X[lo:lo + sizes[rank]]


def failing(rank, W):
    calls = [0]
    def sqdist(x, c):
        calls[0] += 1
        if rank == W - 1 and calls[0] == 3: raise RuntimeError(f"boom on rank {rank}")
        return torch.cdist(x, c) ** 2
    return sqdist


def run_all(rank, W, out):
    X, res = data(), {}
    for j, sizes in enumerate(SIZES[W]):
        Xr = shard(X, sizes, rank)
        for name, C0 in inits(X).items():
            r = distributed_fit(Xr, K, init=C0)
            res[f'{name}/{j}'] = {k: r[k] for k in ('centres', 'labels', 'inertia', 'n_iter', 'counts')}
        r = distributed_fit(Xr, K, random_state=3)                         # distributed k-means++
        res[f'kmeans++/{j}'] = {k: r[k] for k in ('centres', 'labels', 'inertia', 'n_iter')}
        km = KMeans(K, random_state=3).fit(Xr, process_group=dist.group.WORLD)   # the estimator, in the group
        res[f'estimator/{j}'] = dict(centres=km.cluster_centers_, labels=km.labels_, inertia=km.inertia_,
                                     n_iter=km.n_iter_)
    # streamed: every rank memory-maps its own slice of one .npy file
    if rank == 0: np.save(f'{out}/X.npy', X.numpy())
    dist.barrier()
    sizes = SIZES[W][0]
    lo = sum(sizes[:rank])
    mm = np.load(f'{out}/X.npy', mmap_mode='r')[lo:lo + sizes[rank]]
    r = distributed_fit(mm, K, init=inits(X)['explicit'], block_bytes=3000)
    res['streamed'] = {k: r[k] for k in ('centres', 'labels', 'inertia', 'n_iter')}
    # bad input on one rank (or disagreement): the same error on every rank, and the group still works after
    Xr = shard(X, sizes, rank)
    Xnan = Xr.clone()
    if rank == 1: Xnan[3, 1] = float('nan')
    cases = dict(n_features=lambda: distributed_fit(Xr[:, :3] if rank == W - 1 else Xr, K),
                 n_clusters=lambda: distributed_fit(Xr, K - 1 if rank == 1 else K),
                 max_iter=lambda: distributed_fit(Xr, K, max_iter=10 + rank),
                 nan=lambda: distributed_fit(Xnan, K),
                 init=lambda: distributed_fit(Xr, K, init='forgy' if rank == 1 else 'k-means++'),
                 dtype=lambda: distributed_fit(Xr.float() if rank == 1 else Xr, K),      # X is float64
                 bad_type=lambda: distributed_fit(Xr if rank else 'not-a-file.txt', K),
                 raises=lambda: distributed_fit(Xr, K, distance=failing(rank, W), init='forgy'),
                 # the estimator's own checks, wrong on one rank only
                 sample_weight=lambda: KMeans(K).fit(Xr, sample_weight=None if rank else torch.ones(len(Xr)),
                                                     process_group=dist.group.WORLD),
                 bad_param=lambda: KMeans(K, max_iter=0 if rank == 1 else 300).fit(
                     Xr, process_group=dist.group.WORLD))
    for name, f in cases.items():
        t = time.perf_counter()
        try: f(); res[f'error/{name}'] = None
        except Exception as e: res[f'error/{name}'] = (type(e).__name__, str(e), time.perf_counter() - t)
    r = distributed_fit(Xr, K, init=inits(X)['explicit'])
    res['after_errors'] = {k: r[k] for k in ('centres', 'labels')}
    return res


def run_die(rank, W, out):
    "Rank 1 dies in the middle of the fit (os._exit: no exception, no goodbye); the others must not hang."
    X = data()
    def cb(i, C, inertia):
        if rank == 1 and i == 2: os._exit(3)
    t = time.perf_counter()
    try:
        distributed_fit(shard(X, SIZES[W][0], rank), K, init=inits(X)['explicit'], callback=cb)
        return {'error': None}
    except Exception as e: return {'error': (type(e).__name__, str(e)), 'seconds': time.perf_counter() - t}


def run_matrix(rank, W, out):
    "Every combination of tests/test_engine_matrix.py, this rank with its own slice of rows (and weights)."
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from test_engine_matrix import matrix_data, ALGORITHMS, DISTANCES, K as MK
    X, w, C0 = matrix_data()
    cut = [len(X) * r // W for r in range(W + 1)]
    part = slice(cut[rank], cut[rank + 1])
    res = {}
    for distance in DISTANCES:
        for weighted in (False, True):
            for algorithm in ALGORITHMS:
                km = KMeans(MK, init=C0, tol=0, algorithm=algorithm, distance=distance)
                try:
                    km.fit(X[part], sample_weight=w[part] if weighted else None, process_group=dist.group.WORLD)
                    res[(algorithm, distance, weighted)] = dict(labels=km.labels_, centres=km.cluster_centers_,
                                                                n_iter=km.n_iter_, inertia=km.inertia_,
                                                                algorithm=km.algorithm_)
                except ValueError as e: res[(algorithm, distance, weighted)] = dict(error=(type(e).__name__, str(e)))
    return res


def run_auto(rank, W, out):
    """'auto' on ranks whose clocks disagree. Every Lloyd pass is slowed alike (5 ms), and rank 1's probe of
    `own_dists` by 50 ms: by its own times alone rank 0 would start a Hamerly trial (Lloyd's pass over 60 times
    its probe) and rank 1 would not. The ranks average their times, so they choose alike."""
    from kmeans_lessons import bounds, engine
    bounds.choose_algorithm = lambda *a, **kw: 'hamerly'
    for name in ('block', 'block_sums', 'block_into'):
        f = getattr(engine.LloydStep, name)
        setattr(engine.LloydStep, name, lambda self, *a, f=f, **kw: (time.sleep(0.005), f(self, *a, **kw))[1])
    if rank == 1:
        slow = bounds.own_dists
        bounds.own_dists = lambda *a: (time.sleep(0.05), slow(*a))[1]
    X = data()
    km = KMeans(K, init=X[:K].clone(), tol=0, max_iter=30, algorithm='auto')
    km.fit(shard(X, [700, 700], rank), process_group=dist.group.WORLD)
    return dict(algorithm=km.algorithm_, labels=km.labels_, centres=km.cluster_centers_, n_iter=km.n_iter_)


if __name__ == '__main__':
    scenario, rdv, out = sys.argv[1:4]
    rank, W = int(os.environ['RANK']), int(os.environ['WORLD_SIZE'])
    dist.init_process_group('gloo', init_method=f'file://{rdv}', rank=rank, world_size=W,
                            timeout=datetime.timedelta(seconds=30))
    res = {'matrix': run_matrix, 'auto': run_auto}.get(scenario, run_all)(rank, W, out)
    torch.save(res, f'{out}/rank{rank}.pt')
    if scenario == 'all+die':                                       # last: the group does not survive it
        res['die'] = run_die(rank, W, out)
        torch.save(res, f'{out}/rank{rank}.pt')
    else:
        dist.barrier()                                              # every rank done before the teardown
        dist.destroy_process_group()
    # A rank that finished (its results saved) leaves without the interpreter's teardown: one in about five runs
    # under pytest, gloo's and OpenMP's threads aborted it there ('terminate called without an active exception').
    sys.stdout.flush(); sys.stderr.flush()
    os._exit(0)
