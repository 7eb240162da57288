"""Mini-batch k-means, scikit-learn's method, on a tensor, an array, a memmap or any iterable of batches."""

import inspect, math, numbers, os
import numpy as np
import torch
from kmeans_lessons.assignment import assign, SqEuclidean
from kmeans_lessons.core import INITS, NotFittedError, check_array, get_device
from kmeans_lessons.distributed import Rows, check_mean_distance


def _is_batches(X):
    "An iterable of batches (a DataLoader, a generator, a list of 2-D arrays), rather than one data set."
    if torch.is_tensor(X) or isinstance(X, (np.ndarray, str, os.PathLike)): return False
    if isinstance(X, (list, tuple)):
        return len(X) > 0 and (torch.is_tensor(X[0]) or isinstance(X[0], np.ndarray)) and np.ndim(X[0]) == 2
    return hasattr(X, '__iter__')


def _batch_tensor(b):
    "The points of one batch: a DataLoader over a TensorDataset yields `[x]` or `(x, y)`; take `x`."
    return b[0] if isinstance(b, (list, tuple)) and len(b) and np.ndim(b[0]) == 2 else b


class MiniBatchKMeans:
    """Mini-batch k-means (Sculley, 2010) as scikit-learn does it: each step assigns a random batch of
    `batch_size` points and moves each centre towards the mean of its new points with its own learning rate,
    (points of the batch) / (points it has ever had); centres whose count falls below `reassignment_ratio` x the
    largest are moved to random points of the batch; the run stops after `max_no_improvement` steps without a
    better smoothed batch inertia, when the centres move less than `tol` (relative to the data's variance, 0:
    off), or after `max_iter` passes over the data.

    `fit` takes a tensor, a NumPy array, a memmap or an `.npy` path (batches drawn at random, rows read as
    needed), or any iterable of batches, such as a `DataLoader` (passes over it in order, `max_iter` times when
    it can be iterated again). `partial_fit` takes one batch. Data are shifted by the mean of the first batch (or
    init sample), which keeps float32 distances exact far from the origin."""
    def __init__(self, n_clusters=8, *, init='k-means++', max_iter=100, batch_size=1024, tol=0.0,
                 max_no_improvement=10, init_size=None, n_init=1, reassignment_ratio=0.01, compute_labels=True,
                 seed=None, device=None, verbose=False, distance='euclidean', memory_budget=None):
        self.n_clusters, self.init, self.max_iter, self.batch_size, self.tol = n_clusters, init, max_iter, batch_size, tol
        self.max_no_improvement, self.init_size, self.n_init = max_no_improvement, init_size, n_init
        self.reassignment_ratio, self.compute_labels, self.seed = reassignment_ratio, compute_labels, seed
        self.device, self.verbose, self.distance, self.memory_budget = device, verbose, distance, memory_budget

    def __repr__(self):
        args = ', '.join(f"{k}={v!r}" for k, v in self.__dict__.items()
                         if not k.endswith('_') and not k.startswith('_') and k != 'n_clusters'
                         and not (isinstance(v, type(_DEFAULTS.get(k))) and v == _DEFAULTS.get(k)))
        return f"MiniBatchKMeans(n_clusters={self.n_clusters}{', ' if args else ''}{args})"

    # ------------------------------------------------------------ checks and set-up
    def _check_params(self):
        def pos_int(name, none=False):
            v = getattr(self, name)
            if none and v is None: return None
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
                raise ValueError(f"{name} must be an int >= 1{' or None' if none else ''}; got {v!r}")
            return int(v)
        k = pos_int('n_clusters'); pos_int('max_iter'); pos_int('batch_size'); pos_int('n_init')
        pos_int('init_size', none=True); pos_int('max_no_improvement', none=True)
        for name in ('tol', 'reassignment_ratio'):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not v >= 0:
                raise ValueError(f"{name} must be a real number >= 0; got {v!r}")
        if isinstance(self.init, str) and self.init not in INITS:
            raise ValueError(f"init must be one of {sorted(INITS)} or a (k, D) array; got {self.init!r}")
        self.distance_ = check_mean_distance(self.distance)
        self._dev = None if self.device is None else get_device(self.device)
        return k

    def _init_size(self, k, n_samples):
        "scikit-learn's rule: 3 batches' worth of points (at least 3 k), at most all of them."
        bs = min(self.batch_size, n_samples)
        size = self.init_size if self.init_size is not None and self.init_size >= k else max(3 * bs, 3 * k)
        return bs, min(size, n_samples)

    def _start(self, k, draws, n_samples, g):
        """Initial centres: `draws` are random samples of rows, the first a validation set, then one per init;
        as scikit-learn, keep the init with the lowest inertia on the validation set. The data's shift (the mean
        of the validation sample) is fixed from now on."""
        D = draws[0].shape[1]
        self._shift = draws[0].mean(0)                                 # (D,)
        if not isinstance(self.init, str):
            C = check_array(self.init, 'init', device=draws[0].device, dtype=draws[0].dtype)
            if tuple(C.shape) != (k, D):
                raise ValueError(f"init has shape {tuple(C.shape)}, but n_clusters={k} and X has {D} features: "
                                 f"expected ({k}, {D})")
            C = C - self._shift
        else:
            valid, best = draws[0] - self._shift, None
            for r, S in enumerate(draws[1:]):
                C = INITS[self.init](S - self._shift, k, g, self.distance_)
                inertia = float(assign(valid, C, self.distance_)[1].sum())
                if self.verbose: print(f"init {r + 1}/{len(draws) - 1}: inertia {inertia:.6g} on {len(valid)} points")
                if best is None or inertia < best[0]: best = (inertia, C)
            C = best[1]
        self._C, self._counts = C, torch.zeros(k, dtype=torch.float64, device=C.device)
        self._batch_size = min(self.batch_size, n_samples)
        self._n_since_reassign, self._tol = 0, 0.0
        self._ewa, self._ewa_min, self._no_improvement = None, None, 0
        self.n_features_in_, self.n_steps_, self._g = D, 0, g

    # ------------------------------------------------------------ scikit-learn's step, reassignment and stopping
    def _random_reassign(self):
        "Every 10 k points seen, or whenever a centre has never had a point: try reassigning small clusters."
        self._n_since_reassign += self._batch_size
        if bool((self._counts == 0).any()) or self._n_since_reassign >= 10 * self.n_clusters:
            self._n_since_reassign = 0
            return True
        return False

    def _step(self, x, g, reassign):
        """One mini-batch step on centred points `x` (b, D): assign, move each centre by its own learning rate,
        reassign small clusters. Returns the batch's inertia before the move."""
        C, counts = self._C, self._counts
        K = C.shape[0]
        labels, d = assign(x, C, self.distance_, memory_budget=self.memory_budget)        # (b,), (b,)
        if not bool(torch.isfinite(d).all()): raise ValueError("a batch contains NaN or inf values")
        n = torch.bincount(labels, minlength=K).to(torch.float64)                          # (K,) new points
        sums = torch.zeros(K, x.shape[1], dtype=torch.float64, device=x.device).index_add_(0, labels, x.double())
        total = counts + n                                                                 # (K,)
        hit = n > 0
        # centre <- (centre * old count + sum of new points) / new count: learning rate n / total
        new = (C.double() * counts[:, None] + sums) / total.clamp_min(1)[:, None]
        C = torch.where(hit[:, None], new, C.double()).to(C.dtype)
        counts = total
        if reassign and self.reassignment_ratio > 0:
            small = counts < self.reassignment_ratio * counts.max()
            if small.sum() > 0.5 * len(x):                               # at most half the batch becomes centres
                small[torch.argsort(counts, stable=True)[int(0.5 * len(x)):]] = False
            m = int(small.sum())
            if m:
                pick = torch.randperm(len(x), generator=g)[:m].to(x.device)
                C = C.clone(); C[small] = x[pick]
                if self.verbose: print(f"[MiniBatchKMeans] Reassigning {m} cluster centers.")
            if bool((~small).any()): counts[small] = counts[~small].min()   # not too small: no instant repeat
        self._C, self._counts = C, counts
        return float(d.sum(dtype=torch.float64))

    def _converged(self, step, n_steps, n_samples, moved, batch_inertia):
        "scikit-learn's early stopping: centre movement <= tol, or no better smoothed inertia for a while."
        batch_inertia /= self._batch_size
        step += 1
        if step == 1:                                                  # the first batch measures the init
            if self.verbose: print(f"Minibatch step {step}/{n_steps}: mean batch inertia: {batch_inertia}")
            return False
        if self._ewa is None: self._ewa = batch_inertia
        else:
            alpha = min(1.0, self._batch_size * 2.0 / (n_samples + 1))
            self._ewa = self._ewa * (1 - alpha) + batch_inertia * alpha
        if self.verbose:
            print(f"Minibatch step {step}/{n_steps}: mean batch inertia: {batch_inertia}, ewa inertia: {self._ewa}")
        if self._tol > 0 and moved <= self._tol:
            if self.verbose: print(f"Converged (small centers change) at step {step}/{n_steps}")
            return True
        if self._ewa_min is None or self._ewa < self._ewa_min:
            self._no_improvement, self._ewa_min = 0, self._ewa
        else: self._no_improvement += 1
        if self.max_no_improvement is not None and self._no_improvement >= self.max_no_improvement:
            if self.verbose: print(f"Converged (lack of improvement in inertia) at step {step}/{n_steps}")
            return True
        return False

    def _finish(self):
        self.cluster_centers_ = self._C + self._shift                 # (k, D) back where the data are

    # ------------------------------------------------------------ public API
    def _draws(self, X0, size, g):
        "Samples of `size` rows of `X0` (with replacement, as scikit-learn; all of `X0` when it is that small)."
        n = 1 + (self.n_init if isinstance(self.init, str) else 0)
        if size >= len(X0): return [X0] * n
        return [X0[torch.randint(len(X0), (size,), generator=g).to(X0.device)] for _ in range(n)]

    def _generator(self):
        g = torch.Generator()
        if self.seed is None: g.seed()
        else: g.manual_seed(self.seed)
        return g

    def fit(self, X, y=None):
        "Cluster `X`: a tensor, array, memmap or `.npy` path (random batches), or an iterable of batches."
        k, g = self._check_params(), self._generator()
        if _is_batches(X): return self._fit_batches(X, k, g)
        rows = Rows(X, device=self._dev)
        N = rows.n
        if N < k: raise ValueError(f"n_samples={N} should be >= n_clusters={k}")
        bs, size = self._init_size(k, N)
        draws = [rows.take(torch.randint(N, (size,), generator=g).sort().values)
                 for _ in range(1 + (self.n_init if isinstance(self.init, str) else 0))]
        if not all(bool(torch.isfinite(d).all()) for d in draws): raise ValueError("X contains NaN or inf values")
        self._start(k, draws, N, g)
        if self.tol:
            from kmeans_lessons.distributed import moments
            n, _, m2 = moments(rows)                                   # a pass over the data for the variance
            self._tol = float((m2 / n).mean()) * self.tol
        n_steps = (self.max_iter * N) // bs
        for i in range(n_steps):
            x = rows.take(torch.randint(N, (bs,), generator=g).sort().values, self._shift)   # (bs, D)
            C = self._C
            inertia = self._step(x, g, self._random_reassign())
            moved = float(((self._C - C) ** 2).sum()) if self._tol > 0 else 0.0
            if self._converged(i, n_steps, N, moved, inertia): break
        self.n_steps_, self.n_iter_ = i + 1, math.ceil((i + 1) * bs / N)
        self._finish()
        if self.compute_labels: self.labels_, self.inertia_ = self._labels_inertia(rows)
        else: self.inertia_ = self._ewa * N if self._ewa is not None else None
        return self

    def _fit_batches(self, batches, k, g):
        """Passes over an iterable of batches, in its order: the first batches (enough for `init_size` points)
        initialise, then every batch is a step. `max_iter` passes if it can be iterated again, else one."""
        again = iter(batches) is not batches                           # a DataLoader or a list, not a generator
        ds = getattr(batches, 'dataset', None)
        n_total = len(ds) if ds is not None and hasattr(ds, '__len__') else None
        pending, seen, i, stop, started = [], 0, 0, False, False

        def start(pool):
            n = sum(len(p) for p in pool)
            if n < k: raise ValueError(f"the batches hold {n} points; n_clusters={k} needs at least {k}")
            X0 = torch.cat(pool)                                       # (n, D)
            self._start(k, self._draws(X0, self._init_size(k, n_total or n)[1], g), n_total or n, g)

        for epoch in range(self.max_iter if again else 1):
            for b in batches:
                x = check_array(_batch_tensor(b), 'batch', device=self._dev)
                if not started:
                    pending.append(x)
                    if sum(len(p) for p in pending) < max(k, self._init_size(k, 10**18)[1]): continue
                    start(pending)
                    started, todo, pending = True, pending, []
                else: todo = [x]
                for x in todo:
                    if x.shape[1] != self.n_features_in_:
                        raise ValueError(f"a batch has {x.shape[1]} features; the first had {self.n_features_in_}")
                    seen, self._batch_size = seen + len(x), len(x)
                    inertia = self._step(x.to(self._C.dtype) - self._shift, g, self._random_reassign())
                    stop = self._converged(i, '?', n_total or seen, 0.0, inertia)
                    i += 1
                    if stop: break
                if stop: break
            if not started:                                            # one pass held fewer points: use them all
                if not pending: raise ValueError("the iterable of batches is empty")
                start(pending)
                started = True
                for x in pending:
                    self._batch_size = len(x)
                    self._step(x.to(self._C.dtype) - self._shift, g, self._random_reassign())
                    i += 1
                    seen += len(x)
                pending = []
            if stop: break
            n_total = n_total or seen                                  # after one pass, the data's size is known
        self.n_steps_, self.n_iter_ = i, epoch + 1
        self._finish()
        self.labels_ = None                                            # batches come in any order: no labels
        if self.compute_labels and again:
            self.inertia_ = -sum(self.score(_batch_tensor(b)) for b in batches)
        else: self.inertia_ = self._ewa * (n_total or seen) if self._ewa is not None else None
        return self

    def partial_fit(self, X, y=None):
        "One mini-batch step on the batch `X` (n, D); the first call initialises the centres on it."
        if not hasattr(self, '_C'):
            k = self._check_params()
            x = check_array(X, device=self._dev)
            if len(x) < k: raise ValueError(f"the first batch has {len(x)} points; n_clusters={k} needs at least {k}")
            g = self._generator()
            self._start(k, self._draws(x, self._init_size(k, len(x))[1], g), len(x), g)
        else:
            x = check_array(X, device=self._C.device, dtype=self._C.dtype)
            if x.shape[1] != self.n_features_in_:
                raise ValueError(f"X has {x.shape[1]} features, but MiniBatchKMeans was fitted with {self.n_features_in_}")
        xc = x.to(self._C.dtype) - self._shift
        self._step(xc, self._g, self._random_reassign())
        self.n_steps_ += 1
        self._finish()
        if self.compute_labels:
            labels, d = assign(xc, self._C, self.distance_, memory_budget=self.memory_budget)
            self.labels_, self.inertia_ = labels, float(d.sum(dtype=torch.float64))
        return self

    def _labels_inertia(self, rows):
        labels, inertia = rows.labels_buffer(self.n_clusters), 0.0
        for s, x in rows.blocks(self._shift):
            lb, d = assign(x, self._C, self.distance_, memory_budget=self.memory_budget)
            if not bool(torch.isfinite(d).all()): raise ValueError(f"X contains NaN or inf values (rows {s}..)")
            labels[s:s + len(x)] = lb.to(labels.device, labels.dtype)
            inertia += float(d.sum(dtype=torch.float64))
        return labels, inertia

    def _check_fitted(self, X):
        if not hasattr(self, 'cluster_centers_'):
            raise NotFittedError("this MiniBatchKMeans is not fitted yet: call fit or partial_fit first")
        rows = Rows(X, device=self._C.device)
        if rows.d != self.n_features_in_:
            raise ValueError(f"X has {rows.d} features, but MiniBatchKMeans was fitted with {self.n_features_in_} features")
        return rows

    def predict(self, X):
        "Index of the nearest centre for every row of `X` (a tensor, array, memmap or `.npy` path)."
        return self._labels_inertia(self._check_fitted(X))[0]

    def score(self, X, y=None):
        "Minus the inertia of `X` with respect to the centres (higher is better)."
        return -self._labels_inertia(self._check_fitted(X))[1]

    def transform(self, X):
        "Euclidean distances (N, k) from every row of `X` to every centre."
        rows = self._check_fitted(X)
        root = isinstance(self.distance_, SqEuclidean)
        parts = [self.distance_.pairwise(x, self._C) for _, x in rows.blocks(self._shift)]     # (b, k) each
        d = torch.cat(parts) if parts else torch.zeros(0, self.n_clusters, device=self._C.device)
        return d.sqrt() if root else d

    def fit_predict(self, X, y=None):
        self.fit(X)
        return self.labels_ if self.labels_ is not None else self.predict(X)

    def fit_transform(self, X, y=None): return self.fit(X).transform(X)


_DEFAULTS = {k: v.default for k, v in inspect.signature(MiniBatchKMeans.__init__).parameters.items() if k != 'self'}
