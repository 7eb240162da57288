"""GIFs for slides: one frame per centroid set, and every frame shows something new while the centroids move."""
import io
import numpy as np
import torch
from PIL import Image

from kmeans_lessons.data import sample_blobs
from kmeans_lessons.estimators import KMeans
from kmeans_lessons.animation import animate_kmeans, animate_points, save_animation


def gif_frames(path):
    with Image.open(path) as im:
        frames, durations = [], []
        for i in range(im.n_frames):
            im.seek(i)
            frames.append(np.asarray(im.convert('RGB')).astype(int))
            durations.append(im.info.get('duration'))
    return frames, durations


def test_gif_frames_follow_the_history(tmp_path):
    X, _, _ = sample_blobs(6, 250, seed=42)
    km = KMeans(6, init=X[:6], max_iter=50, keep_history=True).fit(X)   # a bad start: many iterations of movement
    assert km.n_iter_ >= 8
    path = save_animation(animate_kmeans(X, km, dpi=40), tmp_path / 'c.gif', fps=5)
    frames, durations = gif_frames(path)
    assert len(frames) == km.n_iter_ + 1
    assert all(d == 200 for d in durations)
    top = frames[0].shape[0] // 8                                # below the title: the plot itself
    for i in range(1, len(frames)):
        moved = not torch.equal(km.history_[i], km.history_[i - 1])
        diff = np.abs(frames[i][top:] - frames[i - 1][top:]).sum(-1)
        if moved: assert (diff > 0).sum() > 10, f"frame {i} shows no change although the centroids moved"
        assert np.abs(frames[i] - frames[i - 1]).sum() > 0, f"frame {i} is a copy of frame {i - 1}"


def test_gif_of_moving_points(tmp_path):
    X, labels, C = sample_blobs(3, 50, seed=0)
    steps = [X + (C[labels] - X) * t for t in (0, 0.5, 0.9)]
    frames, _ = gif_frames(save_animation(animate_points(steps, labels, dpi=40), tmp_path / 'p.gif'))
    assert len(frames) == 3
    assert all(np.abs(a - b).sum() > 0 for a, b in zip(frames, frames[1:]))


def test_a_model_without_history_gets_a_clear_error():
    "KMeans keeps no history unless asked (keep_history=False, or no history_ at all): animate_kmeans says how to fix it."
    import pytest
    X, _, _ = sample_blobs(3, 50, seed=0)
    no_history = KMeans(3, random_state=0, keep_history=False).fit(X)
    bare = KMeans(3, random_state=0, keep_history=True).fit(X)
    del bare.history_                                             # a fitted model that has no history_ at all
    for km in (no_history, bare):
        with pytest.raises(ValueError, match=r"kept no history to animate.*keep_history=True"): animate_kmeans(X, km)
    with pytest.raises(ValueError, match='not fitted'): animate_kmeans(X, KMeans(3))
    with_history = KMeans(3, random_state=0, keep_history=True).fit(X)
    assert animate_kmeans(X, with_history, dpi=20).n_frames == with_history.n_iter_ + 1


def test_gif_side_by_side_panels_follow_their_own_fit(tmp_path):
    "Two fits in one GIF: one frame per entry of the longer history; once the short fit has ended, its half stays still."
    from kmeans_lessons.animation import animate_side_by_side
    X, _, _ = sample_blobs(6, 250, seed=42)
    long = KMeans(6, init=X[:6], max_iter=50, keep_history=True).fit(X)            # a bad start: many iterations
    short = KMeans(6, random_state=0, keep_history=True).fit(X)
    assert short.n_iter_ + 3 <= long.n_iter_
    anim = animate_side_by_side(X, [short, long], dpi=30)
    assert anim.n_frames == long.n_iter_ + 1
    frames, _ = gif_frames(save_animation(anim, tmp_path / 'two.gif', fps=5))
    assert len(frames) == anim.n_frames and frames[0].shape[1] == 2 * frames[0].shape[0]   # 8 x 4 inches
    def pixels(i):                                   # frame i in full colour (a GIF's palette changes per frame)
        anim.draw(i)
        return np.asarray(Image.open(io.BytesIO(anim.scene.png(colors=None))).convert('RGB')).astype(int)
    before, half = pixels(short.n_iter_ + 1), frames[0].shape[1] // 2
    for i in range(short.n_iter_ + 2, anim.n_frames):
        now = pixels(i)
        assert np.array_equal(now[:, :half], before[:, :half]), f"frame {i}: the ended fit moved"
        if not torch.equal(long.history_[i], long.history_[i - 1]):
            assert (np.abs(now[:, half:] - before[:, half:]).sum(-1) > 0).sum() > 10, f"frame {i} is still"
        before = now
