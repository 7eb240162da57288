"""Bad input, through the public API only (issue 19): overflow and underflow, NaN and inf, shapes and dtypes,
devices and parameters, for KMeans, MiniBatchKMeans, MeanShift, k_means and kmeans_plusplus.

Every case asserts one of: the exact exception type and its key words; or a right answer, checked against
scikit-learn or brute force. And always: no NaN in any result, and the caller's data unchanged (compared with
a copy taken before the call)."""
import math
import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans as SkKMeans
from sklearn.metrics import adjusted_rand_score
from kmeans_lessons import KMeans, MiniBatchKMeans, MeanShift, k_means, kmeans_plusplus, sample_blobs


def blobs(dtype=torch.float32):
    "Three well separated blobs, (300, 2), and their true labels."
    X, y, _ = sample_blobs(n_clusters=3, n_samples=100, seed=0)
    return X.to(dtype), y


# One call per public entry point: each takes the data and optional sample weights.
CALLS = {
    'KMeans': lambda X, w=None, **kw: KMeans(3, n_init=1, random_state=0, **kw).fit(X, sample_weight=w),
    'MiniBatchKMeans': lambda X, w=None, **kw: MiniBatchKMeans(3, batch_size=64, random_state=0, **kw)
                                                .fit(X, sample_weight=w),
    'MeanShift': lambda X, w=None, **kw: MeanShift(**kw).fit(X),
    'k_means': lambda X, w=None, **kw: k_means(X, 3, sample_weight=w, n_init=1, random_state=0, **kw),
    'kmeans_plusplus': lambda X, w=None, **kw: kmeans_plusplus(X, 3, sample_weight=w, random_state=0, **kw),
}
WEIGHTED = [n for n in CALLS if n != 'MeanShift']
KMEANS = WEIGHTED            # the squared-distance fits; mean shift rescales its data itself, to any scale
DEVICE_PARAM = ['KMeans', 'MiniBatchKMeans', 'MeanShift', 'k_means']


def _copy(v):
    if torch.is_tensor(v): return None if v.is_meta else v.clone()
    if isinstance(v, np.ndarray): return v.copy()
    return None


def _same(a, b):
    if torch.is_tensor(a):
        if a.layout != torch.strided: a, b = a.to_dense(), b.to_dense()
        return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    return a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind in 'fc')


def _results(out):
    "Every number an estimator or a function returned."
    if isinstance(out, tuple): return list(out)
    return [getattr(out, a) for a in ('cluster_centers_', 'labels_', 'inertia_') if hasattr(out, a)]


def _no_nan(out):
    for r in _results(out):
        if torch.is_tensor(r): assert not bool(torch.isnan(r.double()).any()), out
        elif isinstance(r, np.ndarray): assert not np.isnan(r.astype(float)).any(), out
        else: assert not math.isnan(float(r)), out


def guarded(call, X, w=None, **kw):
    "Run `call(X, w)`; the caller's X and w must be unchanged whatever happens, and a result must hold no NaN."
    before = [(v, _copy(v)) for v in (X, w) if _copy(v) is not None]
    try:
        out = call(X, w, **kw)
    finally:
        for v, copy in before: assert _same(v, copy), "the caller's data was changed"
    _no_nan(out)
    return out


def raises(call, X, w=None, exc=ValueError, words=(), **kw):
    "`call` must raise exactly `exc` (or an `InvalidParameterError`, which is both), with every one of `words`."
    with pytest.raises(exc) as e:
        guarded(call, X, w, **kw)
    msg = str(e.value)
    for word in words: assert word in msg, msg
    return msg


def labels_of(out):
    if isinstance(out, tuple): return np.asarray(out[1])
    return np.asarray(out.labels_)


