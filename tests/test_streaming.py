"""Out of core and mini-batch: a 4 GiB .npy fitted in bounded memory; MiniBatchKMeans against scikit-learn."""
import os, re, shutil, subprocess, sys, warnings
import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans as SKKMeans, MiniBatchKMeans as SKMiniBatchKMeans
from torch.utils.data import DataLoader, TensorDataset

from kmeans_lessons.validation import NotFittedError
from kmeans_lessons.data import sample_blobs
from kmeans_lessons.streaming import MiniBatchKMeans
from kmeans_lessons.engine import Rows, kmeans_plusplus_rows
from kmeans_lessons.lloyd import kmeans_plusplus_indices
from kmeans_lessons.distances import SqEuclidean


def inertia(X, C):
    "Brute force: the (N, k) distances, no expansion."
    return float(((X[:, None].double() - torch.as_tensor(C)[None].double()) ** 2).sum(-1).min(1).values.sum())


@pytest.fixture(scope='module')
def blobs():
    X, _, _ = sample_blobs(20, 1000, 8, box=8.0, var=4.0, seed=0)    # (20000, 8), overlapping blobs
    return X


def test_same_batches_as_scikit_learn(blobs):
    X, Xn = blobs, blobs.numpy()
    rng = np.random.default_rng(0)
    C0 = Xn[rng.choice(len(Xn), 20, replace=False)]
    sk = SKMiniBatchKMeans(20, init=C0, n_init=1, batch_size=256, random_state=0)
    me = MiniBatchKMeans(20, init=torch.as_tensor(C0), batch_size=256, random_state=0)
    for _ in range(300):
        b = rng.integers(len(Xn), size=256)
        sk.partial_fit(Xn[b]); me.partial_fit(X[b])
    a, m = inertia(X, sk.cluster_centers_), inertia(X, me.cluster_centers_)
    assert abs(m - a) <= 0.02 * a, (m, a)
    assert me.n_steps_ == sk.n_steps_ == 300
    assert me.inertia_ == pytest.approx(inertia(X[b], me.cluster_centers_), rel=1e-4)   # the last batch's


def test_partial_fit_on_a_dataloader(blobs):
    X = blobs
    dl = DataLoader(TensorDataset(X), batch_size=500, shuffle=True, generator=torch.Generator().manual_seed(0))
    batches = [b for (b,) in dl]                                       # one pass, in the loader's order
    C0 = batches[0][:20].numpy()
    sk = SKMiniBatchKMeans(20, init=C0, n_init=1, batch_size=500, random_state=0)
    me = MiniBatchKMeans(20, init=torch.as_tensor(C0), batch_size=500, random_state=0)
    for b in batches: sk.partial_fit(b.numpy()); me.partial_fit(b)
    a, m = inertia(X, sk.cluster_centers_), inertia(X, me.cluster_centers_)
    assert abs(m - a) <= 0.02 * a, (m, a)
    # fit takes the loader itself: passes over it until the smoothed inertia stops improving
    km = MiniBatchKMeans(20, random_state=0).fit(dl)
    best = SKKMeans(20, n_init=3, random_state=0).fit(X.numpy()).inertia_
    assert km.labels_ is None and km.inertia_ == pytest.approx(inertia(X, km.cluster_centers_), rel=1e-4)
    assert km.inertia_ <= 1.10 * best and km.n_iter_ >= 1                # a mini-batch optimum, not Lloyd's
    # a one-shot generator is one pass
    km = MiniBatchKMeans(20, random_state=0).fit(b for b in batches)
    assert km.n_iter_ == 1 and km.n_steps_ == len(batches) and km.inertia_ > 0


def test_fit_on_an_array_like_scikit_learn(blobs):
    "Each with its own random batches and inits: on average over seeds, the same quality."
    X = blobs
    ours = np.mean([MiniBatchKMeans(20, random_state=s).fit(X).inertia_ for s in range(4)])
    theirs = np.mean([SKMiniBatchKMeans(20, random_state=s).fit(X.numpy()).inertia_ for s in range(4)])
    assert abs(ours - theirs) <= 0.05 * theirs, (ours, theirs)


