"""The fused Lloyd pass (nbs/95_kernels.ipynb) on every path against float64 brute force."""
import importlib, platform, warnings
import pytest
import torch
from kmeans_lessons import kernels
from kmeans_lessons.kernels import lloyd_pass, kernel_available

PATHS = ['fused', 'blocked', 'torch', 'auto']

def brute(X, C, w):
    "float64 reference: distances (N, k), argmin, and the sums/weights/inertia for given labels."
    d = ((X.double()[:, None, :] - C.double()[None]) ** 2).sum(-1)                  # (N, k)
    return d

def check(X, C, w=None, method='auto'):
    labels, mind, sums, weights, inertia = lloyd_pass(X, C, w, method=method)
    N, k = X.shape[0], C.shape[0]
    assert labels.shape == (N,) and labels.dtype == torch.int64 and mind.dtype == X.dtype
    assert sums.shape == (k, X.shape[1]) and sums.dtype == torch.float64 and weights.shape == (k,)
    d = brute(X, C, w)
    best = d.min(1).values
    mine = d.gather(1, labels[:, None])[:, 0]
    # a label may differ from the float64 argmin only on a near-tie within rounding of the expansion
    eps = torch.finfo(X.dtype).eps
    bound = 8 * X.shape[1] * eps * ((X.double() ** 2).sum(1) + (C.double() ** 2).sum(1).max())
    assert (mine - best <= bound).all()
    assert ((labels == d.argmin(1)) | (mine - best <= bound)).all()
    assert torch.allclose(mind.double(), mine, rtol=1e3 * eps, atol=float(bound.max()))
    ww = torch.ones(N, dtype=torch.float64) if w is None else torch.as_tensor(w).double()
    sums_ref = torch.zeros(k, X.shape[1], dtype=torch.float64).index_add_(0, labels, X.double() * ww[:, None])
    assert torch.allclose(sums, sums_ref, rtol=1e-10, atol=1e-9)
    assert torch.allclose(weights, torch.zeros(k, dtype=torch.float64).index_add_(0, labels, ww), rtol=1e-12)
    assert inertia == pytest.approx(float((best * ww).sum()), rel=100 * eps, abs=float(bound.sum()))
    return labels

needs_kernel = pytest.mark.skipif(not kernel_available(), reason="no C++ compiler here")

def _params():
    for m in PATHS:
        marks = [needs_kernel] if m in ('fused', 'blocked') else []
        yield pytest.param(m, marks=marks, id=m)

def params(): return list(_params())

@pytest.mark.parametrize('method', params())
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
@pytest.mark.parametrize('weighted', [False, True])
@pytest.mark.parametrize('N,D,k', [(1000, 3, 10), (700, 40, 37), (300, 70, 50), (257, 5, 1), (900, 1, 7), (10, 50, 40)])
def test_against_brute_force(method, dtype, weighted, N, D, k):
    g = torch.Generator().manual_seed(N + D + k)
    X = (torch.randn(N, D, generator=g) * 3).to(dtype)
    C = X[torch.randperm(N, generator=g)[:k]].clone() + 0.1
    w = torch.rand(N, generator=g, dtype=dtype) * 2 if weighted else None
    check(X, C, w, method)

@pytest.mark.parametrize('method', params())
def test_non_contiguous_input_and_caller_data_unchanged(method):
    g = torch.Generator().manual_seed(1)
    base = torch.randn(40, 600, generator=g)
    X = base.T[:, ::2]                                                             # (600, 20), strided
    C = torch.randn(50, 40, generator=g)[:, ::2].double()                          # float64, strided: cast to X's dtype
    before = X.clone()
    check(X, C, None, method)
    assert torch.equal(X, before)

@pytest.mark.parametrize('method', params())
def test_ties_take_the_first_centre(method):
    X = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    C = torch.tensor([[5.0, 5.0], [0.0, 0.0], [0.0, 0.0], [1.0, 1.0], [1.0, 1.0]])
    assert lloyd_pass(X, C, method=method)[0].tolist() == [1, 3]