# ------------------------------------------------------------------ overflow: never NaN from finite input
@pytest.mark.parametrize('name', KMEANS)
@pytest.mark.parametrize('scale,dtype', [(1e30, torch.float32), (1e200, torch.float64)])
@pytest.mark.parametrize('kind', ['tensor', 'numpy'])
def test_values_whose_squares_overflow_are_refused_by_name(name, scale, dtype, kind):
    X, _ = blobs(dtype)
    X = X * scale
    if kind == 'numpy': X = X.numpy()
    msg = raises(CALLS[name], X, words=('overflow', 'StandardScaler', 'abs(X).max()', 'scale the data down'))
    assert ('float32' in msg) == (dtype == torch.float32) and 'NaN' not in msg, msg


@pytest.mark.parametrize('name', WEIGHTED)
def test_weights_whose_products_overflow_are_refused_by_name(name):
    X, _ = blobs(torch.float64)
    raises(CALLS[name], X, np.full(300, 1e308), words=('sample_weight', 'overflow', 'sample_weight.max()'))


@pytest.mark.parametrize('name', ['KMeans', 'k_means', 'kmeans_plusplus', 'MiniBatchKMeans'])
@pytest.mark.parametrize('scale,dtype', [(1e12, torch.float32), (1e150, torch.float64)])
def test_large_but_safe_values_give_the_right_clusters(name, scale, dtype):
    "Just inside the limit the fit runs, with the true blobs as clusters and, for KMeans, scikit-learn's inertia."
    X, y = blobs(dtype)
    out = guarded(CALLS[name], X * scale)
    if name == 'kmeans_plusplus':             # scaling changes nothing: the seeds of X itself, all distinct
        idx = labels_of(out)
        assert len(set(idx.tolist())) == 3 and np.array_equal(idx, labels_of(CALLS[name](X, None)))
        return
    assert adjusted_rand_score(y.numpy(), labels_of(out)) == 1.0
    if name == 'KMeans':
        sk = SkKMeans(3, n_init=1, random_state=0).fit((X.double() * scale).numpy())
        assert math.isclose(out.inertia_, sk.inertia_, rel_tol=1e-4)


def test_kmeans_plusplus_seeds_are_distinct_where_it_once_repeated_one():
    "X × 1e30 gave the duplicate seeds [44, 299, 299]; X × 1e15 in float64 gives three distinct points."
    X, _ = blobs(torch.float64)
    for seed in range(5):
        _, idx = guarded(lambda X, w: kmeans_plusplus(X, 3, random_state=seed), X * 1e15)
        assert len(set(idx.tolist())) == 3


def test_large_weights_give_the_same_clusters_as_unit_weights():
    "Only the weights' ratios matter: weights of 1e100 give the clusters of weights 1, and the inertia × 1e100."
    X, _ = blobs(torch.float64)
    a = guarded(CALLS['KMeans'], X, torch.ones(300, dtype=torch.float64))
    b = guarded(CALLS['KMeans'], X, torch.full((300,), 1e100, dtype=torch.float64))
    assert torch.equal(a.labels_, b.labels_) and math.isclose(b.inertia_, a.inertia_ * 1e100, rel_tol=1e-9)


# ------------------------------------------------------------------ underflow: the real cause is named
@pytest.mark.parametrize('name', KMEANS)
@pytest.mark.parametrize('scale,dtype', [(1e-30, torch.float32), (1e-300, torch.float64)])
def test_values_whose_squares_underflow_are_refused_by_name(name, scale, dtype):
    "Once a warning about 'fewer distinct points'; the squares underflow, and the message says so."
    X, _ = blobs(dtype)
    msg = raises(CALLS[name], X * scale, words=('underflow', 'tiny', 'StandardScaler', 'scale the data up'))
    assert 'distinct' not in msg


@pytest.mark.parametrize('name', WEIGHTED)
def test_weights_below_the_smallest_normal_number_are_refused(name):
    X, _ = blobs(torch.float64)
    raises(CALLS[name], X, np.full(300, 1e-320), words=('sample_weight', 'underflow'))


