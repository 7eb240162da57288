"Mean shift against independent references: brute-force float64 steps, scikit-learn, hand-made cases."
import math, warnings
import numpy as np
import pytest
import torch
from sklearn.cluster import MeanShift as SkMeanShift, estimate_bandwidth as sk_estimate_bandwidth
from sklearn.metrics import adjusted_rand_score as ari
from kmeans_lessons.data import sample_blobs
from kmeans_lessons.meanshift import MeanShift, estimate_bandwidth, meanshift_step, knn

def ref_step(Y, X, bw, kernel):
    "One mean-shift step in float64 with explicit pairwise differences."
    Y, X = Y.double(), X.double()
    d = ((Y[:, None] - X[None]) ** 2).sum(-1).sqrt()                    # (n, N)
    w = {'gaussian': torch.exp(-0.5 * (d / bw) ** 2), 'triangular': (1 - d / bw).clamp_min(0),
         'flat': (d <= bw).double()}[kernel]
    return w @ X / w.sum(1, keepdim=True)

@pytest.fixture(scope='module')
def blobs():
    X, y, _ = sample_blobs(4, 150, seed=5, box=40, var=1.0)
    return X, y

@pytest.mark.parametrize('kernel', ['gaussian', 'triangular', 'flat'])
def test_step_matches_float64_reference(blobs, kernel):
    X, _ = blobs
    Y = X[::7] + 0.3
    got = meanshift_step(Y, X, 3.0, kernel, batch_size=16)
    torch.testing.assert_close(got.double(), ref_step(Y, X, 3.0, kernel), rtol=0, atol=2e-4)

def test_step_far_from_data_uses_log_scale():
    "Gaussian weights are scaled per row: a point 1000 bandwidths away still moves to its nearest data point."
    X = torch.tensor([[0., 0.], [1., 0.]])
    got = meanshift_step(torch.tensor([[-1000., 0.]]), X, 1.0)
    torch.testing.assert_close(got, torch.tensor([[0., 0.]]))

@pytest.mark.parametrize('q', [0.05, 0.3, 0.6])
def test_estimate_bandwidth_matches_sklearn(blobs, q):
    X, _ = blobs
    assert math.isclose(estimate_bandwidth(X, q, batch_size=50), sk_estimate_bandwidth(X.numpy().astype(np.float64), quantile=q), rel_tol=1e-4)

def test_estimate_bandwidth_subsample(blobs):
    X, _ = blobs
    a = estimate_bandwidth(X, n_samples=200, random_state=0)
    assert a == estimate_bandwidth(X, n_samples=200, random_state=0)
    assert 0.7 < a / estimate_bandwidth(X) < 1.3

def test_matches_sklearn_flat_kernel(blobs):
    X, y = blobs
    bw = 2.5
    sk = SkMeanShift(bandwidth=bw).fit(X.numpy())
    ms = MeanShift(bw, kernel='flat', merge_radius=1.0).fit(X)
    assert len(ms.cluster_centers_) == len(sk.cluster_centers_) == 5     # the flat kernel splits one blob, in both
    assert ari(sk.labels_, ms.labels_.numpy()) > 0.99
    d = torch.cdist(ms.cluster_centers_.double(), torch.tensor(sk.cluster_centers_).double())   # (5, 5)
    assert d.min(1).values.max() < 0.05 * bw

def test_gaussian_finds_blobs(blobs):
    X, y = blobs
    ms = MeanShift(1.5).fit(X)
    assert len(ms.cluster_centers_) == 4 and ari(y, ms.labels_) > 0.99
    true_centres = torch.stack([X[y == k].mean(0) for k in range(4)])
    assert torch.cdist(ms.cluster_centers_, true_centres).min(1).values.max() < 0.3
    assert ms.converged_.all() and ms.n_iter_ >= 1

def test_n_neighbors_N_equals_full(blobs):
    X, _ = blobs
    full = MeanShift(2.0).fit(X)
    nn = MeanShift(2.0, n_neighbors=len(X)).fit(X)
    torch.testing.assert_close(nn.shifted_, full.shifted_, rtol=0, atol=0.02)
    assert ari(full.labels_, nn.labels_) == 1.0

