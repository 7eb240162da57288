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
    np.save(d / 'huge.npy', np.ones((5, 2)) * 1e300)                  # finite in float64, inf in float32
    (d / 'points.txt').write_text('1,2\n')
    return d


BAD = [
    (['--k', '0'], '--k must be between 1 and 10,000; got 0'),
    (['--k', '-3'], '--k must be between 1 and 10,000; got -3'),
    (['--k', 'six'], "invalid int value: 'six'"),
    (['--max-iter', '0'], '--max-iter must be between 1 and 1,000; got 0'),
    (['--fps', '0'], '--fps must be between 0.01 and 50; got 0.0'),
    (['--fps', 'inf'], '--fps must be between 0.01 and 50; got inf'),
    (['--fps', 'nan'], '--fps must be between 0.01 and 50; got nan'),
    (['--fps', '1000'], '--fps must be between 0.01 and 50; got 1000.0'),
    (['--dims', '1'], '--dims must be between 2 and 100; got 1'),
    (['--dims', '100000'], '--dims must be between 2 and 100; got 100000'),
    (['--dpi', '100000'], '--dpi must be between 10 and 400; got 100000'),
    (['--dpi', '0'], '--dpi must be between 10 and 400; got 0'),
    (['--n', '10000000000'], '--n must be between 1 and 1,000,000; got 10000000000'),
    (['--seed', '-1'], '--seed must be between 0 and 2**63 - 1; got -1'),
    (['--seed', str(2**63)], f'--seed must be between 0 and 2**63 - 1; got {2**63}'),
    (['--blobs', '0'], '--blobs must be between 1 and 10,000; got 0'),
    (['--data', '{d}/huge.npy'], "past float32's largest"),
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


# --- the fit command: alone, under torchrun, and what it refuses (issues 17 and 19)

import hashlib, os, socket, stat, time
import torch
from kmeans_lessons import cli
from kmeans_lessons.distributed import distributed_fit

TORCHRUN = [sys.executable, '-m', 'torch.distributed.run', '--standalone']
LIMIT = 150   # seconds for a torchrun job on a loaded 2-core machine; a hang fails, it never blocks


def digest(path): return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def env_alone():
    "This environment without torchrun's variables, with one thread a process."
    env = {k: v for k, v in os.environ.items() if k not in cli.TORCHRUN_ENV + ('LOCAL_RANK',)}
    return dict(env, OMP_NUM_THREADS='1')


@pytest.fixture(scope='module')
def npy(tmp_path_factory):
    "A small .npy of 5 blobs in 4-D (1500 points), its one-process fit and its hash."
    d = tmp_path_factory.mktemp('fit')
    X, _, _ = sample_blobs(5, 300, 4, seed=7)
    np.save(d / 'X.npy', X.numpy())
    return d / 'X.npy', distributed_fit(d / 'X.npy', 5, random_state=0), digest(d / 'X.npy')


def test_fit_command_alone(npy, tmp_path, capsys):
    data, one, h = npy
    out, lab = tmp_path / 'c.npy', tmp_path / 'l.npy'
    assert main(['fit', str(data), '--k', '5', '--out', str(out), '--labels', str(lab)]) == 0
    np.testing.assert_allclose(np.load(out), one['centres'].numpy())
    assert np.load(lab).dtype == np.int32 and np.array_equal(np.load(lab), one['labels'].numpy())
    km = KMeans(5, random_state=0).fit(np.load(data))                              # the estimator in memory
    assert np.array_equal(np.load(lab), km.labels_) and abs(one['inertia'] - km.inertia_) < 1e-3 * km.inertia_
    assert 'wrote' in capsys.readouterr().out
    assert sorted(f.name for f in tmp_path.iterdir()) == ['c.npy', 'l.npy']      # no temporary file left
    assert digest(data) == h


def test_fit_command_alone_without_labels(npy, tmp_path, capsys):
    "The README's command without --labels (it crashed with UnboundLocalError under torchrun: `comm`)."
    data, one, h = npy
    out = tmp_path / 'c.npy'
    assert main(['fit', str(data), '--k', '5', '--out', str(out)]) == 0
    np.testing.assert_allclose(np.load(out), one['centres'].numpy())
    assert [f.name for f in tmp_path.iterdir()] == ['c.npy'] and digest(data) == h


@pytest.mark.parametrize('algorithm', ['auto', 'lloyd', 'hamerly', 'yinyang', 'elkan'])
def test_fit_command_every_algorithm(algorithm, npy, tmp_path, capsys):
    "Every --algorithm runs and gives Lloyd's centres and labels; an unknown one is refused."
    data, one, h = npy
    out, lab = tmp_path / 'c.npy', tmp_path / 'l.npy'
    assert main(['fit', str(data), '--k', '5', '--out', str(out), '--labels', str(lab), '--algorithm', algorithm]) == 0
    np.testing.assert_allclose(np.load(out), one['centres'].numpy(), rtol=0, atol=1e-5)
    assert np.array_equal(np.load(lab), one['labels'].numpy()) and digest(data) == h
    with pytest.raises(SystemExit) as e: main(['fit', str(data), '--k', '5', '--out', str(out), '--algorithm', 'full'])
    assert e.value.code == 2 and "invalid choice: 'full'" in capsys.readouterr().err


def test_fit_command_bad_numbers(npy, tmp_path, capsys):
    data, _, _ = npy
    for args, msg in [(['--k', '0'], '--k must be >= 1'), (['--k', '2', '--out', 'c.txt'], 'must end in .npy'),
                      (['--k', '5000'], 'n_clusters=5000'), (['--tol', 'nan'], '--tol must be a number >= 0'),
                      (['--tol', '-1'], '--tol must be a number >= 0'), (['--timeout', '0'], '--timeout must be > 0'),
                      (['--seed', '-2'], '--seed must be >= 0'), (['--init-size', '0'], '--init-size must be >= 1')]:
        argv = ['fit', str(data), '--out', str(tmp_path / 'c.npy')] + (['--k', '5'] if '--k' not in args else []) + args
        with pytest.raises(SystemExit) as e: main(argv)
        err = capsys.readouterr().err
        assert e.value.code == 2 and err.count('\n') == 1 and msg in err, (args, err)
    assert list(tmp_path.iterdir()) == []


def torchrun(nproc, data, out, *extra, script=None):
    "Start `kmeans-lessons fit` under torchrun with `nproc` processes (not waited for)."
    prog = [script] if script else ['-m', 'kmeans_lessons.cli']
    cmd = TORCHRUN + [f'--nproc_per_node={nproc}'] + prog + ['fit', str(data), '--k', '5', '--out', str(out), *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env_alone())


def test_fit_command_under_torchrun_1_2_3_processes(npy, tmp_path):
    """The jobs run at once (each pays torch's start-up): 1, 2 and 3 processes without --labels (the 3 through
    the installed script, as the issue ran it), 2 with --labels and --verbose, 2 refused (--labels is the data), and
    every --algorithm: hamerly and elkan at 2 processes, yinyang, lloyd and elkan at 3. Each gives the one-process fit:
    its centres, and its iterations and inertia in the line rank 0 writes."""
    data, one, h = npy
    jobs = {1: torchrun(1, data, tmp_path / 'c1.npy'), 2: torchrun(2, data, tmp_path / 'c2.npy'),
            3: torchrun(3, data, tmp_path / 'c3.npy', script=ENTRY),      # None: -m kmeans_lessons.cli
            'labels': torchrun(2, data, tmp_path / 'cl.npy', '--labels', tmp_path / 'l.npy', '--verbose'),
            'clobber': torchrun(2, data, tmp_path / 'cx.npy', '--labels', data),    # refused on every rank
            'hamerly': torchrun(2, data, tmp_path / 'ch.npy', '--algorithm', 'hamerly'),
            'yinyang': torchrun(3, data, tmp_path / 'cy.npy', '--algorithm', 'yinyang'),
            'elkan': torchrun(2, data, tmp_path / 'ce.npy', '--algorithm', 'elkan'),
            'lloyd3': torchrun(3, data, tmp_path / 'cL3.npy', '--algorithm', 'lloyd'),
            'elkan3': torchrun(3, data, tmp_path / 'ce3.npy', '--algorithm', 'elkan')}
    deadline = time.monotonic() + LIMIT
    done = {}
    try:
        for name, p in jobs.items(): done[name] = p.communicate(timeout=max(1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        for p in jobs.values(): p.kill()
        pytest.fail(f"a torchrun job hung (> {LIMIT} s)")
    so, se = done.pop('clobber')
    assert jobs['clobber'].returncode != 0 and so == '', se[-3000:]
    ours = [l for l in se.splitlines() if l.startswith('kmeans-lessons fit: ')]
    assert ours == [f"kmeans-lessons fit: error: --labels {str(data)!r} is the data file; refusing to overwrite it"] * 2, se
    assert str(Path(cli.__file__).parent) not in se, se[-3000:]          # torchrun's own traceback only, none of ours
    for name, (so, se) in done.items():
        assert jobs[name].returncode == 0, (name, se[-3000:])
        assert so.count('wrote') == 1, (name, so)                                   # rank 0 reports, once
        assert 'UnboundLocalError' not in se and 'Traceback' not in se, (name, se[-3000:])
        m = re.search(r"points on \d process(?:es)?, (\d+) iterations, inertia (\S+)\n", so)
        assert m and int(m[1]) == one['n_iter'], (name, so, one['n_iter'])
        assert float(m[2]) == pytest.approx(float(one['inertia']), rel=1e-5), (name, so, one['inertia'])
    for name in (1, 2, 3):
        assert f"on {name} process" in done[name][0], done[name][0]
        np.testing.assert_allclose(np.load(tmp_path / f'c{name}.npy'), one['centres'].numpy(), rtol=0, atol=1e-4)
    assert done['labels'][0].count('converged after') == 1                           # --verbose's summary, once
    bound = {'hamerly': 'ch', 'yinyang': 'cy', 'elkan': 'ce', 'lloyd3': 'cL3', 'elkan3': 'ce3'}
    for name, f in bound.items():                                   # Lloyd's result, every algorithm, 2 and 3 ranks
        np.testing.assert_allclose(np.load(tmp_path / f'{f}.npy'), one['centres'].numpy(), rtol=0, atol=1e-4,
                                   err_msg=name)
    np.testing.assert_allclose(np.load(tmp_path / 'cl.npy'), one['centres'].numpy(), rtol=0, atol=1e-4)
    assert np.array_equal(np.load(tmp_path / 'l.npy'), one['labels'].numpy())
    assert sorted(f.name for f in tmp_path.iterdir()) == sorted(['c1.npy', 'c2.npy', 'c3.npy', 'ce.npy', 'ch.npy',
                                                                 'cl.npy', 'cy.npy', 'cL3.npy', 'ce3.npy', 'l.npy'])
    assert digest(data) == h


def test_world_size_without_torchrun_is_one_line(npy, tmp_path):
    data, _, h = npy
    r = subprocess.run([sys.executable, '-m', 'kmeans_lessons.cli', 'fit', str(data), '--k', '5', '--out',
                        str(tmp_path / 'c.npy')], capture_output=True, text=True, timeout=LIMIT,
                       env=dict(env_alone(), WORLD_SIZE='2'))
    assert r.returncode == 2 and r.stderr.count('\n') == 1 and 'Traceback' not in r.stderr, r.stderr
    assert 'WORLD_SIZE=2' in r.stderr and 'RANK, MASTER_ADDR and MASTER_PORT are not' in r.stderr, r.stderr
    assert 'torchrun' in r.stderr and list(tmp_path.iterdir()) == [] and digest(data) == h


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_processes_that_never_meet_are_one_line(npy, tmp_path):
    "Rank 0 of 2, whose partner never comes: a one-line error after --timeout, not a rendezvous traceback."
    data, _, _ = npy
    env = dict(env_alone(), WORLD_SIZE='2', RANK='0', MASTER_ADDR='127.0.0.1', MASTER_PORT=str(free_port()))
    r = subprocess.run([sys.executable, '-m', 'kmeans_lessons.cli', 'fit', str(data), '--k', '5', '--out',
                        str(tmp_path / 'c.npy'), '--timeout', '1'], capture_output=True, text=True, timeout=LIMIT, env=env)
    assert r.returncode == 2 and 'Traceback' not in r.stderr, r.stderr
    assert r.stderr.splitlines()[-1].startswith('kmeans-lessons fit: error: the 2 processes did not meet at 127.0.0.1')
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize('torchrun_env,msg', [
    (dict(WORLD_SIZE='two'), "WORLD_SIZE='two' in the environment is not a number"),
    (dict(WORLD_SIZE='0'), 'WORLD_SIZE=0 in the environment must be >= 1'),
    (dict(WORLD_SIZE='3', RANK='3', MASTER_ADDR='h', MASTER_PORT='1'), 'RANK=3 is not in 0..2'),
    (dict(WORLD_SIZE='3', RANK='x', MASTER_ADDR='h', MASTER_PORT='1'), "RANK='x' in the environment is not a number"),
    (dict(WORLD_SIZE='2', RANK='1'), 'MASTER_ADDR and MASTER_PORT are not'),
])
def test_torchrun_environment_is_checked(torchrun_env, msg, capsys):
    p = cli._Parser(prog='kmeans-lessons fit')
    with pytest.raises(SystemExit) as e: cli._world(p, torchrun_env)
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count('\n') == 1 and msg in err, err
    assert cli._world(p, {}) == (0, 1) and cli._world(p, dict(WORLD_SIZE='1')) == (0, 1)
    assert cli._world(p, dict(WORLD_SIZE='4', RANK='2', MASTER_ADDR='h', MASTER_PORT='1')) == (2, 4)


@pytest.mark.parametrize('device,msg', [
    ('tpu', "device must be 'cpu', 'cuda'"), ('meta', 'meta device hold no data'), ('META:0', 'meta device hold no data'),
    ('cuda:99', 'cuda'), ('gpu', "device must be 'cpu', 'cuda'"), ('', "device must be")])
def test_fit_device_that_does_not_exist_or_holds_no_data(device, msg, npy, tmp_path, capsys, monkeypatch):
    data, _, h = npy
    monkeypatch.setattr(cli, 'distributed_fit', lambda *a, **k: pytest.fail("the fit ran"))
    with pytest.raises(SystemExit) as e:
        main(['fit', str(data), '--k', '5', '--out', str(tmp_path / 'c.npy'), '--device', device])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count('\n') == 1 and f"--device {device!r}" in err and msg in err, err
    assert list(tmp_path.iterdir()) == [] and digest(data) == h


# --- outputs never clobber inputs: refused with one line before any work; the data file checked by hash

def unwritable_dir(tmp_path):
    "A folder no file can be made in: a read-only one, or, for root (who may write anywhere), /proc."
    if os.geteuid() == 0:
        if not Path('/proc/self').exists(): pytest.skip("root without /proc: no folder root cannot write")
        return Path('/proc')
    d = tmp_path / 'ro'
    d.mkdir()
    d.chmod(stat.S_IRUSR | stat.S_IXUSR)
    return d


CLOBBER = [   # (extra arguments, what the message says); {d}: the data's folder, {t}: a fresh folder
    (['--labels', '{d}/X.npy'], "--labels '{d}/X.npy' is the data file"),
    (['--out', '{d}/X.npy'], "--out '{d}/X.npy' is the data file"),
    (['--out', '{d}/./sub/../X.npy'], 'is the data file'),                      # another spelling
    (['--labels', '{d}/hard.npy'], "--labels '{d}/hard.npy' is the data file"),  # a hard link: the same inode
    (['--out', '{d}/soft.npy'], 'is the data file'),                            # a symbolic link to it
    (['--out', '{t}/c.npy', '--labels', '{t}/c.npy'], '--labels and --out are the same file'),
    (['--out', '{t}/c.npy', '--labels', '{t}/./c.npy'], '--labels and --out are the same file'),
    (['--out', '{t}/dir.npy'], 'is a directory'),
    (['--out', '{t}/c.npy', '--labels', '{t}/dir.npy'], 'is a directory'),
    (['--out', '{t}/no/such/c.npy'], '--out directory does not exist'),
    (['--out', '{u}/c.npy'], 'cannot be written'),
    (['--out', '{t}/c.npy', '--labels', '{u}/l.npy'], '--labels'),
]


@pytest.fixture
def links(npy):
    data = npy[0]
    d = data.parent
    (d / 'sub').mkdir(exist_ok=True)
    for name, make in [('hard.npy', os.link), ('soft.npy', os.symlink)]:
        if not (d / name).exists(): make(data, d / name)
    return d


@pytest.mark.parametrize('args,msg', CLOBBER, ids=[' '.join(a) for a, _ in CLOBBER])
def test_fit_outputs_never_clobber_inputs(args, msg, npy, links, tmp_path, capsys, monkeypatch):
    data, _, h = npy
    t = tmp_path / 'out'
    t.mkdir(); (t / 'dir.npy').mkdir()
    u = unwritable_dir(tmp_path) if any('{u}' in a for a in args) else None
    fmt = lambda s: s.format(d=links, t=t, u=u)
    monkeypatch.setattr(cli, 'distributed_fit', lambda *a, **k: pytest.fail("the fit ran before the refusal"))
    argv = ['fit', str(data), '--k', '5'] + ([] if '--out' in args else ['--out', str(t / 'c.npy')])
    with pytest.raises(SystemExit) as e: main(argv + [fmt(a) for a in args])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count('\n') == 1 and err.startswith('kmeans-lessons fit: error: '), err
    assert fmt(msg) in err, err
    assert digest(data) == h
    assert sorted(f.name for f in t.iterdir()) == ['dir.npy']                     # nothing written


def test_the_same_refusals_in_a_subprocess(npy, links, tmp_path):
    "As a user sees it: exit status 2, one line, no traceback, the data file unchanged."
    data, _, h = npy
    r = run('fit', data, '--k', 5, '--out', tmp_path / 'c.npy', '--labels', links / 'hard.npy', entry=ENTRY is not None)
    assert r.returncode == 2 and r.stdout == '' and r.stderr.count('\n') == 1 and 'Traceback' not in r.stderr, r.stderr
    assert 'is the data file' in r.stderr
    assert digest(data) == h and list(tmp_path.iterdir()) == []


def test_animate_out_never_clobbers_its_data(tmp_path, capsys):
    X, _, _ = sample_blobs(2, 30, seed=2)
    np.save(tmp_path / 'p.npy', X.numpy())
    h = digest(tmp_path / 'p.npy')
    os.link(tmp_path / 'p.npy', tmp_path / 'p.gif')                  # a .gif name for the data file
    (tmp_path / 'dir.gif').mkdir()
    for out, msg in [('p.gif', "--out '{t}/p.gif' is the data file"), ('dir.gif', 'is a directory')]:
        with pytest.raises(SystemExit) as e:
            main(['animate', '--data', str(tmp_path / 'p.npy'), '--k', '2', '--out', str(tmp_path / out)])
        err = capsys.readouterr().err
        assert e.value.code == 2 and err.count('\n') == 1 and msg.format(t=tmp_path) in err, err
    assert digest(tmp_path / 'p.npy') == h
    u = unwritable_dir(tmp_path)
    with pytest.raises(SystemExit) as e: main(['animate', '--k', '2', '--out', str(u / 'x.gif')])
    assert e.value.code == 2 and 'cannot be written' in capsys.readouterr().err


# --- outputs appear whole or not at all

def test_interrupted_centres_write_leaves_the_old_file(npy, tmp_path, monkeypatch, capsys):
    data, _, h = npy
    out = tmp_path / 'c.npy'
    np.save(out, np.zeros(3))
    old = digest(out)
    def half_then_interrupt(path, a):
        Path(path).write_bytes(b'\x93NUMPY half a file')
        raise KeyboardInterrupt                                        # Ctrl+C in the middle of the write
    monkeypatch.setattr(np, 'save', half_then_interrupt)
    with pytest.raises(KeyboardInterrupt): main(['fit', str(data), '--k', '5', '--out', str(out)])
    assert digest(out) == old and [f.name for f in tmp_path.iterdir()] == ['c.npy'] and digest(data) == h


def test_interrupted_labels_write_leaves_the_old_file(npy, tmp_path, monkeypatch):
    data, one, h = npy
    out, lab = tmp_path / 'c.npy', tmp_path / 'l.npy'
    np.save(lab, np.arange(4))
    old = digest(lab)
    class Labels:      # what the fit returns, failing while the labels file is being filled
        def cpu(self): raise KeyboardInterrupt
    fit = cli.distributed_fit
    monkeypatch.setattr(cli, 'distributed_fit', lambda *a, **k: dict(fit(*a, **k), labels=Labels()))
    with pytest.raises(KeyboardInterrupt):
        main(['fit', str(data), '--k', '5', '--out', str(out), '--labels', str(lab)])
    assert digest(lab) == old and [f.name for f in tmp_path.iterdir()] == ['l.npy']  # no centres either: labels first
    assert digest(data) == h


def test_interrupted_animation_leaves_the_old_file(tmp_path, monkeypatch):
    import kmeans_lessons.animation as A
    out = tmp_path / 'a.gif'
    out.write_bytes(b'GIF89a the old animation')
    def half_then_interrupt(anim, path, *a, **kw):
        Path(path).write_bytes(b'GIF89a half')
        raise KeyboardInterrupt
    monkeypatch.setattr(A, 'save_animation', half_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        main(['animate', '--k', '2', '--n', '100', '--max-iter', '1', '--dpi', '20', '--out', str(out)])
    assert out.read_bytes() == b'GIF89a the old animation' and [f.name for f in tmp_path.iterdir()] == ['a.gif']


def test_replacing_writes_beside_the_target_then_renames(tmp_path):
    with cli._replacing(tmp_path / 'c.npy') as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == '.npy' and tmp.name.startswith('.c.')
        np.save(tmp, np.arange(3))
        assert not (tmp_path / 'c.npy').exists()                    # nothing at the target until the rename
    assert np.array_equal(np.load(tmp_path / 'c.npy'), np.arange(3)) and not tmp.exists()


# --- no NaN result reported as a success; warnings are one line

def test_overflowing_data_is_an_error_not_inertia_nan(tmp_path):
    X, _, _ = sample_blobs(3, 100, seed=0)
    np.save(tmp_path / 'big.npy', X.numpy() * 1e30)                 # finite float32; its squares overflow
    h = digest(tmp_path / 'big.npy')
    for argv in (['fit', tmp_path / 'big.npy', '--k', 3, '--out', tmp_path / 'c.npy'],
                 ['animate', '--data', tmp_path / 'big.npy', '--k', 3, '--dpi', 20, '--out', tmp_path / 'a.gif']):
        r = run(*argv)
        *warned, last = r.stderr.splitlines()                  # (the estimator may warn first: one line each)
        assert r.returncode == 2 and 'error:' in last and 'scal' in last, r.stderr
        assert all(': warning: ' in w for w in warned) and 'Traceback' not in r.stderr and 'nan' not in r.stdout
    assert [f.name for f in tmp_path.iterdir()] == ['big.npy'] and digest(tmp_path / 'big.npy') == h


@pytest.mark.parametrize('inertia', [float('nan'), float('inf')])
def test_non_finite_inertia_is_the_last_line_of_defence(inertia, npy, tmp_path, monkeypatch, capsys):
    "Whatever the package's own checks let through, a non-finite inertia is exit code 2, and nothing is written."
    data, _, h = npy
    fit = cli.distributed_fit
    monkeypatch.setattr(cli, 'distributed_fit', lambda *a, **k: dict(fit(*a, **k), inertia=inertia))
    with pytest.raises(SystemExit) as e: main(['fit', str(data), '--k', '5', '--out', str(tmp_path / 'c.npy')])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count('\n') == 1 and f"inertia {inertia}" in err and 'scale the data' in err, err
    assert list(tmp_path.iterdir()) == [] and digest(data) == h


def test_warnings_are_one_line(tmp_path):
    np.save(tmp_path / 'dup.npy', np.repeat([[0.0, 0.0], [5.0, 5.0]], 20, axis=0))    # 2 distinct points, k = 3
    r = run('animate', '--data', tmp_path / 'dup.npy', '--k', 3, '--dpi', 20, '--max-iter', 2, '--out', tmp_path / 'a.gif')
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert lines and all(l.startswith('kmeans-lessons animate: warning: ') for l in lines), r.stderr
    assert 'distinct' in r.stderr and 'warnings.warn' not in r.stderr and '.py:' not in r.stderr, r.stderr


def test_python_m_distributed_is_gone_and_cli_has_both_commands():
    "One command line: `kmeans_lessons.cli` holds `animate` and `fit`; `distributed` no longer parses arguments."
    import kmeans_lessons.distributed as D
    assert not hasattr(D, 'fit_command') and not hasattr(D, 'main')
    assert list(cli.COMMANDS) == ['animate', 'fit']

def test_fit_help(capsys):
    with pytest.raises(SystemExit) as e: main(['fit', '--help'])
    out = capsys.readouterr().out
    assert e.value.code == 0 and '--labels' in out and 'torchrun' in out