@pytest.mark.parametrize('name', ['KMeans', 'k_means', 'MiniBatchKMeans'])
def test_small_but_safe_values_give_the_right_clusters(name):
    X, y = blobs(torch.float32)
    out = guarded(CALLS[name], X * 1e-15)
    assert adjusted_rand_score(y.numpy(), labels_of(out)) == 1.0


@pytest.mark.parametrize('scale,dtype', [(1e-30, torch.float32), (1e-20, torch.float32), (1e30, torch.float32),
                                         (1e-300, torch.float64), (1e200, torch.float64)])
def test_mean_shift_at_any_scale_finds_the_three_blobs(scale, dtype):
    "Mean shift scales its data itself: where k-means refuses the scale, it still finds the three blobs."
    X, y = blobs(dtype)
    out = guarded(CALLS['MeanShift'], X * scale)
    assert len(out.cluster_centers_) == 3 and adjusted_rand_score(y.numpy(), labels_of(out)) == 1.0


def test_all_equal_points_are_not_mistaken_for_underflow():
    "Zero spread is not underflow: the fit runs and warns about too few distinct points."
    with pytest.warns(UserWarning, match='distinct'):
        out = guarded(CALLS['KMeans'], torch.zeros(10, 2))
    assert out.inertia_ == 0


# ------------------------------------------------------------------ NaN and inf
@pytest.mark.parametrize('name', list(CALLS))
@pytest.mark.parametrize('bad', [float('nan'), float('inf'), -float('inf')])
def test_nan_and_inf_in_X_are_refused(name, bad):
    X, _ = blobs(torch.float64)
    X = X.numpy().copy()
    X[17, 1] = bad
    raises(CALLS[name], X, words=('NaN or inf', '1 value'))


@pytest.mark.parametrize('name', WEIGHTED)
@pytest.mark.parametrize('bad', [float('nan'), float('inf'), -1.0])
def test_nan_inf_and_negative_weights_are_refused(name, bad):
    X, _ = blobs(torch.float64)
    w = np.ones(300)
    w[5] = bad
    raises(CALLS[name], X, w, words=('sample_weight', 'finite and >= 0'))


@pytest.mark.parametrize('name', WEIGHTED)
def test_all_zero_weights_are_refused(name):
    X, _ = blobs(torch.float64)
    raises(CALLS[name], X, np.zeros(300), words=('every weight is zero',))


# ------------------------------------------------------------------ shapes and dtypes
SHAPES = [
    (np.zeros(6), ValueError, ('2-D', 'reshape(-1, 1)')),
    (np.zeros((2, 3, 2)), ValueError, ('2-D', '3-D')),
    (np.zeros((0, 2)), ValueError, ('empty', '0 sample')),
    (np.zeros((6, 0)), ValueError, ('empty', '0 feature')),
    ([[1.0, 2.0], [3.0]], TypeError, ('ragged',)),
    (np.array([['a', 'b'], ['c', 'd']]), TypeError, ('real numbers',)),
    ('data', TypeError, ('str',)),
    (None, TypeError, ('NoneType',)),
    (np.ones((6, 2), dtype=complex), ValueError, ('Complex',)),
    (torch.eye(6, 2).to_sparse(), TypeError, ('sparse',)),
]


@pytest.mark.parametrize('name', list(CALLS))
@pytest.mark.parametrize('X,exc,words', SHAPES, ids=[f"shape{i}" for i in range(len(SHAPES))])
def test_bad_shapes_and_kinds_are_refused(name, X, exc, words):
    raises(CALLS[name], X, exc=exc, words=words)


@pytest.mark.parametrize('name', WEIGHTED)
def test_fewer_samples_than_clusters_is_refused(name):
    raises(CALLS[name], np.eye(2), words=('n_samples=2', 'n_clusters=3'))


@pytest.mark.parametrize('name', WEIGHTED)
@pytest.mark.parametrize('w', [np.ones(299), np.ones((300, 1))])
def test_weights_of_the_wrong_shape_are_refused(name, w):
    X, _ = blobs(torch.float64)
    raises(CALLS[name], X, w, words=('sample_weight', '(300,)'))