def test_mean_inertia_over_seeds_within_1_percent_of_scikit_learn():
    """The same method: averaged over 20 seeds, the inertia is within 1% of scikit-learn's. On one Gaussian cloud
    a run's inertia varies by under 1% from seed to seed (on separated blobs it jumps by 25% when two blobs share a
    centre, and 20 seeds could not tell 1% apart), so the means are known to about 0.3%."""
    Xn = np.random.default_rng(0).standard_normal((20_000, 4)).astype(np.float32)
    X = torch.from_numpy(Xn)
    ours = np.array([MiniBatchKMeans(20, random_state=s).fit(X).inertia_ for s in range(20)])
    theirs = np.array([SKMiniBatchKMeans(20, random_state=s).fit(Xn).inertia_ for s in range(20)])
    assert ours.std() / ours.mean() < 0.02 and theirs.std() / theirs.mean() < 0.02    # the premise
    assert abs(ours.mean() / theirs.mean() - 1) <= 0.01, (ours.mean(), theirs.mean())


@pytest.mark.parametrize('k,batch_size,init_size,n', [(10, 5, None, 300), (10, 1, None, 300), (10, 5, 301, 300),
                                                      (200, 100, None, 5000), (200, 50, None, 5000), (8, 1024, None, 100),
                                                      (20, 1024, 10, 5000), (20, 1024, 10, 40), (3, 7, 50, 5000)])
def test_init_size_is_scikit_learns(k, batch_size, init_size, n):
    "scikit-learn's rule, read from its own _check_params_vs_input, for every branch."
    X = np.zeros((n, 2))
    sk = SKMiniBatchKMeans(k, batch_size=batch_size, init_size=init_size)
    with warnings.catch_warnings(record=True) as w_sk:
        warnings.simplefilter('always'); sk._check_params_vs_input(X)
    ours = MiniBatchKMeans(k, batch_size=batch_size, init_size=init_size)
    with warnings.catch_warnings(record=True) as w_ours:
        warnings.simplefilter('always'); ours._setup()
    assert ours._init_size(n) == sk._init_size
    assert [str(w.message) for w in w_ours] == [str(w.message) for w in w_sk]      # the same warning, if any


def test_sample_weight_like_scikit_learn(blobs):
    X = blobs.numpy()
    rng = np.random.default_rng(0)
    C0, w = X[rng.choice(len(X), 20, replace=False)], rng.uniform(0.2, 3.0, len(X))
    def winertia(C):
        return float(((X[:, None].astype(np.float64) - np.asarray(C)[None]) ** 2).sum(-1).min(1) @ w)
    # without random reassignments (their random choices differ), the same weighted batches give the same centres
    sk = SKMiniBatchKMeans(20, init=C0, n_init=1, batch_size=256, random_state=0, reassignment_ratio=0)
    me = MiniBatchKMeans(20, init=C0, batch_size=256, random_state=0, reassignment_ratio=0)
    for _ in range(300):
        b = rng.integers(len(X), size=256)
        sk.partial_fit(X[b], sample_weight=w[b]); me.partial_fit(X[b], sample_weight=w[b])
    np.testing.assert_allclose(me.cluster_centers_, sk.cluster_centers_, rtol=0, atol=1e-3)
    assert me.inertia_ == pytest.approx(float(((X[b, None] - me.cluster_centers_[None]) ** 2).sum(-1).min(1) @ w[b]),
                                        rel=1e-4)                      # the last batch's, weighted
    # fit draws batches in proportion to the weights: on average over seeds, scikit-learn's quality
    ours = np.mean([winertia(MiniBatchKMeans(20, random_state=s).fit(X, sample_weight=w).cluster_centers_)
                    for s in range(3)])
    theirs = np.mean([winertia(SKMiniBatchKMeans(20, random_state=s).fit(X, sample_weight=w).cluster_centers_)
                      for s in range(3)])
    assert abs(ours - theirs) <= 0.05 * theirs, (ours, theirs)
    # equal weights draw as no weights do; inertia_ is weighted
    a = MiniBatchKMeans(20, random_state=0).fit(X)
    b = MiniBatchKMeans(20, random_state=0).fit(X, sample_weight=np.full(len(X), 2.0))
    assert np.array_equal(a.labels_, b.labels_) and b.inertia_ == pytest.approx(2 * a.inertia_)
    # points of weight 0 are never drawn: the centres come from the other points only
    w0 = np.where(X[:, 0] > np.median(X[:, 0]), 1.0, 0.0)
    c = MiniBatchKMeans(5, random_state=0, reassignment_ratio=0).fit(X, sample_weight=w0)
    assert (c.cluster_centers_[:, 0] > np.median(X[:, 0])).all()