@needs_kernel
def test_kernel_agrees_with_torch_path_on_many_labels():
    g = torch.Generator().manual_seed(2)
    X = torch.randn(5000, 64, generator=g, dtype=torch.float64)
    C = torch.randn(200, 64, generator=g, dtype=torch.float64)
    ref = lloyd_pass(X, C, method='torch')
    for m in ['fused', 'blocked']:
        out = lloyd_pass(X, C, method=m)
        assert torch.equal(out[0], ref[0])
        assert torch.allclose(out[2], ref[2], rtol=1e-12)

@needs_kernel
def test_thread_count_is_respected_and_result_repeats():
    g = torch.Generator().manual_seed(3)
    X, C = torch.randn(3000, 8, generator=g), torch.randn(20, 8, generator=g)
    n = torch.get_num_threads()
    try:
        torch.set_num_threads(1); one = lloyd_pass(X, C)
        torch.set_num_threads(max(2, n)); two = lloyd_pass(X, C)
    finally: torch.set_num_threads(n)
    assert torch.equal(one[0], two[0]) and torch.allclose(one[2], two[2], rtol=1e-12)

def test_fallback_without_compiler_warns_once(monkeypatch, tmp_path):
    monkeypatch.setenv('KMEANS_LESSONS_NO_KERNEL', '1')
    monkeypatch.setattr(kernels, '_STATE', {})
    X, C = torch.randn(100, 3), torch.randn(4, 3)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter('always')
        a = lloyd_pass(X, C); b = lloyd_pass(X, C)
    assert sum('pure-torch path' in str(r.message) for r in rec) == 1
    assert not kernel_available()
    check(X, C)
    with pytest.raises(RuntimeError, match='compiled kernel'): lloyd_pass(X, C, method='fused')

def test_missing_compiler_and_fresh_cache(monkeypatch, tmp_path):
    "A fresh cache builds the library there; a missing compiler means the torch path."
    monkeypatch.setenv('KMEANS_LESSONS_CACHE', str(tmp_path))
    monkeypatch.setenv('CXX', str(tmp_path / 'no-such-compiler'))
    monkeypatch.setattr(kernels, '_STATE', {})
    with pytest.warns(RuntimeWarning, match='pure-torch path'): check(torch.randn(50, 2), torch.randn(3, 2))
    if kernels.shutil.which('g++'):
        monkeypatch.setenv('CXX', kernels.shutil.which('g++'))
        monkeypatch.setattr(kernels, '_STATE', {})
        assert kernel_available() and list((tmp_path / 'kernels').glob('lloyd_*.so'))

def test_empty_input_and_bad_input():
    labels, mind, sums, weights, inertia = lloyd_pass(torch.empty(0, 3), torch.randn(2, 3))
    assert labels.shape == (0,) and inertia == 0 and torch.equal(weights, torch.zeros(2, dtype=torch.float64))
    with pytest.raises(TypeError, match='float32 or float64'): lloyd_pass(torch.ones(3, 2, dtype=torch.int64), torch.ones(1, 2))
    with pytest.raises(ValueError, match='same D'): lloyd_pass(torch.ones(3, 2), torch.ones(1, 3))
    with pytest.raises(ValueError, match='k >= 1'): lloyd_pass(torch.ones(3, 2), torch.ones(0, 2))
    with pytest.raises(ValueError, match='sample_weight'): lloyd_pass(torch.ones(3, 2), torch.ones(1, 2), torch.ones(4))
    with pytest.raises(ValueError, match='method'): lloyd_pass(torch.ones(3, 2), torch.ones(1, 2), method='numba')
    with pytest.raises(TypeError, match='torch tensors'): lloyd_pass([[1.0]], torch.ones(1, 1))

@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA here")
def test_cuda_uses_the_torch_path():
    X, C = torch.randn(500, 8, device='cuda'), torch.randn(5, 8, device='cuda')
    out = lloyd_pass(X, C)
    assert out[0].device.type == 'cuda'
    assert torch.equal(out[0].cpu(), lloyd_pass(X.cpu(), C.cpu(), method='torch')[0])