def test_knn_matches_brute_force():
    g = torch.Generator().manual_seed(0)
    for N, D, k in [(2000, 2, 15), (800, 4, 40), (50, 3, 50)]:
        X = torch.randn(N, D, generator=g)
        d, i = knn(X, k, leaf_size=64)
        dr = ((X[:, None] - X[None]) ** 2).sum(-1).topk(k, 1, largest=False).values
        torch.testing.assert_close(d, dr, rtol=0, atol=1e-4)
        torch.testing.assert_close(((X[:, None] - X[i]) ** 2).sum(-1), dr, rtol=0, atol=1e-4)   # indices give those distances

def test_input_not_mutated_tensor_and_numpy(blobs):
    X, _ = blobs
    Xt = X.clone(); Xn = X.numpy().copy()
    for n_neighbors in (None, 20):
        MeanShift(2.0, n_neighbors=n_neighbors).fit(Xt).predict(Xt)
        MeanShift(2.0, n_neighbors=n_neighbors).fit(Xn).predict(Xn)
    assert torch.equal(Xt, X) and np.array_equal(Xn, X.numpy())

def test_list_and_float64_input(blobs):
    X, _ = blobs
    a = MeanShift(2.0).fit(X[:100].tolist())
    b = MeanShift(2.0).fit(X[:100].double().numpy())
    assert ari(a.labels_, b.labels_) == 1.0 and b.cluster_centers_.dtype == np.float64

def test_predict_new_points(blobs):
    X, y = blobs
    ms = MeanShift(1.5).fit(X)
    new = X[::10] + 0.2
    torch.testing.assert_close(ms.predict(new), ms.labels_[::10])
    centres_pred = ms.predict(ms.cluster_centers_)
    assert centres_pred.tolist() == list(range(len(ms.cluster_centers_)))
    nn = MeanShift(1.5, n_neighbors=100).fit(X)
    assert ari(nn.labels_, y) > 0.99 and ari(nn.predict(new), y[::10]) > 0.99

def test_cluster_all_false_marks_small_modes():
    X, y, _ = sample_blobs(2, 100, seed=1, box=10, var=0.5)
    Xo = torch.cat([X, torch.tensor([[40., 40.], [-40., 40.]])])
    ms = MeanShift(1.0, min_cluster_size=5, cluster_all=False).fit(Xo)
    assert len(ms.cluster_centers_) == 2 and ms.labels_[-2:].tolist() == [-1, -1] and (ms.labels_[:-2] >= 0).all()
    assert ms.predict(torch.tensor([[40., 40.]])).tolist() == [-1]   # stays on the outlier: no mode there
    assert ms.predict(torch.tensor([[40., -40.]])).tolist() != [-1]  # the Gaussian reaches everywhere: it climbs to a mode
    ms = MeanShift(1.0, min_cluster_size=5, cluster_all=True).fit(Xo)
    assert (ms.labels_ >= 0).all() and len(ms.cluster_centers_) == 2

@pytest.mark.parametrize('kw, err, msg', [
    (dict(bandwidth=0), ValueError, 'bandwidth'), (dict(bandwidth=-1.0), ValueError, 'bandwidth'),
    (dict(bandwidth=float('nan')), ValueError, 'bandwidth'), (dict(bandwidth='2'), TypeError, 'bandwidth'),
    (dict(bandwidth=1.0, kernel='epanechnikov'), ValueError, 'kernel'), (dict(bandwidth=1.0, max_iter=0), ValueError, 'max_iter'),
    (dict(bandwidth=1.0, tol=-1), ValueError, 'tol'), (dict(bandwidth=1.0, n_neighbors=2.5), TypeError, 'n_neighbors'),
    (dict(bandwidth=1.0, batch_size=0), ValueError, 'batch_size'), (dict(bandwidth=1.0, cluster_all=None), TypeError, 'cluster_all'),
    (dict(bandwidth=1.0, merge_radius=0), ValueError, 'merge_radius'), (dict(bandwidth=1.0, min_cluster_size=10**6), ValueError, 'min_cluster_size'),
])
def test_bad_parameters(blobs, kw, err, msg):
    with pytest.raises(err, match=msg): MeanShift(**kw).fit(blobs[0])

