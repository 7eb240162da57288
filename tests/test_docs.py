"""The docs' content without Quarto: every notebook renders to HTML with nbconvert, with its title, its figures and
no error output; the sidebar lists every lesson; _quarto.yml is the one file nbdev and Quarto read."""
import re
from pathlib import Path
import nbformat
import pytest
from nbconvert import HTMLExporter

NBS = Path(__file__).resolve().parent.parent / 'nbs'
NOTEBOOKS = sorted(NBS.glob('*.ipynb'))
WITH_FIGURES = {'00_data', '02_assignment', '04_kmeans', '05b_bounds', '06_animation', '07_meanshift', '08_distances',
                '09_real_data', '11_scaling', '12_balanced'}
LESSONS = ('00_data', '01_distances', '02_assignment', '03_update', '04_kmeans', '05_gpu', '05b_bounds', '06_animation',
           '07_meanshift', '08_distances', '09_real_data', '10_cli', '11_scaling', '12_balanced')
UNDER_THE_HOOD = ('90_validation', '91_estimators', '92_exercises', '93_streaming', '94_engine', '95_kernels')


def test_all_lessons_present():
    names = [p.stem for p in NOTEBOOKS]
    for n in ('index',) + LESSONS + UNDER_THE_HOOD:
        assert n in names, n
    # the course table on the front page lists every lesson, and only lessons that exist
    index = nbformat.read(NBS / 'index.ipynb', as_version=4)
    text = '\n'.join(c.source for c in index.cells if c.cell_type == 'markdown')
    table = re.findall(r'^\| `(\d\d[a-z]?_[a-z_]+)` \|', text, flags=re.M)
    assert sorted(table) == sorted(LESSONS), table
    assert sorted(n for n in names if re.match(r'\d\d[a-z]?_', n) and n not in UNDER_THE_HOOD) == sorted(LESSONS)


@pytest.mark.parametrize('path', NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_renders_to_html_with_title_figures_and_no_errors(path):
    nb = nbformat.read(path, as_version=4)
    title = next(c.source.splitlines()[0] for c in nb.cells if c.cell_type == 'markdown')
    assert title.startswith('# '), f"{path.name}: the first markdown cell must start with a '# ' title"
    for c in nb.cells:
        if c.cell_type == 'code':
            assert c.source.strip(), f"{path.name}: empty code cell"
            for o in c.get('outputs', []):
                assert o.output_type != 'error', f"{path.name}: committed error output in cell {c.source[:60]!r}"
    has_code = any(c.cell_type == 'code' and not c.source.startswith('#| default_exp') for c in nb.cells)
    executed = [c for c in nb.cells if c.cell_type == 'code' and c.get('outputs')]
    if has_code: assert executed, f"{path.name} is committed without outputs"
    body, _ = HTMLExporter().from_notebook_node(nb)
    assert title[2:].split('·')[-1].strip()[:20] in body
    if path.stem in WITH_FIGURES:
        assert len(re.findall(r'<img ', body)) >= 1, f"{path.name}: no figure in the rendered page"


def test_quarto_yml_single_source():
    root = NBS.parent
    link = NBS / '_quarto.yml'
    assert link.is_symlink() and link.resolve() == (root / '_quarto.yml').resolve()
    text = (root / '_quarto.yml').read_text()
    assert 'type: website' in text and 'nbdev.yml' in text


def test_lesson_05_prints_the_saved_bench_and_its_prose_quotes_it():
    """Lesson 05 prints the table `make bench-save` kept (benchmarks/results/fit.json), and the prose under it quotes
    that table's numbers: the worst and median ratios against scikit-learn and faiss, recomputed here."""
    import json, statistics
    saved = json.loads((NBS.parent / 'benchmarks' / 'results' / 'fit.json').read_text())
    vs_sk = [r['ours'] / r['sklearn'] for r in saved['rows']]
    vs_fa = [r['ours'] / r['faiss'] for r in saved['rows']]
    assert len(vs_sk) == 15 and {(r['D'], r['k']) for r in saved['rows']} == {
        (D, k) for D in (2, 4, 16, 64, 128) for k in (8, 100, 1000)}
    nb = nbformat.read(NBS / '05_gpu.ipynb', as_version=4)
    text = lambda c: ''.join(o.get('text', '') for o in c.outputs)
    i = next(i for i, c in enumerate(nb.cells) if c.cell_type == 'code' and 'under 1 at' in c.source)
    out = text(nb.cells[i])
    summary = (f"ours / scikit-learn: at most {max(vs_sk):.2f}, median {statistics.median(vs_sk):.2f}; "
               f"ours / faiss: at most {max(vs_fa):.2f}, median {statistics.median(vs_fa):.2f}, "
               f"under 1 at {sum(v < 1 for v in vs_fa)} of 15 shapes")
    assert summary in out
    prose = nb.cells[i + 1].source
    for number in (max(vs_sk), statistics.median(vs_sk), max(vs_fa), statistics.median(vs_fa)):
        assert f"{number:.2f}" in prose, (number, prose)
    assert f"{sum(v < 1 for v in vs_fa)} of the 15" in prose
    assert saved['machine']['cpu'] in text(nb.cells[i - 2])
    assert all(f"{r['ours']:>9}" in text(nb.cells[i - 1]) for r in saved['rows'])
