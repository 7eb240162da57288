"""The engine's matrix (issue 17): every placement x every algorithm x weights x distance, from the same explicit
init with tol=0, runs what was asked (`algorithm_`) and gives the in-memory Lloyd's labels and n_iter, centres to
float tolerance. Every combination can be done, cosine with the bounds too (they run on unit vectors): none raises.
Ranks: each world size is started once (tests/dist_worker.py, scenario 'matrix') and runs every combination inside.
Cosine with the bounds is also checked against references of its own: brute force and scikit-learn."""
import itertools, os, subprocess, sys
from pathlib import Path
import numpy as np
import pytest
import torch
from kmeans_lessons import engine
from kmeans_lessons.estimators import KMeans

ALGORITHMS = ['lloyd', 'hamerly', 'yinyang', 'elkan', 'auto']
DISTANCES = ['euclidean', 'cosine']
K = 4


def matrix_data():
    "300 points in 3-D around 4 blobs (float64), weights in [0.5, 2], and the explicit start."
    g = np.random.default_rng(0)
    X = np.concatenate([g.normal(c, 0.6, size=(75, 3)) for c in ([2, 0, 0], [0, 2, 0], [0, 0, 2], [2, 2, 2])])
    X = X[g.permutation(len(X))]
    return X, g.uniform(0.5, 2.0, len(X)), X[:K].copy()


def reference(X, w, C0, distance, weighted):
    return KMeans(K, init=C0, tol=0, algorithm='lloyd', distance=distance).fit(X, sample_weight=w if weighted else None)


def check(km, ref, algorithm, where):
    expect = 'lloyd' if algorithm == 'auto' else algorithm                # 'auto' at k=4 runs Lloyd
    assert km.algorithm_ == expect, where
    assert np.array_equal(np.asarray(km.labels_).astype(np.int64), ref.labels_), where
    assert km.n_iter_ == ref.n_iter_, where
    np.testing.assert_allclose(np.asarray(km.cluster_centers_), ref.cluster_centers_, rtol=0, atol=1e-9, err_msg=where)
    assert km.inertia_ == pytest.approx(ref.inertia_, rel=1e-9), where


@pytest.fixture(scope='module')
def sources(tmp_path_factory):
    X, w, C0 = matrix_data()
    path = tmp_path_factory.mktemp('matrix') / 'X.npy'
    np.save(path, X)
    return X, w, C0, {'tensor': lambda: torch.from_numpy(X), 'numpy': lambda: X,
                      'memmap': lambda: np.load(path, mmap_mode='r'), 'path': lambda: path}


STREAM_BLOCK_BYTES = 1000      # streamed matrix data (300 x 3 float64, 7,200 bytes): blocks of 41 rows, 8 of them


@pytest.mark.parametrize('placement', ['tensor', 'numpy', 'memmap', 'path'])
def test_one_process(sources, placement, monkeypatch):
    "A memmap and a path are read in several blocks (the last one short), as a large file would be."
    X, w, C0, makers = sources
    make = makers[placement]
    streamed = placement in ('memmap', 'path')
    if streamed:
        with monkeypatch.context() as m:
            m.setattr(engine, 'BLOCK_BYTES', STREAM_BLOCK_BYTES)
            assert engine.Rows(make()).block_rows == 41
    for distance in DISTANCES:
        for weighted in (False, True):
            ref = reference(X, w, C0, distance, weighted)                 # in memory, default blocks
            for algorithm in ALGORITHMS:
                where = f"{placement} {algorithm} {distance} {'weighted' if weighted else 'unweighted'}"
                km = KMeans(K, init=C0, tol=0, algorithm=algorithm, distance=distance)
                with monkeypatch.context() as m:
                    if streamed: m.setattr(engine, 'BLOCK_BYTES', STREAM_BLOCK_BYTES)
                    km.fit(make(), sample_weight=w if weighted else None)
                check(km, ref, algorithm, where)


def test_streamed_int_random_state_is_the_in_memory_fit(tmp_path):
    "k-means++ over all rows, block by block: a streamed fit with an int random_state is the in-memory fit."
    X, w, _ = matrix_data()
    X = np.concatenate([X, X * 1.5 + 4])                                  # 600 points, 8 blobs
    np.save(tmp_path / 'X.npy', X)
    for seed in (0, 1, 2):
        for weights in (None, np.tile(w, 2)):
            ref = KMeans(8, random_state=seed).fit(X, sample_weight=weights)
            km = KMeans(8, random_state=seed).fit(tmp_path / 'X.npy', sample_weight=weights)
            assert np.array_equal(km.labels_, ref.labels_) and km.n_iter_ == ref.n_iter_
            np.testing.assert_allclose(km.cluster_centers_, ref.cluster_centers_, rtol=0, atol=1e-9)