@pytest.mark.parametrize('X, err, msg', [
    ([[1., float('nan')], [0., 0.]], ValueError, 'NaN or inf'), ([[1., float('inf')], [0., 0.]], ValueError, 'NaN or inf'),
    (np.zeros(5), ValueError, '2-D'), (np.zeros((0, 2)), ValueError, 'empty'), (np.array([['a', 'b']]), TypeError, 'real numbers'),
])
def test_bad_data(X, err, msg):
    with pytest.raises(err, match=msg): MeanShift(1.0).fit(X)

def test_predict_checks(blobs):
    X, _ = blobs
    with pytest.raises(ValueError, match='not fitted'): MeanShift(1.0).predict(X)
    ms = MeanShift(2.0).fit(X)
    with pytest.raises(ValueError, match='features'): ms.predict(torch.zeros(3, 5))
    with pytest.raises(ValueError, match='bandwidth'): meanshift_step(X, X, 0.0)

def test_estimate_bandwidth_errors():
    with pytest.raises(ValueError, match='quantile'): estimate_bandwidth(torch.zeros(4, 2), 2.0)
    with pytest.raises(ValueError, match='bandwidth must be'): MeanShift(0.0).fit(torch.zeros(10, 2))

def test_constant_data_and_one_point_give_one_cluster():
    for X in (torch.zeros(10, 2), torch.full((5, 3), 7.0), [[1.0, 2.0]]):
        ms = MeanShift().fit(X)
        assert len(ms.cluster_centers_) == 1 and (np.asarray(ms.labels_) == 0).all()

def test_not_converged_warns_and_labels(blobs):
    from kmeans_lessons.validation import ConvergenceWarning
    X, _ = blobs
    with pytest.warns(ConvergenceWarning, match='did not converge'):
        ms = MeanShift(1.5, max_iter=1).fit(X)                         # none converged: every point may start a mode
    assert ms.n_iter_ == 1 and (ms.labels_ >= 0).all() and not ms.converged_.any()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        for it in range(2, 30):
            ms = MeanShift(1.5, max_iter=it, cluster_all=False).fit(X)
            if 0 < int(ms.converged_.sum()) < len(X): break
    assert 0 < int(ms.converged_.sum()) < len(X)
    assert (ms.labels_[ms.converged_] >= 0).all()
    far = torch.cdist(ms.shifted_, ms.cluster_centers_).min(1).values > ms.merge_radius * ms.bandwidth_   # (N,)
    assert torch.equal(ms.labels_ == -1, far & ~ms.converged_)   # rule: stopped far from every mode -> -1

@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a GPU')
def test_gpu_matches_cpu(blobs):
    X, _ = blobs
    cpu = MeanShift(2.0).fit(X)
    gpu = MeanShift(2.0, device='cuda').fit(X)
    assert gpu.labels_.is_cuda and ari(cpu.labels_, gpu.labels_.cpu()) == 1.0

# scikit-learn's options (issue 10): seeds, bin_seeding, cluster_all orphans, zero bandwidth, ties, verbose
from sklearn.datasets import make_blobs
from kmeans_lessons.meanshift import mean_shift, get_bin_seeds

@pytest.fixture(scope='module')
def sk_blobs():
    return make_blobs(400, centers=[[0, 0], [4, 0], [0, 4]], cluster_std=0.8, random_state=3)[0]

@pytest.mark.parametrize('kw', [dict(bin_seeding=True), dict(bin_seeding=True, cluster_all=False),
                                dict(bin_seeding=True, min_bin_freq=5, cluster_all=False), 'seeds', 'seeds-orphans'])
def test_seeded_fits_match_sklearn_exactly(sk_blobs, kw):
    "With seeds, both label every point by its nearest mode: the flat kernel gives scikit-learn's labels and centres."
    X = sk_blobs
    if kw == 'seeds': kw = dict(seeds=X[::40])
    if kw == 'seeds-orphans': kw = dict(seeds=X[::40], cluster_all=False)
    sk = SkMeanShift(bandwidth=1.0, **kw).fit(X)
    ours = MeanShift(1.0, kernel='flat', merge_radius=1.0, **kw).fit(X)
    assert np.array_equal(ours.labels_, sk.labels_)
    np.testing.assert_allclose(ours.cluster_centers_, sk.cluster_centers_, rtol=0, atol=1e-9)
    # predict on the training points gives the fit's labels, orphans (-1) included, in every case: 3 of the 5
    # cases have orphans. scikit-learn's predict is always the nearest centre: ours with cluster_all=True.
    assert (sk.labels_ == -1).any() == (not kw.get('cluster_all', True))
    assert np.array_equal(ours.predict(X), sk.labels_)
    every = ours if kw.get('cluster_all', True) else MeanShift(1.0, kernel='flat', merge_radius=1.0,
                                                                 **{**kw, 'cluster_all': True}).fit(X)
    assert np.array_equal(every.predict(X), sk.predict(X))

