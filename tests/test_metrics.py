"Cosine, IoU and user-defined distances in k-means, checked against brute-force and hand-computed references."
import math
import pytest
import torch
import torch.nn.functional as F
from kmeans_lessons.distances import Distance, FunctionDistance, get_distance
from kmeans_lessons.assignment import assign
from kmeans_lessons import KMeans
from kmeans_lessons.data import sample_blobs
from kmeans_lessons.cosine_iou import CosineDistance, IoUDistance, iou_distance


def rays(n_rays=5, n=200, seed=0):
    "Points along `n_rays` directions with log-normal lengths (directional data)."
    g = torch.Generator().manual_seed(seed)
    lab = torch.arange(n_rays).repeat_interleave(n)
    ang = (torch.arange(n_rays) * 2 * math.pi / n_rays)[lab] + 0.2 * torch.randn(len(lab), generator=g)
    r = 3 * torch.exp(0.8 * torch.randn(len(lab), generator=g))
    return torch.stack([ang.cos(), ang.sin()], 1) * r[:, None]


def boxes(n=3000, seed=0):
    "Box sizes (w, h) from five aspect-ratio families with log-normal scales (as in lesson 08)."
    g = torch.Generator().manual_seed(seed)
    aspect, side, spread, weight = torch.tensor([[1.0, 60, 1.0, 0.30], [0.5, 40, 0.8, 0.20], [2.0, 50, 0.7, 0.25],
                                                 [3.0, 120, 0.5, 0.10], [0.3, 150, 0.5, 0.15]]).T
    fam = torch.multinomial(weight, n, replacement=True, generator=g)
    log_area = 2 * side.log()[fam] + spread[fam] * torch.randn(n, generator=g)
    log_aspect = aspect.log()[fam] + 0.2 * torch.randn(n, generator=g)
    return torch.stack([torch.exp((log_area - log_aspect) / 2), torch.exp((log_area + log_aspect) / 2)], 1).clamp(2, 416)


def mean_best_iou(b, anchors): return (1 - iou_distance(b, anchors)).max(1).values.mean().item()


# ---------------------------------------------------------------- cosine
def brute_cosine(X, C):
    "Cosine similarity (n, k), one centre at a time with torch's own function."
    return torch.stack([F.cosine_similarity(X, c[None], dim=1) for c in C], 1)