@needs_kernel
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
@pytest.mark.parametrize('N,D,k', [(3001, 3, 10), (2000, 40, 100), (700, 70, 50)])
def test_cluster_sums_and_labels_at_repeat_the_pass_bit_for_bit(dtype, N, D, k):
    "What the engine's bound strategies need: the pass's sums from its labels, and its labels for a few rows."
    g = torch.Generator().manual_seed(N + D)
    X, w = (torch.randn(N, D, generator=g) * 3).to(dtype), torch.rand(N, generator=g, dtype=dtype)
    C = X[torch.randperm(N, generator=g)[:k]].clone()
    n = torch.get_num_threads()
    try:
        for nt in sorted({1, max(2, n)}):
            torch.set_num_threads(nt)
            for ww in (None, w):
                labels, _, sums, weights, _ = lloyd_pass(X, C, ww)
                s, v = kernels.cluster_sums(X, labels, k, ww, method=kernels.plan(D, k, dtype))
                assert torch.equal(s, sums) and torch.equal(v, weights)
            ii = torch.randperm(N, generator=g)[:300]
            assert torch.equal(kernels.labels_at(X, C, ii), labels[ii])
    finally: torch.set_num_threads(n)
    with pytest.raises(ValueError, match='int64'): kernels.cluster_sums(X, labels.int(), k, method='fused')

@needs_kernel
def test_engine_runs_the_kernel_and_loads_it_once(monkeypatch):
    "KMeans's Lloyd runs the kernel's pass (pass_into or lloyd_pass) on the CPU (labels = float64 brute force's nearest centres); the library loads once."
    from kmeans_lessons import engine
    from kmeans_lessons.estimators import KMeans
    calls = []
    real, real_into = engine.lloyd_pass, engine.pass_into
    monkeypatch.setattr(engine, 'lloyd_pass', lambda *a, **kw: calls.append(kw['method']) or real(*a, **kw))
    monkeypatch.setattr(engine, 'pass_into', lambda *a: calls.append(a[3]) or real_into(*a))  # the engine's lean entry
    build = kernels._build
    monkeypatch.setattr(kernels, '_build', lambda: pytest.fail('the kernel was built twice in one process'))
    g = torch.Generator().manual_seed(0)
    for D, k in [(4, 8), (48, 300)]:
        X = torch.randn(3000, D, generator=g, dtype=torch.float64)
        km = KMeans(k, init=X[:k].clone(), max_iter=5, tol=0).fit(X)
        C = torch.as_tensor(km.cluster_centers_)
        d = ((X[:, None, :] - C[None]) ** 2).sum(-1)
        assert torch.equal(torch.as_tensor(km.labels_).long(), d.argmin(1))
        assert km.inertia_ == pytest.approx(float(d.min(1).values.sum()), rel=1e-12)
    assert calls and set(calls) == {'fused', 'blocked'}
    monkeypatch.setattr(engine, 'KERNEL', False)
    calls.clear()
    KMeans(8, init=X[:8].clone(), max_iter=3, tol=0).fit(X)
    assert not calls

@needs_kernel
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
@pytest.mark.parametrize('D', [5, 37])
def test_label_dists_and_block_moments_against_float64(dtype, D):
    "The engine's first pass (mean, M2, largest |x|) and the inertia's terms, against float64 brute force."
    from kmeans_lessons.engine import merge_moments
    g = torch.Generator().manual_seed(7)
    X = (torch.randn(20_001, D, generator=g) * 3 + 1e3).to(dtype)           # far from the origin: M2 by deviations
    X[5, 1] = -2e3                                                           # the largest |x| is a negative value
    C, lab = X[:9].clone(), torch.randint(0, 9, (20_001,), generator=g)
    ref = ((X.double() - C.double()[lab]) ** 2).sum(1)
    torch.testing.assert_close(kernels.label_dists(X, C, lab).double(), ref, rtol=2 * torch.finfo(dtype).eps, atol=0)
    parts, top = kernels.block_moments(X)
    acc = (0, None, None)
    for p in parts: acc = merge_moments(acc, p)
    X64 = X.double()
    assert acc[0] == 20_001 and top == float(X64.abs().max())
    torch.testing.assert_close(acc[1], X64.mean(0), rtol=1e-14, atol=0)
    torch.testing.assert_close(acc[2], ((X64 - X64.mean(0)) ** 2).sum(0), rtol=1e-10, atol=0)
    assert top == 2e3
    X[123, 2] = float('nan')
    assert not all(bool(torch.isfinite(m2).all()) for _, _, m2 in kernels.block_moments(X)[0])
    X[123, 2] = float('-inf')
    assert not all(bool(torch.isfinite(m2).all()) for _, _, m2 in kernels.block_moments(X)[0])

