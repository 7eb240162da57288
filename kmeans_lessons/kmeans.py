import math, numbers, time, warnings
import numpy as np
import torch
from .assign import assign, get_distance, SqEuclidean
from .update import update_centroids

class ConvergenceWarning(UserWarning):
    "K-means found fewer distinct clusters than asked for."

class NotFittedError(ValueError, AttributeError):
    "An estimator was used before `fit`."

def get_device(device=None):
    "`device` as a `torch.device`; 'auto' picks cuda, then mps, then cpu."
    if device is None or device == 'auto':
        if torch.cuda.is_available(): return torch.device('cuda')
        mps = getattr(torch.backends, 'mps', None)
        if mps is not None and mps.is_available(): return torch.device('mps')
        return torch.device('cpu')
    return torch.device(device)

def check_array(X, name='X', *, device=None, dtype=None):
    """`X` as a 2-D, finite, floating-point tensor, never modifying the caller's data.
    Takes a tensor (any device), a NumPy array or a nested list of real numbers."""
    if torch.is_tensor(X): t = X.detach()
    else:
        try: a = np.asarray(X)
        except Exception as e: raise TypeError(f"{name} must be a tensor, NumPy array or nested list of numbers; got {type(X).__name__}") from e
        if a.dtype == object or a.dtype.kind in 'USV':
            raise TypeError(f"{name} must hold real numbers; got a NumPy array of dtype {a.dtype} (ragged or non-numeric)")
        if a.dtype.kind == 'c': raise TypeError(f"{name} must be real; got complex dtype {a.dtype}")
        if not a.flags.writeable: a = a.copy()                # torch would warn about read-only memory
        t = torch.from_numpy(a) if a.dtype.kind in 'fiub' else None
        if t is None: raise TypeError(f"{name} must hold real numbers; got dtype {a.dtype}")
    if t.is_complex(): raise TypeError(f"{name} must be real; got complex dtype {t.dtype}")
    if t.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_features); got {t.ndim}-D with shape {tuple(t.shape)}"
                         + (". Reshape a single feature with X.reshape(-1, 1)." if t.ndim == 1 else ""))
    if t.shape[0] == 0 or t.shape[1] == 0: raise ValueError(f"{name} is empty: shape {tuple(t.shape)}")
    if dtype is None:
        dtype = t.dtype if t.dtype in (torch.float32, torch.float64) else torch.get_default_dtype()
    if device is not None: t = t.to(device)
    t = t.to(dtype)
    if not bool(torch.isfinite(t).all()):
        bad = (~torch.isfinite(t)).sum().item()
        raise ValueError(f"{name} contains NaN or inf ({bad} value{'s' if bad > 1 else ''}); remove or impute them first")
    return t

def _check_int(v, name, lo=1):
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise TypeError(f"{name} must be an int; got {type(v).__name__} {v!r}")
    if v < lo: raise ValueError(f"{name} must be >= {lo}; got {v}")
    return int(v)

def init_forgy(X, k, generator=None, distance=None):
    "Forgy: k distinct data points, drawn without replacement."
    idx = torch.randperm(X.shape[0], generator=generator)[:k].to(X.device)   # (k,)
    return X[idx].clone()

def init_random_partition(X, k, generator=None, distance=None):
    "Random partition: a random label for every point (each cluster gets at least one); centres are the means."
    N = X.shape[0]
    labels = torch.randint(k, (N,), generator=generator)                    # (N,)
    labels[torch.randperm(N, generator=generator)[:k]] = torch.arange(k)    # no cluster starts empty
    return get_distance(distance).centre(X, labels.to(X.device), k)