def test_cosine_labels_are_argmax_of_cosine_similarity():
    X = rays() + 0.5                                   # not centred: lengths and offsets must not matter
    km = KMeans(5, random_state=0, distance=CosineDistance(), tol=0).fit(X)
    sim = brute_cosine(X, km.cluster_centers_)
    assert torch.equal(km.labels_, sim.argmax(1))
    assert torch.equal(km.predict(X * 7.0), sim.argmax(1))           # scale-free
    torch.testing.assert_close(km.inertia_, (1 - sim.max(1).values).sum().item(), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(km.transform(X), 1 - sim)


def test_cosine_centres_are_normalised_means_of_unit_vectors():
    X = rays(seed=1)
    km = KMeans(5, random_state=1, distance='cosine', tol=0).fit(X)
    C, lab = km.cluster_centers_, km.labels_
    for j in range(5):                                 # fixed point of the spherical k-means update
        u = F.normalize(X[lab == j], dim=1).mean(0)
        torch.testing.assert_close(C[j], u / u.norm())
    torch.testing.assert_close(C.norm(dim=1), torch.ones(5))


def test_cosine_pairwise_and_nearest_agree_with_brute_force():
    g = torch.Generator().manual_seed(3)
    X, C = torch.randn(300, 7, generator=g), torch.randn(11, 7, generator=g)
    d = CosineDistance()
    torch.testing.assert_close(d.pairwise(X, C), 1 - brute_cosine(X, C))
    v, i = d.nearest(X, C)
    assert torch.equal(i, brute_cosine(X, C).argmax(1))
    assert bool((d.pairwise(X, C) >= 0).all()) and bool((d.pairwise(X, X[:5]).diagonal() < 1e-6).all())


def test_cosine_separates_rays_that_euclidean_mixes():
    X = rays()
    truth = torch.arange(5).repeat_interleave(200)
    from sklearn.metrics import adjusted_rand_score as ari
    assert ari(truth, KMeans(5, random_state=0, distance='cosine', tol=0).fit(X).labels_) > 0.95
    assert ari(truth, KMeans(5, random_state=0).fit(X).labels_) < 0.6


def test_cosine_default_tol_does_not_stop_early_on_long_vectors():
    g = torch.Generator().manual_seed(0)
    X = (0.7 * torch.randn(2000, 2, generator=g) + 0.3) * 100
    a = KMeans(20, random_state=0, distance='cosine').fit(X)
    b = KMeans(20, random_state=0, distance='cosine', tol=0).fit(X)
    assert a.inertia_ <= b.inertia_ * 1.01


# ---------------------------------------------------------------- IoU
def test_iou_matches_hand_computed_table():
    b = torch.tensor([[2., 2.], [4., 1.], [2., 3.]])
    a = torch.tensor([[2., 2.], [1., 4.], [3., 2.]])
    iou = torch.tensor([[1,   1/3, 2/3],      # (2,2) vs (2,2): 4/4; vs (1,4): 2/(4+4-2); vs (3,2): 4/(4+6-4)
                        [1/3, 1/7, 3/7],      # (4,1): 2/(4+4-2); 1/(4+4-1); 3/(4+6-3)
                        [2/3, 3/7, 1/2]])     # (2,3): 4/(6+4-4); 3/(6+4-3); 4/(6+6-4)
    torch.testing.assert_close(iou_distance(b, a), 1 - iou)
    torch.testing.assert_close(IoUDistance().pairwise(b, a), 1 - iou)
    torch.testing.assert_close(iou_distance(a, b), (1 - iou).T)         # symmetric


def test_iou_is_not_the_bounding_box_ratio():
    cross = iou_distance(torch.tensor([[4., 1.]]), torch.tensor([[1., 4.]])).item()
    assert cross == pytest.approx(1 - 1 / 7)                             # not 1 - 1/16


@pytest.mark.parametrize("bad, msg", [(torch.ones(3, 3), "shape"), (torch.tensor([[1., 0.]]), "positive"),
                                      (torch.tensor([[-1., 2.]]), "positive")])
def test_iou_rejects_bad_boxes(bad, msg):
    with pytest.raises(ValueError, match=msg): iou_distance(bad, torch.ones(2, 2))
    with pytest.raises(ValueError, match=msg): iou_distance(torch.ones(2, 2), bad)


def test_iou_kmeans_beats_euclidean_on_mean_best_iou():
    B = boxes()
    for seed in range(3):
        euc = mean_best_iou(B, KMeans(9, random_state=seed).fit(B).cluster_centers_)
        iou = mean_best_iou(B, KMeans(9, random_state=seed, distance='iou').fit(B).cluster_centers_)
        assert iou > euc + 0.01, (seed, iou, euc)


def test_kmeans_by_name():
    assert isinstance(get_distance('iou'), IoUDistance) and isinstance(get_distance('cosine'), CosineDistance)
    B = boxes(500)
    km = KMeans(9, random_state=0, distance='iou').fit(B)
    ref = KMeans(9, random_state=0, distance=IoUDistance()).fit(B)
    assert isinstance(km.distance_, IoUDistance) and torch.equal(km.labels_, ref.labels_)
    assert torch.equal(km.labels_, iou_distance(B, km.cluster_centers_).argmin(1))
    torch.testing.assert_close(km.inertia_, iou_distance(B, km.cluster_centers_).min(1).values.sum().item())
    with pytest.raises(ValueError, match="shape"): KMeans(3, distance='iou').fit(torch.rand(20, 3) + 1)


# ---------------------------------------------------------------- user-defined distances
def direct_sq(x, c): return ((x[:, None] - c[None]) ** 2).sum(-1)        # (n, k), no expansion trick


def test_custom_squared_euclidean_equals_builtin():
    X = sample_blobs(6, 250, seed=42)[0].double()
    for seed in range(3):
        ref = KMeans(6, random_state=seed).fit(X)
        km = KMeans(6, random_state=seed, distance=FunctionDistance(direct_sq)).fit(X)       # same k-means++ draws
        assert torch.equal(km.labels_, ref.labels_)
        torch.testing.assert_close(km.cluster_centers_, ref.cluster_centers_)
        torch.testing.assert_close(km.inertia_, ref.inertia_)
    C0 = X[torch.randperm(len(X), generator=torch.Generator().manual_seed(0))[:6]]
    ref = KMeans(6, init=C0).fit(X)
    km = KMeans(6, init=C0, distance=direct_sq).fit(X)                               # a plain function works too
    assert torch.equal(km.labels_, ref.labels_) and km.n_iter_ == ref.n_iter_
    torch.testing.assert_close(km.cluster_centers_, ref.cluster_centers_)


class Recording(Distance):
    "Squared Euclidean written by hand, remembering the size of every block it is given."
    name = 'recording'
    def __init__(self): self.rows = []
    def pairwise(self, x, c):
        self.rows.append(x.shape[0])
        return direct_sq(x, c)


def test_custom_distance_goes_through_the_chunked_path():
    X = sample_blobs(6, 250, seed=42)[0]
    full, small = Recording(), Recording()
    a = KMeans(6, random_state=0, distance=full).fit(X)
    b = KMeans(6, random_state=0, distance=small, memory_budget=2 * 6 * 4 * 100).fit(X)    # 100 rows per block
    assert torch.equal(a.labels_, b.labels_)
    torch.testing.assert_close(a.cluster_centers_, b.cluster_centers_)
    assignment_blocks = [r for r in small.rows if r != len(X)]                      # k-means++ scores all X at once
    assert assignment_blocks and max(assignment_blocks) <= 100
    assert max(r for r in full.rows) == len(X)
    # the built-in distances take the same path: identical results in small blocks
    for dist, data in (('cosine', rays()), ('iou', boxes(800))):
        x = KMeans(5, random_state=0, distance=dist).fit(data)
        y = KMeans(5, random_state=0, distance=dist, memory_budget=2 * 5 * 4 * 37).fit(data)
        assert torch.equal(x.labels_, y.labels_)
        torch.testing.assert_close(x.cluster_centers_, y.cluster_centers_)


def transposed(x, c): return torch.cdist(x, c).T
def sqrt_of_difference(x, c): return (x[:, None] - c[None]).sum(-1).sqrt()
def difference(x, c): return (x[:, None] - c[None]).sum(-1)


@pytest.mark.parametrize("fn, what", [(transposed, r"expected \("), (sqrt_of_difference, "NaN"),
                                      (difference, "negative")])
def test_bad_custom_distance_names_itself(fn, what):
    X = sample_blobs(3, 50, seed=0)[0]
    for init in ('k-means++', 'forgy'):
        with pytest.raises(ValueError, match=f"'{fn.__name__}'.*{what}"):
            KMeans(3, random_state=0, init=init, distance=fn).fit(X)


def test_custom_subclass_with_median_centre():
    "k-medians written as in the lesson: L1 assignment, median centres; inertia never goes up."
    class Manhattan(Distance):
        name = 'manhattan'
        def pairwise(self, x, c): return torch.cdist(x, c, p=1)
        def centre(self, X, labels, k):
            return torch.stack([X[labels == j].median(0).values if bool((labels == j).any()) else X.new_zeros(X.shape[1])
                                for j in range(k)])
    X = sample_blobs(4, 100, seed=1)[0]
    km = KMeans(4, random_state=0, distance=Manhattan(), tol=0).fit(X)
    h = torch.tensor(km.inertia_history_)
    assert bool((h[1:] <= h[:-1] * (1 + 1e-6)).all())
    for j in range(4): torch.testing.assert_close(km.cluster_centers_[j], X[km.labels_ == j].median(0).values)
    torch.testing.assert_close(km.inertia_, torch.cdist(X, km.cluster_centers_, p=1).min(1).values.sum().item())


def test_fit_does_not_modify_input():
    X, B = rays(), boxes(300)
    X0, B0 = X.clone(), B.clone()
    KMeans(5, random_state=0, distance='cosine').fit(X); KMeans(5, random_state=0, distance='iou').fit(B)
    assert torch.equal(X, X0) and torch.equal(B, B0)