@pytest.mark.parametrize('method', ['fused', 'blocked', 'torch'])
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
@pytest.mark.parametrize('N,D,k', [(3001, 2, 8), (2000, 40, 100), (1500, 70, 37)])
def test_shift_gives_the_centred_copy_bit_for_bit(method, dtype, N, D, k):
    "lloyd_pass(X, C, shift=m) centres each row as it reads it: the floats of lloyd_pass(X - m, C), every output."
    if method != 'torch' and not kernel_available(): pytest.skip("no C++ compiler here")
    g = torch.Generator().manual_seed(N + k)
    X = (torch.randn(N, D, generator=g) * 3 + 50).to(dtype)
    w, m = torch.rand(N, generator=g, dtype=dtype), X.mean(0)
    C = (X[torch.randperm(N, generator=g)[:k]] - m).clone()
    before = X.clone()
    n = torch.get_num_threads()
    try:
        for nt in sorted({1, max(2, n)}):
            torch.set_num_threads(nt)
            for ww in (None, w):
                a = lloyd_pass(X - m, C, ww, method=method)
                b = lloyd_pass(X, C, ww, method=method, shift=m)
                assert all(torch.equal(p, q) for p, q in zip(a[:4], b[:4])) and a[4] == b[4]
    finally: torch.set_num_threads(n)
    assert torch.equal(X, before)
    with pytest.raises(ValueError, match=r'shift must be a tensor of shape \(%d,\)' % D):
        lloyd_pass(X, C, method=method, shift=m[:-1])

@needs_kernel
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
@pytest.mark.parametrize('N,D,k', [(3001, 2, 8), (1999, 7, 32), (517, 1, 3), (20, 4, 1)])
def test_rows_across_lanes_gives_the_lanes_floats(monkeypatch, dtype, N, D, k):
    "'fused' with few centres puts rows across the lanes (ROWS_K): the same labels, distances and sums, bit for bit."
    g = torch.Generator().manual_seed(N * k)
    X, w = torch.randn(N, D, generator=g, dtype=dtype), torch.rand(N, generator=g, dtype=dtype)
    C = X[torch.randperm(N, generator=g)[:k]].clone()
    if k > 2: C[2] = C[1]                                                            # exact ties: the first centre
    n = torch.get_num_threads()
    try:
        for nt in sorted({1, max(2, n)}):
            torch.set_num_threads(nt)
            for ww in (None, w):
                monkeypatch.setattr(kernels, 'ROWS_K', 0); a = lloyd_pass(X, C, ww, method='fused')
                monkeypatch.setattr(kernels, 'ROWS_K', 10**6); b = lloyd_pass(X, C, ww, method='fused')
                assert all(torch.equal(p, q) for p, q in zip(a[:4], b[:4])) and a[4] == b[4]
                if k > 2: assert not (b[0] == 2).any()
    finally: torch.set_num_threads(n)

@needs_kernel
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
@pytest.mark.parametrize('N,D,k', [(3001, 64, 8), (999, 33, 3), (50, 128, 4), (300, 40, 2), (257, 20, 1),
                                   (2000, 64, 10), (1500, 40, 100), (1000, 24, 90), (1000, 40, 56),
                                   (1000, 40, 50)])
