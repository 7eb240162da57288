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
    (['--data', '{d}/words.csv'], "not a table of numbers: line 3, column 1 holds 'three'"),
    (['--data', '{d}/ragged.csv'], 'not a table of numbers: line 2 has 1 value, line 1 has 2'),
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


# --- CSV files as people write them: pandas' index column, line numbers as an editor shows them

def write_rows(path, rows, header=None):
    path.write_text((header + '\n' if header is not None else '') + ''.join(','.join(map(str, r)) + '\n' for r in rows))
    return path


@pytest.fixture(scope='module')
def blobs3():
    X, _, _ = sample_blobs(3, 40, seed=5)
    return X.numpy()


@pytest.mark.parametrize('header', [',x,y', '"",x,y', 'Unnamed: 0,x,y', None], ids=['pandas', 'quoted', 'reread', 'none'])
def test_csv_index_column_is_dropped_and_said(header, blobs3, tmp_path):
    rows = [[i, *xy] for i, xy in enumerate(blobs3.tolist())]          # the row number first, as pandas writes it
    data = write_rows(tmp_path / 'df.csv', rows, header)
    out = tmp_path / 'df.gif'
    r = run('animate', '--data', data, '--k', 3, '--max-iter', 3, '--dpi', 30, '--out', out)
    assert r.returncode == 0, r.stderr
    assert 'note:' in r.stderr and 'row index' in r.stderr and 'dropped' in r.stderr, r.stderr
    assert f"{len(rows)} points with 2 features read from" in r.stdout, r.stdout
    ref = KMeans(3, n_init=1, random_state=42, max_iter=3).fit(blobs3)                 # what the command should fit: x, y only
    with Image.open(out) as im: assert im.n_frames == ref.n_iter_ + 1


def test_csv_named_or_narrow_first_column_is_kept(blobs3, tmp_path):
    rows = [[i, *xy] for i, xy in enumerate(blobs3.tolist())]
    for name, header, features in [('named.csv', 'id,x,y', 3), ('two.csv', None, 2)]:
        data = write_rows(tmp_path / name, [r[:features] for r in rows], header)
        r = run('animate', '--data', data, '--k', 3, '--max-iter', 2, '--dpi', 30, '--out', tmp_path / 'k.gif')
        assert r.returncode == 0 and r.stderr == '', r.stderr
        assert f"{len(rows)} points with {features} features read from" in r.stdout, r.stdout


def test_csv_index_column_leaving_one_feature_is_refused(tmp_path):
    data = write_rows(tmp_path / 'one.csv', [[0, 1.5], [1, 2.5], [2, 0.5]], ',x')
    r = run('animate', '--data', data, '--k', 2, '--out', tmp_path / 'o.gif')
    assert r.returncode == 2 and 'at least 2 features' in r.stderr and 'row index' in r.stderr, r.stderr


@pytest.mark.parametrize('text,msg', [
    ('x,y\n1,2\nthree,4\n', "line 3, column 1 holds 'three'"),
    ('x,y\n1,2\n3,4\n5,six\n', "line 4, column 2 holds 'six'"),
    ('1,2\n3,4\n5,\n', "line 3, column 2 holds ''"),
    ('x,y\n\n# a comment\n1,2\n3,x\n', "line 5, column 2 holds 'x'"),       # blank and comment lines still count
    ('1,2\n3\n', 'line 2 has 1 value, line 1 has 2'),
    ('x,y\n1,2\n3,4,5\n', 'line 3 has 3 values, line 2 has 2'),
    ('a,b,c\n1,2\n', 'the header (line 1) names 3 columns, but line 2 has 2 values'),
    ('x,y\n1,2\n3,inf\n', "NaN or inf values: line 3, column 2 holds 'inf'"),
], ids=['word', 'typo', 'empty', 'comment', 'short', 'long', 'header', 'inf'])
def test_csv_errors_name_the_file_line_and_column(text, msg, tmp_path, capsys):
    (tmp_path / 'bad.csv').write_text(text)
    with pytest.raises(SystemExit) as e:
        main(['animate', '--data', str(tmp_path / 'bad.csv'), '--out', str(tmp_path / 'b.gif')])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count('\n') == 1 and 'bad.csv' in err and msg in err, err


# --- one inertia, one font, one heading

def test_printed_inertia_is_the_last_frame_title(tmp_path, monkeypatch, capsys):
    "5-D blobs: per-frame inertia recomputed on the raw data would say 37,435.8 where the fit says 37,435.7."
    import kmeans_lessons.animation as A
    made, save = [], A.save_animation
    monkeypatch.setattr(A, 'save_animation', lambda anim, *a, **kw: made.append(anim) or save(anim, *a, **kw))
    assert main(['animate', '--dims', '5', '--k', '6', '--seed', '42', '--dpi', '30', '--out', str(tmp_path / 'i.gif')]) == 0
    printed = re.search(r'inertia ([\d,.]+)\)', capsys.readouterr().out)[1]
    anim = made[0]
    anim.draw(anim.n_frames - 1)
    assert anim.scene.ax.get_title().splitlines()[0].endswith(f"inertia {printed}")
    X = sample_blobs(6, 250, 5, seed=42)[0]
    assert printed == f"{KMeans(6, n_init=1, random_state=42, max_iter=50).fit(X).inertia_:,.1f}"


def test_html_page_has_a_heading_with_the_command(tmp_path):
    out = tmp_path / 'h.html'
    r = run('animate', '--k', 3, '--n', 300, '--max-iter', 3, '--dpi', 30, '--out', out)
    assert r.returncode == 0, r.stderr
    page = out.read_text()
    h1 = re.search(r'<h1>(.*?)</h1>', page)[1]
    assert h1.startswith('k-means on 300 points with 2 features in 3 blobs'), h1
    assert re.search(r'<p>kmeans-lessons animate --k 3 --n 300 .*--out .*h\.html</p>', page)


def test_default_frames_are_600_pixels(tmp_path):
    import inspect
    from kmeans_lessons.animation import animate_kmeans
    dpi = inspect.signature(animate_kmeans).parameters['dpi'].default
    assert f"the animation's {dpi} dpi" in ' '.join(run('animate', '--help').stdout.split())
    assert main(['animate', '--k', '2', '--n', '100', '--max-iter', '1', '--out', str(tmp_path / 'd.gif')]) == 0
    with Image.open(tmp_path / 'd.gif') as im: assert im.size == (600, 600)
