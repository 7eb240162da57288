"""The `kmeans-lessons` console script, run as a user runs it: a subprocess, then its files and its exit code."""
import re, shutil, subprocess, sys
from pathlib import Path
import numpy as np
import pytest
from PIL import Image

from kmeans_lessons.data import sample_blobs
from kmeans_lessons.estimators import KMeans
from kmeans_lessons.cli import main

ENTRY = shutil.which('kmeans-lessons', path=str(Path(sys.executable).parent))


def run(*args, entry=False):
    cmd = [ENTRY] if entry else [sys.executable, '-m', 'kmeans_lessons.cli']
    return subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True, timeout=120)


def html_frames(path): return len(re.findall(r'frames\[\d+\] = "data:image/png', Path(path).read_text()))


def test_gif_of_the_course_data(tmp_path):
    out = tmp_path / 'converge.gif'
    r = run('animate', '--k', 6, '--n', 1500, '--seed', 42, '--dpi', 40, '--out', out)
    assert r.returncode == 0, r.stderr
    ref = KMeans(6, random_state=42, max_iter=50).fit(sample_blobs(6, 250, seed=42)[0])     # what the command should fit
    with Image.open(out) as im: n = im.n_frames
    assert n == ref.n_iter_ + 1
    assert str(out.resolve()) in r.stdout and f"{n} frames" in r.stdout


@pytest.mark.skipif(ENTRY is None, reason="the kmeans-lessons script is not installed (pip install -e .)")
def test_installed_script_with_csv_data_to_html(tmp_path):
    X, _, _ = sample_blobs(3, 40, seed=1)
    np.savetxt(tmp_path / 'points.csv', X.numpy(), delimiter=',', header='a,b', comments='')
    out = tmp_path / 'mine.html'
    r = run('animate', '--data', tmp_path / 'points.csv', '--k', 3, '--init', 'forgy', '--max-iter', 4,
            '--fps', 3, '--dpi', 30, '--out', out, entry=True)
    assert r.returncode == 0, r.stderr
    ref = KMeans(3, init='forgy', n_init=1, random_state=42, max_iter=4).fit(np.loadtxt(tmp_path / 'points.csv', delimiter=',', skiprows=1))
    assert html_frames(out) == ref.n_iter_ + 1 and f"{ref.n_iter_ + 1} frames" in r.stdout
    assert 'https://' not in out.read_text()


def test_npy_data(tmp_path):
    X, _, _ = sample_blobs(2, 30, 3, seed=2)
    np.save(tmp_path / 'p.npy', X.numpy())
    out = tmp_path / 'p.gif'
    assert main(['animate', '--data', str(tmp_path / 'p.npy'), '--k', '2', '--dpi', '30', '--out', str(out)]) == 0
    with Image.open(out) as im: assert im.n_frames == KMeans(2, random_state=42, max_iter=50).fit(X).n_iter_ + 1


@pytest.fixture(scope='module')
def bad_files(tmp_path_factory):
    d = tmp_path_factory.mktemp('bad')
    (d / 'words.csv').write_text('x,y\n1,2\nthree,4\n')
    (d / 'ragged.csv').write_text('1,2\n3\n')
    (d / 'nan.csv').write_text('1,2\nnan,4\n')
    (d / 'one.csv').write_text('1\n2\n3\n')
    (d / 'empty.csv').write_text('')
    (d / 'small.csv').write_text('1,2\n3,4\n')
    np.save(d / 'flat.npy', np.arange(10.))
    np.save(d / 'cube.npy', np.zeros((2, 3, 4)))
    np.save(d / 'strings.npy', np.array([['a', 'b']]))
    np.save(d / 'objects.npy', np.array([[1, None]], dtype=object), allow_pickle=True)
    (d / 'points.txt').write_text('1,2\n')
    return d


BAD = [
    (['--k', '0'], '--k must be >= 1'),
    (['--k', '-3'], '--k must be >= 1'),
    (['--k', 'six'], "invalid int value: 'six'"),
    (['--max-iter', '0'], '--max-iter must be >= 1'),
    (['--fps', '0'], '--fps must be > 0'),
    (['--init', 'best'], 'invalid choice'),
    (['--data', '{d}/missing.csv'], 'not found'),
    (['--data', '{d}/points.txt'], '.csv or .npy'),
    (['--data', '{d}/words.csv'], 'not a table of numbers'),
    (['--data', '{d}/ragged.csv'], 'not a table of numbers'),
    (['--data', '{d}/nan.csv'], 'NaN'),
    (['--data', '{d}/one.csv'], 'at least 2 features'),
    (['--data', '{d}/empty.csv'], 'no points'),
    (['--data', '{d}/flat.npy'], '2-D'),
    (['--data', '{d}/cube.npy'], '2-D'),
    (['--data', '{d}/strings.npy'], 'not numbers'),
    (['--data', '{d}/objects.npy'], '.npy'),
    (['--data', '{d}/small.csv', '--k', '3'], 'larger than the number of points'),
    (['--n', '10', '--k', '20'], '--n must be >= the number of blobs'),
    (['--voronoi', '--dims', '3'], '--voronoi needs 2-D data'),
]


@pytest.mark.parametrize('args,msg', BAD, ids=[' '.join(a) for a, _ in BAD])
def test_bad_arguments_exit_2_with_one_line(args, msg, bad_files, tmp_path, capsys):
    out = tmp_path / 'x.gif'
    argv = ['animate'] + [a.format(d=bad_files) for a in args] + ['--out', str(out)]
    with pytest.raises(SystemExit) as e: main(argv)            # anything but SystemExit (a traceback) fails here
    err = capsys.readouterr().err
    assert e.value.code == 2
    assert err.endswith('\n') and err.count('\n') == 1, err
    assert err.startswith('kmeans-lessons animate: error: ') and msg in err, err
    assert not out.exists()


@pytest.mark.parametrize('argv,msg', [
    (['animate', '--out', '{t}/x.mp4'], '--out must end in .gif or .html'),
    (['animate', '--out', '{t}/no/such/dir/x.gif'], 'directory does not exist'),
    (['animate'], 'required: --out'),
    ([], 'required: COMMAND'),
    (['explode'], 'invalid choice'),
])
def test_bad_command_lines_exit_2_with_one_line(argv, msg, tmp_path, capsys):
    with pytest.raises(SystemExit) as e: main([a.format(t=tmp_path) for a in argv])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count('\n') == 1 and msg in err, err


def test_bad_argument_in_a_subprocess(tmp_path):
    "The same as a user sees it: exit status 2, one line on stderr, no traceback, no file."
    for args in (['--k', '0'], ['--data', tmp_path / 'missing.npy'], ['--out', tmp_path / 'x.avi']):
        if '--out' not in args: args = args + ['--out', tmp_path / 'x.gif']
        r = run('animate', *args, entry=ENTRY is not None)
        assert r.returncode == 2 and r.stdout == ''
        assert r.stderr.count('\n') == 1 and 'error:' in r.stderr and 'Traceback' not in r.stderr, r.stderr
    assert list(tmp_path.iterdir()) == []
