"""Distributed k-means on torch.distributed (gloo, CPU), checked against one process's `KMeans`.

Every multi-process run is a set of subprocesses with a hard time limit: a hang fails the test, it never blocks it.
The ranks run tests/dist_worker.py; each saves what it saw, and the test compares."""
import os, re, subprocess, sys, time
from pathlib import Path
import numpy as np
import pytest
import torch

from kmeans_lessons.estimators import KMeans
from kmeans_lessons.data import sample_blobs
from kmeans_lessons.distributed import distributed_fit, distributed_lloyd
from kmeans_lessons.streaming import Rows

sys.path.insert(0, str(Path(__file__).parent))
from dist_worker import K, SIZES, data, inits                          # noqa: E402

WORKER = Path(__file__).parent / 'dist_worker.py'
LIMIT = 150   # seconds for a whole multi-process run: ample on a loaded 2-core machine; a hang fails


def launch(scenario, W, tmp_path):
    "Run W ranks of `scenario`; kill them all and fail if they take longer than LIMIT. Returns (codes, logs, results)."
    env = dict(os.environ, WORLD_SIZE=str(W), OMP_NUM_THREADS='1')
    logs = [open(tmp_path / f'log{r}', 'w+') for r in range(W)]
    procs = [subprocess.Popen([sys.executable, str(WORKER), scenario, str(tmp_path / 'rdv'), str(tmp_path)],
                              env=dict(env, RANK=str(r)), stdout=logs[r], stderr=subprocess.STDOUT)
             for r in range(W)]
    deadline = time.monotonic() + LIMIT
    try:
        for p in procs: p.wait(timeout=max(1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        for p in procs: p.kill()
        pytest.fail(f"{scenario} with {W} processes hung (> {LIMIT} s)")
    texts = []
    for f in logs:
        f.seek(0); texts.append(f.read()); f.close()
    res = [torch.load(tmp_path / f'rank{r}.pt', weights_only=False) if (tmp_path / f'rank{r}.pt').exists() else None
           for r in range(W)]
    return [p.returncode for p in procs], texts, res


@pytest.fixture(scope='module')
def reference():
    "One process's fits of the same data, from the same inits (and k-means++ from the same seed)."
    X = data()
    ref = {name: KMeans(K, init=C).fit(X) for name, C in inits(X).items()}
    ref['kmeans++'] = KMeans(K, random_state=3).fit(X)
    return ref


@pytest.mark.parametrize('W', [2, 3])
def test_ranks_give_the_single_process_fit(W, tmp_path, reference):
    t = time.monotonic()
    codes, logs, R = launch('all' if W == 2 else 'all+die', W, tmp_path)
    if W == 3:   # at the end rank 1 died in the middle of a fit (os._exit): the others raised at once, no hang
        assert codes == [0, 3, 0], logs
        for r in (0, 2): assert R[r]['die']['error'] is not None and R[r]['die']['seconds'] < 30, R[r]['die']
        assert time.monotonic() - t < LIMIT
    else: assert codes == [0] * W, logs
    for key in R[0]:
        if key.startswith('error/') or key == 'die': continue
        name = key.split('/')[0]
        km = reference[{'streamed': 'explicit', 'after_errors': 'explicit', 'estimator': 'kmeans++'}.get(name, name)]
        labels = torch.cat([R[r][key]['labels'].long() for r in range(W)])             # ranks hold slices, in order
        assert torch.equal(labels, km.labels_), key
        for r in range(W): assert torch.equal(R[r][key]['centres'], R[0][key]['centres']), (key, r)
        torch.testing.assert_close(R[0][key]['centres'], km.cluster_centers_, rtol=0, atol=1e-10)
        if 'n_iter' in R[0][key]:
            assert R[0][key]['n_iter'] == km.n_iter_, key
            assert R[0][key]['inertia'] == pytest.approx(km.inertia_, rel=1e-12), key
    # the runs covered what they claim: uneven shards, a rank with fewer points than k, a rank with none, empties
    assert min(SIZES[W][0]) < K and any(0 in s for s in SIZES[3])
    from kmeans_lessons.assignment import assign
    X = data()
    assert int((torch.bincount(assign(X, inits(X)['empty'])[0], minlength=K) == 0).sum()) == 2
    assert int((R[0]['empty/0']['counts'] == 0).sum()) == 0
    # bad input on one rank, or ranks that disagree: the same clear error on every rank, at once
    msgs = {k: [R[r][k] for r in range(W)] for k in R[0] if k.startswith('error/')}
    for k, each in msgs.items():
        assert all(e is not None for e in each), k
        assert all(e[2] < 10 for e in each), (k, [e[2] for e in each])                # seconds: no waiting
    for name in ('n_features', 'n_clusters', 'max_iter'):
        for typ, msg, _ in msgs[f'error/{name}']:
            assert typ == 'ValueError' and f"ranks disagree on {name}" in msg, msg
    assert 'rank 2 has 3' in msgs['error/n_features'][0][1] if W == 3 else 'rank 1 has 3' in msgs['error/n_features'][0][1]
    for r, (typ, msg, _) in enumerate(msgs['error/nan']):
        assert typ == 'ValueError' and 'NaN or inf' in msg
        assert (r == 1) == ('rank 1 of' not in msg)                    # others name the rank that failed
    lo = SIZES[W][0][0]                                               # rank 1's first row in all ranks' rows
    for typ, msg, _ in msgs['error/nan']:                             # rank 1's row 3, numbered in all ranks' rows
        first, last = map(int, re.search(r'in rows (\d+)\.\.(\d+)', msg).groups())
        assert lo <= first <= lo + 3 <= last, msg
    for name, said in (('init', 'rank 1 passed another init than rank 0'), ('dtype', 'rank 1 has float32')):
        for typ, msg, _ in msgs[f'error/{name}']:
            assert typ == 'ValueError' and said in msg and 'another value' not in msg, msg
    for r, (typ, msg, _) in enumerate(msgs['error/bad_type']):
        assert typ == 'ValueError' and '.npy' in msg
    for r, (typ, msg, _) in enumerate(msgs['error/raises']):
        assert typ == 'RuntimeError' and f'boom on rank {W - 1}' in msg
    for r, (typ, msg, _) in enumerate(msgs['error/sample_weight']):
        assert typ == 'ValueError' and 'ranks disagree on sample_weight' in msg, msg
    for r, (typ, msg, _) in enumerate(msgs['error/bad_param']):
        assert typ == 'InvalidParameterError' and 'KMeans: max_iter must be an int >= 1; got 0' in msg
    assert 'estimator/0' in R[0] and all(torch.is_tensor(R[r]['estimator/0']['labels']) for r in range(W))


def test_auto_makes_the_same_choice_on_every_rank(tmp_path):
    "Ranks whose own clocks disagree (dist_worker's run_auto) run the same strategy, and give one process's Lloyd."
    codes, logs, R = launch('auto', 2, tmp_path)
    assert codes == [0, 0], logs
    assert R[0]['algorithm'] == R[1]['algorithm'] == 'lloyd', [r['algorithm'] for r in R]
    X = data()
    km = KMeans(K, init=X[:K].clone(), tol=0, max_iter=30, algorithm='lloyd').fit(X)
    assert torch.equal(torch.cat([R[0]['labels'], R[1]['labels']]).long(), km.labels_)
    assert R[0]['n_iter'] == km.n_iter_
    torch.testing.assert_close(R[0]['centres'], km.cluster_centers_, rtol=0, atol=1e-10)


# ---------------------------------------------------------------- one process: the same code, no group

def test_kmeans_fit_streams_a_memmap_or_a_path(tmp_path):
    "KMeans.fit on data on disk runs distributed_fit, streamed: the in-memory fit's result, NumPy out."
    X = data().float().numpy()                                         # (1400, 4)
    np.save(tmp_path / 'X.npy', X)
    ref = KMeans(K, random_state=3).fit(X)
    for src in (np.load(tmp_path / 'X.npy', mmap_mode='r'), tmp_path / 'X.npy', str(tmp_path / 'X.npy')):
        km = KMeans(K, random_state=3).fit(src)
        assert isinstance(km.labels_, np.ndarray) and km.labels_.dtype == np.int32     # scikit-learn's dtype
        assert isinstance(km.cluster_centers_, np.ndarray) and km.cluster_centers_.dtype == np.float32
        assert np.array_equal(km.labels_, ref.labels_) and km.n_iter_ == ref.n_iter_
        np.testing.assert_allclose(km.cluster_centers_, ref.cluster_centers_, rtol=0, atol=1e-4)
        assert km.inertia_ == pytest.approx(ref.inertia_, rel=1e-5) and km.n_features_in_ == 4
        assert np.array_equal(km.predict(src), ref.predict(X))        # predict streams too
        np.testing.assert_allclose(km.transform(src), ref.transform(X), rtol=1e-4, atol=1e-4)
        assert km.score(src) == pytest.approx(ref.score(X), rel=1e-5)
    mm = np.load(tmp_path / 'X.npy', mmap_mode='r')
    w = np.random.default_rng(0).uniform(0.5, 2.0, len(X))                # weights and a callable init stream too
    ref_w = KMeans(K, random_state=3).fit(X, sample_weight=w)
    km = KMeans(K, random_state=3).fit(mm, sample_weight=w)
    assert np.array_equal(km.labels_, ref_w.labels_) and km.n_iter_ == ref_w.n_iter_
    first = lambda X, k, random_state: np.asarray(X[:k])
    km, ref_c = KMeans(K, init=first).fit(mm), KMeans(K, init=lambda X, k, random_state: X[:k] + X.mean(0)).fit(X)
    assert np.array_equal(km.labels_, ref_c.labels_) and km.n_iter_ == ref_c.n_iter_
    with pytest.raises(ValueError, match='not found'): KMeans(K).fit(tmp_path / 'missing.npy')
    with pytest.raises(ValueError, match='X has 4 features, but KMeans is expecting 3'):
        KMeans(K, random_state=0).fit(X[:, :3]).predict(mm)
    bad = np.lib.format.open_memmap(tmp_path / 'nan.npy', 'w+', np.float32, (50, 4))
    bad[:] = 1; bad[17, 2] = np.nan; bad.flush()
    with pytest.raises(ValueError, match='NaN or inf'): ref.predict(np.load(tmp_path / 'nan.npy', mmap_mode='r'))
    with pytest.raises(ValueError, match='NaN or inf'): KMeans(2).fit(tmp_path / 'nan.npy')


def test_kmeans_random_state_kinds_with_distributed_fit(tmp_path):
    "Any random_state kind works on the distributed path; an int one gives the in-memory result."
    X = data().float().numpy()
    np.save(tmp_path / 'X.npy', X)
    for rs in (np.random.RandomState(0), torch.Generator().manual_seed(0), None):
        km = KMeans(K, random_state=rs, n_init=2).fit(tmp_path / 'X.npy')
        assert km.labels_.shape == (len(X),) and np.isfinite(km.inertia_)
    a = KMeans(K, random_state=2**40 + 7).fit(tmp_path / 'X.npy')       # a big seed travels exactly
    b = KMeans(K, random_state=2**40 + 7).fit(X)
    assert np.array_equal(a.labels_, b.labels_)


def test_one_process_equals_kmeans():
    X, _, _ = sample_blobs(5, 200, 3, box=5.0, var=3.0, seed=4, dtype=torch.float64)
    X = X + 1000                                                       # far from the origin: centring matters
    for seed in (0, 1):
        km, r = KMeans(5, random_state=seed).fit(X), distributed_fit(X, 5, random_state=seed)
        assert torch.equal(r['labels'], km.labels_) and r['n_iter'] == km.n_iter_
        torch.testing.assert_close(r['centres'], km.cluster_centers_, rtol=0, atol=1e-9)
        assert r['inertia'] == pytest.approx(km.inertia_, rel=1e-10)
        assert r['counts'].tolist() == torch.bincount(km.labels_, minlength=5).tolist()


def test_distributed_lloyd_matches_lloyd():
    from kmeans_lessons.lloyd import lloyd
    X = data()
    C0 = inits(X)['empty']
    a, b = lloyd(X, C0, tol=1e-8), distributed_lloyd(X, C0, tol=1e-8)
    assert set(a) <= set(b) and a['n_iter'] == b['n_iter'] and torch.equal(a['labels'], b['labels'])
    torch.testing.assert_close(b['centres'], a['centres'], rtol=0, atol=1e-10)
    torch.testing.assert_close(b['inertias'], a['inertias'].double(), rtol=1e-12, atol=0)
    assert len(b['history']) == len(a['history'])


def test_streamed_equals_in_memory(tmp_path):
    X = data().float()
    np.save(tmp_path / 'X.npy', X.numpy())
    C0 = inits(X)['empty']
    mem = distributed_fit(X, K, init=C0)
    for src in (tmp_path / 'X.npy', np.load(tmp_path / 'X.npy', mmap_mode='r')):
        r = distributed_fit(src, K, init=C0, block_bytes=5000)        # many small blocks
        assert r['labels'].dtype == torch.uint8                        # compact labels when streamed
        assert torch.equal(r['labels'].long(), mem['labels']) and r['n_iter'] == mem['n_iter']
        torch.testing.assert_close(r['centres'], mem['centres'])


def test_float32_far_from_origin_matches_float64():
    X, _, _ = sample_blobs(4, 300, 2, seed=5, dtype=torch.float64)
    X = X + 1e4
    r32, r64 = distributed_fit(X.float(), 4, random_state=0), distributed_fit(X, 4, random_state=0)
    assert torch.equal(r32['labels'], r64['labels'])


@pytest.mark.parametrize('bad, kind, match', [
    (np.zeros((10, 3), dtype=np.complex64), TypeError, 'complex64'),
    (np.array(['a', 'b']).reshape(2, 1), TypeError, 'real numbers'),
    (np.zeros((10, 2, 2), dtype=np.float32), ValueError, '2-D'),
    (np.zeros(10, dtype=np.float32), ValueError, 'reshape'),
    (np.zeros((10, 0), dtype=np.float32), ValueError, 'no features'),
])
def test_wrong_memmaps_are_refused(tmp_path, bad, kind, match):
    path = tmp_path / 'bad.npy'
    np.save(path, bad)
    with pytest.raises(kind, match=match):
        distributed_fit(np.load(path, mmap_mode='r'), 2)
    with pytest.raises(kind, match=match):
        distributed_fit(path, 2)


def test_bad_files_are_refused(tmp_path):
    with pytest.raises(ValueError, match='not found'): distributed_fit(tmp_path / 'missing.npy', 2)
    with pytest.raises(ValueError, match='.npy file'): distributed_fit(tmp_path / 'x.csv', 2)
    np.save(tmp_path / 'x.npy', np.zeros((100, 4), np.float32))
    raw = (tmp_path / 'x.npy').read_bytes()
    (tmp_path / 'short.npy').write_bytes(raw[:-80])                   # the header promises more rows than there are
    with pytest.raises(ValueError, match='not a readable .npy'): distributed_fit(tmp_path / 'short.npy', 2)
    mm = np.memmap(tmp_path / 'x.npy', dtype=np.float32, mode='r', offset=128, shape=(100, 4))
    mm_nan = np.lib.format.open_memmap(tmp_path / 'nan.npy', 'w+', np.float32, (50, 3))
    mm_nan[:] = 1; mm_nan[17, 2] = np.inf; mm_nan.flush()
    with pytest.raises(ValueError, match=r'NaN or inf \(1 value in rows'): distributed_fit(tmp_path / 'nan.npy', 2)
    with pytest.raises(ValueError, match='n_samples=100 .* n_clusters=101'): distributed_fit(mm, 101)


def kl_medians():
    "A distance whose centre is no mean (the coordinate-wise median): it cannot come from sums."
    from kmeans_lessons.distances import Distance
    class Medians(Distance):
        name = 'medians'
        def pairwise(self, x, c): return torch.cdist(x, c, p=1)
        def centre(self, X, labels, k, sample_weight=None):
            return torch.stack([X[labels == j].median(0).values for j in range(k)])
    return Medians()


def test_bad_parameters():
    X = torch.randn(50, 2)
    with pytest.raises(ValueError, match='init must be one of'): distributed_fit(X, 3, init='kmeans')
    with pytest.raises(ValueError, match=r'expected \(3, 2\)'): distributed_fit(X, 3, init=torch.zeros(2, 2))
    with pytest.raises(TypeError, match='n_clusters must be an int'): distributed_fit(X, 2.5)
    with pytest.raises(ValueError, match='max_iter must be an int >= 1; got 0'): distributed_fit(X, 2, max_iter=0)
    with pytest.raises(ValueError, match='random_state must be'): distributed_fit(X, 2, random_state='a')
    ro = X.numpy().copy(); ro.flags.writeable = False                    # a read-only array is streamed
    with pytest.raises(ValueError, match='own centre'): distributed_fit(ro, 2, distance=kl_medians())
    with pytest.raises(ValueError, match="algorithm must be 'auto' or one of"): distributed_fit(X, 2, algorithm='x')
    with pytest.raises(ValueError, match="needs the exact Euclidean distance or cosine"):
        distributed_fit(X, 2, algorithm='hamerly', distance=lambda x, c: torch.cdist(x, c, p=1))
    with pytest.raises(ValueError, match='not initialised'): distributed_fit(X, 2, process_group=object())


def test_rows_never_copy_or_change_the_callers_data():
    X = torch.randn(100, 3)
    before = X.clone()
    distributed_fit(X, 3, random_state=0)
    assert torch.equal(X, before)
    a = np.random.default_rng(0).random((100, 3))
    assert Rows(a).data.data_ptr() == a.__array_interface__['data'][0]   # wrapped, not copied


# the fit command (`kmeans-lessons fit`, alone and under torchrun): tests/test_cli.py