def test_every_point_path_orphans_like_sklearn(sk_blobs):
    "Default path, flat kernel, cluster_all=False: -1 exactly for points farther than bandwidth from every centre."
    sk = SkMeanShift(bandwidth=1.0, cluster_all=False).fit(sk_blobs)
    ours = MeanShift(1.0, kernel='flat', merge_radius=1.0, cluster_all=False).fit(sk_blobs)
    np.testing.assert_allclose(ours.cluster_centers_, sk.cluster_centers_, rtol=0, atol=1e-9)
    assert np.array_equal(ours.labels_ == -1, sk.labels_ == -1) and (sk.labels_ == -1).sum() > 0
    assert ari(ours.labels_, sk.labels_) > 0.97                  # ours: the mode a point climbed to; theirs: nearest

def test_seeds_with_neighbours_and_predict(sk_blobs):
    ms = MeanShift(1.0, seeds=sk_blobs[::20], n_neighbors=200).fit(sk_blobs)
    assert len(ms.cluster_centers_) == 3 and ms.shifted_.shape == (20, 2)
    assert np.array_equal(ms.predict(sk_blobs), ms.labels_)
    c, lab = mean_shift(torch.from_numpy(sk_blobs), bandwidth=1.0, bin_seeding=True)   # tensor in, tensors out
    assert torch.is_tensor(c) and torch.is_tensor(lab) and c.dtype == torch.float64

def test_get_bin_seeds_follows_input_and_warns():
    X = np.array([[0.1, 0.1], [0.2, 0.0], [3.1, 2.9]])
    assert get_bin_seeds(X, 1.0).tolist() == [[0.0, 0.0], [3.0, 3.0]]
    assert torch.equal(get_bin_seeds(torch.tensor(X), 1.0, min_bin_freq=2), torch.tensor([[0.0, 0.0]], dtype=torch.float64))
    with pytest.warns(UserWarning, match='Binning data failed'): assert get_bin_seeds(X, 0.01) is X

@pytest.mark.parametrize('kw, err, msg', [
    (dict(seeds=np.zeros((2, 3))), ValueError, 'seeds has 3 features, but X has 2'),
    (dict(bin_seeding=True, min_bin_freq=10**6), ValueError, 'min_bin_freq'),
    (dict(min_bin_freq=0), ValueError, 'min_bin_freq'), (dict(bin_seeding='yes'), TypeError, 'bin_seeding'),
    (dict(seeds='abc'), TypeError, 'seeds'),
])
def test_bad_seeding_parameters(sk_blobs, kw, err, msg):
    with pytest.raises(err, match=msg): MeanShift(1.0, **kw).fit(sk_blobs)

def test_zero_bandwidth_distinct_points_most_repeated_first():
    X = np.array([[5.0], [1], [1], [3], [3], [3], [5], [1], [3]])
    ms = MeanShift().fit(X)                                       # estimate_bandwidth(X) == 0
    assert ms.bandwidth_ == 0 and ms.cluster_centers_.ravel().tolist() == [3, 1, 5] and ms.n_iter_ == 0
    assert ms.labels_.tolist() == [2, 1, 1, 0, 0, 0, 2, 1, 0] and ms.predict([[1.0], [3.8]]).tolist() == [1, 0]
    assert MeanShift(cluster_all=False).fit(X).predict([[1.0], [3.8]]).tolist() == [1, -1]

def test_ties_follow_coordinates_whatever_the_order():
    B = np.random.default_rng(0).normal(size=(40, 2))
    X = np.concatenate([B, B + [10, 0], B + [0, 10]])             # three identical blobs: equal densities
    first = MeanShift(1.0).fit(X).cluster_centers_
    assert first[0, 0] > 5 and first[1, 1] < first[2, 1]           # larger coordinates first, left to right
    for s in range(3):
        np.testing.assert_allclose(MeanShift(1.0).fit(X[np.random.default_rng(s).permutation(len(X))]).cluster_centers_,
                                   first, atol=1e-3)

