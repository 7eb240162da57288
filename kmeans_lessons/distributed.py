"""Past one machine and past its memory: k-means on `torch.distributed` and out of core, by sharing sums and counts."""

import builtins, ctypes, math, numbers, os, sys, time, zlib
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
import numpy as np
import torch
import torch.distributed as dist
from kmeans_lessons.assignment import assign, get_distance, Distance, SqEuclidean
from kmeans_lessons.core import INITS, check_array, get_device

# ---------------------------------------------------------------- Comm

MSG_BYTES = 2000   # an error message sent to the other ranks is cut to this many bytes

def _peer_error(rank, size, text):
    "The exception a rank raises for another rank's failure: the same built-in type when there is one."
    name = text.split(':', 1)[0]
    cls = getattr(builtins, name, None)
    msg = f"rank {rank} of {size} failed: {text}"
    if isinstance(cls, type) and issubclass(cls, Exception):
        try: return cls(msg)
        except Exception: pass
    return RuntimeError(msg)

class Comm:
    """This process's view of a process group. Every collective carries one more number, this rank's failure
    flag: an exception raised inside `with comm.local():` is held until the next collective, where every rank
    learns of it and raises, the failed rank its own exception and the others one with its message.
    Without torch.distributed (or with one rank) the collectives do nothing and errors raise at once."""
    def __init__(self, process_group=None):
        on = dist.is_available() and dist.is_initialized()
        if process_group is not None and not on:
            raise ValueError("process_group was given but torch.distributed is not initialised: "
                             "call torch.distributed.init_process_group first")
        self.group = process_group
        self.rank = dist.get_rank(process_group) if on else 0
        self.size = dist.get_world_size(process_group) if on else 1
        if self.rank < 0: raise ValueError("this process is not a member of process_group")
        nccl = on and dist.get_backend(process_group) == 'nccl'
        self.device = torch.device('cuda', torch.cuda.current_device()) if nccl else torch.device('cpu')
        self.failure = None

    @contextmanager
    def local(self):
        "Local work: with several ranks, an exception is held until the next collective."
        if self.size == 1:
            yield
            return
        try: yield
        except Exception as e:
            if self.failure is None: self.failure = e

    def sum(self, t):
        "`t` summed over the ranks, in float64 (exact for counts), the same on every rank."
        t64 = t.detach().to(torch.float64)
        if self.size == 1: return t64
        flag = t64.new_tensor([float(self.failure is not None)])
        buf = torch.cat([t64.reshape(-1), flag]).to(self.device)         # (numel + 1,)
        dist.all_reduce(buf, group=self.group)
        if buf[-1] > 0: self._raise()
        return buf[:-1].view(t.shape).to(t.device)

    def gather(self, t):
        "Every rank's `t` in rank order, (size, *t.shape) float64, the same on every rank."
        buf = torch.zeros((self.size,) + tuple(t.shape), dtype=torch.float64, device=t.device)
        buf[self.rank] = t
        return self.sum(buf)

    def _raise(self):
        e = self.failure
        msg = b'' if e is None else f"{type(e).__name__}: {e}".encode()[:MSG_BYTES]
        buf = torch.zeros(self.size, MSG_BYTES + 1, dtype=torch.float64)
        buf[self.rank, 0] = len(msg)
        if msg: buf[self.rank, 1:len(msg) + 1] = torch.tensor(list(msg), dtype=torch.float64)
        buf = buf.to(self.device)
        dist.all_reduce(buf, group=self.group)                           # everyone's message, (size, 1 + bytes)
        if e is not None: raise e
        r = int((buf[:, 0] > 0).nonzero()[0])                           # the first rank that failed
        text = bytes(buf[r, 1:int(buf[r, 0]) + 1].to(torch.uint8).tolist()).decode('utf-8', 'replace')
        raise _peer_error(r, self.size, text)

    def print(self, *args):
        "Print on rank 0 only."
        if self.rank == 0: print(*args, flush=True)

# ---------------------------------------------------------------- Rows

BLOCK_BYTES = 16 * 2**20     # streamed data are read in blocks of about this many bytes

try:
    _libc = ctypes.CDLL(None, use_errno=True)
    _libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
except (OSError, AttributeError, TypeError): _libc = None
_MADV_DONTNEED, _PAGE = 4, os.sysconf('SC_PAGE_SIZE') if hasattr(os, 'sysconf') else 4096

def _byte_bounds(a):
    f = getattr(getattr(np.lib, 'array_utils', np), 'byte_bounds', None) or np.byte_bounds
    return f(a)

