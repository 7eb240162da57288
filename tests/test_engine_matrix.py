"""The engine's matrix (issue 17): every placement x every algorithm x weights x distance, from the same explicit
init with tol=0, runs what was asked (`algorithm_`) and gives the in-memory Lloyd's labels and n_iter, centres to
float tolerance; combinations that cannot be done raise a clear error. Ranks: each world size is started once
(tests/dist_worker.py, scenario 'matrix') and runs every combination inside."""
import os, subprocess, sys
from pathlib import Path
import numpy as np
import pytest
import torch
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


def impossible(algorithm, distance):
    "The bounds need a metric: cosine with Hamerly, Yinyang or Elkan is refused."
    return distance == 'cosine' and algorithm in ('hamerly', 'yinyang', 'elkan')


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


@pytest.mark.parametrize('placement', ['tensor', 'numpy', 'memmap', 'path'])
def test_one_process(sources, placement):
    X, w, C0, makers = sources
    make = makers[placement]
    for distance in DISTANCES:
        for weighted in (False, True):
            ref = reference(X, w, C0, distance, weighted)
            for algorithm in ALGORITHMS:
                where = f"{placement} {algorithm} {distance} {'weighted' if weighted else 'unweighted'}"
                km = KMeans(K, init=C0, tol=0, algorithm=algorithm, distance=distance)
                if impossible(algorithm, distance):
                    with pytest.raises(ValueError, match=f"algorithm={algorithm!r} needs the exact Euclidean"):
                        km.fit(make(), sample_weight=w if weighted else None)
                    continue
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
                if impossible(algorithm, distance):
                    for r in range(W):
                        typ, msg = R[r][key]['error']
                        assert typ == 'ValueError' and 'needs the exact Euclidean' in msg, (where, msg)
                    continue
                got = R[0][key]
                assert got['algorithm'] == ('lloyd' if algorithm == 'auto' else algorithm), where
                labels = np.concatenate([R[r][key]['labels'] for r in range(W)])
                assert np.array_equal(labels.astype(np.int64), ref.labels_), where
                assert got['n_iter'] == ref.n_iter_, where
                for r in range(W): np.testing.assert_array_equal(R[r][key]['centres'], got['centres'])
                np.testing.assert_allclose(got['centres'], ref.cluster_centers_, rtol=0, atol=1e-9, err_msg=where)
                assert got['inertia'] == pytest.approx(ref.inertia_, rel=1e-9), where