def test_verbose_says_how_climbs_ended(capsys, blobs):
    X, _ = blobs
    MeanShift(2.0).fit(X)
    assert capsys.readouterr().out == ''
    MeanShift(2.0, verbose=True).fit(X)
    assert 'mean shift: all 600 climbs converged in' in capsys.readouterr().out
    with pytest.warns(Warning):
        MeanShift(2.0, verbose=True, max_iter=1).fit(X)
    assert 'stopped at max_iter=1 with' in capsys.readouterr().out

def test_lex_rank_both_paths_sort_rows_like_python():
    from kmeans_lessons.meanshift import _lex_rank
    Y = torch.randint(0, 3, (300, 3), generator=torch.Generator().manual_seed(0)).double()
    ref = torch.tensor(sorted(Y.tolist()), dtype=torch.float64)
    for Z in (Y, torch.cat([Y, torch.zeros(300, 7, dtype=torch.float64)], 1)):   # 3 columns: sorts; 10: unique
        assert torch.equal(Z[_lex_rank(Z).argsort(stable=True)][:, :3], ref)

# Any scale (issue 19): the data are divided by a power of two (exact) and the squares neither under- nor
# overflow; distances come from differences where the expansion's rounding would rival the bandwidth.
SCALES = [1e-30, 1e-20, 1e-10, 1e10, 1e20, 1e30]

@pytest.mark.parametrize('dtype', [np.float32, np.float64])
@pytest.mark.parametrize('scale', SCALES)
def test_extreme_scales_give_sklearns_clusters(sk_blobs, scale, dtype):
    "scikit-learn's algorithm (flat kernel, merge within 1 bandwidth) at X * 1e-30 ... 1e30: its bandwidth and clusters."
    Xs = (sk_blobs[:300] * scale).astype(dtype)
    X64 = Xs.astype(np.float64)
    bw = estimate_bandwidth(Xs)
    assert math.isclose(bw, sk_estimate_bandwidth(X64), rel_tol=1e-5)
    sk = SkMeanShift(bin_seeding=True).fit(X64)                   # seeds: both label by the nearest mode
    ours = MeanShift(kernel='flat', merge_radius=1.0, bin_seeding=True).fit(Xs)
    assert len(sk.cluster_centers_) == 3 and np.array_equal(ours.labels_, sk.labels_)
    assert ours.cluster_centers_.dtype == dtype and np.isfinite(ours.cluster_centers_).all()
    np.testing.assert_allclose(ours.cluster_centers_, sk.cluster_centers_, rtol=1e-5, atol=0)
    every = MeanShift(kernel='flat', merge_radius=1.0).fit(Xs)          # every point climbs
    assert len(every.cluster_centers_) == 3 and ari(every.labels_, sk.labels_) > 0.97
    assert np.isfinite(every.shifted_).all() and np.array_equal(every.predict(Xs[:40]), every.labels_[:40])

@pytest.mark.parametrize('kernel', ['gaussian', 'triangular', 'flat'])
@pytest.mark.parametrize('scale', [1e-30, 1e-20, 1e30])
def test_extreme_scales_same_fit_and_step_as_at_scale_one(sk_blobs, kernel, scale):
    "Every kernel, float32: the fit at X * scale is the fit at X, scaled; so is one step; never a NaN."
    X = sk_blobs[:300].astype(np.float32)
    ref = MeanShift(1.0, kernel=kernel).fit(X)
    got = MeanShift(1.0 * scale, kernel=kernel).fit(X * np.float32(scale))
    assert np.array_equal(got.labels_, ref.labels_) and np.isfinite(got.shifted_).all()
    np.testing.assert_allclose(got.cluster_centers_ / scale, ref.cluster_centers_, rtol=1e-4, atol=1e-4)
    Xt = torch.from_numpy(X)
    step = meanshift_step(Xt * scale, Xt * scale, 1.0 * scale, kernel) / scale
    torch.testing.assert_close(step, meanshift_step(Xt, Xt, 1.0, kernel), rtol=1e-4, atol=1e-3)

