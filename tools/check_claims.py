"""Do the lessons' comparative claims survive a busy machine? (issue 20)

Re-runs each given notebook N times (default 5) while a CPU hog keeps some cores busy, and checks every run:
the notebook raises nothing, and every cell tagged `claim` ran without an error. A claim cell either prints its
comparison from the numbers it measured in the same run ("onehot took 1.3x the time of loop"), or `assert`s only
what must hold every time (an O(n k) Python loop is slower than one vectorised pass), so a claim that does not hold
under load fails here instead of misleading a student. The claim cells' printed lines are shown for every run.

    python tools/check_claims.py nbs/03_update.ipynb nbs/04_kmeans.ipynb [--runs 5] [--hogs 2]

Exit status 0 when every claim held in every run. The notebooks are executed in temporary copies (never in place).
"""
import argparse, json, multiprocessing as mp, os, sys, tempfile, time
from pathlib import Path

CLAIM_TAG = 'claim'


def tags(cell): return cell.get('metadata', {}).get('tags', [])


def text_of(output):
    "The text an output shows: stream text, a plain-text result, or an error's name and message."
    if output.get('output_type') == 'stream': return ''.join(output.get('text', ''))
    if output.get('output_type') == 'error': return f"{output.get('ename')}: {output.get('evalue')}"
    data = output.get('data', {})
    return ''.join(data.get('text/plain', ''))


def inspect_run(nb):
    """What one executed notebook (a dict in nbformat 4) says: `(errors, claims)`. `errors` lists
    `(cell index, 'Name: message', is_claim)` for every cell with an error output; `claims` maps the index of each
    `claim` cell to its printed text. A claim cell that never ran (no execution count) counts as an error."""
    errors, claims = [], {}
    for i, c in enumerate(nb['cells']):
        if c['cell_type'] != 'code': continue
        is_claim = CLAIM_TAG in tags(c)
        for o in c.get('outputs', []):
            if o.get('output_type') == 'error': errors.append((i, text_of(o), is_claim))
        if is_claim:
            claims[i] = ''.join(text_of(o) for o in c.get('outputs', []) if o.get('output_type') != 'error')
            if c.get('execution_count') is None: errors.append((i, 'not executed', True))
    return errors, claims


def summarise(name, runs):
    """One report for the runs of one notebook: `(ok, lines)`. `runs` holds `(errors, claims, seconds)` per run, or
    `(errors, None, seconds)` for a run that could not execute. `ok` is True when no run had an error and the
    notebook has at least one claim cell."""
    lines, ok = [], True
    n_claims = max((len(c) for _, c, _ in runs if c is not None), default=0)
    if n_claims == 0:
        ok = False
        lines.append(f"{name}: no cell tagged '{CLAIM_TAG}': nothing was checked")
    for r, (errors, claims, secs) in enumerate(runs, 1):
        status = 'ok' if not errors else f'{len(errors)} error(s)'
        lines.append(f"{name} run {r}: {status} ({secs:.0f} s)")
        for i, msg, is_claim in errors:
            ok = False
            lines.append(f"    cell {i}{' (claim)' if is_claim else ''}: {msg.strip()[:300]}")
        for i, text in (claims or {}).items():
            for line in text.strip().splitlines(): lines.append(f"    cell {i}: {line}")
    held = sum(1 for errors, claims, _ in runs if claims is not None and not any(e[2] for e in errors))
    lines.append(f"{name}: {n_claims} claim cell(s); all held in {held} of {len(runs)} run(s)")
    return ok and held == len(runs), lines


def execute(path, timeout=1800):
    "Execute a copy of the notebook at `path` in its own folder (so relative paths work); return the dict."
    import nbformat
    from nbclient import NotebookClient
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name='python3', allow_errors=True,
                            resources={'metadata': {'path': str(Path(path).resolve().parent)}})
    client.execute()
    return json.loads(nbformat.writes(nb))


def _spin(stop):
    x = 0
    while not stop.is_set(): x = (x * 1103515245 + 12345) % 2**31


class cpu_hog:
    "`n` busy processes for the duration of a `with` block: a loaded machine, on purpose."
    def __init__(self, n): self.n, self.procs, self.stop = n, [], mp.Event()

    def __enter__(self):
        self.procs = [mp.Process(target=_spin, args=(self.stop,), daemon=True) for _ in range(self.n)]
        for p in self.procs: p.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for p in self.procs:
            p.join(5)
            if p.is_alive(): p.terminate()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('notebooks', nargs='+', type=Path)
    ap.add_argument('--runs', type=int, default=5, help='runs per notebook (default 5)')
    ap.add_argument('--hogs', type=int, default=2, help='busy processes during the runs (default 2)')
    ap.add_argument('--timeout', type=int, default=1800, help='seconds per cell (default 1800)')
    args = ap.parse_args(argv)
    if args.runs < 1 or args.hogs < 0: ap.error('--runs must be >= 1 and --hogs >= 0')
    for p in args.notebooks:
        if not p.exists(): ap.error(f'no such notebook: {p}')
    all_ok = True
    with cpu_hog(args.hogs):
        for path in args.notebooks:
            runs = []
            for r in range(args.runs):
                t = time.perf_counter()
                try:
                    errors, claims = inspect_run(execute(path, args.timeout))
                except Exception as e:                       # a kernel that died, a timeout
                    errors, claims = [(-1, f'{type(e).__name__}: {e}', False)], None
                runs.append((errors, claims, time.perf_counter() - t))
                print(f"{path.name}: run {r + 1} of {args.runs} done", file=sys.stderr, flush=True)
            ok, lines = summarise(path.name, runs)
            print('\n'.join(lines), flush=True)
            all_ok &= ok
    print(f"claims check: {'every claim held in every run' if all_ok else 'FAILED'} "
          f"({args.runs} run(s) each, {args.hogs} busy process(es))")
    return 0 if all_ok else 1


if __name__ == '__main__':
    sys.exit(main())
