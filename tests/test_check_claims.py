"""tools/check_claims.py (issue 20): its logic on synthetic executed notebooks, and one real run of a tiny notebook,
without re-running the lessons five times (`make check-claims` does that)."""
import json, sys, time
from pathlib import Path
import pytest

TOOLS = Path(__file__).resolve().parent.parent / 'tools'
sys.path.insert(0, str(TOOLS))
import check_claims as cc


def code(source, outputs=(), tags=(), executed=True):
    return {'cell_type': 'code', 'source': source, 'metadata': {'tags': list(tags)},
            'execution_count': 1 if executed else None, 'outputs': list(outputs)}


def stream(text): return {'output_type': 'stream', 'name': 'stdout', 'text': text}


def error(name, value): return {'output_type': 'error', 'ename': name, 'evalue': value, 'traceback': []}


def nb(*cells): return {'cells': [{'cell_type': 'markdown', 'source': '# t', 'metadata': {}}, *cells]}


def test_a_claim_that_held():
    errors, claims = cc.inspect_run(nb(code('x = 1'), code('print(...)', [stream('a took 2.0x b\n')], ['claim'])))
    assert errors == [] and claims == {2: 'a took 2.0x b\n'}


def test_a_claim_that_failed_and_an_error_elsewhere():
    run = nb(code('1/0', [error('ZeroDivisionError', 'division by zero')]),
             code('assert t1 < t2', [stream('a took 0.5x b\n'), error('AssertionError', '')], ['claim']),
             code('assert True', tags=['claim'], executed=False))
    errors, claims = cc.inspect_run(run)
    assert errors == [(1, 'ZeroDivisionError: division by zero', False), (2, 'AssertionError: ', True),
                      (3, 'not executed', True)]
    assert claims == {2: 'a took 0.5x b\n', 3: ''}


def test_summarise_passes_only_when_every_run_held():
    good = ([], {2: 'a took 3x b'}, 1.0)
    bad = ([(2, 'AssertionError: ', True)], {2: ''}, 1.0)
    ok, lines = cc.summarise('x.ipynb', [good, good])
    assert ok and lines[-1] == 'x.ipynb: 1 claim cell(s); all held in 2 of 2 run(s)'
    ok, lines = cc.summarise('x.ipynb', [good, bad, good])
    assert not ok and lines[-1].endswith('all held in 2 of 3 run(s)')
    assert any('cell 2 (claim): AssertionError' in l for l in lines)
    # an error outside the claim cells fails the check too, though every claim held
    ok, _ = cc.summarise('x.ipynb', [([(1, 'NameError: x', False)], {2: ''}, 1.0)])
    assert not ok
    # a run that could not execute at all, and a notebook without claims
    assert not cc.summarise('x.ipynb', [good, ([(-1, 'DeadKernelError: ', False)], None, 1.0)])[0]
    ok, lines = cc.summarise('x.ipynb', [([], {}, 1.0)])
    assert not ok and 'nothing was checked' in lines[0]


def test_the_lessons_have_claim_cells():
    "03 and 04 tag their comparisons, and each claim cell asserts or prints what it claims."
    for name in ('03_update', '04_kmeans'):
        cells = json.loads((TOOLS.parent / 'nbs' / f'{name}.ipynb').read_text())['cells']
        claims = [''.join(c['source']) for c in cells if 'claim' in cc.tags(c)]
        assert claims and all('assert' in s for s in claims), name
        assert all('nbval-ignore-output' in cc.tags(c) for c in cells if 'claim' in cc.tags(c))


def test_cpu_hog_starts_and_stops():
    with cc.cpu_hog(2) as hog:
        time.sleep(0.2)
        assert all(p.is_alive() for p in hog.procs)
    assert not any(p.is_alive() for p in hog.procs)


def test_bad_arguments(tmp_path):
    with pytest.raises(SystemExit): cc.main([str(tmp_path / 'missing.ipynb')])
    with pytest.raises(SystemExit): cc.main(['--runs', '0', str(tmp_path)])


def test_one_real_run(tmp_path, capsys):
    "End to end on a tiny notebook: a claim that holds passes, one that fails is reported with its cell."
    import nbformat
    def write(name, claim):
        book = nbformat.v4.new_notebook()
        book.cells = [nbformat.v4.new_code_cell('t_loop, t_vec = 2.0, 1.0'),
                      nbformat.v4.new_code_cell(claim, metadata={'tags': ['claim']})]
        path = tmp_path / name
        nbformat.write(book, path)
        return str(path)
    good = write('good.ipynb', "print(f'{t_loop / t_vec:.1f}x'); assert t_vec < t_loop")
    bad = write('bad.ipynb', "assert t_loop < t_vec, 'the claim'")
    assert cc.main([good, '--runs', '1', '--hogs', '1']) == 0
    assert cc.main([bad, '--runs', '1', '--hogs', '0']) == 1
    out = capsys.readouterr().out
    assert 'cell 1: 2.0x' in out and 'cell 1 (claim): AssertionError: the claim' in out