def test_init_is_the_engines_kmeans_plusplus_on_the_sample(blobs):
    "The first centres are the engine's k-means++ over the rows of the init_size sample, lesson 04's picks."
    X, k = blobs[:4000].double(), 20
    rng = np.random.default_rng(1)
    V, S = (X[torch.from_numpy(np.sort(rng.integers(len(X), size=600)))] for _ in range(2))   # validation, init
    km = MiniBatchKMeans(k, random_state=0)
    km._setup()
    km._start([V, S], [None, None], len(X), torch.Generator().manual_seed(5), lambda t: t)
    shift = V.mean(0)                                                  # the fit works on rows minus this
    want = kmeans_plusplus_rows(Rows(S - shift), k, torch.Generator().manual_seed(5), SqEuclidean())
    assert torch.equal(km._C, want)
    idx = kmeans_plusplus_indices(S - shift, k, torch.Generator().manual_seed(5))   # (k,) lesson 04's picks
    assert len(set(idx.tolist())) == k and torch.allclose(km._C + shift, S[idx], rtol=0, atol=1e-12)
    # end to end: partial_fit on a batch no bigger than init_size samples all of it, then makes one step, which
    # (no history, no reassignment) moves every centre to the mean of its points: brute force from the same start
    x = X[:600]
    km = MiniBatchKMeans(k, random_state=3, init_size=600, reassignment_ratio=0).partial_fit(x)
    C0 = kmeans_plusplus_rows(Rows(x - x.mean(0)), k, torch.Generator().manual_seed(3), SqEuclidean()) + x.mean(0)
    lab = ((x[:, None] - C0[None]) ** 2).sum(-1).argmin(1)             # (600,)
    mean = torch.stack([x[lab == c].mean(0) if (lab == c).any() else C0[c] for c in range(k)])
    torch.testing.assert_close(km.cluster_centers_, mean, rtol=0, atol=1e-9)


def test_verbose_levels_as_kmeans(blobs, capsys, tqdm_bars):
    """0: quiet. 1: one tqdm bar for k-means++ and one for the batches, then one line. 2: also scikit-learn's lines,
    the same kinds of line as scikit-learn's own MiniBatchKMeans prints."""
    bars = tqdm_bars
    X = blobs.numpy()
    MiniBatchKMeans(20, random_state=0).fit(X)
    assert capsys.readouterr() == ('', '') and bars == []
    km = MiniBatchKMeans(20, random_state=0, verbose=1).fit(X)
    n_steps = 100 * len(X) // 1024
    assert bars == [['k-means++', 20, 19], ['mini-batch k-means', n_steps, km.n_steps_]]
    assert capsys.readouterr().out == (f"mini-batch k-means: converged (lack of improvement in inertia) at step "
                                       f"{km.n_steps_}/{n_steps}\n")
    km = MiniBatchKMeans(20, random_state=0, verbose=1, max_no_improvement=None, max_iter=1).fit(X)
    assert capsys.readouterr().out == (f"mini-batch k-means: ran {len(X) // 1024} steps (1 pass over the data) "
                                       "without stopping early\n")
    bars.clear()
    MiniBatchKMeans(20, random_state=0, verbose=2).fit(X)
    ours = capsys.readouterr().out.splitlines()
    assert [b[0] for b in bars] == ['k-means++', 'mini-batch k-means']
    SKMiniBatchKMeans(20, random_state=0, verbose=1).fit(X)
    theirs = capsys.readouterr().out.splitlines()
    kind = lambda line: re.sub(r'\d+(\.\d+)?(e[-+]?\d+)?', '#', line)
    assert ours[-1].startswith('mini-batch k-means: converged') and ours[-2].startswith('Converged')
    assert {kind(l) for l in ours[:-1]} == {kind(l) for l in theirs}, (ours[:3], theirs[:3])
    # an iterable of batches: the same two bars, the second over max_iter passes of the loader
    bars.clear()
    dl = DataLoader(TensorDataset(blobs), batch_size=500, shuffle=True, generator=torch.Generator().manual_seed(0))
    MiniBatchKMeans(20, random_state=0, verbose=1).fit(dl)
    assert [b[:2] for b in bars] == [['k-means++', 20], ['mini-batch k-means', 100 * len(dl)]]
    assert re.fullmatch(r"mini-batch k-means: converged \(lack of improvement in inertia\) at step \d+/\d+\n",
                        capsys.readouterr().out)


