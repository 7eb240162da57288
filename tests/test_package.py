"""The package against its one source of metadata, settings.ini: the version, the requirements as installed, and the
scikit-learn version that the estimators' protocol needs."""
import importlib.metadata as md
import ast, re, shlex
from configparser import ConfigParser
from pathlib import Path

import pytest

import kmeans_lessons

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope='module')
def settings():
    cfg = ConfigParser(delimiters=['='])
    cfg.read(ROOT / 'settings.ini', encoding='utf-8')
    return cfg['DEFAULT']


def version_tuple(v): return tuple(int(p) for p in v.split('.')[:3] if p.isdigit())


def test_version_is_settings_ini_s(settings):
    assert kmeans_lessons.__version__ == settings['version']
    assert md.version('kmeans_lessons') == settings['version'], "the installed package is stale: run `make setup`"


def test_installed_requirements_are_settings_ini_s(settings):
    "setup.py reads settings.ini: what pip installed asks for exactly what settings.ini says."
    installed = md.requires('kmeans_lessons') or []
    runtime = sorted(r for r in installed if 'extra ==' not in r)
    dev = sorted(r.split(';')[0].strip() for r in installed if 'extra == "dev"' in r)
    want_runtime, want_dev = sorted(shlex.split(settings['requirements'])), sorted(shlex.split(settings['dev_requirements']))
    assert runtime == want_runtime, "the installed package is stale: run `make setup`"
    assert dev == want_dev, "the installed package is stale: run `make setup`"


def test_scikit_learn_minimum_has_tags(settings):
    "BaseEstimator.__sklearn_tags__ builds sklearn.utils.Tags, new in scikit-learn 1.6: settings.ini asks for that."
    spec = next(r for r in shlex.split(settings['dev_requirements']) if r.startswith('scikit-learn'))
    assert spec.startswith('scikit-learn>='), spec
    assert version_tuple(spec.split('>=')[1]) >= (1, 6), spec
    sklearn = pytest.importorskip('sklearn')
    assert version_tuple(sklearn.__version__) >= version_tuple(spec.split('>=')[1])
    from sklearn.utils import Tags
    from kmeans_lessons import KMeans
    assert isinstance(KMeans().__sklearn_tags__(), Tags)


# ---------------------------------------------------------------- the module map (README: "How the package is laid out")
# The README's arrows, as layers: a module imports only modules of lower layers (its own layer: only the pairs in
# SAME_LAYER). "validation and update need no other module; distances uses update's mean; assignment uses distances;
# kernels uses assignment; cosine_iou adds a distance; lloyd uses both halves; engine uses them all; bounds gives the
# engine its strategies; estimators runs the engine; streaming and meanshift share the estimators' base; distributed
# and cli come last." Not in that sentence, placed by the table: data and bench (stand-alone helpers), balanced and
# animation (on the estimators, like streaming), exercises (the course's checks, last).
LAYERS = [['validation', 'update', 'data', 'bench'], ['distances'], ['assignment', 'cosine_iou'], ['kernels'],
          ['lloyd'], ['engine'], ['bounds'], ['estimators'], ['streaming', 'meanshift', 'balanced', 'animation'],
          ['distributed', 'cli', 'exercises']]
SAME_LAYER = {('cli', 'distributed')}
LAYER = {m: i for i, ms in enumerate(LAYERS) for m in ms}


def package_imports(pkg):
    """{module: {imported module: 'module' or 'function'}} for the package's own modules, from their source (ast):
    `from .x import`, `from . import x`, `from kmeans_lessons.x import`, `from kmeans_lessons import x`,
    `import kmeans_lessons.x`, at module level or inside a function."""
    mods = {p.stem for p in pkg.glob('*.py')}
    graph = {}
    for p in sorted(pkg.glob('*.py')):
        edges = {}
        def visit(node, where):
            for ch in ast.iter_child_nodes(node):
                w = 'function' if isinstance(ch, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) else where
                names = []
                if isinstance(ch, ast.ImportFrom):
                    parts = (ch.module or '').split('.') if ch.level == 1 else \
                        ch.module.split('.')[1:] if ch.level == 0 and (ch.module or '').split('.')[0] == 'kmeans_lessons' else None
                    if parts is not None:
                        names = [parts[0]] if parts and parts[0] else [a.name for a in ch.names]
                elif isinstance(ch, ast.Import):
                    names = [a.name.split('.')[1] for a in ch.names if a.name.startswith('kmeans_lessons.')]
                for n in names:
                    if n in mods and n != p.stem and edges.get(n) != 'module': edges[n] = w
                visit(ch, w)
        visit(ast.parse(p.read_text(encoding='utf-8')), 'module')
        graph[p.stem] = edges
    return graph


@pytest.fixture(scope='module')
def imports():
    return package_imports(Path(kmeans_lessons.__file__).parent)


def test_module_map_has_no_import_cycle(imports):
    graph = {m: set(e) for m, e in imports.items()}
    state, path = {}, []
    def dfs(m):
        state[m] = 'open'; path.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 'open': pytest.fail(f"import cycle: {' -> '.join(path[path.index(n):] + [n])}")
            if n not in state: dfs(n)
        state[m] = 'done'; path.pop()
    for m in sorted(graph): dfs(m)


def test_module_map_layers_are_the_readme_s(imports):
    "Every import points down the README's layers (cli's imports inside functions too); the README names the layers."
    readme = (ROOT / 'README.md').read_text(encoding='utf-8')
    section = readme.split('## How the package is laid out')[1].split('\n## ')[0]
    named = set(re.findall(r'^\| `(\w+)` \|', section, flags=re.M))
    assert named == set(LAYER), ("the README's module table and LAYERS differ", named ^ set(LAYER))
    assert set(imports) - {'__init__', '_modidx'} == set(LAYER), "a module is missing from LAYERS"
    for m in ('validation', 'update', 'distances', 'assignment', 'kernels', 'cosine_iou', 'lloyd', 'engine', 'bounds',
              'estimators', 'streaming', 'meanshift', 'distributed', 'cli'):
        assert f'`{m}`' in section.split('The arrows go one way')[1], m       # the arrows' sentence names it
    bad = [f"{m} -> {n} ({how} level)" for m, edges in imports.items() if m in LAYER for n, how in edges.items()
           if not (LAYER[n] < LAYER[m] or (m, n) in SAME_LAYER)]
    assert bad == [], bad
    for m, n in [('distances', 'update'), ('assignment', 'distances'), ('kernels', 'assignment'),
                 ('cosine_iou', 'distances'), ('lloyd', 'assignment'), ('lloyd', 'update'), ('bounds', 'engine'),
                 ('estimators', 'engine'), ('streaming', 'estimators'), ('meanshift', 'estimators'),
                 ('cli', 'distributed'), ('distributed', 'engine')]:
        assert n in imports[m], f"the README says {m} uses {n}"                # the arrows it states are there
    assert imports['validation'] == {} and imports['update'] == {}             # "need no other module"
    assert not {'data', 'animation'} & set(imports['__init__']), imports['__init__']   # loaded on first use
    assert {n for n, how in imports['cli'].items() if how == 'function'} >= {'data', 'animation'}
