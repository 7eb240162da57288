import math
import torch
import matplotlib.pyplot as plt
from torch.distributions.multivariate_normal import MultivariateNormal

def sample_blobs(n_clusters=6, n_samples=250, n_features=2, *, box=35.0, var=5.0, seed=None,
                 generator=None, dtype=torch.float32):
    "Gaussian blobs: `n_samples` points around each of `n_clusters` uniform random centres in [-box, box]^D."
    if not isinstance(n_clusters, int) or n_clusters < 1: raise ValueError(f"n_clusters must be a positive int, got {n_clusters!r}")
    if not isinstance(n_samples, int) or n_samples < 1: raise ValueError(f"n_samples must be a positive int, got {n_samples!r}")
    if not isinstance(n_features, int) or n_features < 1: raise ValueError(f"n_features must be a positive int, got {n_features!r}")
    if not var > 0: raise ValueError(f"var must be > 0, got {var!r}")
    g = generator if generator is not None else torch.Generator()
    if generator is None and seed is not None: g.manual_seed(seed)
    elif generator is None: g.seed()
    centroids = (torch.rand(n_clusters, n_features, generator=g, dtype=torch.float64) * 2 - 1) * box   # (k, D)
    mvn = MultivariateNormal(centroids, covariance_matrix=var * torch.eye(n_features, dtype=torch.float64))
    eps = torch.randn(n_clusters, n_samples, n_features, generator=g, dtype=torch.float64)            # (k, n, D)
    pts = mvn.loc[:, None] + eps @ mvn.scale_tril.mT                                                  # (k, n, D)
    data = pts.reshape(-1, n_features).to(dtype)
    labels = torch.arange(n_clusters).repeat_interleave(n_samples)
    return data, labels, centroids.to(dtype)

def _np(t): return t.detach().cpu().numpy() if torch.is_tensor(t) else t

def plot_data(data, centroids=None, labels=None, *, ax=None, title=None, s=2, alpha=0.6, cmap='tab10'):
    "Scatter 2-D or 3-D `data` coloured by `labels`, with `centroids` as black-and-magenta crosses."
    data = torch.as_tensor(_np(data))
    if data.ndim != 2 or data.shape[1] not in (2, 3):
        raise ValueError(f"plot_data draws 2-D or 3-D points; got data of shape {tuple(data.shape)}")
    d3 = data.shape[1] == 3
    if ax is None:
        fig = plt.figure(figsize=(5, 5))
        ax = fig.add_subplot(projection='3d' if d3 else None)
    pts = data.T.numpy()
    c = None if labels is None else _np(labels)
    ax.scatter(*pts, c=c, s=s, alpha=alpha, cmap=cmap if c is not None else None)
    if centroids is not None:
        for cen in _np(torch.as_tensor(_np(centroids))):
            ax.plot(*[[v] for v in cen], markersize=10, marker='x', color='k', mew=5, ls='')
            ax.plot(*[[v] for v in cen], markersize=5, marker='x', color='m', mew=2, ls='')
    if title: ax.set_title(title)
    return ax