@pytest.mark.parametrize('name', ['KMeans', 'k_means', 'MiniBatchKMeans', 'MeanShift'])
@pytest.mark.parametrize('to', [np.int64, np.int32, np.float16, bool, object])
def test_other_dtypes_give_the_clusters_of_float64(name, to):
    "Integers, booleans, float16 and object arrays of numbers are read as numbers: the same clusters as float64."
    X, y = blobs(torch.float64)
    X = (X.numpy() > 0) if to is bool else X.numpy().round().astype(to)
    ref = X.astype(np.float64)
    out = guarded(CALLS[name], X)
    if to is bool:
        assert len(np.unique(labels_of(out))) <= 4          # four possible points: any grouping, no NaN
        return
    assert adjusted_rand_score(labels_of(guarded(CALLS[name], ref)), labels_of(out)) == 1.0


# ------------------------------------------------------------------ devices
@pytest.mark.parametrize('name', list(CALLS))
def test_meta_tensors_hold_no_data(name):
    "Once `RuntimeError: Tensor.item() cannot be called on meta tensors`."
    raises(CALLS[name], torch.empty(300, 2, device='meta'), words=('meta device hold no data',))


@pytest.mark.parametrize('name', WEIGHTED)
def test_meta_weights_hold_no_data(name):
    X, _ = blobs()
    raises(CALLS[name], X, torch.empty(300, device='meta'), words=('sample_weight', 'meta device hold no data'))


@pytest.mark.parametrize('name', DEVICE_PARAM)
@pytest.mark.parametrize('device,words', [('meta', ('meta device hold no data',)),
                                          ('tpu', ("'tpu'", 'no device type')),
                                          ('xpu', ("'xpu'", 'does not run there')),
                                          ('gpu', ("'gpu'",)), ('', ("''",))])
def test_devices_that_dont_exist_or_hold_no_data_are_refused(name, device, words):
    X, _ = blobs()
    raises(CALLS[name], X, device=device, words=words)


@pytest.mark.skipif(torch.cuda.is_available(), reason='CUDA is available here')
@pytest.mark.parametrize('name', DEVICE_PARAM)
def test_cuda_without_cuda_is_refused(name):
    X, _ = blobs()
    raises(CALLS[name], X, device='cuda', words=('CUDA is not available',))


@pytest.mark.parametrize('name', DEVICE_PARAM)
def test_a_device_of_the_wrong_type_is_refused(name):
    X, _ = blobs()
    raises(CALLS[name], X, exc=(TypeError, ValueError), device=3, words=('device',))


# ------------------------------------------------------------------ parameters
BAD_PARAMS = {
    'KMeans': [dict(n_clusters=0), dict(n_clusters=2.5), dict(n_clusters=True), dict(n_clusters='3'),
               dict(max_iter=0), dict(tol=-1.0), dict(tol=float('nan')), dict(n_init=0), dict(init='bogus'),
               dict(algorithm='fast'), dict(random_state=-1), dict(random_state='seed')],
    'MiniBatchKMeans': [dict(n_clusters=0), dict(batch_size=0), dict(max_iter=0), dict(init='bogus'),
                        dict(reassignment_ratio=-0.1), dict(max_no_improvement=-1)],
    'MeanShift': [dict(bandwidth=-1.0), dict(bandwidth=0.0), dict(bandwidth=float('nan')), dict(max_iter=0),
                  dict(kernel='box'), dict(min_bin_freq=-1)],
}


def _build(name, params):
    cls = {'KMeans': KMeans, 'MiniBatchKMeans': MiniBatchKMeans, 'MeanShift': MeanShift}[name]
    if name == 'MeanShift': return lambda X, w: cls(**params).fit(X)
    params = {'n_clusters': 3, **params}
    return lambda X, w: cls(**params).fit(X)


