import torch
from .assign import get_distance

def update_centroids(X, labels, C, dists=None, distance=None, empty='farthest'):
    """The M-step: new centres (k, D) from the assignment `labels` of `X` to the old centres `C`.
    An empty cluster either keeps its old centre (`empty='keep'`) or takes the point farthest
    from its own centre (`empty='farthest'`, which needs `dists`), as scikit-learn does."""
    dist = get_distance(distance)
    k = C.shape[0]
    counts = torch.bincount(labels, minlength=k)                        # (k,)
    if empty not in ('farthest', 'keep'): raise ValueError(f"empty must be 'farthest' or 'keep', got {empty!r}")
    if empty == 'farthest' and bool((counts == 0).any()):
        if dists is None: raise ValueError("empty='farthest' needs `dists`, each point's distance to its centre")
        empty_ids = (counts == 0).nonzero().flatten()                   # (e,)
        far = dists.topk(len(empty_ids)).indices                        # (e,) the worst-served points
        labels = labels.clone()
        labels[far] = empty_ids                                         # each founds a new cluster
        counts = torch.bincount(labels, minlength=k)
    new = dist.centre(X, labels, k)                                     # (k, D)
    return torch.where((counts > 0)[:, None], new, C)