def release_pages(a):
    """Hand the pages of the memmap `a` back to the kernel. A file's pages that a process has read stay mapped
    and count in its resident memory (RSS) until the kernel needs them: streaming a file bigger than RAM would
    otherwise look like holding all of it. The data stay in the page cache (and on disk); nothing is lost."""
    if _libc is None or not isinstance(a, np.memmap) or a.mode not in ('r', 'r+', 'w+') or a.size == 0: return
    lo, hi = _byte_bounds(a)
    lo -= lo % _PAGE                                                   # madvise wants a page-aligned start
    _libc.madvise(lo, hi - lo, _MADV_DONTNEED)

def open_npy(path, name='X'):
    "Memory-map the `.npy` file `path` read-only (nothing is read yet), with a clear error if it can't be."
    p = Path(path)
    if p.suffix.lower() != '.npy': raise ValueError(f"{name} must be a .npy file; got {str(p)!r}")
    if not p.is_file(): raise ValueError(f"{name}: file not found: {str(p)!r}")
    try: return np.load(p, mmap_mode='r', allow_pickle=False)
    except Exception as e: raise ValueError(f"{name}: {p.name} is not a readable .npy array ({e})") from None

def _label_dtype(k):
    "The smallest integer type that holds the labels 0..k-1."
    return torch.uint8 if k <= 256 else torch.int16 if k <= 2**15 else torch.int32

TAKE_ROWS = 1024   # scattered rows are read from a memmap this many at a time, then their pages handed back