def test_memmap_and_path(blobs, tmp_path):
    np.save(tmp_path / 'X.npy', blobs.numpy())
    a = MiniBatchKMeans(20, random_state=1).fit(blobs)                # a tensor in: tensors out
    assert torch.is_tensor(a.labels_) and torch.is_tensor(a.cluster_centers_)
    for src in (tmp_path / 'X.npy', np.load(tmp_path / 'X.npy', mmap_mode='r')):
        b = MiniBatchKMeans(20, random_state=1).fit(src)               # a file or memmap in: NumPy out
        assert b.labels_.dtype == np.int32 and np.array_equal(b.labels_, a.labels_.numpy())   # scikit-learn's dtype
        np.testing.assert_allclose(b.cluster_centers_, a.cluster_centers_.numpy(), rtol=1e-6)
        assert np.array_equal(b.predict(src), a.predict(blobs).numpy())
        assert b.score(src) == pytest.approx(a.score(blobs), rel=1e-6)


def test_early_stopping_and_reassignment(blobs):
    km = MiniBatchKMeans(20, random_state=0, max_iter=50).fit(blobs)
    assert km.n_steps_ < 50 * len(blobs) // 1024                     # max_no_improvement stopped it
    X = torch.cat([blobs, torch.full((5, 8), 500.0)])                  # 5 far outliers
    C0 = torch.cat([blobs[:19], torch.full((1, 8), 500.0)])            # one centre sits on them: tiny count
    km = MiniBatchKMeans(20, init=C0, random_state=0, max_no_improvement=None, max_iter=2).fit(X)
    assert float(km.cluster_centers_[19].abs().max()) < 100            # it was moved to a real batch point


def test_bad_input(blobs, tmp_path):
    km = MiniBatchKMeans(3)
    with pytest.raises(NotFittedError): km.predict(blobs)
    with pytest.raises(ValueError, match='first batch has 2 points'): km.partial_fit(blobs[:2])
    km.partial_fit(blobs[:100])
    with pytest.raises(ValueError, match='X has 3 features, but MiniBatchKMeans is expecting 8'):
        km.partial_fit(blobs[:10, :3])
    bad = blobs[:100].clone(); bad[5, 2] = float('nan')
    with pytest.raises(ValueError, match='NaN'): km.partial_fit(bad)
    with pytest.raises(ValueError, match='batch_size must be an int >= 1'): MiniBatchKMeans(3, batch_size=0).fit(blobs)
    with pytest.raises(ValueError, match='reassignment_ratio'): MiniBatchKMeans(3, reassignment_ratio=-1).fit(blobs)
    with pytest.raises(ValueError, match='empty'): MiniBatchKMeans(3).fit(iter([]))
    np.save(tmp_path / 'c.npy', np.zeros((10, 2), np.complex64))
    with pytest.raises(TypeError, match='complex64'): MiniBatchKMeans(3).fit(tmp_path / 'c.npy')
    assert repr(MiniBatchKMeans(4, batch_size=256)) == 'MiniBatchKMeans(n_clusters=4, batch_size=256)'
    with pytest.raises(ValueError, match="own centre"): MiniBatchKMeans(3, distance='cosine').fit(blobs)
    with pytest.raises(ValueError, match='sample_weight must have shape'):
        MiniBatchKMeans(3).fit(blobs, sample_weight=np.ones(5))
    with pytest.raises(ValueError, match='pass each batch'):
        MiniBatchKMeans(3).fit([blobs[:100]], sample_weight=np.ones(100))