@pytest.mark.parametrize('name,params', [(n, p) for n, ps in BAD_PARAMS.items() for p in ps],
                         ids=[f"{n}-{'-'.join(f'{k}={v}' for k, v in p.items())}"
                              for n, ps in BAD_PARAMS.items() for p in ps])
def test_bad_parameters_are_named(name, params):
    X, _ = blobs()
    (param, value), = params.items()
    msg = raises(_build(name, params), X, exc=(ValueError, TypeError), words=(param,))
    assert name in msg, msg


@pytest.mark.parametrize('kw,words', [(dict(n_clusters=0), ('n_clusters',)), (dict(n_local_trials=0), ('n_local_trials',)),
                                      (dict(x_squared_norms=np.ones(5)), ('x_squared_norms', '300'))])
def test_kmeans_plusplus_bad_parameters_are_named(kw, words):
    X, _ = blobs()
    kw = {'n_clusters': 3, **kw}
    raises(lambda X, w: kmeans_plusplus(X, **kw), X, exc=(ValueError, TypeError), words=words)


def test_k_means_bad_parameters_are_named():
    X, _ = blobs()
    raises(lambda X, w: k_means(X, 0), X, exc=(ValueError, TypeError), words=('n_clusters',))
    raises(lambda X, w: k_means(X, 3, max_iter=-5), X, exc=(ValueError, TypeError), words=('max_iter',))


def test_partial_fit_checks_parameters_again():
    X, _ = blobs()
    mb = MiniBatchKMeans(3, random_state=0).partial_fit(X)
    mb.set_params(batch_size=0)
    raises(lambda X, w: mb.partial_fit(X), X, exc=(ValueError, TypeError), words=('batch_size',))


def test_predict_refuses_what_fit_refuses():
    "A fitted model refuses overflowing, tiny, NaN and meta input to predict too, naming the problem."
    X, _ = blobs()
    km = KMeans(3, n_init=1, random_state=0).fit(X)
    raises(lambda X, w: km.predict(X), X * 1e30, words=('overflow',))
    raises(lambda X, w: km.predict(X), X * 1e-30, words=('underflow',))
    raises(lambda X, w: km.predict(X), torch.empty(5, 2, device='meta'), words=('meta device',))


# out-of-core input (a memmap or an .npy path) is read block by block: the engine's one pass for the moments (KMeans)
# and MiniBatchKMeans's sample checks make the same scale checks as `check_array`
CORE_CASES = [pytest.param(name, scale, words, id=f"{name}-{scale:g}")
              for name in ('KMeans', 'MiniBatchKMeans') for scale, words in ((1e30, 'overflow'), (1e-30, 'underflow'))]


@pytest.mark.parametrize('name,scale,words', CORE_CASES)
@pytest.mark.parametrize('kind', ['memmap', 'path'])
def test_out_of_core_input_gets_the_same_scale_checks(tmp_path, name, scale, words, kind):
    X, _ = blobs(torch.float32)
    path = tmp_path / 'X.npy'
    np.save(path, (X * scale).numpy())
    data = np.load(path, mmap_mode='r') if kind == 'memmap' else str(path)
    raises(CALLS[name], data, words=(words,))


@pytest.mark.parametrize('device,exc,words', [
    ('tpu', ValueError, ("'tpu'", 'no device type')), ('meta', ValueError, ('meta device hold no data',)),
    (torch.device('meta'), ValueError, ('meta device hold no data',)), ('xpu', ValueError, ('does not run there',)),
    ('cuda:x', ValueError, ("'cuda:x'",)), (None, None, ()), ('auto', None, ()), ('cpu', None, ()),
    (3, TypeError, ('device must be a string',))])
def test_get_device_refuses_what_does_not_exist_or_holds_no_data(device, exc, words):
    from kmeans_lessons import get_device
    if exc is None:
        assert get_device(device).type in ('cpu', 'cuda', 'mps')
        return
    with pytest.raises(exc) as e: get_device(device)
    for w in words: assert w in str(e.value), str(e.value)