def test_half_lanes_give_the_full_lanes_floats(monkeypatch, dtype, N, D, k):
    """'fused' with few centres (with AVX-512: up to 100 floats or 50 doubles) takes half-width vectors
    (HALF_LANES): the same floats, bit for bit."""
    g = torch.Generator().manual_seed(N * k + D)
    X, w = torch.randn(N, D, generator=g, dtype=dtype), torch.rand(N, generator=g, dtype=dtype)
    C = X[torch.randperm(N, generator=g)[:k]].clone()
    if k > 2: C[2] = C[1]                                                            # exact ties: the first centre
    monkeypatch.setattr(kernels, 'ROWS_K', 0)
    n = torch.get_num_threads()
    try:
        for nt in sorted({1, max(2, n)}):
            torch.set_num_threads(nt)
            for ww in (None, w):
                monkeypatch.setattr(kernels, 'HALF_LANES', False); a = lloyd_pass(X, C, ww, method='fused')
                monkeypatch.setattr(kernels, 'HALF_LANES', True); b = lloyd_pass(X, C, ww, method='fused')
                assert all(torch.equal(p, q) for p, q in zip(a[:4], b[:4])) and a[4] == b[4]
                if k > 2: assert not (b[0] == 2).any()
    finally: torch.set_num_threads(n)


@needs_kernel
def test_vectors_are_the_cpus_own_width():
    """The kernel's vectors are the CPU's widest (wider ones are split by the compiler into slow code): 64 bytes
    with AVX-512, 32 with AVX2, else 16; the lanes Python lays the centres out for follow them."""
    flags = kernels._cpu_flags().split()
    if not flags or platform.machine() not in ('x86_64', 'AMD64'): pytest.skip("reads x86 CPU flags")
    want = 64 if 'avx512f' in flags else 32 if 'avx' in flags else 16
    assert kernels._STATE['vbytes'] == want
    X, C = torch.randn(50, 40), torch.randn(3, 40)
    _, _, sums, weights, _ = lloyd_pass(X, C, method='fused')
    assert sums.shape == (3, 40) and weights.sum() == 50

@needs_kernel
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
@pytest.mark.parametrize('vectors', range(1, 10))
def test_tiles_of_centres_give_the_rows_across_floats(monkeypatch, dtype, vectors):
    """'fused' scores the centres in tiles of 4, 3, 2 and 1 vectors (every mix, with 1 to 9 vectors of centres): the
    labels, distances and sums of the rows-across layout, bit for bit, and float64 brute force's labels."""
    lanes = kernels._STATE['vbytes'] // torch.tensor([], dtype=dtype).element_size()
    k, D, N = vectors * lanes - (vectors % 2), 5, 1001                         # full and padded last vectors
    g = torch.Generator().manual_seed(vectors)
    X, w = torch.randn(N, D, generator=g, dtype=dtype), torch.rand(N, generator=g, dtype=dtype)
    C = X[torch.randperm(N, generator=g)[:k]].clone()
    C[k - 1] = C[0]                                                                  # exact ties: the first centre
    monkeypatch.setattr(kernels, 'HALF_LANES', False)
    for ww in (None, w):
        monkeypatch.setattr(kernels, 'ROWS_K', 0); a = lloyd_pass(X, C, ww, method='fused')
        monkeypatch.setattr(kernels, 'ROWS_K', 10**6); b = lloyd_pass(X, C, ww, method='fused')
        assert all(torch.equal(p, q) for p, q in zip(a[:4], b[:4])) and a[4] == b[4]
        assert not (a[0] == k - 1).any()
        d = brute(X, C, ww)
        assert (d.gather(1, a[0][:, None])[:, 0] - d.min(1).values <= 1e-4).all()

