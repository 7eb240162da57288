"""Lesson 12's exercises (issue 21): the references pass, and each classic mistake, written as a student would,
fails with the hint that names it: marginals swapped, the kernel exponentiated without the log-domain shift, a
plan rounded by argmax."""
import pytest
import torch
from kmeans_lessons import exercises as ex
from kmeans_lessons.exercises import check


def sinkhorn_swapped(C, b, eps, n_iter):
    g = torch.zeros(C.shape[1], dtype=C.dtype)
    for _ in range(n_iter):
        f = eps * (b.log() - torch.logsumexp((g - C) / eps, dim=1))          # rows to b: swapped
        g = -eps * torch.logsumexp((f[:, None] - C) / eps, dim=0)            # columns to 1
    return torch.exp((f[:, None] + g - C) / eps)


def sinkhorn_kernel(C, b, eps, n_iter):
    K = torch.exp(-C / eps)                                                   # no log-domain shift
    v = torch.ones(len(b), dtype=C.dtype)
    for _ in range(n_iter):
        u = 1 / (K @ v)
        v = b / (K.T @ u)
    return u[:, None] * K * v[None, :]


def round_argmax(P, size): return P.argmax(1)


def round_by_rows(P, size):
    labels, counts = torch.full((len(P),), -1, dtype=torch.long), [0] * P.shape[1]
    for i in range(len(P)):
        for j in P[i].argsort(descending=True).tolist():
            if counts[j] < size:
                labels[i], counts[j] = j, counts[j] + 1
                break
    return labels


def round_float(P, size): return ex._SPECS['round_greedy'].ref(P, size).float()


WRONG = {
    'sinkhorn_log': [(sinkhorn_swapped, "marginals are swapped"), (sinkhorn_kernel, "log-domain shift")],
    'round_greedy': [(round_argmax, "argmax"), (round_by_rows, "point by point"), (round_float, "int64")],
}


def verdict(capsys, name, fn):
    ok = check(name, fn)
    out = capsys.readouterr().out
    assert out.strip() and out.lstrip()[0] in '✓✗·', out
    return ok, out


def test_lesson_12_exercises_are_listed():
    assert [e.name for e in ex.names(12)] == ['sinkhorn_log', 'round_greedy'] == list(WRONG)


@pytest.mark.parametrize('name', list(WRONG))
def test_reference_passes(name, capsys):
    ok, out = verdict(capsys, name, ex._SPECS[name].ref)
    assert ok, out


@pytest.mark.parametrize('name,wrong,words', [(n, f, w) for n, ws in WRONG.items() for f, w in ws],
                         ids=[f"{n}-{f.__name__}" for n, ws in WRONG.items() for f, w in ws])
def test_wrong_answer_fails_naming_the_mistake(name, wrong, words, capsys):
    ok, out = verdict(capsys, name, wrong)
    assert not ok and out.startswith(f"✗ {name}") and words in out, out


def test_the_package_rounding_meets_what_argmax_breaks():
    "The exercise's point, checked on the package: argmax breaks the sizes, round_to_sizes keeps them."
    from kmeans_lessons.balanced import round_to_sizes
    P = ex._plan(181, 12, 4)
    assert torch.bincount(P.argmax(1), minlength=4).tolist() != [3] * 4
    lab = round_to_sizes(-P.log(), torch.zeros(4, dtype=P.dtype), 3, 3)
    assert torch.bincount(lab, minlength=4).tolist() == [3] * 4