class Rows:
    """The local data, read block by block: a tensor, a NumPy array or memmap, or the path of an `.npy` file
    (memory-mapped, never loaded). Memmaps (and read-only arrays) are *streamed*: each block is copied into one
    reused buffer, in the work dtype, and its file pages handed back, so memory holds one block at a time.
    Zero rows are allowed (a rank may have none); finiteness is checked in the first pass (`moments`)."""
    def __init__(self, X, name='X', *, device=None, block_bytes=None):
        if isinstance(X, (str, os.PathLike)): X = open_npy(X, name)
        elif not torch.is_tensor(X) and not isinstance(X, np.ndarray):
            X = check_array(X, name)                                   # a nested list: validated and copied
        kind = 'memmap' if isinstance(X, np.memmap) else 'array' if isinstance(X, np.ndarray) else 'tensor'
        dt = X.dtype
        if kind != 'tensor':
            if dt.kind not in 'fiub' or dt.names is not None:
                raise TypeError(f"{name} must hold real numbers; got a NumPy {kind} of dtype {dt}")
            dtype = torch.float64 if dt == np.float64 else torch.float32
        else:
            if dt.is_complex: raise TypeError(f"{name} must be real; got complex dtype {dt}")
            dtype = dt if dt in (torch.float32, torch.float64) else torch.get_default_dtype()
        if X.ndim != 2:
            raise ValueError(f"{name} must be 2-D (n_samples, n_features); got {X.ndim}-D with shape "
                             f"{tuple(X.shape)}" + (". Reshape a single feature with X.reshape(-1, 1)."
                                                    if X.ndim == 1 else ""))
        if X.shape[1] == 0: raise ValueError(f"{name} has no features: shape {tuple(X.shape)}")
        self.streamed = kind == 'memmap' or (kind == 'array' and not X.flags.writeable)
        if kind == 'array' and not self.streamed: X = torch.from_numpy(X)   # in memory: no copy
        self.data, self.name, self.dtype = X, name, dtype
        self.n, self.d = int(X.shape[0]), int(X.shape[1])
        home = X.device if torch.is_tensor(X) else torch.device('cpu')
        self.device = home if device is None else torch.device(device)
        self.block_rows = max(1, (block_bytes or BLOCK_BYTES) // (self.d * dtype.itemsize))
        self._buf = None

    def __repr__(self): return f"Rows({self.n} x {self.d}, {'streamed' if self.streamed else 'in memory'})"

    def _buffer(self):
        "One block's room, reused: on the CPU for streamed data (then copied to the device), else on the device."
        if self._buf is None:
            dev = 'cpu' if self.streamed else self.device
            self._buf = torch.empty(min(self.block_rows, max(self.n, 1)), self.d, dtype=self.dtype, device=dev)
        return self._buf

    def blocks(self, shift=None):
        """`(start, block)` for consecutive blocks of rows, (b, D) in the work dtype on the device, minus `shift`
        when given. A block lives in a reused buffer (or is a view of the data): use it before the next one."""
        sh = None if shift is None else shift.cpu().numpy() if self.streamed else shift
        for s in range(0, self.n, self.block_rows):
            part = self.data[s:s + self.block_rows]
            if self.streamed:
                out = self._buffer()[:len(part)]
                if sh is None: np.copyto(out.numpy(), part)            # read from the file, in the work dtype
                else: np.subtract(part, sh, out=out.numpy())           # read and centre in one pass
                release_pages(self.data)
                yield s, out.to(self.device)
            elif sh is None and part.dtype == self.dtype: yield s, part.to(self.device)
            else:
                part = part.to(self.device)
                out = self._buffer()[:len(part)]
                yield s, (out.copy_(part) if sh is None else torch.sub(part, sh, out=out))

    def take(self, idx, shift=None):
        """The rows at the local indices `idx` (a sorted LongTensor), (len(idx), D), minus `shift`. From a memmap
        they are read TAKE_ROWS at a time: each scattered read maps the pages around it, which are handed back."""
        i = idx.cpu()
        if not self.streamed: x = self.data[i.to(self.data.device)]
        else:
            x = torch.empty(len(i), self.d, dtype=self.dtype)
            for j in range(0, len(i), TAKE_ROWS):
                np.copyto(x[j:j + TAKE_ROWS].numpy(), self.data[i[j:j + TAKE_ROWS].numpy()])
                release_pages(self.data)
        x = x.to(self.device, self.dtype)
        return x if shift is None else x - shift

    def labels_buffer(self, k):
        "Room for every local point's label: int64 in memory, the smallest integer type when streamed."
        if self.streamed: return torch.zeros(self.n, dtype=_label_dtype(k))
        return torch.zeros(self.n, dtype=torch.long, device=self.device)

# ---------------------------------------------------------------- checks and agreement

def check_mean_distance(distance):
    """The `Distance` for `distance`, if its centre is the mean (the only centre that sums and counts give);
    `CosineDistance` and other distances with their own `centre` are refused."""
    d = get_distance(distance)
    for m in ('centre', 'tolerance_scale'):
        if getattr(type(d), m) is not getattr(Distance, m):
            raise ValueError(f"distance {d.name!r} defines its own {m}(): distributed, streamed and mini-batch "
                             "k-means need centres that are means of points (sums and counts)")
    return d

def _int(v, name, lo=1):
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise TypeError(f"{name} must be an int; got {type(v).__name__} {v!r}")
    if v < lo: raise ValueError(f"{name} must be >= {lo}; got {v}")
    return int(v)

def _real(v, name):
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not v >= 0:
        raise ValueError(f"{name} must be a real number >= 0; got {v!r}")
    return float(v)

def _code(s):
    "A number that stands for a string, to compare strings across ranks."
    return float(zlib.crc32(str(s).encode()))

def agree(comm, values, numbers_=None):
    """All ranks' `values` (a dict of numbers) side by side, (size, len(values)). Raises the same ValueError on every
    rank when they differ, naming the value and each rank's. `numbers_` (a dict) are gathered but may differ."""
    names, extra = list(values), list(numbers_ or {})
    v = torch.tensor([float(values[n]) for n in names] + [float(numbers_[n]) for n in extra], dtype=torch.float64)
    G = comm.gather(v)                                               # (size, len)
    for j, n in enumerate(names):
        col = G[:, j]
        if not bool((col == col[0]).all()):
            each = ', '.join(f"rank {r} has {_fmt(n, col[r])}" for r in range(comm.size))
            raise ValueError(f"the ranks disagree on {n}: {each}; every rank must call with the same {n}")
    return {n: G[:, len(names) + j] for j, n in enumerate(extra)}

def _fmt(name, v):
    v = float(v)
    return 'another value' if name in ('init', 'distance', 'dtype', 'init centres') else f"{v:g}"

# ---------------------------------------------------------------- moments and samples

def _merge(a, b):
    "Chan et al.'s update: (count, mean, M2) of two parts -> of their union. M2 is the sum of squared deviations."
    (na, ma, sa), (nb, mb, sb) = a, b
    n = na + nb
    if nb == 0: return a
    if na == 0: return b
    delta = mb - ma
    return n, ma + delta * (nb / n), sa + sb + delta ** 2 * (na * nb / n)

F64_CHUNK_BYTES = 4 * 2**20   # on the CPU, float64 copies are made this many bytes at a time: they stay in cache

def chunks64(x):
    """`(j, chunk)`: the rows of `x` in float64, a cache-sized chunk at a time on the CPU (one reused buffer:
    several times faster than `x.double()` of a big block), the whole block at once on a GPU."""
    rows = len(x) if x.device.type != 'cpu' else max(1, F64_CHUNK_BYTES // (8 * x.shape[1]))
    buf = torch.empty(min(rows, len(x)), x.shape[1], dtype=torch.float64, device=x.device)
    for j in range(0, len(x), rows):
        part = x[j:j + rows]
        yield j, buf[:len(part)].copy_(part)

def moments(rows, comm=None):
    """Count, mean (D,) and M2 (D,), the sum of squared deviations, of all ranks' rows in float64, in one pass
    over the blocks (Chan et al.'s merge); the same on every rank. Also checks that every value is finite."""
    comm = comm or Comm()
    D = rows.d
    local = torch.zeros(1 + 2 * D, dtype=torch.float64)
    with comm.local():
        acc = (0, None, None)
        for s, x in rows.blocks():
            for j, c in chunks64(x):
                m = c.mean(0)                                          # (D,)
                m2 = c.sub_(m).square_().sum(0)                        # (D,) c is a scratch copy
                if not bool(torch.isfinite(m2).all()):
                    bad = int((~torch.isfinite(x[j:j + len(c)])).sum())
                    raise ValueError(f"{rows.name} contains NaN or inf ({bad} value{'s' if bad > 1 else ''} in "
                                     f"rows {s + j}..{s + j + len(c) - 1}); remove or impute them first")
                acc = _merge(acc, (len(c), m.cpu(), m2.cpu()))
        if acc[0]: local[0], local[1:D + 1], local[D + 1:] = acc[0], acc[1], acc[2]
    G = comm.gather(local)                                             # (size, 1 + 2D)
    acc = (0, None, None)
    for g in G: acc = _merge(acc, (int(g[0]), g[1:D + 1], g[D + 1:])) if g[0] > 0 else acc
    return acc

def sample_indices(N, m, generator):
    "`m` distinct indices drawn uniformly from range(N), sorted: the same on every rank for the same generator."
    if m >= N: return torch.arange(N)
    if 2 * m >= N: return torch.randperm(N, generator=generator)[:m].sort().values
    idx = torch.empty(0, dtype=torch.long)
    while len(idx) < m: idx = torch.cat([idx, torch.randint(N, (m,), generator=generator)]).unique()
    return idx[torch.randperm(len(idx), generator=generator)[:m]].sort().values

def gather_rows(rows, gidx, offset, comm, shift=None, device=None):
    """The rows at the global indices `gidx` (sorted), from whichever rank holds them: (len(gidx), D), the same on
    every rank. Only len(gidx) rows cross the wire."""
    buf = torch.zeros(len(gidx), rows.d, dtype=torch.float64)
    with comm.local():
        mine = ((gidx >= offset) & (gidx < offset + rows.n)).nonzero().flatten()
        if len(mine): buf[mine] = rows.take(gidx[mine] - offset, shift).double().cpu()
    return comm.sum(buf).to(device or rows.device, rows.dtype)

# ---------------------------------------------------------------- k-means++ across ranks

def _cand_dists(X, XT, xx, c, dist):
    "Distances of candidates `c` (L, D) to the points, (L, n): for the Euclidean case as `init_kmeans_plusplus`."
    if XT is not None: return torch.addmm(xx + (c * c).sum(1, keepdim=True), c, XT, alpha=-2).clamp_min_(0)
    d = dist.pairwise(X, c)                                            # (n, L)
    if dist.check_output: dist._check(d, X, c)
    return d.T.contiguous()

def distributed_kmeans_plusplus(X, k, generator, comm, counts, distance=None, n_local_trials=None):
    """Greedy k-means++ over the rows of every rank; `X` (n_local, D) is this rank's part, `counts` every rank's
    n_local. Every rank draws the same random numbers (`generator` is seeded alike), the rank holding a chosen
    point sends it, and the ranks sum their potentials. The centres are those `init_kmeans_plusplus` picks on
    all the rows in one process (up to rounding), for 2k small collectives: (L, D) rows and (size, L) sums."""
    dist_ = get_distance(distance)
    W, rank, n = comm.size, comm.rank, X.shape[0]
    counts = [int(c) for c in counts]
    offset, N = sum(counts[:rank]), sum(counts)
    L = n_local_trials or 2 + int(math.log(k))
    XT = xx = None
    if isinstance(dist_, SqEuclidean):
        XT, xx = X.T.contiguous(), (X * X).sum(1)                      # (D, n), (n,)
    C = torch.empty(k, X.shape[1], dtype=X.dtype, device=X.device)    # (k, D)
    first = torch.randint(N, (1,), generator=generator)
    C[0] = gather_rows(Rows(X), first, offset, comm)[0]
    closest = torch.zeros(n, dtype=X.dtype, device=X.device)
    with comm.local(): closest = _cand_dists(X, XT, xx, C[:1], dist_)[0]            # (n,)
    P = comm.gather(closest.sum(dtype=torch.float64).reshape(1))[:, 0]               # (W,) potential per rank
    for c in range(1, k):
        r = torch.rand(L, generator=generator, dtype=torch.float64) * P.sum()        # (L,) the same on all ranks
        cumP = torch.cumsum(P, 0)                                                    # (W,)
        owner = torch.searchsorted(cumP, r).clamp_max_(W - 1)                        # (L,) who holds each draw
        rows = torch.zeros(L, X.shape[1], dtype=torch.float64)
        with comm.local():
            mine = (owner == rank).nonzero().flatten()
            if len(mine) and n:
                cum = torch.cumsum(closest, 0, dtype=torch.float64)                  # (n,)
                base = cumP[rank - 1] if rank else 0.0
                li = torch.searchsorted(cum, (r[mine] - base).to(cum.device)).clamp_max_(n - 1)
                rows[mine] = X[li].double().cpu()
        cands = comm.sum(rows).to(X.device, X.dtype)                                 # (L, D)
        pots, d = torch.zeros(L, dtype=torch.float64), None
        with comm.local():
            d = torch.minimum(_cand_dists(X, XT, xx, cands, dist_), closest)         # (L, n)
            pots = d.sum(1, dtype=torch.float64).cpu()                               # (L,)
        PL = comm.gather(pots)                                                       # (W, L)
        best = int(PL.sum(0).argmin())
        closest, P, C[c] = d[best], PL[:, best], cands[best]
    return C

# ---------------------------------------------------------------- Lloyd across ranks and blocks

def _lloyd_pass(rows, C, dist, shift, labels, dists, buf, memory_budget, count_changes):
    "One pass over the local blocks: labels, distances, and into `buf` the sums, counts, inertia, changes."
    K, D = C.shape
    sums = buf[:K * D].view(K, D)                                      # (K, D) float64
    for s, x in rows.blocks(shift):
        lb, db = assign(x, C, dist, memory_budget=memory_budget)      # (b,), (b,)
        for j, c in chunks64(x): sums.index_add_(0, lb[j:j + len(c)], c)   # float64 sums
        buf[K * D:K * D + K] += torch.bincount(lb, minlength=K)
        buf[-2] += db.sum(dtype=torch.float64)
        e = s + len(x)
        if count_changes: buf[-1] += (labels[s:e] != lb.to(labels.device, labels.dtype)).sum()
        labels[s:e], dists[s:e] = lb.to(labels.device, labels.dtype), db.to(dists.device)

def _fill_empty(rows, C, sums, counts, labels, dists, comm, shift):
    """scikit-learn's rule for empty clusters, across ranks: the e points farthest from their centres (over all
    ranks) found the e empty clusters, farthest first, and leave their old clusters. Each rank sends its own e
    best candidates (distance, label, row): (size, e, D + 2) numbers."""
    empty = (counts == 0).nonzero().flatten()                         # (e,) the same on every rank
    e, D = len(empty), C.shape[1]
    cand = torch.zeros(e, D + 2, dtype=torch.float64)
    cand[:, 0] = -math.inf
    with comm.local():
        t = min(e, rows.n)
        if t:
            v, idx = dists.topk(t)                                     # (t,) the local farthest
            idx = idx.sort().values
            cand[:t, 0] = dists[idx].double().cpu()
            cand[:t, 1] = labels[idx].double().cpu()
            cand[:t, 2:] = rows.take(idx, shift).double().cpu()
    G = comm.gather(cand).reshape(-1, D + 2).to(sums.device)          # (size * e, D + 2)
    # farthest first; on equal distances the lower rank and index first, as a stable sort of one process would
    order = torch.sort(G[:, 0], descending=True, stable=True).indices[:e]
    far = G[order]                                                     # (e, D + 2)
    old = far[:, 1].long()
    sums.index_add_(0, old, -far[:, 2:]); counts.index_add_(0, old, -torch.ones_like(far[:, 0]))
    sums.index_add_(0, empty.to(sums.device), far[:, 2:])
    counts.index_add_(0, empty.to(sums.device), torch.ones_like(far[:, 0]))

def _lloyd(rows, C, dist, comm, *, shift=None, max_iter=300, tol=0.0, verbose=False, memory_budget=None,
           keep_history=True, callback=None):
    K, D = C.shape
    labels = rows.labels_buffer(K)
    dists = torch.zeros(rows.n, dtype=rows.dtype, device=labels.device)
    history, inertias, t0 = [C], [], time.perf_counter()
    for i in range(max_iter):
        buf = torch.zeros(K * D + K + 2, dtype=torch.float64, device=C.device)   # sums | counts | inertia | changed
        with comm.local(): _lloyd_pass(rows, C, dist, shift, labels, dists, buf, memory_budget, i > 0)
        tot = comm.sum(buf)                                            # the one all_reduce of an iteration
        sums, counts = tot[:K * D].view(K, D).clone(), tot[K * D:K * D + K].clone()
        inertias.append(tot[-2])
        if bool((counts == 0).any()): _fill_empty(rows, C, sums, counts, labels, dists, comm, shift)
        C_new = torch.where((counts > 0)[:, None], sums / counts.clamp_min(1)[:, None], C.double()).to(C.dtype)
        move = ((C_new - C) ** 2).sum()
        C = C_new
        if keep_history: history.append(C)
        if verbose:
            comm.print(f"iteration {i + 1:4d}  inertia {tot[-2].item():.6g}  centre shift {move.item():.3g}  "
                       f"changed {int(tot[-1]) if i else '-'}  {time.perf_counter() - t0:.1f} s")
        if callback is not None: callback(i, C, tot[-2])
        if i > 0 and tot[-1] == 0: break                               # no label changed on any rank
        if move <= tol: break
    buf = torch.zeros(K * D + K + 2, dtype=torch.float64, device=C.device)
    with comm.local(): _lloyd_pass(rows, C, dist, shift, labels, dists, buf, memory_budget, False)
    tot = comm.sum(buf)                                                # final labels, inertia and sizes
    inertias.append(tot[-2])
    return dict(centres=C, labels=labels, inertia=tot[-2], n_iter=i + 1,
                history=history if keep_history else [C], inertias=torch.stack(inertias),
                counts=tot[K * D:K * D + K].long())

# ---------------------------------------------------------------- public entry points

def _setup(comm, X_local, k, C, distance, device, block_bytes, values):
    """Open this rank's rows and check, with one small all_reduce, that the ranks agree on everything that steers
    the control flow (a rank that stopped would leave the others waiting). Returns (rows, distance, n_local of
    every rank)."""
    rows, dist_ = None, None
    meta = dict(values, n_features=0, n_clusters=0, distance=0, dtype=0, **{'init centres': 0})
    with comm.local():
        dist_ = check_mean_distance(distance)
        k = _int(k, 'n_clusters')
        rows = Rows(X_local, 'X', device=device, block_bytes=block_bytes)
        meta.update(n_features=rows.d, n_clusters=k, distance=_code(type(dist_).__name__ + dist_.name),
                    dtype=torch.finfo(rows.dtype).bits)
        if C is not None:
            if tuple(C.shape) != (k, rows.d):
                raise ValueError(f"init has shape {tuple(C.shape)}, but n_clusters={k} and X has {rows.d} "
                                 f"features: expected ({k}, {rows.d})")
            meta['init centres'] = float(zlib.crc32(C.detach().cpu().to(rows.dtype).numpy().tobytes()))
    counts = agree(comm, meta, {'n_local': 0 if rows is None else rows.n})['n_local']
    N = int(counts.sum())
    if N < k: raise ValueError(f"n_samples={N} (all ranks together) should be >= n_clusters={k}")
    return rows, dist_, counts

def distributed_lloyd(X_local, C, distance=None, *, process_group=None, max_iter=300, tol=0.0, verbose=False,
                      memory_budget=None, keep_history=True, shift=None, device=None, callback=None):
    """`lloyd` across the ranks of `process_group`, each with its own rows `X_local` (a tensor, array, memmap or
    `.npy` path, streamed block by block), from the same centres `C` (k, D) on every rank, on `X_local - shift`
    when `shift` (D,) is given. Each iteration all_reduces the per-cluster sums (float64) and counts, the
    inertia and the number of changed labels: K*D + K + 2 numbers. Stops as `lloyd` does, with the same decision
    on every rank. Returns the same dict as `lloyd` (labels: this rank's points; inertia: all points, float64),
    plus `counts`, the cluster sizes."""
    comm = Comm(process_group)
    values, k = dict(max_iter=0, tol=0), 0
    with comm.local():
        C = check_array(C, 'C')
        k = C.shape[0]
        values = dict(max_iter=_int(max_iter, 'max_iter'), tol=_real(tol, 'tol'))
    rows, dist_, _ = _setup(comm, X_local, k, C, distance, device, None, values)
    C = C.to(rows.device, rows.dtype)
    if shift is not None: shift = torch.as_tensor(shift).to(rows.device, rows.dtype)
    return _lloyd(rows, C, dist_, comm, shift=shift, max_iter=max_iter, tol=tol, verbose=verbose,
                  memory_budget=memory_budget, keep_history=keep_history, callback=callback)

def _seed_all(seed, comm):
    "A generator seeded with rank 0's `seed` (or with fresh entropy drawn on rank 0), the same on every rank."
    s = float(seed % 2**52 if seed is not None else int.from_bytes(os.urandom(6), 'little'))
    s = int(comm.sum(torch.tensor([s if comm.rank == 0 else 0.0], dtype=torch.float64))[0])
    return torch.Generator().manual_seed(s)

def distributed_fit(X_local, k, *, init='k-means++', n_init=1, max_iter=300, tol=1e-4, seed=None,
                    distance='euclidean', device=None, verbose=False, memory_budget=None, keep_history=True,
                    init_size=None, block_bytes=None, process_group=None, callback=None):
    """K-means on this rank's rows `X_local`, together with the other ranks of `process_group` (the default group
    when torch.distributed is initialised, else this process alone). `X_local`: a tensor, a NumPy array, a memmap
    or an `.npy` path; memmaps and paths are streamed block by block, never copied whole.
    Does what `KMeans.fit` does: centres the data (on the global mean, block by block), takes `tol` relative to
    the global variance, makes `n_init` runs from `init` and keeps the lowest inertia. Initialisation: greedy
    k-means++ over all points when they are in memory (the centres one process picks for the same `seed`), else
    `init` on a uniform sample of `init_size` points (default max(10 k, 65536)), gathered on every rank.
    Every rank must pass the same parameters; rank 0's `seed` is used. `callback(i, centres, inertia)` is called
    on every rank after each iteration.
    Returns a dict: centres (k, D), labels (this rank's points), inertia (float, all points), n_iter, history,
    inertias, counts (k,), n_samples, n_features, distance."""
    comm = Comm(process_group)
    C0, seed_ = None, 0
    values = dict(max_iter=0, n_init=0, tol=0, init=0, init_size=0)
    with comm.local():
        if not isinstance(init, str): C0 = check_array(init, 'init')
        elif init not in INITS: raise ValueError(f"init must be one of {sorted(INITS)} or a (k, D) array; got {init!r}")
        values = dict(max_iter=_int(max_iter, 'max_iter'), n_init=_int(n_init, 'n_init'), tol=_real(tol, 'tol'),
                      init=_code(init if isinstance(init, str) else 'array'),
                      init_size=-1 if init_size is None else _int(init_size, 'init_size'))
        seed_ = None if seed is None else _int(seed, 'seed', lo=0)
        device = None if device is None else get_device(device)
    rows, dist_, counts = _setup(comm, X_local, k, C0, distance, device, block_bytes, values)
    t0 = time.perf_counter()
    N, mean, m2 = moments(rows, comm)
    if verbose:
        comm.print(f"{N:,} points x {rows.d} features on {comm.size} process{'es' if comm.size > 1 else ''}"
                   f"{' (streamed)' if rows.streamed else ''}: mean and variance in {time.perf_counter() - t0:.1f} s")
    tol_abs = float((m2 / N).mean()) * tol if tol else 0.0            # relative to the data's spread
    euclid = isinstance(dist_, SqEuclidean)
    shift = mean.to(rows.device, rows.dtype) if euclid else None      # centre on the global mean, block by block
    back = (lambda c: c + shift) if euclid else (lambda c: c)
    cb = None if callback is None else (lambda i, c, inertia: callback(i, back(c), inertia))
    g = _seed_all(seed_, comm)
    offset = int(counts[:comm.rank].sum())
    best = None
    for run in range(1 if C0 is not None else n_init):
        t0 = time.perf_counter()
        if C0 is not None: C = C0.to(rows.device, rows.dtype) - (shift if euclid else 0)
        elif init == 'k-means++' and init_size is None and not rows.streamed:
            Xc = torch.zeros(0, rows.d, dtype=rows.dtype, device=rows.device)
            with comm.local():
                Xc = rows.data.to(rows.device, rows.dtype)
                if euclid: Xc = Xc - shift                             # (n, D) a centred copy, as KMeans.fit makes
            C = distributed_kmeans_plusplus(Xc, k, g, comm, counts, dist_)
            del Xc
        else:
            m = min(N, init_size or max(10 * k, 65536))
            S = gather_rows(rows, sample_indices(N, m, g), offset, comm, shift)         # (m, D) on every rank
            C = None
            with comm.local(): C = INITS[init](S, k, g, dist_)        # the same draws, so the same centres
            comm.sum(torch.zeros(1))                                   # a failed init ends every rank here
        if verbose: comm.print(f"init {run + 1}/{n_init}: {init if C0 is None else 'array'} in "
                               f"{time.perf_counter() - t0:.1f} s")
        res = _lloyd(rows, C, dist_, comm, shift=shift, max_iter=max_iter, tol=tol_abs, verbose=verbose,
                     memory_budget=memory_budget, keep_history=keep_history, callback=cb)
        if best is None or res['inertia'] < best['inertia']: best = res
    return dict(centres=back(best['centres']), labels=best['labels'], inertia=float(best['inertia']),
                n_iter=best['n_iter'], history=[back(c) for c in best['history']],
                inertias=best['inertias'].tolist(), counts=best['counts'], n_samples=N, n_features=rows.d,
                distance=dist_)

# ---------------------------------------------------------------- the `fit` command

def add_fit_parser(subparsers):
    "Add the `fit` command to the `kmeans-lessons` parser's `subparsers`."
    f = subparsers.add_parser('fit', help='fit k-means to a .npy file, alone or under torchrun; save the centres',
                              description="Fit k-means to the points in a .npy file (N, D), memory-mapped and "
                              "streamed, and save the centres (k, D) as .npy. Under `torchrun --nproc_per_node=P` "
                              "each of the P processes reads its own slice of rows.")
    f.add_argument('data', help='the points: a .npy file of shape (N, D)')
    f.add_argument('--k', type=int, required=True, help='number of clusters')
    f.add_argument('--out', required=True, help='where to save the centres: a .npy file')
    f.add_argument('--labels', help="optional .npy file for every point's label (int32, N)")
    f.add_argument('--init', default='k-means++', choices=list(INITS), help='initialisation (default k-means++, '
                   'on a sample of --init-size points)')
    f.add_argument('--init-size', type=int, default=None, help='points k-means++ runs on (default max(10k, 65536))')
    f.add_argument('--n-init', type=int, default=1, help='runs from different initialisations (default 1)')
    f.add_argument('--max-iter', type=int, default=300, help='most iterations per run (default 300)')
    f.add_argument('--tol', type=float, default=1e-4, help='stop when the centres move less than tol x the '
                   "data's variance (default 1e-4)")
    f.add_argument('--seed', type=int, default=0, help='random seed (default 0)')
    f.add_argument('--device', default='cpu', help="'cpu' (default) or 'cuda': under torchrun, GPU LOCAL_RANK "
                   'with nccl; gloo on the CPU')
    f.add_argument('--timeout', type=float, default=600, help='seconds a process waits for the others (default 600)')
    f.add_argument('--verbose', action='store_true', help='report each iteration (on rank 0)')
    f.set_defaults(run=fit_command, parser=f)
    return f

def _slice(n, rank, size):
    "Rows of rank `rank` of `size` when `n` rows are split into near-equal consecutive slices."
    return slice(n * rank // size, n * (rank + 1) // size)

def fit_command(args):
    """Run `kmeans-lessons fit`: alone, or as one process of a torchrun job (WORLD_SIZE > 1 in the environment),
    when it joins the process group, fits its slice of the rows and rank 0 saves the centres. Returns 0."""
    p = args.parser
    for name in ('k', 'max_iter', 'n_init'):
        if getattr(args, name) < 1: p.error(f"--{name.replace('_', '-')} must be >= 1; got {getattr(args, name)}")
    if args.init_size is not None and args.init_size < 1: p.error(f"--init-size must be >= 1; got {args.init_size}")
    if not args.tol >= 0: p.error(f"--tol must be >= 0; got {args.tol}")
    if args.seed < 0: p.error(f"--seed must be >= 0; got {args.seed}")
    for opt in ('out', 'labels'):
        path = getattr(args, opt)
        if path is None: continue
        if Path(path).suffix.lower() != '.npy': p.error(f"--{opt} must end in .npy; got {Path(path).name!r}")
        if not Path(path).resolve().parent.is_dir(): p.error(f"--{opt} directory does not exist: {str(Path(path).parent)!r}")
    try: X = open_npy(args.data, 'DATA')
    except ValueError as e: p.error(str(e))
    cuda = args.device.startswith('cuda')
    if cuda and not torch.cuda.is_available(): p.error("--device cuda: no CUDA device is available")
    size, rank = int(os.environ.get('WORLD_SIZE', 1)), int(os.environ.get('RANK', 0))
    joined = size > 1 and not dist.is_initialized()
    if joined:
        if cuda: torch.cuda.set_device(int(os.environ.get('LOCAL_RANK', 0)))
        dist.init_process_group('nccl' if cuda else 'gloo', timeout=timedelta(seconds=args.timeout))
    try:
        device = torch.device('cuda', torch.cuda.current_device()) if cuda else torch.device('cpu')
        part = _slice(X.shape[0], rank, size) if X.ndim == 2 else slice(None)
        try:
            res = distributed_fit(X[part], args.k, init=args.init, init_size=args.init_size, n_init=args.n_init,
                                  max_iter=args.max_iter, tol=args.tol, seed=args.seed, device=device,
                                  verbose=args.verbose, keep_history=False)
        except (ValueError, TypeError) as e: p.error(str(e))
        if args.labels:
            comm = Comm()
            if rank == 0: np.lib.format.open_memmap(args.labels, 'w+', np.int32, (X.shape[0],)).flush()
            if size > 1: comm.sum(torch.zeros(1))                          # a barrier: the file exists
            L = np.lib.format.open_memmap(args.labels, 'r+')
            L[part] = res['labels'].cpu().numpy()
            L.flush()
            del L
            if size > 1: comm.sum(torch.zeros(1))                          # every slice is written
        if rank == 0:
            np.save(args.out, res['centres'].cpu().numpy())
            print(f"wrote {Path(args.out).resolve()}: {args.k} centres x {res['n_features']} features; "
                  f"{res['n_samples']:,} points on {size} process{'es' if size > 1 else ''}, "
                  f"{res['n_iter']} iterations, inertia {res['inertia']:.6g}", flush=True)
        return 0
    finally:
        if joined: dist.destroy_process_group()

def main(argv=None):
    "`python -m kmeans_lessons.distributed fit ...`: the `fit` command on its own (also for torchrun -m)."
    import argparse
    p = argparse.ArgumentParser(prog='kmeans-lessons')
    add_fit_parser(p.add_subparsers(dest='command', required=True, metavar='COMMAND'))
    args = p.parse_args(argv)
    return args.run(args)

if __name__ == '__main__' and '__file__' in globals():
    sys.exit(main())