@needs_kernel
def test_auto_takes_fused_for_small_shapes_and_blocked_for_large():
    "'auto' follows FUSED_UP_TO for this CPU's vectors: 'fused' at small D, small k or small D k, else 'blocked'."
    if torch.float32 not in kernels._STATE['gemm']: pytest.skip("torch's BLAS is not reachable here")
    most_d, most_dk = kernels.FUSED_UP_TO.get(kernels._STATE['vbytes'], (16, 3200))
    assert kernels.plan(most_d, 1000, torch.float32) == 'fused'
    assert kernels.plan(128, 32, torch.float64) == 'fused'
    assert kernels.plan(most_d + 1, most_dk // (most_d + 1), torch.float32) == 'fused'
    assert kernels.plan(most_d + 1, most_dk // (most_d + 1) + 1, torch.float32) == 'blocked'
    assert kernels.plan(128, 1000, torch.float64) == 'blocked'
    assert kernels.plan(8, 10, torch.float16) == 'torch'

@needs_kernel
@pytest.mark.parametrize('method', ['fused', 'blocked'])
@pytest.mark.parametrize('width', [torch.uint8, torch.int16, torch.int32, torch.int64])
def test_pass_into_stores_and_adds_what_lloyd_pass_returns(method, width):
    """The engine's entry `pass_into`: labels stored in any integer width, distances in place, and sums, weights,
    inertia and the count of changed labels added into the engine's buffer; the same floats as `lloyd_pass`,
    call after call (the reused scratch never leaks a previous call's centres or sums)."""
    g = torch.Generator().manual_seed(3)
    X, w = torch.randn(2000, 48, generator=g, dtype=torch.float64), torch.rand(2000, generator=g, dtype=torch.float64)
    for k in (200, 199, 7, 200):                                         # same padded layout, then another one
        C = X[torch.randperm(2000, generator=g)[:k]].clone()
        ref = lloyd_pass(X, C, w, method=method)
        kept = [t.clone() for t in ref[:4]]
        old = torch.randint(0, k, (2000,), generator=g).to(width)
        for count in (False, True):
            labels, mind = old.clone(), torch.full((2000,), -1.0, dtype=torch.float64)
            buf = torch.zeros(k * 48 + k + 2, dtype=torch.float64); buf[-2:] = torch.tensor([0.5, 3.0])
            kernels.pass_into(X, C, w, method, None, labels, mind, buf, count)
            assert labels.dtype == width and torch.equal(labels.long(), ref[0]) and torch.equal(mind, ref[1])
            assert torch.equal(buf[:k * 48].view(k, 48), ref[2]) and torch.equal(buf[k * 48:k * 48 + k], ref[3])
            assert buf[-2] == 0.5 + ref[4]
            assert buf[-1] == 3.0 + (int((old.long() != ref[0]).sum()) if count else 0)
        d = brute(X, C, w)
        assert (d.gather(1, ref[0][:, None])[:, 0] - d.min(1).values <= 1e-9).all()
        lloyd_pass(X[:50] * 2, C, None, method=method)                       # another call: ref's tensors are its own
        assert all(torch.equal(a, b) for a, b in zip(ref[:4], kept))

@needs_kernel
def test_pass_into_with_buffers_too_big_to_keep(monkeypatch):
    "Scratch over SCRATCH_BYTES is made for the call and held through it: the labels of lloyd_pass, at any N."
    monkeypatch.setattr(kernels, 'SCRATCH_BYTES', 64)
    g = torch.Generator().manual_seed(5)
    X = torch.randn(50_000, 3, generator=g)
    C = X[:40].clone()
    ref = lloyd_pass(X, C, method='fused')
    labels, mind = torch.zeros(50_000, dtype=torch.int32), torch.empty(50_000)
    buf = torch.zeros(40 * 3 + 40 + 2, dtype=torch.float64)
    for _ in range(3):
        junk = [torch.full((50_000,), 7, dtype=torch.int64) for _ in range(4)]   # memory a freed buffer would hand on
        kernels.pass_into(X, C, None, 'fused', None, labels, mind, buf, False)
        assert torch.equal(labels.long(), ref[0]) and torch.equal(mind, ref[1]) and all((j == 7).all() for j in junk)

@needs_kernel
def test_engine_takes_centres_that_require_grad_or_are_half():
    """The engine's NumPy steps on the CPU: centres that require grad are read, not refused; float16 centres over
    float32 rows are cast to the rows' dtype before the kernel reads them ('blocked' and 'fused': the labels of a
    float32 start), and their M-step rounds as torch rounds."""
    from kmeans_lessons.bounds import run_strategy, hamerly
    from kmeans_lessons.engine import LloydStep
    g = torch.Generator().manual_seed(11)
    X = torch.randn(600, 64, generator=g)
    for k in (60, 8):                                                     # 'blocked' where BLAS is there, 'fused'
        ref = run_strategy(X, X[:k].clone(), None, LloydStep, max_iter=3)
        got = run_strategy(X, X[:k].clone().requires_grad_(), None, LloydStep, max_iter=3)
        assert torch.equal(got['labels'].long(), ref['labels'].long()) and got['n_iter'] == ref['n_iter']
        h = hamerly(X, X[:k].clone().requires_grad_(), max_iter=3)
        assert torch.equal(h['labels'].long(), ref['labels'].long())
        C16 = X[:k].half()
        half = run_strategy(X.half(), C16, None, LloydStep, max_iter=1)
        first = run_strategy(X.half().float(), C16.float(), None, LloydStep, max_iter=1)
        assert (half['labels'].long() == first['labels'].long()).float().mean() > 0.99, k

@needs_kernel
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
@pytest.mark.parametrize('N, D, L', [(1, 3, 1), (700, 2, 5), (5000, 16, 4), (9000, 37, 3), (3000, 130, 7)])
def test_pp_scores_against_float64(dtype, N, D, L):
    """k-means++'s compiled scores: min(|x - c|^2, closest) against float64 brute force (float32 within a few
    ulps of the direct differences, float64 to 1e-13), the potentials sum w d in float64, `out` may be `closest`
    (L = 1), no `closest` means +inf, and the floats are the same on 1 and 2 threads."""
    g = torch.Generator().manual_seed(N + D)
    X = torch.randn(N, D, generator=g, dtype=dtype) * 3 + 1
    C, w = torch.randn(L, D, generator=g, dtype=dtype), torch.rand(N, generator=g, dtype=dtype)
    closest = torch.rand(N, generator=g, dtype=dtype) * 2 * D
    d64 = ((X.double()[None] - C.double()[:, None]) ** 2).sum(-1)                     # (L, N)
    want = torch.minimum(d64, closest.double())
    out = torch.full((L, N), float('nan'), dtype=dtype)
    pots = kernels.pp_scores(X, C, closest, w, out)
    rtol = 1e-5 if dtype == torch.float32 else 1e-13
    assert torch.allclose(out.double(), want, rtol=rtol, atol=0)
    assert torch.allclose(pots, (out * w).double().sum(1), rtol=1e-12)
    assert torch.allclose(pots, (want * w.double()).sum(1), rtol=rtol)
    fresh = torch.empty(N, dtype=dtype)
    assert torch.allclose(kernels.pp_scores(X, C[:1], None, None, fresh), d64[0].sum(), rtol=rtol)
    assert torch.allclose(fresh.double(), d64[0], rtol=rtol, atol=0)
    kernels.pp_scores(X, C[:1], closest, None, closest)                               # in place
    assert torch.equal(closest, out[0])
    n = torch.get_num_threads()
    try:
        torch.set_num_threads(1); one = kernels.pp_scores(X, C, None, w)
        torch.set_num_threads(2); two = kernels.pp_scores(X, C, None, w)
    finally: torch.set_num_threads(n)
    assert torch.equal(one, two)
    with pytest.raises(ValueError, match='out must be'): kernels.pp_scores(X, C, None, None, out[:, :0])
    with pytest.raises(ValueError, match='out must be'): kernels.pp_scores(X, C, None, None, out[:0])

@needs_kernel
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
@pytest.mark.parametrize('N', [1, 10, 5000, 200_000])
def test_pp_draw_is_the_engines_draw(dtype, N):
    """The compiled draw takes the rows torch's cumsum and searchsorted take (the engine's `_draw`, over blocks of
    CUM_ROWS), from the same uniforms: masses with zeros, weighted masses, all-zero masses (row 0), and u near 1."""
    from kmeans_lessons.engine import _draw, Comm
    g = torch.Generator().manual_seed(N)
    a = torch.rand(N, generator=g, dtype=dtype) ** 4
    a[torch.rand(N, generator=g) < 0.3] = 0
    b = torch.rand(N, generator=g, dtype=dtype)
    for mass, wt in [(a, None), (a, b), (torch.zeros(N, dtype=dtype), None)]:
        for seed in range(3):
            want = _draw(mass if wt is None else mass * wt, 9, torch.Generator().manual_seed(seed), Comm(), 0)
            u = torch.rand(9, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
            assert torch.equal(kernels.pp_draw(mass, wt, u), want)
    u = torch.tensor([0.0, 1 - 2**-53, 0.5], dtype=torch.float64)
    c = a.double().cumsum(0)
    assert torch.equal(kernels.pp_draw(a, None, u), torch.searchsorted(c, u * c[-1]).clamp_max(N - 1))

@needs_kernel
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_engine_kmeans_plusplus_kernel_and_torch_paths_agree(monkeypatch, tmp_path, dtype):
    """The engine's k-means++ with the compiled scores and draws picks the rows the lessons' torch steps pick
    (KERNEL off), on blobs, weighted or not, with the candidates' scores kept or recomputed; streamed from a .npy
    file it picks the same rows as in memory; and every centre is a data row."""
    import numpy as np
    from sklearn.datasets import make_blobs
    from kmeans_lessons import engine
    from kmeans_lessons.engine import kmeans_plusplus_rows, Rows
    from kmeans_lessons.distances import get_distance
    dist = get_distance('sqeuclidean')
    Xn = make_blobs(6000, 12, centers=25, random_state=0)[0]
    X = torch.tensor(Xn, dtype=dtype)
    w = torch.rand(6000, generator=torch.Generator().manual_seed(1), dtype=dtype)
    run = lambda rows, seed, wt: kmeans_plusplus_rows(rows, 25, torch.Generator().manual_seed(seed), dist,
                                                      sample_weight=wt)
    calls = []
    real = engine.pp_scores
    monkeypatch.setattr(engine, 'pp_scores', lambda *a: calls.append(1) or real(*a))
    for wt in [None, w]:
        for seed in range(3):
            fast = run(Rows(X), seed, wt)
            assert calls
            monkeypatch.setattr(engine, 'KERNEL', False)
            slow = run(Rows(X), seed, wt)
            monkeypatch.setattr(engine, 'KEEP_SCORES_BYTES', 0)                   # torch: the winner's recomputed
            assert torch.equal(run(Rows(X), seed, wt), slow)
            monkeypatch.setattr(engine, 'KEEP_SCORES_BYTES', 64 * 2**20)
            monkeypatch.setattr(engine, 'KERNEL', True)
            assert torch.equal(fast, slow), (seed, wt is None)
            monkeypatch.setattr(engine, 'KEEP_SCORES_BYTES', 0)                   # the winner's scores recomputed
            assert torch.equal(run(Rows(X), seed, wt), fast)
            monkeypatch.setattr(engine, 'KEEP_SCORES_BYTES', 64 * 2**20)
            rows = {tuple(r) for r in X.tolist()}
            assert all(tuple(c) in rows for c in fast.tolist())
    path = tmp_path / 'x.npy'
    np.save(path, X.numpy())
    streamed = Rows(str(path), block_bytes=1000 * 12 * X.element_size())          # blocks of 1000 rows
    assert streamed.streamed and streamed.block_rows == 1000
    assert torch.equal(run(streamed, 2, None), run(Rows(X), 2, None))

@needs_kernel
def test_pp_scores_and_pp_draw_refuse_mismatched_inputs():
    "Weights, distances or masses of another dtype or length get a ValueError that names them, not a wrong read."
    X = torch.randn(50, 3)
    with pytest.raises(ValueError, match='closest must be'): kernels.pp_scores(X, X[:2], torch.ones(50).double())
    with pytest.raises(ValueError, match='w must be'): kernels.pp_scores(X, X[:2], None, torch.ones(49))
    with pytest.raises(ValueError, match='pp_draw takes'): kernels.pp_draw(torch.ones(5, dtype=torch.int64), None,
                                                                           torch.rand(2, dtype=torch.float64))
    with pytest.raises(ValueError, match='weights like them'): kernels.pp_draw(torch.ones(5), torch.ones(4),
                                                                               torch.rand(2, dtype=torch.float64))
