"""The exercise checkers: every reference answer passes, every listed mistake fails with a hint that names it,
a student's error shows the student's lines only, and an unanswered stub is "not attempted yet"."""
import math
import re
import time
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from kmeans_lessons import exercises as ex
from kmeans_lessons.exercises import check


def verdict(capsys, name, fn):
    "Run the check; return (passed, printed text). A check must print exactly one verdict and never raise."
    ok = check(name, fn)
    out = capsys.readouterr().out
    assert out.strip(), "check printed nothing"
    assert out.lstrip()[0] in '✓✗·', out
    return bool(ok), out


def d2(x, c): return ((x[:, None] - c[None]) ** 2).sum(-1)


# ------------------------------------------------------------------ wrong answers, written as a student would
# 00
def centre_rows(x): return x - x.mean(1, keepdim=True)
def centre_global(x): return x - x.mean()
def centre_inplace(x):
    x -= x.mean(0)
    return x

def centres_positive(k, D, box, generator): return torch.rand(k, D, generator=generator) * box
def centres_normal(k, D, box, generator): return torch.randn(k, D, generator=generator) * box
def centres_half(k, D, box, generator): return (torch.rand(k, D, generator=generator) - 0.5) * box
def centres_global_rng(k, D, box, generator): return (torch.rand(k, D) * 2 - 1) * box

def blob_variance(centre, n, std, generator): return centre + std ** 2 * torch.randn(n, len(centre), generator=generator)
def blob_no_centre(centre, n, std, generator): return std * torch.randn(n, len(centre), generator=generator)
def blob_one_number(centre, n, std, generator): return centre + std * torch.randn(n, 1, generator=generator)
def blob_uniform(centre, n, std, generator): return centre + std * torch.rand(n, len(centre), generator=generator)
def blob_global_rng(centre, n, std, generator): return centre + std * torch.randn(n, len(centre))

# 01
def sq_cdist(x, c): return torch.cdist(x, c)
def sq_transposed(x, c): return ((c[:, None] - x[None]) ** 2).sum(-1)
def sq_expansion(x, c): return (x * x).sum(1)[:, None] - 2 * x @ c.T + (c * c).sum(1)
def sq_l1(x, c): return (x[:, None] - c[None]).abs().sum(-1)

def ein_no_einsum(x, c): return ((x[:, None] - c[None]) ** 2).sum(-1)
def ein_not_squared(x, c): return torch.einsum('nkd->nk', x[:, None] - c[None])
def ein_transposed(x, c):
    diff = x[:, None] - c[None]
    return torch.einsum('nkd,nkd->kn', diff, diff)

def mm_unclamped(x, c): return (x * x).sum(1, keepdim=True) - 2 * x @ c.T + (c * c).sum(1)
def mm_plus(x, c): return ((x * x).sum(1, keepdim=True) + 2 * x @ c.T + (c * c).sum(1)).clamp_min(0)
def mm_no_xx(x, c): return (-2 * x @ c.T + (c * c).sum(1)).clamp_min(0)
def mm_difference_form(x, c): return ((x[:, None] - c[None]) ** 2).sum(-1)

# 02
def labels_argmax(x, c): return d2(x, c).argmax(1)
def labels_float(x, c): return d2(x, c).argmin(1).float()
def labels_keepdim(x, c): return d2(x, c).argmin(1, keepdim=True)
def labels_tuple(x, c): return d2(x, c).min(1)
def labels_values(x, c): return d2(x, c).min(1).values

def margin_largest(x, c):
    two = d2(x, c).topk(2, dim=1).values
    return two[:, 1] - two[:, 0]
def margin_plain(x, c):
    two = torch.cdist(x, c).topk(2, dim=1, largest=False).values
    return two[:, 1] - two[:, 0]

def chunked_cat_drops(x, c, chunk):
    out = [d2(x[s:s + chunk], c).argmin(1) for s in range(0, len(x) - chunk + 1, chunk)]
    return torch.cat(out)
