"""Out of core and mini-batch: a 4 GiB .npy fitted in bounded memory; MiniBatchKMeans against scikit-learn."""
import os, shutil, subprocess, sys
import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans as SKKMeans, MiniBatchKMeans as SKMiniBatchKMeans
from torch.utils.data import DataLoader, TensorDataset

from kmeans_lessons.validation import NotFittedError
from kmeans_lessons.data import sample_blobs
from kmeans_lessons.streaming import MiniBatchKMeans


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
    me = MiniBatchKMeans(20, init=torch.as_tensor(C0), batch_size=256, seed=0)
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
    me = MiniBatchKMeans(20, init=torch.as_tensor(C0), batch_size=500, seed=0)
    for b in batches: sk.partial_fit(b.numpy()); me.partial_fit(b)
    a, m = inertia(X, sk.cluster_centers_), inertia(X, me.cluster_centers_)
    assert abs(m - a) <= 0.02 * a, (m, a)
    # fit takes the loader itself: passes over it until the smoothed inertia stops improving
    km = MiniBatchKMeans(20, seed=0).fit(dl)
    best = SKKMeans(20, n_init=3, random_state=0).fit(X.numpy()).inertia_
    assert km.labels_ is None and km.inertia_ == pytest.approx(inertia(X, km.cluster_centers_), rel=1e-4)
    assert km.inertia_ <= 1.10 * best and km.n_iter_ >= 1                # a mini-batch optimum, not Lloyd's
    # a one-shot generator is one pass
    km = MiniBatchKMeans(20, seed=0).fit(b for b in batches)
    assert km.n_iter_ == 1 and km.n_steps_ == len(batches) and km.inertia_ > 0


def test_fit_on_an_array_like_scikit_learn(blobs):
    "Each with its own random batches and inits: on average over seeds, the same quality."
    X = blobs
    ours = np.mean([MiniBatchKMeans(20, seed=s).fit(X).inertia_ for s in range(4)])
    theirs = np.mean([SKMiniBatchKMeans(20, random_state=s).fit(X.numpy()).inertia_ for s in range(4)])
    assert abs(ours - theirs) <= 0.05 * theirs, (ours, theirs)


def test_memmap_and_path(blobs, tmp_path):
    np.save(tmp_path / 'X.npy', blobs.numpy())
    a = MiniBatchKMeans(20, seed=1).fit(blobs)
    for src in (tmp_path / 'X.npy', np.load(tmp_path / 'X.npy', mmap_mode='r')):
        b = MiniBatchKMeans(20, seed=1).fit(src)
        assert b.labels_.dtype == torch.uint8 and torch.equal(b.labels_.long(), a.labels_)
        torch.testing.assert_close(b.cluster_centers_, a.cluster_centers_)
        assert torch.equal(b.predict(src).long(), a.predict(blobs))


def test_early_stopping_and_reassignment(blobs):
    km = MiniBatchKMeans(20, seed=0, max_iter=50).fit(blobs)
    assert km.n_steps_ < 50 * len(blobs) // 1024                     # max_no_improvement stopped it
    X = torch.cat([blobs, torch.full((5, 8), 500.0)])                  # 5 far outliers
    C0 = torch.cat([blobs[:19], torch.full((1, 8), 500.0)])            # one centre sits on them: tiny count
    km = MiniBatchKMeans(20, init=C0, seed=0, max_no_improvement=None, max_iter=2).fit(X)
    assert float(km.cluster_centers_[19].abs().max()) < 100            # it was moved to a real batch point


def test_bad_input(blobs, tmp_path):
    km = MiniBatchKMeans(3)
    with pytest.raises(NotFittedError): km.predict(blobs)
    with pytest.raises(ValueError, match='first batch has 2 points'): km.partial_fit(blobs[:2])
    km.partial_fit(blobs[:100])
    with pytest.raises(ValueError, match='3 features'): km.partial_fit(blobs[:10, :3])
    bad = blobs[:100].clone(); bad[5, 2] = float('nan')
    with pytest.raises(ValueError, match='NaN'): km.partial_fit(bad)
    with pytest.raises(ValueError, match='batch_size must be an int >= 1'): MiniBatchKMeans(3, batch_size=0).fit(blobs)
    with pytest.raises(ValueError, match='reassignment_ratio'): MiniBatchKMeans(3, reassignment_ratio=-1).fit(blobs)
    with pytest.raises(ValueError, match='empty'): MiniBatchKMeans(3).fit(iter([]))
    np.save(tmp_path / 'c.npy', np.zeros((10, 2), np.complex64))
    with pytest.raises(TypeError, match='complex64'): MiniBatchKMeans(3).fit(tmp_path / 'c.npy')
    assert repr(MiniBatchKMeans(4, batch_size=256)) == 'MiniBatchKMeans(n_clusters=4, batch_size=256)'


# ---------------------------------------------------------------- bigger than memory should need

OOC = """
import sys, time
from kmeans_lessons.bench import peak_memory_mb
from kmeans_lessons.distributed import distributed_fit
t = time.perf_counter()
r = distributed_fit(sys.argv[1], 8, init='forgy', max_iter=2, tol=0, seed=0, keep_history=False)
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
