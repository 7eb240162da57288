import torch
from .distances import sq_dists

DEFAULT_MEMORY_BUDGET = 256 * 2**20   # bytes of scratch memory for one block of distances
CPU_MAX_CHUNK = 2048                  # on CPU, blocks that stay in cache beat bigger ones

def chunk_rows(n_rows, n_cols, itemsize=4, memory_budget=None, device='cpu'):
    "Rows per block so that a (rows, n_cols) block, and one temporary like it, fit in `memory_budget` bytes."
    budget = DEFAULT_MEMORY_BUDGET if memory_budget is None else int(memory_budget)
    if budget <= 0: raise ValueError(f"memory_budget must be > 0 bytes, got {memory_budget!r}")
    rows = max(1, budget // (2 * max(1, n_cols) * itemsize))
    if torch.device(device).type == 'cpu': rows = min(rows, CPU_MAX_CHUNK)
    return int(min(rows, max(1, n_rows)))

class Distance:
    """A dissimilarity for k-means. Subclass it and define `pairwise(x, c) -> (n, k)`;
    optionally override `centre(X, labels, k)` (the default is the mean of each cluster)."""
    name = 'custom'
    check_output = True   # validate what `pairwise` returns (built-in distances switch this off)

    def pairwise(self, x, c):
        "Dissimilarities of points `x` (n, D) to centres `c` (k, D), shape (n, k), finite and >= 0."
        raise NotImplementedError(f"{type(self).__name__} must define pairwise(x, c)")

    def nearest(self, x, c):
        "For each row of `x`: (distance to the nearest centre, its index)."
        d = self.pairwise(x, c)                                         # (n, k)
        if self.check_output: self._check(d, x, c)
        return d.min(1)

    def centre(self, X, labels, k):
        "New centres (k, D) from points and labels; rows of empty clusters are ignored."
        return cluster_means(X, labels, k)

    def _check(self, d, x, c):
        n, k = x.shape[0], c.shape[0]
        if not torch.is_tensor(d) or tuple(d.shape) != (n, k):
            shape = tuple(d.shape) if torch.is_tensor(d) else type(d).__name__
            raise ValueError(f"distance {self.name!r} returned {shape} for {n} points and {k} centres; expected ({n}, {k})")
        if not torch.isfinite(d).all(): raise ValueError(f"distance {self.name!r} returned NaN or inf values")
        if (d < 0).any(): raise ValueError(f"distance {self.name!r} returned negative values (min {d.min().item():.3g})")

    def __repr__(self): return f"{type(self).__name__}()"

def cluster_means(X, labels, k):
    "Mean of the points in each cluster, (k, D); empty clusters get 0 (callers handle them)."
    sums = torch.zeros(k, X.shape[1], dtype=X.dtype, device=X.device).index_add_(0, labels, X)   # (k, D)
    counts = torch.bincount(labels, minlength=k).to(X.dtype)                                       # (k,)
    return sums / counts.clamp_min(1)[:, None]

class SqEuclidean(Distance):
    "Squared Euclidean distance, the one k-means minimises. `nearest` skips the ||x||^2 term for the argmin."
    name, check_output = 'euclidean', False
    def pairwise(self, x, c): return sq_dists(x, c)
    def nearest(self, x, c):
        cc = (c * c).sum(1)                                    # (k,)
        v, i = torch.addmm(cc, x, c.T, alpha=-2).min(1)        # (n,): ||c||^2 - 2 x.c is enough to rank centres
        return (v + (x * x).sum(1)).clamp_min_(0), i

class FunctionDistance(Distance):
    "Wraps a plain function `fn(x, c) -> (n, k)` as a `Distance`."
    def __init__(self, fn, name=None):
        self.fn, self.name = fn, name or getattr(fn, '__name__', 'custom')
    def pairwise(self, x, c): return self.fn(x, c)
    def __repr__(self): return f"FunctionDistance({self.name})"

DISTANCES = {'euclidean': SqEuclidean, 'sqeuclidean': SqEuclidean}

def register_distance(name, cls):
    "Make `KMeans(distance=name)` build a `cls()`."
    DISTANCES[name] = cls

def get_distance(distance):
    "A `Distance` from a name, a `Distance` instance or class, or a function `(x, c) -> (n, k)`."
    if distance is None: return SqEuclidean()
    if isinstance(distance, str):
        if distance not in DISTANCES:
            raise ValueError(f"unknown distance {distance!r}; expected one of {sorted(DISTANCES)}, a Distance, or a function (x, c) -> (n, k)")
        return DISTANCES[distance]()
    if isinstance(distance, Distance): return distance
    if isinstance(distance, type) and issubclass(distance, Distance): return distance()
    if callable(distance): return FunctionDistance(distance)
    raise TypeError(f"distance must be a name, a Distance or a function (x, c) -> (n, k); got {type(distance).__name__}")

def assign(X, C, distance=None, *, chunk_size=None, memory_budget=None):
    """Nearest centre for every row of `X` (N, D) among `C` (k, D), block by block so the (N, k)
    distance matrix never exists. Returns `(labels (N,), dists (N,))`."""
    dist = get_distance(distance)
    N, k = X.shape[0], C.shape[0]
    rows = chunk_size or chunk_rows(N, k, X.element_size(), memory_budget, X.device)
    labels = torch.empty(N, dtype=torch.long, device=X.device)
    dists = torch.empty(N, dtype=X.dtype, device=X.device)
    for s in range(0, N, rows):
        dists[s:s + rows], labels[s:s + rows] = dist.nearest(X[s:s + rows], C)
    return labels, dists