def chunked_zeros_drops(x, c, chunk):
    labels = torch.zeros(len(x), dtype=torch.long)
    for i in range(len(x) // chunk):
        labels[i * chunk:(i + 1) * chunk] = d2(x[i * chunk:(i + 1) * chunk], c).argmin(1)
    return labels
def chunked_full_matrix(x, c, chunk): return torch.cdist(x, c).argmin(1)
def chunked_counter_bug(x, c, chunk):
    labels = torch.empty(len(x), dtype=torch.long)
    for i, start in enumerate(range(0, len(x), chunk)):
        xb = x[i:i + chunk]                                   # the loop counter, not the start
        labels[start:start + chunk] = d2(xb, c).argmin(1)[:len(labels[start:start + chunk])]
    return labels

# 03
def counts_no_minlength(labels, k): return torch.bincount(labels)
def counts_unique(labels, k): return torch.unique(labels, return_counts=True)[1]
def counts_float(labels, k): return F.one_hot(labels, k).sum(0).float()

def means_sums(x, labels, k): return F.one_hot(labels, k).float().T @ x
def means_over_n(x, labels, k): return F.one_hot(labels, k).float().T @ x / len(x)
def means_loop(x, labels, k): return torch.stack([x[labels == j].mean(0) for j in range(k)])
def means_no_trailing_axis(x, labels, k):
    onehot = F.one_hot(labels, k).to(x.dtype)
    return onehot.T @ x / onehot.sum(0)                 # (k, D) / (k,): broadcasts along the wrong axis
def means_float32_matmul(x, labels, k):
    onehot = F.one_hot(labels, k).float()               # float32, whatever x is
    return onehot.T @ x / onehot.sum(0)[:, None]
def means_float32_result(x, labels, k):
    onehot = F.one_hot(labels, k).float()
    return onehot.T @ x.float() / onehot.sum(0)[:, None]

def upd_nan(x, labels, c):
    sums = torch.zeros_like(c).index_add_(0, labels, x)
    return sums / torch.bincount(labels, minlength=len(c))[:, None]
def upd_zero(x, labels, c):
    sums = torch.zeros_like(c).index_add_(0, labels, x)
    return sums / torch.bincount(labels, minlength=len(c)).clamp_min(1)[:, None]
def upd_include_self(x, labels, c):
    return torch.zeros_like(c).scatter_reduce(0, labels[:, None].expand_as(x), x, 'mean')
def upd_include_self_c(x, labels, c):
    return c.clone().scatter_reduce(0, labels[:, None].expand_as(x), x, 'mean', include_self=True)
def upd_inplace(x, labels, c):
    for j in range(len(c)):
        if (labels == j).any(): c[j] = x[labels == j].mean(0)
    return c
def upd_no_minlength(x, labels, c):
    sums = torch.zeros_like(c).index_add_(0, labels, x)
    counts = torch.bincount(labels)
    return torch.where(counts[:, None] > 0, sums / counts.clamp_min(1)[:, None], c)

# 04
def forgy_replacement(x, k, generator): return x[torch.randint(len(x), (k,), generator=generator)]
def forgy_first_k(x, k, generator): return x[:k].clone()
def forgy_global_rng(x, k, generator): return x[torch.randperm(len(x))[:k]]
def forgy_indices(x, k, generator): return torch.randperm(len(x), generator=generator)[:k]
def forgy_never_last(x, k, generator): return x[torch.randperm(len(x) - 1, generator=generator)[:k]] if k < len(x) \
    else x[torch.randperm(len(x), generator=generator)]

def inertia_mean(x, c, labels): return ((x - c[labels]) ** 2).sum(1).mean()
def inertia_nearest(x, c, labels): return d2(x, c).min(1).values.sum()
def inertia_sqrt(x, c, labels): return (x - c[labels]).norm(dim=1).sum()

def _pp(x, k, generator, weight, first=None):
    i = torch.randint(len(x), (1,), generator=generator)[0] if first is None else first
    centres, d = [x[i]], ((x - x[i]) ** 2).sum(1)
    for _ in range(1, k):
        j = weight(d, generator)
        centres.append(x[j])
        d = torch.minimum(d, ((x - x[j]) ** 2).sum(1))
    return torch.stack(centres)
def pp_by_distance(x, k, generator): return _pp(x, k, generator, lambda d, g: torch.multinomial(d.sqrt(), 1, generator=g)[0])
def pp_uniform(x, k, generator): return _pp(x, k, generator, lambda d, g: torch.multinomial((d > 0).float(), 1, generator=g)[0])
def pp_farthest(x, k, generator): return _pp(x, k, generator, lambda d, g: d.argmax())
def pp_first_fixed(x, k, generator): return _pp(x, k, generator, lambda d, g: torch.multinomial(d, 1, generator=g)[0], first=0)
def pp_global_rng(x, k, generator): return _pp(x, k, None, lambda d, g: torch.multinomial(d, 1)[0])

def km_one_iteration(x, k, generator, max_iter):
    c = x[torch.randperm(len(x), generator=generator)[:k]]
    labels = d2(x, c).argmin(1)
    c = torch.stack([x[labels == j].mean(0) if (labels == j).any() else c[j] for j in range(k)])
    return c, d2(x, c).argmin(1)
def km_stale_labels(x, k, generator, max_iter):
    c = x[torch.randperm(len(x), generator=generator)[:k]]
    for _ in range(max_iter):
        labels = d2(x, c).argmin(1)
        new = torch.stack([x[labels == j].mean(0) if (labels == j).any() else c[j] for j in range(k)])
        if torch.equal(new, c): break
        c = new
    return c, labels

# 05
def rows_elements(k, budget, itemsize): return max(1, budget // k)
def rows_true_division(k, budget, itemsize): return max(1, budget / (k * itemsize))
def rows_zero(k, budget, itemsize): return budget // (k * itemsize)
def rows_ceil(k, budget, itemsize): return max(1, math.ceil(budget / (k * itemsize)))

def slices_drop_last(n, chunk): return [(i * chunk, (i + 1) * chunk) for i in range(n // chunk)]
def slices_past_n(n, chunk): return [(s, s + chunk) for s in range(0, n, chunk)]

def timing_no_warmup(f, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter(); f(); times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]
def timing_mean(f, repeat):
    f()
    times = []
    for _ in range(repeat):
        t = time.perf_counter(); f(); times.append(time.perf_counter() - t)
    return sum(times) / len(times)
def timing_total(f, repeat):
    f()
    t = time.perf_counter()
    for _ in range(repeat): f()
    return time.perf_counter() - t
def timing_ms(f, repeat): return 1000 * ex._time_per_call(f, repeat)

# 06
def history_aliased(x, c, n_iter):
    c = c.clone()
    frames = [c]
    for _ in range(n_iter):
        labels = d2(x, c).argmin(1)
        for j in range(len(c)):
            if (labels == j).any(): c[j] = x[labels == j].mean(0)
        frames.append(c)
    return frames
def history_no_start(x, c, n_iter):
    frames = []
    for _ in range(n_iter):
        labels = d2(x, c).argmin(1)
        c = torch.stack([x[labels == j].mean(0) if (labels == j).any() else c[j] for j in range(len(c))])
        frames.append(c)
    return frames

def pca_uncentred(x): return x @ torch.linalg.svd(x, full_matrices=False)[2][:2].T
def pca_smallest(x):
    xc = x - x.mean(0)
    return xc @ torch.linalg.svd(xc, full_matrices=False)[2][-2:].T
def pca_columns(x):
    xc = x - x.mean(0)
    return xc @ torch.linalg.svd(xc, full_matrices=False)[2][:, :2]
def pca_eigh(x):                                       # a right answer by another route: other signs, other order
    xc = x - x.mean(0)
    vals, vecs = torch.linalg.eigh(xc.T @ xc)          # ascending
    return -(xc @ vecs[:, [-1, -2]])

# 07
def gauss_variance(d, bandwidth): return torch.exp(-d ** 2 / (2 * bandwidth)) / math.sqrt(2 * math.pi * bandwidth)
def gauss_math_exp(d, bandwidth): return math.exp(-0.5 * (d / bandwidth) ** 2) / (bandwidth * math.sqrt(2 * math.pi))
def gauss_unnormalised(d, bandwidth): return torch.exp(-0.5 * (d / bandwidth) ** 2)
def gauss_variance_in_exponent(d, bandwidth):
    return torch.exp(-d ** 2 / (2 * bandwidth)) / (bandwidth * math.sqrt(2 * math.pi))
def gauss_variance_in_constant(d, bandwidth):
    return torch.exp(-0.5 * (d / bandwidth) ** 2) / math.sqrt(2 * math.pi * bandwidth)
def gauss_squared_input(d, bandwidth): return torch.exp(-0.5 * d / bandwidth ** 2) / (bandwidth * math.sqrt(2 * math.pi))

def tri_no_clamp(d, bandwidth): return 1 - d / bandwidth
def tri_not_divided(d, bandwidth): return (bandwidth - d).clamp_min(0)

def ms_inplace_fastai(X, bandwidth):                   # fastai lesson 12's loop: X changes under our feet
    for i, x in enumerate(X):
        w = torch.exp(-((x - X) ** 2).sum(1) / (2 * bandwidth ** 2))
        X[i] = (w[:, None] * X).sum(0) / w.sum()
    return X
def ms_inplace_copy(X, bandwidth):
    X = X.clone()
    return ms_inplace_fastai(X, bandwidth)
def ms_unnormalised(X, bandwidth): return torch.exp(-d2(X, X) / (2 * bandwidth ** 2)) @ X
def ms_variance(X, bandwidth):
    w = torch.exp(-d2(X, X) / (2 * bandwidth))
    return w @ X / w.sum(1, keepdim=True)
def ms_no_keepdim(X, bandwidth):
    w = torch.exp(-d2(X, X) / (2 * bandwidth ** 2))
    return w @ X / w.sum(1)                              # (n,) divides the columns
def ms_loop_right(X, bandwidth):                       # a right answer by another route
    new = torch.empty_like(X)
    for i, x in enumerate(X):
        w = torch.exp(-((x - X) ** 2).sum(1) / (2 * bandwidth ** 2))
        new[i] = (w[:, None] * X).sum(0) / w.sum()
    return new

# 08
def l1_squared(x, c): return d2(x, c)
def l1_transposed(x, c): return (c[:, None] - x[None]).abs().sum(-1)
def l1_no_abs(x, c): return (x[:, None] - c[None]).sum(-1)

def cos_argmin(x, c): return (F.normalize(x, dim=1) @ F.normalize(c, dim=1).T).argmin(1)
def cos_dot(x, c): return (x @ c.T).argmax(1)
def cos_euclid(x, c): return d2(x, c).argmin(1)

def iou_bbox(boxes, anchors):
    inter = torch.minimum(boxes[:, None], anchors[None]).prod(-1)
    return inter / torch.maximum(boxes[:, None], anchors[None]).prod(-1)
def iou_distance_not_iou(boxes, anchors):
    inter = torch.minimum(boxes[:, None], anchors[None]).prod(-1)
    return 1 - inter / (boxes.prod(1)[:, None] + anchors.prod(1)[None] - inter)
def iou_double_counted(boxes, anchors):
    inter = torch.minimum(boxes[:, None], anchors[None]).prod(-1)
    return inter / (boxes.prod(1)[:, None] + anchors.prod(1)[None])

# 09
def quant_labels(pixels, palette): return d2(pixels, palette).argmin(1)
def quant_farthest(pixels, palette): return palette[d2(pixels, palette).argmax(1)]

def cont_transposed(labels, target, k, n_classes):
    counts = torch.zeros(n_classes, k, dtype=torch.long)
    counts.index_put_((target, labels), torch.ones_like(labels), accumulate=True)
    return counts
def cont_no_accumulate(labels, target, k, n_classes):
    counts = torch.zeros(k, n_classes, dtype=torch.long)
    counts[labels, target] += 1
    return counts
def cont_float(labels, target, k, n_classes):
    return torch.zeros(k, n_classes).index_put_((labels, target), torch.ones(len(labels)), accumulate=True)

def acc_raw(labels, target, k): return (labels == target).float().mean().item()
def acc_count(labels, target, k):
    counts = torch.zeros(k, int(target.max()) + 1, dtype=torch.long)
    counts.index_put_((labels, target), torch.ones_like(labels), accumulate=True)
    return counts.max(1).values.sum().item()


def mask_ge(upper, lower, half_gap): return upper >= torch.maximum(lower, half_gap)
def mask_min(upper, lower, half_gap): return upper > torch.minimum(lower, half_gap)
def mask_no_gap(upper, lower, half_gap): return upper > lower
def mask_safe(upper, lower, half_gap): return upper <= torch.maximum(lower, half_gap)
def mask_float(upper, lower, half_gap): return (upper > torch.maximum(lower, half_gap)).float()

def bounds_own_shift(upper, lower, labels, shift): return upper + shift[labels], lower - shift[labels]
def bounds_lesson_max(upper, lower, labels, shift): return upper + shift[labels], lower - shift.max()
def bounds_inplace(upper, lower, labels, shift):
    other = torch.stack([torch.cat([shift[:j], shift[j + 1:]]).max() for j in labels.tolist()])
    upper += shift[labels]
    lower -= other
    return upper, lower
def bounds_swapped(upper, lower, labels, shift): return lower - shift.max(), upper + shift[labels]

def merge_mean_of_means(sums, counts, old):
    means = sums / counts[..., None]                    # each rank's means: NaN where a rank saw none
    return torch.nanmean(means, 0).to(old.dtype)
def merge_mean_of_means_safe(sums, counts, old):
    seen = counts > 0
    means = (sums / counts.clamp_min(1)[..., None] * seen[..., None]).sum(0) / seen.sum(0).clamp_min(1)[:, None]
    return torch.where(seen.any(0)[:, None], means, old.double()).to(old.dtype)
def merge_nan(sums, counts, old): return (sums.sum(0) / counts.sum(0)[:, None]).to(old.dtype)
def merge_zero(sums, counts, old): return (sums.sum(0) / counts.sum(0).clamp_min(1)[:, None]).to(old.dtype)
def merge_float64(sums, counts, old):
    n = counts.sum(0)
    return torch.where(n[:, None] > 0, sums.sum(0) / n.clamp_min(1)[:, None], old.double())

def bytes_no_scalars(n, k, D, itemsize): return (k * D + k) * itemsize
def bytes_no_counts(n, k, D, itemsize): return (k * D + 2) * itemsize
def bytes_numbers(n, k, D, itemsize): return k * D + k + 2
def bytes_points(n, k, D, itemsize): return (n * D + k * D + k + 2) * itemsize
def bytes_labels(n, k, D, itemsize): return (n + k * D + k + 2) * itemsize


WRONG = {   # name: [(wrong answer, words its verdict must contain)]
    'centre': [(centre_rows, "ROW's mean"), (centre_global, "one overall mean"),
               (centre_inplace, "changed its input `x`")],
    'random_centres': [(centres_positive, "Stretch it to [-1, 1)"), (centres_normal, "normal distribution"),
                       (centres_half, "half the box"), (centres_global_rng, "generator you are given")],
    'sample_blob': [(blob_variance, "variance"), (blob_no_centre, "add the centre"),
                    (blob_one_number, "correlated"), (blob_uniform, "torch.rand is uniform"),
                    (blob_global_rng, "generator you are given")],
    'sq_dists': [(sq_cdist, "square root"), (sq_transposed, "transposed"), (sq_expansion, "negative"),
                 (sq_l1, "L1")],
    'sq_dists_einsum': [(ein_no_einsum, "torch.einsum"), (ein_not_squared, "without squaring"),
                        (ein_transposed, "transposed")],
    'sq_dists_mm': [(mm_unclamped, "clamp_min(0)"), (mm_plus, "wrong sign"), (mm_no_xx, "|x|² is missing"),
                    (mm_difference_form, "one matrix multiply")],
    'assign_labels': [(labels_argmax, "FARTHEST"), (labels_float, "int64"), (labels_keepdim, "(n, 1)"),
                      (labels_tuple, "returned a tuple"), (labels_values, "not their indices")],
    'voronoi_margin': [(margin_largest, "largest=False"), (margin_plain, "plain distances")],
    'chunked_assign': [(chunked_cat_drops, "was dropped"), (chunked_zeros_drops, "was dropped"),
                       (chunked_full_matrix, "whole (n, k)"), (chunked_counter_bug, "changes with chunk")],
    'cluster_counts': [(counts_no_minlength, "minlength"), (counts_unique, "torch.unique"), (counts_float, "int64")],
    'onehot_means': [(means_sums, "clusters' sums"), (means_over_n, "divided every sum by n"),
                     (means_loop, "matrix multiply"), (means_no_trailing_axis, "counts[:, None]"),
                     (means_float32_matmul, "`.to(x.dtype)`"), (means_float32_result, "`.to(x.dtype)`")],
    'update_centroids': [(upd_nan, "0 / 0"), (upd_zero, "silent"), (upd_include_self, "include_self=False"),
                         (upd_include_self_c, "averages the OLD centre"), (upd_inplace, "changed its input `c`"),
                         (upd_no_minlength, "only 2 long")],
    'init_forgy': [(forgy_replacement, "with replacement"), (forgy_first_k, "the same point every time"),
                   (forgy_global_rng, "generator you are given"), (forgy_indices, "row numbers"),
                   (forgy_never_last, "never drawn")],
    'inertia': [(inertia_mean, "SUM"), (inertia_nearest, "NEAREST"), (inertia_sqrt, "SQUARED")],
    'init_kmeans_plusplus': [(pp_by_distance, "plain distance"), (pp_uniform, "equal odds"),
                             (pp_farthest, "farthest point"), (pp_first_fixed, "first centre is not uniform"),
                             (pp_global_rng, "generator you are given")],
    'kmeans': [(km_one_iteration, "after one iteration"), (km_stale_labels, "don't match the final centres")],
    'rows_per_chunk': [(rows_elements, "not bytes"), (rows_true_division, "integer division"),
                       (rows_zero, "return 1"), (rows_ceil, "rounded up")],
    'chunk_slices': [(slices_drop_last, "shorter piece is missing"), (slices_past_n, "past n")],
    'time_per_call': [(timing_no_warmup, "warm-up"), (timing_mean, "median"), (timing_total, "5 calls together"),
                      (timing_ms, "not in seconds")],
    'kmeans_history': [(history_aliased, "same tensor"), (history_no_start, "first frame")],
    'pca_2d': [(pca_uncentred, "centre the data"), (pca_smallest, "SMALLEST"), (pca_columns, "ROWS of Vh")],
    'gaussian_kernel': [(gauss_variance, "VARIANCE"), (gauss_math_exp, "`torch.exp`"), (gauss_unnormalised, "normalising factor"),
                        (gauss_squared_input, "plain distance"),
                        (gauss_variance_in_exponent, "in the exponent you divided d² by bandwidth"),
                        (gauss_variance_in_constant, "the constant treats bandwidth as the variance")],
    'triangular_kernel': [(tri_no_clamp, "clamp"), (tri_not_divided, "divide by the bandwidth")],
    'meanshift_step': [(ms_inplace_fastai, "in place"), (ms_inplace_copy, "in place"),
                       (ms_unnormalised, "total weight"), (ms_variance, "variance"),
                       (ms_no_keepdim, "keepdim=True")],
    'manhattan_dists': [(l1_squared, "squared Euclidean"), (l1_transposed, "transposed"), (l1_no_abs, "absolute")],
    'cosine_assign': [(cos_argmin, "LEAST"), (cos_dot, "long vectors"), (cos_euclid, "Euclidean")],
    'iou_wh': [(iou_bbox, "bounding box"), (iou_distance_not_iou, "1 - IoU"), (iou_double_counted, "twice")],
    'quantise_colours': [(quant_labels, "labels"), (quant_farthest, "farthest")],
    'contingency': [(cont_transposed, "transposed"), (cont_no_accumulate, "accumulate"), (cont_float, "int64")],
    'majority_accuracy': [(acc_raw, "arbitrary"), (acc_count, "fraction")],
    'hamerly_mask': [(mask_ge, "Use `>`"), (mask_min, "SMALLER"), (mask_no_gap, "forgot half_gap"),
                     (mask_safe, "SAFE points"), (mask_float, "bool tensor")],
    'update_bounds': [(bounds_own_shift, "OWN centre's shift"), (bounds_lesson_max, "lesson's bound"),
                      (bounds_inplace, "changed its input `upper`"), (bounds_swapped, "(lower, upper)")],
    'merge_partials': [(merge_mean_of_means, "averaged the ranks' own means"), (merge_mean_of_means_safe, "averaged the ranks' own means"),
                       (merge_nan, "0 / 0"), (merge_zero, "jumped to the origin"), (merge_float64, "old's dtype")],
    'allreduce_bytes': [(bytes_no_scalars, "2 more numbers"), (bytes_no_counts, "counts are missing"),
                        (bytes_numbers, "itemsize"), (bytes_points, "points (n·D numbers) never travel"),
                        (bytes_labels, "labels (n numbers) never travel")],
}

RIGHT_BY_ANOTHER_ROUTE = [('pca_2d', pca_eigh), ('meanshift_step', ms_loop_right),
                          ('sq_dists', lambda x, c: torch.cdist(x.double(), c.double()).to(x.dtype) ** 2),
                          ('assign_labels', lambda x, c: torch.cdist(x, c).argmin(1)),
                          ('iou_wh', lambda b, a: 1 - __import__('kmeans_lessons').iou_distance(b, a))]


def test_every_exercise_has_at_least_two_wrong_answers_here():
    assert set(WRONG) == {e.name for e in ex.names() if e.lesson != '12'}   # 12: test_exercises_balanced.py
    assert all(len(w) >= 2 for w in WRONG.values())


@pytest.mark.parametrize('name', [e.name for e in ex.names()])
def test_reference_passes(name, capsys):
    ok, out = verdict(capsys, name, ex._SPECS[name].ref)
    assert ok and out.startswith(f"✓ {name}: passed"), out


@pytest.mark.parametrize('name,wrong,words', [(n, f, w) for n, ws in WRONG.items() for f, w in ws],
                         ids=[f"{n}-{f.__name__}" for n, ws in WRONG.items() for f, w in ws])
def test_wrong_answer_fails_naming_the_mistake(name, wrong, words, capsys):
    ok, out = verdict(capsys, name, wrong)
    assert not ok and out.startswith(f"✗ {name}"), out
    assert words in out, out
    assert 'exercises.py' not in out and 'Traceback' not in out or 'your code only' in out, out


@pytest.mark.parametrize('name,fn', RIGHT_BY_ANOTHER_ROUTE, ids=[n for n, _ in RIGHT_BY_ANOTHER_ROUTE])
def test_right_answers_by_another_route_pass(name, fn, capsys):
    ok, out = verdict(capsys, name, fn)
    assert ok, out


# ------------------------------------------------------------------ the package's own functions pass the checks
def test_package_functions_pass_the_checks(capsys):
    from kmeans_lessons import sq_dists, update_centroids, KMeans, benchmark
    from kmeans_lessons.meanshift import meanshift_step
    def gaussian(d, bw): return torch.exp(-0.5 * (d / bw) ** 2) / (bw * math.sqrt(2 * math.pi))   # lesson 07's
    assert verdict(capsys, 'sq_dists', sq_dists)[0]
    assert verdict(capsys, 'update_centroids', lambda x, labels, c: update_centroids(x, labels, c, empty='keep'))[0]
    assert verdict(capsys, 'gaussian_kernel', gaussian)[0]
    assert verdict(capsys, 'meanshift_step', lambda X, bw: meanshift_step(X, X, bw))[0]
    assert verdict(capsys, 'time_per_call', lambda f, repeat: benchmark(f, warmup=1, repeat=repeat))[0]
    def km(x, k, generator, max_iter):
        est = KMeans(k, random_state=int(torch.randint(2**31, (1,), generator=generator)), max_iter=max_iter,
                     tol=0).fit(x)
        return est.cluster_centers_, est.labels_
    assert verdict(capsys, 'kmeans', km)[0]


def test_reference_kmeans_matches_scikit_learn():
    from sklearn.cluster import KMeans as SkKMeans
    x = 10 * torch.rand(300, 2, generator=torch.Generator().manual_seed(7))
    for seed in range(3):
        c, labels = ex._kmeans(x, 5, torch.Generator().manual_seed(seed), 100)
        start = x[torch.randperm(300, generator=torch.Generator().manual_seed(seed))[:5]]
        sk = SkKMeans(5, init=start.double().numpy(), n_init=1, tol=0, max_iter=100).fit(x.double().numpy())
        np.testing.assert_allclose(c.numpy(), sk.cluster_centers_, rtol=0, atol=1e-4)
        assert np.array_equal(labels.numpy(), sk.labels_)


def test_reference_kmeans_plusplus_second_centre_follows_d_squared():
    "Independent of the checker's G-test: the empirical P(second | first = point 0) against D² by hand."
    x = torch.tensor(ex._PP_X)
    g = torch.Generator().manual_seed(5)
    hits = torch.zeros(5)
    n = 0
    while n < 600:
        c = ex._init_kmeans_plusplus(x, 2, g)
        if c[0, 0] == 0:
            hits[int(c[1, 0]) if c[1, 0] < 9 else 4] += 1
            n += 1
    d2_0 = torch.tensor([0., 1, 4, 9, 81])
    torch.testing.assert_close(hits / n, d2_0 / d2_0.sum(), atol=0.04, rtol=0)


# ------------------------------------------------------------------ errors in the student's code
def helper_that_fails(x):
    return x.reshape(7, -1)                             # the student's failing line


def sq_dists_broken(x, c):
    diff = x - c                                        # forgot the None axes: shapes clash
    return (diff ** 2).sum(-1)


def sq_dists_calls_helper(x, c):
    y = helper_that_fails(x)
    return y


def chunked_einsum_typo(x, c, chunk):
    return torch.einsum('nd,kd->nkx', x, c)             # an einsum error raised inside torch


def forgy_broken(x, k, generator):
    return x[torch.randperm(len(x), generator=generator)[:k]] + undefined_name  # noqa: F821


@pytest.mark.parametrize('name,fn,line', [
    ('sq_dists', sq_dists_broken, "diff = x - c"),
    ('sq_dists', sq_dists_calls_helper, "return x.reshape(7, -1)"),
    ('chunked_assign', chunked_einsum_typo, "torch.einsum('nd,kd->nkx', x, c)"),
    ('init_forgy', forgy_broken, "+ undefined_name")])
def test_student_error_shows_the_students_lines_only(name, fn, line, capsys):
    ok, out = verdict(capsys, name, fn)
    assert not ok and 'Traceback (your code only)' in out, out
    frames = [l for l in out.splitlines() if l.strip().startswith('File ') or l.strip().startswith('Cell ')]
    assert frames and all('test_exercises.py' in f for f in frames), out       # only the student's file
    assert 'exercises.py"' not in out.replace('test_exercises.py"', ''), out
    assert 'site-packages' not in out and '/torch/' not in out, out
    tb = out.split('Traceback (your code only):')[1]
    assert line in tb, out
    assert 'Error' in tb, out                            # the exception itself is shown
    if name == 'sq_dists':
        assert 'x = tensor(' in out                      # the failing case's input is shown


def test_checker_internals_never_show_even_when_the_student_returns_rubbish(capsys):
    for fn in (lambda x, c: "distances", lambda x, c: [[1, 2]], lambda x, c: torch.zeros(2, 3, dtype=torch.bool),
               lambda x, c: (x, c), lambda x, c: np.zeros((2, 3))):
        ok, out = verdict(capsys, 'sq_dists', fn)
        assert not ok and 'checker itself failed' not in out and 'Traceback' not in out, out


# ------------------------------------------------------------------ unanswered stubs
def stub_dots(x, c):
    "Squared distances (n, k)."
    ...  # your code here


def stub_pass(x, c):
    pass


def stub_raise(x, c):
    """Squared distances."""
    raise NotImplementedError


def stub_raise_msg(x, c):
    raise NotImplementedError("your code here")


def stub_return_none(x, c):
    return None


def forgot_return(x, c):
    d = ((x[:, None] - c[None]) ** 2).sum(-1)          # computed, but never returned


@pytest.mark.parametrize('stub', [stub_dots, stub_pass, stub_raise, stub_raise_msg, stub_return_none])
def test_unanswered_stub_is_not_attempted_yet(stub, capsys):
    ok, out = verdict(capsys, 'sq_dists', stub)
    assert not ok and 'not attempted yet' in out and 'Traceback' not in out, out


def test_stub_without_source_that_raises_not_implemented(capsys):
    ns = {}
    exec(compile("def sq_dists(x, c):\n    raise NotImplementedError\n", "<no source>", "exec"), ns)
    ok, out = verdict(capsys, 'sq_dists', ns['sq_dists'])
    assert not ok and 'not attempted yet' in out, out


def test_missing_return_is_a_mistake_not_a_stub(capsys):
    ok, out = verdict(capsys, 'sq_dists', forgot_return)
    assert not ok and 'returned None' in out and '`return` missing' in out, out


@pytest.mark.parametrize('name', [e.name for e in ex.names()])
def test_every_stub_is_not_attempted_and_solution_passes(name, capsys):
    ns = {'torch': torch, 'math': math, 'time': time}
    src = ex._stub_source(name)
    assert src.startswith(f"def my_{name}(") and '...  # your code here' in src
    # exec'd code has no source file: write it to a module so inspect finds it, as IPython does for a cell
    import importlib.util, tempfile, pathlib
    d = pathlib.Path(tempfile.mkdtemp())
    for kind, text in (('stub', src), ('solution', ex._solution_source(name))):
        path = d / f"{kind}_{name}.py"
        path.write_text("import math, time\nimport torch\n\n" + text)
        spec = importlib.util.spec_from_file_location(path.stem, path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        ok, out = verdict(capsys, name, getattr(mod, f"my_{name}"))
        assert ok is (kind == 'solution'), out
        if kind == 'stub': assert 'not attempted yet' in out, out


# ------------------------------------------------------------------ names, hint, solution, bad calls
def test_names_lists_enough_exercises_in_every_lesson():
    listing = ex.names()
    assert len(listing) >= 25
    assert len({e.name for e in listing}) == len(listing)
    lessons = [e.lesson for e in listing]
    with_exercises = {f"{i:02d}" for i in range(10)} | {'05b', '11', '12'}   # 10, the command line: none
    assert set(lessons) == with_exercises
    assert all(2 <= lessons.count(lesson) <= 4 for lesson in with_exercises)
    assert all(e.summary for e in listing)
    assert [e.name for e in ex.names(4)] == [e.name for e in listing if e.lesson == '04']
    assert [e.name for e in ex.names('05b')] == ['hamerly_mask', 'update_bounds']
    assert [e.name for e in ex.names('5b')] == [e.name for e in ex.names('05b')]
    assert [e.name for e in ex.names(11)] == ['merge_partials', 'allreduce_bytes']
    with pytest.raises(ValueError, match="lesson number"):
        ex.names('bounds')
    assert 'sq_dists' in repr(listing) and '01' in repr(listing)
    for name in ('sq_dists', 'assign_labels', 'update_centroids', 'init_forgy', 'init_kmeans_plusplus', 'kmeans',
                 'meanshift_step', 'gaussian_kernel', 'iou_wh', 'chunked_assign'):
        assert name in {e.name for e in listing}


def test_solution_and_hint_print(capsys):
    ex.solution('sq_dists')
    out = capsys.readouterr().out
    assert out.startswith('def my_sq_dists(x, c):') and 'return' in out
    ex.hint('sq_dists')
    assert 'broadcast' in capsys.readouterr().out
    with pytest.raises(ValueError, match="Did you mean 'sq_dists'"):
        ex.solution('sq_dist')


def test_bad_calls_print_and_return_false(capsys):
    assert check('sq_dist', lambda x, c: x) == False     # noqa: E712 (a verdict, not a bool)
    assert "Did you mean 'sq_dists'" in capsys.readouterr().out
    assert not check('sq_dists', 42)
    assert 'needs your function itself' in capsys.readouterr().out


def timing_passes_an_argument(f, repeat):
    f()
    return f(repeat)                                    # f takes no arguments: the error is the student's


def test_error_inside_a_checker_function_called_by_the_student_shows_no_checker_frame(capsys):
    ok, out = verdict(capsys, 'time_per_call', timing_passes_an_argument)
    assert not ok and 'return f(repeat)' in out and 'TypeError' in out, out
    frames = [l for l in out.splitlines() if l.strip().startswith('File ')]
    assert frames and all('test_exercises.py' in f for f in frames), out


ODD_ANSWERS = [lambda *a: 42, lambda *a: 'text', lambda *a: (1, 2), lambda *a: np.zeros(3),
               lambda *a: torch.tensor(float('nan')), lambda *a: torch.zeros(3, requires_grad=True),
               lambda *a: torch.ones(2, 2, dtype=torch.bool), lambda *a: [torch.zeros(2), torch.ones(3)]]


@pytest.mark.parametrize('name', [e.name for e in ex.names()])
def test_odd_answers_get_a_verdict_never_a_checker_error(name, capsys):
    for fn in ODD_ANSWERS:
        ok, out = verdict(capsys, name, fn)
        assert not ok and 'checker itself failed' not in out and out.startswith(f"✗ {name}"), out


def test_wrong_signature_is_named(capsys):
    ok, out = verdict(capsys, 'sq_dists', lambda x: x)
    assert not ok and 'signature' in out and '(x, c)' in out, out


# ------------------------------------------------------------------ the lessons' "Your turn" sections
def _your_turn_cells():
    import json, pathlib
    nbs = pathlib.Path(__file__).resolve().parent.parent / 'nbs'
    for path in sorted(nbs.glob('[0-9][0-9]*_*.ipynb')):
        cells = json.loads(path.read_text())['cells']
        yield path.name, [c for c in cells if 'your-turn' in c.get('metadata', {}).get('tags', [])], cells


def test_every_lesson_stub_is_the_registered_stub_named_my_():
    "Each stub cell is `_stub_source(name)`, named `my_<name>` so it never shadows the lesson's own function,"
    "and the check cell right under it checks that stub; every exercise appears in its own lesson."
    seen = {}
    for nb, turn, cells in _your_turn_cells():
        code = [''.join(c['source']) for c in turn if c['cell_type'] == 'code']
        for stub, chk in zip(code, code[1:]):
            m = re.match(r"check\('(\w+)', (\w+)\)$", chk.strip())
            if not m: continue
            name, fn = m[1], m[2]
            assert fn == f"my_{name}", (nb, chk)
            body = '\n'.join(l for l in stub.splitlines() if not l.startswith('#'))   # drop the shape comment
            assert body == ex._stub_source(name), (nb, name)
            seen[name] = nb
        if turn: assert cells[-len(turn):] == turn, f"{nb}: 'Your turn' is not the last section"
    for e in ex.names():
        assert seen.get(e.name, '').startswith(e.lesson + '_'), (e.name, e.lesson, seen.get(e.name))


# ------------------------------------------------------------------ interrupts and runaway recursion
def interrupted(x, c):
    raise KeyboardInterrupt        # what Jupyter's "interrupt the kernel" raises in a loop that never ends


def endless(x, c): return endless(x, c)


def test_an_interrupt_is_a_verdict_with_the_students_lines_only(capsys):
    ok, out = verdict(capsys, 'sq_dists', interrupted)
    assert not ok and 'a loop that never ends' in out and 'in interrupted' in out, out
    assert 'kmeans_lessons/exercises.py' not in out and 'KeyboardInterrupt' in out, out


def test_runaway_recursion_is_shown_in_a_few_lines(capsys):
    ok, out = verdict(capsys, 'sq_dists', endless)
    assert not ok and 'RecursionError' in out and 'calls itself' in out, out
    assert out.count('in endless') == 3 and 'repeated' in out and len(out.splitlines()) < 30, out


def deep(x, c, n=50):
    if n: return deep(x, c, n - 1)
    raise ValueError("bottom reached")     # a recursion that ends, then fails in another line


def test_a_repeated_frame_is_counted_where_the_run_ends(capsys):
    ok, out = verdict(capsys, 'sq_dists', deep)
    lines = out.splitlines()
    counted = [i for i, l in enumerate(lines) if 'repeated 47 more times' in l]
    assert not ok and len(counted) == 1, out
    assert 'raise ValueError' in lines[counted[0] + 2] and 'ValueError: bottom reached' in out, out


# ------------------------------------------------------------------ quiet verdicts, sharp hints
def test_a_check_cell_shows_only_its_printed_verdict(capsys):
    "The verdict `check` returns is true or false, and IPython displays nothing for it (no `Out: True` line)."
    from IPython.core.formatters import DisplayFormatter
    ok = check('sq_dists', d2)
    bad = check('sq_dists', sq_cdist)
    capsys.readouterr()
    assert ok and ok == True and not bad and bad == False and ok != bad      # noqa: E712
    assert repr(ok) == 'True' and repr(bad) == 'False'
    assert DisplayFormatter().format(ok) == ({}, {}) and DisplayFormatter().format(bad) == ({}, {})


def test_no_committed_check_cell_shows_true_or_false():
    "Every lesson's check cells were run with the quiet verdict: their outputs are the printed verdict only."
    checked = 0
    for nb, turn, _ in _your_turn_cells():
        for c in turn:
            if c['cell_type'] == 'code' and re.match(r"check\('\w+', \w+\)$", ''.join(c['source']).strip()):
                kinds = [o['output_type'] for o in c.get('outputs', [])]
                assert kinds == ['stream'], (nb, ''.join(c['source']), kinds)
                checked += 1
    assert checked >= 30


def test_math_on_a_tensor_names_the_torch_twin_for_any_exercise(capsys):
    "math.exp / math.sqrt given a tensor crash in the student's code; the hint names torch.exp / torch.sqrt."
    def kernel(d, bandwidth): return math.exp(-d / bandwidth)
    def dists(x, c): return math.sqrt(((x[:, None] - c[None]) ** 2).sum(-1)) ** 2
    def margin(x, c):
        d = d2(x, c).sort(1).values
        return math.fabs(d[:, 1] - d[:, 0])
    for name, fn, said, twin in [('triangular_kernel', kernel, 'math.exp', 'torch.exp'),
                                 ('sq_dists', dists, 'math.sqrt', 'torch.sqrt'),
                                 ('voronoi_margin', margin, 'math.fabs', 'torch.abs')]:
        ok, out = verdict(capsys, name, fn)
        hint = out.split('hint:', 1)[1]
        assert not ok and 'only one element tensors' in out and f"`{said}`" in hint and f"`{twin}`" in hint, out


def test_math_constants_are_not_blamed(capsys):
    "`math.sqrt(2 * math.pi)` is fine: only the math call on the tensor is named."
    ok, out = verdict(capsys, 'gaussian_kernel', gauss_math_exp)
    hint = out.split('hint:', 1)[1]
    assert not ok and '`math.exp` takes one Python number' in hint and 'math.sqrt' not in hint, out


def test_onehot_means_float64_case_catches_a_float32_cast(capsys):
    "All float32 cases pass with `.float()`; the float64 case fails, by an error or by the result's dtype."
    x = torch.randn(6, 2)
    labels = torch.tensor([0, 1, 0, 1, 1, 0])
    assert torch.allclose(means_float32_result(x, labels, 2), ex._onehot_means(x, labels, 2))   # right in float32
    for fn in (means_float32_matmul, means_float32_result):
        ok, out = verdict(capsys, 'onehot_means', fn)
        assert not ok and '(float64 input) failed' in out and '.to(x.dtype)' in out, out


def test_onehot_means_broadcast_hint_for_an_error_too(capsys):
    "Without [:, None], (k, D) / (k,) is the wrong shape when D == 1 and an error when D != k: both say why."
    ok, out = verdict(capsys, 'onehot_means', means_no_trailing_axis)
    assert not ok and 'shape (2, 2), expected (2, 1)' in out and 'broadcasting' in out and 'counts[:, None]' in out
    def no_axis_2d(x, labels, k):                      # the same mistake where case 1 is skipped
        if x.shape[1] == 1: return ex._onehot_means(x, labels, k)
        return means_no_trailing_axis(x, labels, k)
    ok, out = verdict(capsys, 'onehot_means', no_axis_2d)
    assert not ok and 'RuntimeError' in out and 'must match the size' in out and 'counts[:, None]' in out, out
