"""One rank of a small distributed balanced k-means job, for tests/test_balanced_distributed.py:
`python bal_dist_worker.py SCENARIO RENDEZVOUS_FILE OUT_DIR` with RANK and WORLD_SIZE in the
environment. Each rank saves what it saw to OUT_DIR/rank{RANK}.pt."""
import datetime, os, sys, time
import numpy as np
import torch
import torch.distributed as dist
from kmeans_lessons.data import sample_blobs
from kmeans_lessons.balanced import BalancedKMeans

K, LO, HI = 6, 40, 60
SEEDS = (0, 1, 2)


def data(seed=0):
    "300 points in overlapping blobs of unequal sizes, float64, the same on every rank."
    X, y, _ = sample_blobs(K, 60, 3, box=5.0, var=2.0, seed=seed, dtype=torch.float64)
    keep = torch.cat([torch.arange(len(X))[y == j][:30 + 10 * j] for j in range(K)])   # 30 .. 80 a blob
    X, y = X[keep], y[keep]
    p = torch.randperm(len(X), generator=torch.Generator().manual_seed(seed))
    return X[p], y[p]


def cuts(N, W, kind):
    "Uneven shards: rank W-1 has fewer points than k ('empty': none)."
    sizes = {2: [N - 4, 4], 3: [N // 2, N - N // 2 - 3, 3]}[W]
    if kind == 'empty': sizes = sizes[:-2] + [sizes[-2] + sizes[-1], 0]   # a rank without rows
    return [sum(sizes[:r]) for r in range(W + 1)]


def shard(X, y, W, rank, kind):
    if kind == 'sorted': X = X[torch.argsort(y, stable=True)]           # each rank a few clusters
    c = cuts(len(X), W, kind)
    return X[c[rank]:c[rank + 1]]


def fit(Xr, **kw):
    km = BalancedKMeans(K, size_min=kw.pop('size_min', LO), size_max=kw.pop('size_max', HI),
                        random_state=kw.pop('random_state', 0), **kw)
    return km.fit(Xr, process_group=dist.group.WORLD)


def run_fits(rank, W, out):
    res = {}
    for kind in ('random', 'sorted'):
        for seed in SEEDS:
            X, y = data(seed)
            km = fit(shard(X, y, W, rank, kind), init=X[:K].clone())   # the one-process fit's start
            res[(kind, seed)] = dict(centres=km.cluster_centers_, labels=km.labels_,
                                     inertia=km.inertia_, n_iter=km.n_iter_)
    X, y = data(0)
    km = fit(shard(X, y, W, rank, 'empty'), init=X[:K].clone())
    res[('empty', 0)] = dict(centres=km.cluster_centers_, labels=km.labels_, inertia=km.inertia_,
                             n_iter=km.n_iter_)
    X, y = data(0)                                                       # a NumPy shard, equal sizes
    Xr = shard(X, y, W, rank, 'random').numpy()
    km = BalancedKMeans(K, size_min=len(X) // K, size_max=len(X) // K, random_state=0)
    km.fit(Xr, process_group=dist.group.WORLD)
    res['equal'] = dict(centres=km.cluster_centers_, labels=km.labels_, inertia=km.inertia_)
    res['big'] = [big(rank, W, seed) for seed in SEEDS] if W == 3 else []
    res['budget'] = budgets(rank, W)
    res['weighted'] = [weighted(rank, W, seed) for seed in SEEDS]
    # each rank's slice of one .npy file: a memmap, and the path itself (read block by block)
    if rank == 0: np.save(f'{out}/X.npy', X.numpy())
    dist.barrier()
    c = cuts(len(X), W, 'random')
    mm = np.load(f'{out}/X.npy', mmap_mode='r')[c[rank]:c[rank + 1]]
    for name, Xr in dict(memmap=mm, tensor=X[c[rank]:c[rank + 1]]).items():
        km = fit(Xr, init=X[:K].clone(), memory_budget=2000)
        res[name] = dict(centres=km.cluster_centers_, labels=km.labels_, inertia=km.inertia_)
    return res


def big(rank, W, seed):
    """3000 points, 10 clusters of 280 to 310: (this fit's inertia, one process's, the global
    sizes). Newton's warm-started steps drifted here once, with too few of them (inertia +16%)."""
    X, _, _ = sample_blobs(10, 300, 5, box=6.0, var=3.0, seed=seed, dtype=torch.float64)
    X = X[torch.randperm(len(X), generator=torch.Generator().manual_seed(seed))]
    c = [len(X) * r // W for r in range(W + 1)]
    make = lambda: BalancedKMeans(10, size_min=280, size_max=310, init=X[:10].clone())
    km = make().fit(X[c[rank]:c[rank + 1]], process_group=dist.group.WORLD)
    labels = [torch.zeros(c[r + 1] - c[r], dtype=torch.int64) for r in range(W)]
    dist.all_gather(labels, torch.as_tensor(km.labels_))
    return km.inertia_, make().fit(X).inertia_, torch.bincount(torch.cat(labels), minlength=10)


def weighted(rank, W, seed):
    """float32 rows with sample weights, k-means++ and n_init=2 over the ranks: this rank's fit, and the
    inertia of the same fit in one process."""
    X, y = data(seed)
    X = X.float()
    w = torch.rand(len(X), generator=torch.Generator().manual_seed(seed)) + 0.5     # (N,) float32
    c = cuts(len(X), W, 'random')
    make = lambda: BalancedKMeans(K, size_min=LO, size_max=HI, n_init=2, random_state=seed)
    km = make().fit(X[c[rank]:c[rank + 1]], sample_weight=w[c[rank]:c[rank + 1]],
                    process_group=dist.group.WORLD)
    return dict(labels=km.labels_, centres=km.cluster_centers_, inertia=km.inertia_,
                n_init=km._n_init, one=make().fit(X, sample_weight=w).inertia_)


def budgets(rank, W):
    """8000 points, 8 clusters of 900 to 1100, with a memory_budget that cuts each rank's costs into many
    blocks, and with none: (labels, centres, inertia) of each fit, which must be the same to the bit."""
    X, _, _ = sample_blobs(8, 1000, 4, box=6.0, var=3.0, seed=3, dtype=torch.float64)
    X = X[torch.randperm(len(X), generator=torch.Generator().manual_seed(3))]
    c = [len(X) * r // W for r in range(W + 1)]
    out = []
    for budget in (None, 3000):
        km = BalancedKMeans(8, size_min=900, size_max=1100, init=X[:8].clone(), memory_budget=budget)
        km.fit(X[c[rank]:c[rank + 1]], process_group=dist.group.WORLD)
        out.append((km.labels_, km.cluster_centers_, km.inertia_))
    return out


def failing_fit(Xr, rank, W):
    "The last rank fails in the middle of its E-step's rounding, at the 3rd E-step."
    from kmeans_lessons import balanced
    trim, calls = balanced.trim_overfull, [0]
    def boom(*a, **kw):
        calls[0] += 1
        if rank == W - 1 and calls[0] == 3: raise RuntimeError(f"boom on rank {rank}")
        return trim(*a, **kw)
    balanced.trim_overfull = boom
    try: return fit(Xr)
    finally: balanced.trim_overfull = trim


def run_errors(rank, W, out):
    X, y = data(0)
    Xr = shard(X, y, W, rank, 'random')
    Xnan = Xr.clone()
    if rank == W - 1: Xnan[0, 1] = float('nan')
    cases = dict(nan=lambda: fit(Xnan),
                 infeasible_min=lambda: fit(Xr, size_min=len(X) // K + 1, size_max=None),
                 infeasible_max=lambda: fit(Xr, size_min=None, size_max=len(X) // K - 1),
                 disagree=lambda: fit(Xr, size_min=LO + rank),
                 bad_param=lambda: fit(Xr, size_min=-1 if rank == 1 else LO),
                 raises=lambda: failing_fit(Xr, rank, W))
    res = {}
    for name, f in cases.items():
        t = time.perf_counter()
        try: f(); res[name] = None
        except Exception as e: res[name] = (type(e).__name__, str(e), time.perf_counter() - t)
    km = fit(Xr)                                                         # the group still works
    res['after'] = dict(labels=km.labels_, centres=km.cluster_centers_)
    return res


if __name__ == '__main__':
    scenario, rdv, out = sys.argv[1:4]
    rank, W = int(os.environ['RANK']), int(os.environ['WORLD_SIZE'])
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'file://{rdv}', rank=rank, world_size=W,
                            timeout=datetime.timedelta(seconds=60))
    res = dict(fits=run_fits, errors=run_errors)[scenario](rank, W, out)
    torch.save(res, f'{out}/rank{rank}.pt')
    dist.barrier()                                                  # every rank done before the teardown
    dist.destroy_process_group()
    # as in dist_worker.py: leave without the interpreter's teardown, where gloo's and OpenMP's threads can abort a
    # finished rank ('terminate called without an active exception'; seen once in CI on this worker)
    sys.stdout.flush(); sys.stderr.flush()
    os._exit(0)
