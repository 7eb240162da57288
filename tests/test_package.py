"""The package against its one source of metadata, settings.ini: the version, the requirements as installed, and the
scikit-learn version that the estimators' protocol needs."""
import importlib.metadata as md
import shlex
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