def test_streamed_in_many_blocks_is_the_in_memory_fit(tmp_path, monkeypatch):
    """40 blobs, 20,000 x 8 float64 rows (1.28 MB) in blocks of 40 KiB (640 rows: 31 and a short one): a memmap and a
    path, fitted with an int random_state (k-means++ over all rows, block by block, then 'auto'), give the in-memory
    fit: labels, n_iter, centres, inertia. The inertia is also checked by brute force from the labels and centres, and
    the labels are the nearest centres."""
    from sklearn.datasets import make_blobs
    X, _ = make_blobs(20_000, n_features=8, centers=40, random_state=0)
    path = tmp_path / 'X.npy'
    np.save(path, X)
    w = np.random.default_rng(0).uniform(0.5, 2.0, len(X))
    cases = [(seed, None) for seed in (0, 1, 2, 3)] + [(0, w)]
    refs = [KMeans(40, random_state=seed).fit(X, sample_weight=sw) for seed, sw in cases]   # default blocks
    monkeypatch.setattr(engine, 'BLOCK_BYTES', 40_960)
    assert engine.Rows(np.load(path, mmap_mode='r')).block_rows == 640
    for (seed, sw), ref in zip(cases, refs):
        for name, src in (('memmap', lambda: np.load(path, mmap_mode='r')), ('path', lambda: path)):
            where = f"{name} seed={seed} {'weighted' if sw is not None else 'unweighted'}"
            km = KMeans(40, random_state=seed).fit(src(), sample_weight=sw)
            assert km.algorithm_ == ref.algorithm_, where
            assert np.array_equal(np.asarray(km.labels_), ref.labels_), where
            assert km.n_iter_ == ref.n_iter_, where
            np.testing.assert_allclose(km.cluster_centers_, ref.cluster_centers_, rtol=0, atol=1e-9, err_msg=where)
            assert km.inertia_ == pytest.approx(ref.inertia_, rel=1e-9), where
            C, labels = np.asarray(km.cluster_centers_), np.asarray(km.labels_)
            d2 = ((X[:, None, :] - C[None]) ** 2).sum(2)                  # (N, 40) brute force
            assert np.array_equal(labels, d2.argmin(1)), where
            own = d2[np.arange(len(X)), labels]
            assert km.inertia_ == pytest.approx(float(own @ (np.ones(len(X)) if sw is None else sw)), rel=1e-9), where