def init_kmeans_plusplus(X, k, generator=None, distance=None, n_local_trials=None):
    """Greedy k-means++: each new centre is the best of `2 + floor(ln k)` candidates drawn with
    probability proportional to the distance to the nearest centre chosen so far."""
    dist = get_distance(distance)
    N = X.shape[0]
    L = n_local_trials or 2 + int(math.log(k))
    def to_cands(idx):                                                       # (N, len(idx))
        d = dist.pairwise(X, X[idx])
        if dist.check_output: dist._check(d, X, X[idx])
        return d
    centers = torch.empty(k, X.shape[1], dtype=X.dtype, device=X.device)   # (k, D)
    first = torch.randint(N, (1,), generator=generator).to(X.device)
    centers[0] = X[first[0]]
    closest = to_cands(first)[:, 0]                                          # (N,) distance to nearest centre
    pot = closest.sum(dtype=torch.float64)
    for c in range(1, k):
        r = torch.rand(L, generator=generator, dtype=torch.float64).to(X.device) * pot   # (L,)
        cum = torch.cumsum(closest, 0, dtype=torch.float64)                 # (N,)
        cand = torch.searchsorted(cum, r).clamp_max_(N - 1)                 # (L,)
        d = torch.minimum(to_cands(cand), closest[:, None])                 # (N, L)
        pots = d.sum(0, dtype=torch.float64)                                # (L,)
        best = pots.argmin()
        pot, closest = pots[best], d[:, best]
        centers[c] = X[cand[best]]
    return centers

INITS = {'k-means++': init_kmeans_plusplus, 'forgy': init_forgy, 'random-partition': init_random_partition}

def lloyd(X, C, distance=None, *, max_iter=300, tol=0.0, verbose=False, chunk_size=None, memory_budget=None,
          keep_history=True):
    """Lloyd's iterations from centres `C`, stopping as scikit-learn does: when the labels stop changing,
    when the total squared centre shift is <= `tol` (absolute), or after `max_iter` iterations.
    Returns a dict: centres, labels, inertia, n_iter, history (centres per iteration), inertias."""
    dist = get_distance(distance)
    kw = dict(chunk_size=chunk_size, memory_budget=memory_budget)
    history, inertias, labels_old = [C], [], None
    for i in range(max_iter):
        labels, d = assign(X, C, dist, **kw)                       # E-step: (N,), (N,)
        inertias.append(d.sum())
        C_new = update_centroids(X, labels, C, d, dist)            # M-step: (k, D)
        shift = ((C_new - C) ** 2).sum()
        C = C_new
        if keep_history: history.append(C)
        if verbose: print(f"iteration {i + 1:4d}  inertia {inertias[-1].item():.6g}  centre shift {shift.item():.3g}")
        if labels_old is not None and torch.equal(labels, labels_old): break   # strict convergence
        if shift <= tol: break
        labels_old = labels
    labels, d = assign(X, C, dist, **kw)                           # labels that match the final centres
    inertias.append(d.sum())
    return dict(centres=C, labels=labels, inertia=inertias[-1], n_iter=i + 1,
                history=history if keep_history else [C], inertias=torch.stack(inertias))

