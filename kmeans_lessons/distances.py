import torch

def sq_dists(x, c):
    "Squared Euclidean distances between rows of `x` (n, D) and `c` (k, D): the expansion, clamped at 0."
    xx = (x * x).sum(1, keepdim=True)                      # (n, 1)
    cc = (c * c).sum(1)                                    # (k,)
    return torch.addmm(xx + cc, x, c.T, alpha=-2).clamp_min_(0)   # (n, k)