@pytest.mark.parametrize('W', [2, 3])
def test_ranks(W, tmp_path):
    "Each world size started once; its ranks run the whole matrix and save what they saw."
    here = Path(__file__).parent
    env = dict(os.environ, WORLD_SIZE=str(W), OMP_NUM_THREADS='1')
    procs = [subprocess.Popen([sys.executable, str(here / 'dist_worker.py'), 'matrix', str(tmp_path / 'rdv'),
                               str(tmp_path)], env=dict(env, RANK=str(r)), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for r in range(W)]
    logs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * W, logs
    R = [torch.load(tmp_path / f'rank{r}.pt', weights_only=False) for r in range(W)]
    X, w, C0 = matrix_data()
    for distance in DISTANCES:
        for weighted in (False, True):
            ref = reference(X, w, C0, distance, weighted)
            for algorithm in ALGORITHMS:
                key = (algorithm, distance, weighted)
                where = f"{W} ranks {key}"
                assert all('error' not in R[r][key] for r in range(W)), (where, [R[r][key].get('error') for r in range(W)])
                got = R[0][key]
                assert got['algorithm'] == ('lloyd' if algorithm == 'auto' else algorithm), where
                labels = np.concatenate([R[r][key]['labels'] for r in range(W)])
                assert np.array_equal(labels.astype(np.int64), ref.labels_), where
                assert got['n_iter'] == ref.n_iter_, where
                for r in range(W): np.testing.assert_array_equal(R[r][key]['centres'], got['centres'])
                np.testing.assert_allclose(got['centres'], ref.cluster_centers_, rtol=0, atol=1e-9, err_msg=where)
                assert got['inertia'] == pytest.approx(ref.inertia_, rel=1e-9), where


# ---------------------------------------------------------------- cosine with the bounds, against its own references
BOUNDS = ['hamerly', 'yinyang', 'elkan']


def cosine_data(seed=0, n=1200, d=5, k=6):
    """n points in d-D around k random directions, each scaled by a length from 0.5 to 20 (cosine ignores it), float64;
    weights in [0.5, 2]; the start: one point of each direction, in order."""
    g = np.random.default_rng(seed)
    dirs = g.normal(size=(k, d))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    truth = g.integers(0, k, n)
    X = (dirs[truth] + g.normal(0, 0.15, (n, d))) * g.uniform(0.5, 20, (n, 1))
    return X, g.uniform(0.5, 2.0, n), X[[int(np.argmax(truth == j)) for j in range(k)]].copy()


def unit(A): return A / np.linalg.norm(A, axis=1, keepdims=True)


@pytest.mark.parametrize('weighted', [False, True])
@pytest.mark.parametrize('placement', ['tensor', 'memmap'])
@pytest.mark.parametrize('algorithm', BOUNDS)
def test_cosine_bounds_against_brute_force_and_sklearn(algorithm, placement, weighted, tmp_path):
    """Cosine with the bounds: its labels are the brute-force argmax of the cosine similarity to its own centres, its
    inertia is the sum of (weighted) 1 - cos by direct computation, its centres are the normalised (weighted) means
    of their points' unit vectors; and scikit-learn's Euclidean KMeans on the row-normalised data, from the
    normalised start, finds the same clusters (on well-separated directions both reach the same partition, and the
    normalised mean of each is the cosine centre)."""
    from sklearn.cluster import KMeans as SKKMeans
    X, w, C0 = cosine_data()
    np.save(tmp_path / 'X.npy', X)
    src = torch.from_numpy(X) if placement == 'tensor' else np.load(tmp_path / 'X.npy', mmap_mode='r')
    sw = w if weighted else None
    km = KMeans(6, init=C0, tol=0, algorithm=algorithm, distance='cosine').fit(src, sample_weight=sw)
    assert km.algorithm_ == algorithm
    C, U = np.asarray(km.cluster_centers_), unit(X)
    cos = U @ unit(C).T                                                  # (N, k) brute force, float64
    top2 = np.sort(cos, 1)[:, -2:]
    assert (top2[:, 1] - top2[:, 0] > 1e-6).all()                        # no near ties: argmax is unambiguous
    labels = np.asarray(km.labels_).astype(np.int64)
    assert np.array_equal(labels, cos.argmax(1))
    own = 1 - cos[np.arange(len(X)), labels]
    assert km.inertia_ == pytest.approx(float(own @ (w if weighted else np.ones(len(X)))), rel=1e-10)
    ww = w if weighted else np.ones(len(X))
    means = np.stack([(U[labels == j] * ww[labels == j, None]).sum(0) for j in range(6)])
    np.testing.assert_allclose(C, unit(means), rtol=0, atol=1e-12)
    sk = SKKMeans(6, init=unit(C0), n_init=1, tol=0, algorithm='lloyd').fit(U, sample_weight=sw)
    assert np.array_equal(sk.labels_, labels)
    np.testing.assert_allclose(unit(sk.cluster_centers_), C, rtol=0, atol=1e-12)


@pytest.mark.parametrize('placement', ['tensor', 'path'])
def test_cosine_bounds_zero_rows_and_zero_centres(placement, tmp_path):
    """Zero rows, a row shorter than F.normalize's eps, and a zero start centre: cosine's Lloyd defines them (a zero
    row has cosine 0 with every centre, so distance 1, and label 0, the first of equals; a zero centre is at distance
    1 from every point); the bounds give the same labels, n_iter, centres and inertia, after one iteration (where
    the zero centre takes the points with no positive cosine to another centre) and at convergence."""
    X, _, C0 = cosine_data(1, n=600)
    X[[3, 50, 51, 400]] = 0
    X[7] = 1e-14                                                          # |x| < 1e-12: F.normalize gives |x|/1e-12
    starts = {'start': C0, 'zero centre': np.concatenate([C0[:5], np.zeros((1, X.shape[1]))])}
    np.save(tmp_path / 'X.npy', X)
    src = torch.from_numpy(X) if placement == 'tensor' else tmp_path / 'X.npy'
    for (name, init), max_iter, algorithm in itertools.product(starts.items(), (1, 300), BOUNDS):
        ref = KMeans(6, init=init, tol=0, max_iter=max_iter, algorithm='lloyd', distance='cosine').fit(X)
        assert (ref.labels_[[3, 50, 51, 400]] == 0).all()
        km = KMeans(6, init=init, tol=0, max_iter=max_iter, algorithm=algorithm, distance='cosine').fit(src)
        where = f"{placement} {name} max_iter={max_iter} {algorithm}"
        assert km.algorithm_ == algorithm, where
        assert np.array_equal(np.asarray(km.labels_).astype(np.int64), ref.labels_), where
        assert km.n_iter_ == ref.n_iter_, where
        np.testing.assert_allclose(km.cluster_centers_, ref.cluster_centers_, rtol=0, atol=1e-12, err_msg=where)
        assert km.inertia_ == pytest.approx(ref.inertia_, rel=1e-12), where
        C = np.asarray(km.cluster_centers_)
        lab = np.asarray(km.labels_).astype(np.int64)
        n = np.linalg.norm(X, axis=1)
        U = X / np.maximum(n, 1e-12)[:, None]                         # F.normalize's rows
        Cn = C / np.maximum(np.linalg.norm(C, axis=1), 1e-12)[:, None]
        own = 1 - (U * Cn[lab]).sum(1)                                # a zero row: 1
        assert km.inertia_ == pytest.approx(float(own.sum()), rel=1e-10), where
