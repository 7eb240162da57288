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