def test_ordered_batches_warn_to_shuffle():
    "Batches sorted by cluster start every centre in the first blob: a warning says to shuffle; random ones don't."
    X, _, _ = sample_blobs(40, 1500, 8, seed=0)                        # (60000, 8), blob after blob
    best = SKKMeans(40, n_init=1, random_state=0).fit(X.numpy()).inertia_
    in_order = DataLoader(TensorDataset(X), batch_size=500, shuffle=False)
    with pytest.warns(UserWarning, match=r'batches look ordered.*shuffle=False.*shuffle the data'):
        km = MiniBatchKMeans(40, random_state=0).fit(in_order)
    assert km.inertia_ > 10 * best                                     # why it warns: the fit is that bad
    shuffled = DataLoader(TensorDataset(X), batch_size=500, shuffle=True, generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings():
        warnings.simplefilter('error')                                 # no warning at all
        km = MiniBatchKMeans(40, random_state=0).fit(shuffled)
        MiniBatchKMeans(40, random_state=0).fit(X)                     # random batches of an array
        m = MiniBatchKMeans(40, random_state=0)
        for (b,) in shuffled: m.partial_fit(b)
    assert km.inertia_ < 1.1 * best
    # a plain list of sorted chunks, and partial_fit on them, warn too (without the DataLoader's shuffle=False)
    chunks = list(X.split(500))
    with pytest.warns(UserWarning, match=r'batches look ordered.*data sorted by cluster'):
        MiniBatchKMeans(40, random_state=0).fit(chunks)
    with pytest.warns(UserWarning, match='batches look ordered') as rec:
        m = MiniBatchKMeans(40, random_state=0)
        for b in chunks: m.partial_fit(b)
    assert sum('batches look ordered' in str(w.message) for w in rec) == 1   # once


def test_batches_of_different_widths_are_named():
    batches = [torch.randn(100, 4), torch.randn(100, 4), torch.randn(50, 3)]
    for bs in (1024, 10):                                               # found while pooling the init, or later
        with pytest.raises(ValueError, match=r'^batch 2 has 3 features, but the first batch had 4'):
            MiniBatchKMeans(3, batch_size=bs, random_state=0).fit(batches)


def test_partial_fit_checks_parameters_every_time(blobs):
    km = MiniBatchKMeans(3, random_state=0).partial_fit(blobs[:100])
    km.set_params(batch_size=0)
    with pytest.raises(ValueError, match='MiniBatchKMeans: batch_size must be an int >= 1; got 0'):
        km.partial_fit(blobs[:100])
    km.set_params(batch_size=10, reassignment_ratio=-1)
    with pytest.raises(ValueError, match='reassignment_ratio'): km.partial_fit(blobs[:100])
    km.set_params(reassignment_ratio=0.01, n_clusters=5)
    with pytest.raises(ValueError, match='n_clusters=5, but the first partial_fit fitted 3 centres'):
        km.partial_fit(blobs[:100])
    km.set_params(n_clusters=3)
    assert km.partial_fit(blobs[:100]).n_steps_ == 2                   # valid again: the fit goes on


@pytest.mark.parametrize('scale,dtype', [(1e30, np.float32), (1e200, np.float64)])
def test_overflow_is_named_not_nan(scale, dtype, tmp_path):
    "Finite values whose squares overflow: the message names the overflow, never NaN or inf."
    Z = (np.random.default_rng(0).standard_normal((300, 2)) * scale).astype(dtype)
    np.save(tmp_path / 'Z.npy', Z)
    calls = [lambda: MiniBatchKMeans(3, random_state=0).fit(Z),
             lambda: MiniBatchKMeans(3, random_state=0).fit(tmp_path / 'Z.npy'),
             lambda: MiniBatchKMeans(3, random_state=0).partial_fit(Z),
             lambda: MiniBatchKMeans(3, random_state=0).fit([torch.from_numpy(Z[:150]), torch.from_numpy(Z[150:])])]
    for call in calls:
        with pytest.raises(ValueError, match='overflow') as e: call()
        assert 'NaN' not in str(e.value) and 'scale the data down' in str(e.value), str(e.value)
    assert np.isfinite(Z).all()                                        # the input really is finite


# ---------------------------------------------------------------- bigger than memory should need

OOC = """
import sys, time
from kmeans_lessons.bench import peak_memory_mb
from kmeans_lessons.distributed import distributed_fit
t = time.perf_counter()
r = distributed_fit(sys.argv[1], 8, init='forgy', max_iter=2, tol=0, random_state=0, keep_history=False)
print(peak_memory_mb(), time.perf_counter() - t, time.process_time(), r['n_iter'], r['inertia'], r['n_samples'])
"""


def test_a_4gb_npy_fits_in_under_1gb(tmp_path):
    N, D, B = 2**24, 64, 2**18                                         # 16.8 M points x 64 float32 = 4 GiB
    if shutil.disk_usage(tmp_path).free < N * D * 4 + 2**30: pytest.skip("needs 5 GB of free disk")
    path = tmp_path / 'big.npy'
    rng = np.random.default_rng(0)
    base = rng.standard_normal((B, D), dtype=np.float32) + 4 * rng.standard_normal((8, D), dtype=np.float32)[
        rng.integers(8, size=B)]                                       # (B, D): 8 blobs
    try:
        with open(path, 'wb') as f:
            np.lib.format.write_array_header_1_0(f, {'descr': '<f4', 'fortran_order': False, 'shape': (N, D)})
            for j in range(N // B):                                    # the same rows, rotated in every block
                r = j * 4099 % B
                f.write(memoryview(base[r:])); f.write(memoryview(base[:r]))
        del base
        assert path.stat().st_size >= 4 * 2**30
        out = subprocess.run([sys.executable, '-c', OOC, str(path)], capture_output=True, text=True, timeout=600,
                             env=dict(os.environ, OMP_NUM_THREADS='1'))
        assert out.returncode == 0, out.stderr[-3000:]
        peak, seconds, cpu, n_iter, inertia_, n = out.stdout.split()
        print(f"4 GiB .npy: peak RSS {float(peak):.0f} MB, {float(seconds):.1f} s ({float(cpu):.1f} s CPU)")
        assert float(peak) < 1024 and int(n) == N and int(n_iter) == 2 and float(inertia_) > 0
    finally:
        path.unlink(missing_ok=True)


def test_mean_inertia_on_issue_17s_blobs_within_1_percent_of_scikit_learn():
    """Issue 17's data, as benchmarks/bench_minibatch.py fits it: 60k x 8, 40 blobs, k=40, both with their defaults,
    12 seeds each. The mean inertia is within 1% of scikit-learn's (0.9968 when measured; it was +2.9% before the
    `_init_size` rule and the engine's E-step). One seed that puts two blobs under one centre moves a mean by about
    2%, so this holds for these seeds, not for any 12."""
    X, _, _ = sample_blobs(40, 1500, 8, seed=0)
    Xn = X.numpy()[np.random.default_rng(0).permutation(len(X))]
    X = torch.from_numpy(Xn)
    ours = np.mean([MiniBatchKMeans(40, random_state=s).fit(X).inertia_ for s in range(12)])
    theirs = np.mean([SKMiniBatchKMeans(40, random_state=s).fit(Xn).inertia_ for s in range(12)])
    assert abs(ours / theirs - 1) <= 0.01, (ours, theirs)