class KMeans:
    """K-means clustering (Lloyd's algorithm) in PyTorch, with scikit-learn's API.

    `X` may be a tensor on any device, a NumPy array or a nested list; results are tensors on the
    device the work ran on (the data's, unless `device` says otherwise)."""
    def __init__(self, n_clusters=8, *, init='k-means++', n_init=1, max_iter=300, tol=1e-4, seed=None,
                 device=None, verbose=False, distance='euclidean', memory_budget=None, keep_history=True):
        self.n_clusters, self.init, self.n_init, self.max_iter, self.tol = n_clusters, init, n_init, max_iter, tol
        self.seed, self.device, self.verbose, self.distance = seed, device, verbose, distance
        self.memory_budget, self.keep_history = memory_budget, keep_history

    def __repr__(self):
        args = ', '.join(f"{k}={v!r}" for k, v in self.__dict__.items()
                         if not k.endswith('_') and k != 'n_clusters' and v != _DEFAULTS.get(k))
        return f"KMeans(n_clusters={self.n_clusters}{', ' if args else ''}{args})"

    def _check_params(self, X):
        k = _check_int(self.n_clusters, 'n_clusters')
        _check_int(self.n_init, 'n_init'); _check_int(self.max_iter, 'max_iter')
        if isinstance(self.tol, bool) or not isinstance(self.tol, numbers.Real) or not self.tol >= 0:
            raise ValueError(f"tol must be a real number >= 0; got {self.tol!r}")
        if self.seed is not None: _check_int(self.seed, 'seed', lo=0)
        if X.shape[0] < k: raise ValueError(f"n_samples={X.shape[0]} should be >= n_clusters={k}")
        init = self.init
        if isinstance(init, str):
            if init not in INITS: raise ValueError(f"init must be one of {sorted(INITS)} or a (k, D) tensor; got {init!r}")
        else:
            init = check_array(init, 'init', device=X.device, dtype=X.dtype)
            if tuple(init.shape) != (k, X.shape[1]):
                raise ValueError(f"init has shape {tuple(init.shape)}, but n_clusters={k} and X has {X.shape[1]} features: expected ({k}, {X.shape[1]})")
            if self.n_init != 1:
                warnings.warn(f"an explicit init gives the same result every run: n_init={self.n_init} was set to 1", RuntimeWarning)
        return k, init

    def fit(self, X, y=None):
        "Cluster `X` (N, D). Returns self."
        X = check_array(X, device=None if self.device is None else get_device(self.device))
        k, init = self._check_params(X)
        dist = get_distance(self.distance)
        g = torch.Generator()
        if self.seed is None: g.seed()
        else: g.manual_seed(self.seed)
        tol = float(X.var(0, unbiased=False).mean()) * self.tol if self.tol else 0.0
        best = None
        for _ in range(1 if torch.is_tensor(init) else self.n_init):
            C0 = init.clone() if torch.is_tensor(init) else INITS[init](X, k, g, dist)
            res = lloyd(X, C0, dist, max_iter=self.max_iter, tol=tol, verbose=self.verbose,
                        memory_budget=self.memory_budget, keep_history=self.keep_history)
            if best is None or res['inertia'] < best['inertia']: best = res
        self.cluster_centers_, self.labels_ = best['centres'], best['labels']
        self.inertia_, self.n_iter_ = float(best['inertia']), best['n_iter']
        self.history_, self.inertia_history_ = best['history'], best['inertias'].tolist()
        self.n_features_in_, self.distance_ = X.shape[1], dist
        n_distinct = int(torch.unique(self.labels_).numel())
        if n_distinct < k:
            warnings.warn(f"found {n_distinct} distinct clusters, fewer than n_clusters={k}: "
                          "X probably has fewer than n_clusters distinct points", ConvergenceWarning)
        return self

    def _check_fitted(self, X):
        if not hasattr(self, 'cluster_centers_'):
            raise NotFittedError("this KMeans is not fitted yet: call fit(X) before predict, transform or score")
        C = self.cluster_centers_
        dev_in = X.device if torch.is_tensor(X) else torch.device('cpu')
        X = check_array(X, device=C.device, dtype=C.dtype)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, but KMeans was fitted with {self.n_features_in_} features")
        return X, C, dev_in

    def predict(self, X):
        "Index of the nearest centre for every row of `X`."
        X, C, dev = self._check_fitted(X)
        return assign(X, C, self.distance_, memory_budget=self.memory_budget)[0].to(dev)

    def fit_predict(self, X, y=None): return self.fit(X).labels_

    def transform(self, X):
        "Distances (N, k) from every row of `X` to every centre (Euclidean, not squared, for 'euclidean')."
        X, C, dev = self._check_fitted(X)
        d = self.distance_.pairwise(X, C)
        return (d.sqrt() if isinstance(self.distance_, SqEuclidean) else d).to(dev)

    def fit_transform(self, X, y=None): return self.fit(X).transform(X)

    def score(self, X, y=None):
        "Minus the inertia of `X` with respect to the fitted centres (higher is better)."
        X, C, _ = self._check_fitted(X)
        return -float(assign(X, C, self.distance_, memory_budget=self.memory_budget)[1].sum())

_DEFAULTS = {k: v.default for k, v in __import__('inspect').signature(KMeans.__init__).parameters.items() if k != 'self'}

def kmeans(X, k, **kwargs):
    "Functional k-means: `(centroids (k, D), labels (N,))`. Keyword arguments go to `KMeans`."
    km = KMeans(k, **kwargs).fit(X)
    return km.cluster_centers_, km.labels_
