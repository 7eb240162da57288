"""The lessons read as a course (issues 11 and 20): short code lines, small cells on the teaching path, the machinery
after the lesson, no references a student cannot follow. Each rule is checked on the committed notebooks, so a change
that breaks it fails here, and each rule is shown to fail on a bad synthetic notebook."""
import ast, json, re
from pathlib import Path
import pytest

NBS = Path(__file__).resolve().parent.parent / 'nbs'
LESSONS = sorted(p for p in NBS.glob('*.ipynb') if re.match(r'(0\d|1[012])[a-z]?_', p.name))   # 00 .. 12
MAX_LINE, MAX_CELL = 99, 25


def cells(path):
    return json.loads(Path(path).read_text())['cells']


def src(cell): return ''.join(cell['source'])


def code_cells(path):
    """`(where, cell)` for each code cell but the exercises: `where` is 'hood' inside an '## Under the hood'
    section, 'before' ahead of the first such section, 'after' past it."""
    where = 'before'
    for c in cells(path):
        if c['cell_type'] == 'markdown':
            for line in src(c).splitlines():
                if re.match(r'#{1,2} ', line):
                    where = 'hood' if 'under the hood' in line.lower() else 'before' if where == 'before' else 'after'
        elif 'your-turn' not in c.get('metadata', {}).get('tags', []):
            yield where, c


def teaching_path(path):
    "The code cells a student reads: not in an '## Under the hood' section, not the exercises."
    return (c for where, c in code_cells(path) if where != 'hood')


def test_the_lessons_are_found():
    names = [p.name[:3].rstrip('_') for p in LESSONS]
    assert names == ['00', '01', '02', '03', '04', '05', '05b', '06', '07', '08', '09', '10', '11', '12'], names


@pytest.mark.parametrize('path', LESSONS, ids=lambda p: p.stem)
def test_lesson_code_lines_are_under_100_characters(path):
    long = [(i, len(line), line[:60]) for i, c in enumerate(cells(path)) if c['cell_type'] == 'code'
            for line in src(c).splitlines() if len(line) > MAX_LINE]
    assert not long, f"{path.name}: {len(long)} code line(s) of 100+ characters (cell, length, start): {long[:5]}"


def big_teaching_cells(path):
    "(lines, first two lines) of each teaching-path code cell over MAX_CELL lines."
    return [(len(src(c).splitlines()), src(c).splitlines()[:2]) for c in teaching_path(path)
            if len(src(c).splitlines()) > MAX_CELL]


def headings(path):
    "The '#' and '##' headings of a notebook's markdown cells, in order."
    return [line for c in cells(path) if c['cell_type'] == 'markdown'
            for line in src(c).splitlines() if re.match(r'#{1,2} ', line)]


def is_hood(heading): return 'under the hood' in heading.lower()


def sections_after_the_hood(path):
    "The '##' sections that follow a lesson's first 'Under the hood' section but are neither one nor 'Your turn'."
    hs = headings(path)
    first = next((i for i, h in enumerate(hs) if is_hood(h)), len(hs))
    return [h for h in hs[first + 1:] if not is_hood(h) and h.strip().lower() != '## your turn']


@pytest.mark.parametrize('path', LESSONS, ids=lambda p: p.stem)
def test_teaching_path_cells_are_small(path):
    big = big_teaching_cells(path)
    assert not big, f"{path.name}: code cells over {MAX_CELL} lines on the teaching path: {big}"


@pytest.mark.parametrize('path', LESSONS, ids=lambda p: p.stem)
def test_under_the_hood_comes_after_the_lesson(path):
    "Run All, then read from the top: the lesson first; only 'Your turn' may follow 'Under the hood'."
    late = sections_after_the_hood(path)
    assert not late, f"{path.name}: teaching sections after 'Under the hood': {late}"


def _notebook(tmp_path, *parts):
    "A synthetic notebook: strings starting with '#' are markdown cells, others code cells."
    nb = {'cells': [{'cell_type': 'markdown' if p.startswith('#') else 'code', 'metadata': {},
                     'source': p} for p in parts]}
    path = tmp_path / 'lesson.ipynb'
    path.write_text(json.dumps(nb))
    return path


def test_the_rules_fail_on_a_bad_notebook(tmp_path):
    long = '\n'.join(f'x{i} = {i}' for i in range(MAX_CELL + 1))
    short = 'x = 1'
    bad = _notebook(tmp_path, '# A lesson', '## Teaching', long, '## Under the hood', long,
                    '## More teaching', short, '## Your turn', short)
    assert [n for n, _ in big_teaching_cells(bad)] == [MAX_CELL + 1]   # the teaching one; the hood's is skipped
    assert sections_after_the_hood(bad) == ['## More teaching']
    good = _notebook(tmp_path, '# A lesson', '## Teaching', short, '## Under the hood: a', long,
                     '### a detail', short, '## Under the hood: b', long, '## Your turn', short)
    assert big_teaching_cells(good) == [] and sections_after_the_hood(good) == []
    no_hood = _notebook(tmp_path, '# A lesson', '## Teaching', long[:40], '## Your turn', short)
    assert sections_after_the_hood(no_hood) == [] and big_teaching_cells(no_hood) == []


def test_teaching_path_helper_sees_under_the_hood():
    "The cell-size rule skips 'Under the hood': 04's holds a cell over MAX_CELL lines, which it does not count."
    p = NBS / '04_kmeans.ipynb'
    every = [c for c in cells(p) if c['cell_type'] == 'code']
    path = list(teaching_path(p))
    assert len(path) < len(every)
    assert max(len(src(c).splitlines()) for c in every) > MAX_CELL


SOURCES = re.compile(r"\bseeds?\s+0\d\d\b|the seed's (version|code)|\bseed (document|file)s?\b", re.I)


def test_no_reference_a_student_cannot_follow():
    "Sources are cited by their public names, never by the project's internal 'seed 003' file numbers."
    hits = []
    for path in sorted(NBS.glob('*.ipynb')) + [NBS.parent / 'README.md']:
        text = path.read_text()
        hits += [(path.name, m.group(0)) for m in SOURCES.finditer(text)]
    assert not hits, hits
    assert SOURCES.search("as in seed 003's kmeans") and SOURCES.search("the seed's version 3.1")


def _bound(body):
    "Names a list of top-level statements binds (not inside functions or classes)."
    names = set()
    for st in body:
        if isinstance(st, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)): names.add(st.name); continue
        if isinstance(st, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split('.')[0] for a in st.names}; continue
        for node in ast.walk(st):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store): names.add(node.id)
    return names


def _used(body):
    return {n.id for st in body for n in ast.walk(st) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def sections(path):
    "The statements of the code cells before, inside and after the 'Under the hood' sections, parsed."
    parts = {'before': [], 'hood': [], 'after': []}
    for where, c in code_cells(path):
        code = '\n'.join(l for l in src(c).splitlines() if not l.lstrip().startswith(('%', '!')))
        parts[where] += ast.parse(code).body
    return parts


@pytest.mark.parametrize('path', [p for p in LESSONS if 'under the hood' in p.read_text().lower()],
                         ids=lambda p: p.stem)
def test_skipping_under_the_hood_leaves_nothing_undefined(path):
    "A student may skip 'Under the hood' without running it: what later cells use from it is imported again."
    s = sections(path)
    missing = (_used(s['after']) & _bound(s['hood'])) - _bound(s['before']) - _bound(s['after'])
    assert not missing, f"{path.name}: cells after 'Under the hood' use {sorted(missing)}, defined only there"