@pytest.mark.parametrize('dtype', [np.float32, np.float64])
def test_flat_kernel_small_bandwidth_every_point_sees_itself(sk_blobs, dtype):
    "At bandwidth 1e-3 every point is alone: 300 clusters and no orphan, as in scikit-learn (the expansion lost 26)."
    X = sk_blobs[:300].astype(dtype)
    sk = SkMeanShift(bandwidth=1e-3, cluster_all=False).fit(X.astype(np.float64))
    ours = MeanShift(1e-3, kernel='flat', merge_radius=1.0, cluster_all=False).fit(X)
    assert len(sk.cluster_centers_) == 300 and (sk.labels_ >= 0).all()
    assert len(ours.cluster_centers_) == 300 and (ours.labels_ >= 0).all()
    assert ari(ours.labels_, sk.labels_) == 1.0

def test_flat_step_far_from_the_origin_matches_float64_differences():
    "Data near 1000 in float32: the expansion's rounding (about 0.1) exceeds bw^2 = 0.0025; the step uses differences."
    X = torch.randn(400, 2, generator=torch.Generator().manual_seed(0)) * 0.05 + 1000
    got = meanshift_step(X, X, 0.05, 'flat')
    torch.testing.assert_close(got.double(), ref_step(X, X, 0.05, 'flat'), rtol=0, atol=1e-3)  # float32 at 1000
    assert (got != X).any(1).float().mean() > 0.9                      # the points do move: each sees its neighbours

def test_tiny_and_huge_bandwidths(sk_blobs):
    "A bandwidth 1e-25 of the data's size (float32 climbs in float64), 1e300 (one cluster), 1e-200 (a clear error)."
    X = sk_blobs[:300].astype(np.float32)
    tiny = MeanShift(1e-25, kernel='flat', merge_radius=1.0).fit(X)
    assert len(tiny.cluster_centers_) == 300 and tiny.cluster_centers_.dtype == np.float32
    assert np.array_equal(tiny.cluster_centers_[tiny.labels_], X)              # each point is its own mode
    for kernel in ('gaussian', 'flat', 'triangular'):
        huge = MeanShift(1e300, kernel=kernel).fit(X)
        assert len(huge.cluster_centers_) == 1 and np.isfinite(huge.cluster_centers_).all()
    with pytest.raises(ValueError, match='too small even for float64'):
        MeanShift(1e-200).fit(sk_blobs)
    with pytest.raises(ValueError, match='too small even for float64'):
        meanshift_step(torch.from_numpy(sk_blobs), torch.from_numpy(sk_blobs), 1e-200)

# n_jobs (issue 17): scikit-learn's signatures are accepted; the value has no effect (torch has its own threads)
def test_n_jobs_accepted_and_without_effect(sk_blobs):
    import inspect
    from sklearn.base import clone
    from sklearn.cluster import mean_shift as sk_mean_shift
    X = sk_blobs[:200]
    for ours, theirs in [(MeanShift, SkMeanShift), (mean_shift, sk_mean_shift), (estimate_bandwidth, sk_estimate_bandwidth)]:
        missing = set(inspect.signature(theirs).parameters) - set(inspect.signature(ours).parameters)
        assert not missing, (ours.__name__, missing)
    ref = MeanShift(1.0).fit(X)
    for n_jobs in (None, 1, 2, -1):
        ms = clone(MeanShift(1.0, n_jobs=n_jobs)).fit(X)
        assert ms.get_params()['n_jobs'] == n_jobs and np.array_equal(ms.labels_, ref.labels_)
        assert np.array_equal(mean_shift(X, bandwidth=1.0, n_jobs=n_jobs)[1], ref.labels_)
        assert estimate_bandwidth(X, n_jobs=n_jobs) == estimate_bandwidth(X)
    assert 'n_jobs' in MeanShift.__doc__ and 'no effect' in MeanShift.__doc__
    for bad in ('two', 1.5):
        with pytest.raises((TypeError, ValueError), match='n_jobs'): MeanShift(1.0, n_jobs=bad).fit(X)
        with pytest.raises((TypeError, ValueError), match='n_jobs'): estimate_bandwidth(X, n_jobs=bad)
