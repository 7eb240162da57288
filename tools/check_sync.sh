#!/usr/bin/env bash
# Notebooks are the source. Regenerating the package, cleaning the notebooks and rebuilding the
# README must change nothing; in CI (a fresh clone) `git status --porcelain` must stay empty,
# untracked generated modules included.
set -euo pipefail
cd "$(dirname "$0")/.."
snapshot() { { git status --porcelain --untracked-files=all; git diff; \
  git ls-files --others --exclude-standard -z | xargs -0 -r sha1sum; } | sha1sum; }
before=$(snapshot)
nbdev_export
nbdev_clean
python tools/make_readme.py
after=$(snapshot)
status=$(git status --porcelain --untracked-files=all)
if [ "$before" != "$after" ]; then
  echo "OUT OF SYNC: nbdev_export / nbdev_clean / make_readme changed files:" >&2
  echo "$status" >&2
  echo "Run 'make export' and commit notebooks, kmeans_lessons/, pyproject.toml and README.md together." >&2
  exit 1
fi
if [ "${CI:-}" = "true" ] && [ -n "$status" ]; then
  echo "OUT OF SYNC: the checkout is not clean after export:" >&2; echo "$status" >&2; exit 1
fi
[ -z "$status" ] && echo "in sync: git status is clean" || echo "in sync (uncommitted work present, unchanged by export)"
