"""End to end, where students and instructors meet the animations: a real JupyterLab from this environment, driven by
Debian's Chromium through Playwright. Lessons 06 and 07 run with "Restart Kernel and Run All Cells" on a copy of the
notebooks (the committed files are never touched); then every player must show a picture before any click, Next and
Play must move it, and the explorer must redraw when a slider moves.

Set KMEANS_E2E_SCREENS=/some/dir to keep a screenshot of every player (after Run All, before any click)."""
import io, json, os, secrets, shutil, signal, socket, subprocess, sys, time, urllib.request
from pathlib import Path
import numpy as np
import pytest
from PIL import Image

CHROMIUM = '/usr/bin/chromium'
NBS = Path(__file__).resolve().parent.parent / 'nbs'
pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                reason=f"{CHROMIUM} is missing: run tools/ensure_chromium.sh (make test does)")
ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
        '--disable-sync', '--no-first-run']
START_S, OPEN_S, RUN_S = 60, 60, 150           # limits: server start, opening a notebook, Run All of one notebook
PLAYER = 'img[id^="_anim_img"]'                # trusted output: the id is kept
SAVED_PLAYER = 'img[data-jupyter-id^="_anim_img"]'    # untrusted (as saved): the sanitizer renames the id
# The player's state: matplotlib stores it as the global anim<id>, <id> being the <img>'s id after '_anim_img'.
ANIM = "(img => window['anim' + img.id.slice(9)])"
SCREENS = os.environ.get('KMEANS_E2E_SCREENS')


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def stop(proc):
    """Stop the server by its PID: SIGTERM to its process group (it shuts its kernels down), SIGKILL if that is not
    enough; then any of its kernels still alive (each runs in a session of its own), by PID."""
    if proc.poll() is not None: return
    try:
        import psutil
        children = psutil.Process(proc.pid).children(recursive=True)
    except Exception: children = []
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    except ProcessLookupError: pass
    for c in children:
        try: c.kill()
        except Exception: pass                     # gone already


@pytest.fixture(scope='module')
def lab(tmp_path_factory):
    "JupyterLab on a free port with a token, from this Python, serving a copy of nbs/; its own config, data and kernel."
    tmp = tmp_path_factory.mktemp('lab')
    root = tmp / 'nbs'
    shutil.copytree(NBS, root, ignore=shutil.ignore_patterns('.ipynb_checkpoints', '_*'))
    # the python3 kernel is this environment's Python, whatever other kernels the machine has (JUPYTER_PATH comes first)
    spec = tmp / 'jupyter_path' / 'kernels' / 'python3'
    spec.mkdir(parents=True)
    (spec / 'kernel.json').write_text(json.dumps({'argv': [sys.executable, '-m', 'ipykernel_launcher', '-f',
                                                           '{connection_file}'],
                                                  'display_name': 'python3', 'language': 'python'}))
    settings = tmp / 'settings' / '@jupyterlab' / 'apputils-extension'
    settings.mkdir(parents=True)
    (settings / 'notification.jupyterlab-settings').write_text('{"fetchNews": "false", "checkForUpdates": false}')
    env = {k: v for k, v in os.environ.items() if k not in ('MPLBACKEND', 'JUPYTER_PLATFORM_DIRS')}
    env.update(OMP_NUM_THREADS='1', JUPYTER_PATH=str(tmp / 'jupyter_path'), JUPYTER_CONFIG_DIR=str(tmp / 'config'),
               JUPYTER_DATA_DIR=str(tmp / 'data'), JUPYTER_RUNTIME_DIR=str(tmp / 'runtime'),
               IPYTHONDIR=str(tmp / 'ipython'))
    port, token = free_port(), secrets.token_hex(16)
    cmd = [sys.executable, '-m', 'jupyterlab', '--no-browser', '--ServerApp.ip=127.0.0.1', f'--ServerApp.port={port}',
           '--ServerApp.port_retries=0', f'--IdentityProvider.token={token}', f'--ServerApp.root_dir={root}',
           f'--LabApp.user_settings_dir={tmp / "settings"}', f'--LabApp.workspaces_dir={tmp / "workspaces"}']
    if os.getuid() == 0: cmd.append('--allow-root')
    log_path = tmp / 'lab.log'
    with open(log_path, 'w') as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                cwd=root, start_new_session=True)        # its own process group, kernels included
    try:
        url = f'http://127.0.0.1:{port}'
        deadline = time.monotonic() + START_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"jupyter lab exited with code {proc.returncode} on start:\n{log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f'{url}/api/status?token={token}', timeout=2) as r:
                    if r.status == 200: break
            except OSError: pass
            if time.monotonic() > deadline:
                pytest.fail(f"jupyter lab did not answer on port {port} within {START_S} s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.25)
        yield dict(url=url, token=token, root=root, log=log_path)
    finally:
        stop(proc)


@pytest.fixture(scope='module')
def browser(lab):
    playwright = pytest.importorskip('playwright.sync_api')
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, timeout=60_000)
        try: yield b
        finally: b.close()


def open_notebook(browser, lab, name):
    pg = browser.new_page(viewport={'width': 1400, 'height': 1000})
    pg.set_default_timeout(30_000)
    pg.js_errors = []
    pg.on('pageerror', lambda exc: pg.js_errors.append(str(exc)))
    pg.goto(f"{lab['url']}/lab/tree/{name}?reset&token={lab['token']}", timeout=OPEN_S * 1000)
    # loaded (no spinner, all cells there) and its kernel started and idle, as the status bar says
    pg.wait_for_function("""() => !document.querySelector('.jp-NotebookPanel .jp-Spinner')
        && document.querySelectorAll('.jp-Notebook .jp-CodeCell').length > 5
        && /python3 \\| Idle/.test(document.querySelector('#jp-main-statusbar').textContent)""",
                         timeout=OPEN_S * 1000, polling=200)
    return pg


PROMPTS = "[...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].map(p => p.textContent)"


def start_run_all(pg):
    "Kernel > Restart Kernel and Run All Cells, confirm, and see the cells queue up."
    pg.run_t0 = time.monotonic()
    pg.click('.lm-MenuBar-itemLabel:text-is("Kernel")')
    pg.click('li.lm-Menu-item[data-command="runmenu:restart-and-run-all"]')
    pg.click('.jp-Dialog .jp-mod-accept')
    pg.wait_for_function(f"() => {PROMPTS}.some(t => t.includes('*'))", timeout=30_000, polling=200)


def wait_run_all(pg, lab):
    "Wait until no cell is queued, then check that every code cell ran, none with an error. Returns the seconds taken."
    try: pg.wait_for_function(f"() => !{PROMPTS}.some(t => t.includes('*'))", timeout=RUN_S * 1000, polling=500)
    except Exception as e:
        png = lab['log'].with_name(f'run_all_failed_{int(time.time())}.png')
        pg.screenshot(path=str(png))
        raise AssertionError(f"Run All of {pg.url} did not finish within {RUN_S} s ({str(e).splitlines()[0]}); "
                             f"prompts {pg.evaluate(PROMPTS)}; screenshot {png}; "
                             f"server log:\n{lab['log'].read_text()[-2000:]}") from None
    errors = pg.evaluate("""() => [...document.querySelectorAll('.jp-OutputArea-output')]
        .filter(e => e.dataset.mimeType === 'application/vnd.jupyter.error'
                     || (e.dataset.mimeType === 'application/vnd.jupyter.stderr' && e.textContent.includes('Traceback')))
        .map(e => e.textContent.slice(0, 500))""")
    never_ran = pg.evaluate(f"() => {PROMPTS}.filter(t => !/\\[\\d+\\]/.test(t)).length")
    assert errors == [], errors
    assert never_ran == 0, f"{never_ran} code cells did not run"
    return time.monotonic() - pg.run_t0


def shot(locator):
    return np.asarray(Image.open(io.BytesIO(locator.screenshot())).convert('RGB'))


def check_picture(locator, what, save=None):
    "The element is on the page with a real picture in it: a sensible size, many colours, not blank."
    w, h = locator.evaluate("""e => { e.scrollIntoView({block: 'center'});     // no waiting: a 0 x 0 image fails
                                      const r = e.getBoundingClientRect(); return [r.width, r.height]; }""")
    assert w >= 200 and h >= 200, f"{what} is {w:g} x {h:g} pixels on the page: no picture"
    img = shot(locator)
    if save: Image.fromarray(img).save(save)
    assert img.std() > 20, f"{what} looks blank (pixel std {img.std():.1f})"
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 50, f"{what} has too few colours"
    return img


def save_path(name):
    if not SCREENS: return None
    Path(SCREENS).mkdir(parents=True, exist_ok=True)
    return Path(SCREENS) / name


@pytest.fixture(scope='module')
def notebooks(browser, lab):
    "06 and 07 opened; their saved players checked; then both run at once (a kernel each: two cores, half the wait)."
    pages = {}
    for name in ('06_animation.ipynb', '07_meanshift.ipynb'):
        pg = pages[name[:2]] = open_notebook(browser, lab, name)
        pg.n_players = saved_players(lab['root'] / name)
        saved = pg.locator(SAVED_PLAYER)
        try: pg.wait_for_function(f"n => document.querySelectorAll('{SAVED_PLAYER}').length >= n", arg=pg.n_players,
                                  timeout=30_000, polling=200)          # cells further down render a little later
        except Exception: pass                                          # the tests below say how many showed
        pg.n_saved = saved.count()
        for i in range(pg.n_saved):    # untrusted, as saved: no script runs, the <img> alone must show frame 0
            check_picture(saved.nth(i), f"saved player {i} of {name} (untrusted)",
                          save_path(f'{name[:2]}-saved-player{i}.png'))
    try:
        for pg in pages.values(): start_run_all(pg)
        for pg in pages.values(): pg.run_s = wait_run_all(pg, lab)
        yield pages
    finally:
        for pg in pages.values(): pg.close()


@pytest.fixture(scope='module')
def nb06(notebooks): return notebooks['06']


@pytest.fixture(scope='module')
def nb07(notebooks): return notebooks['07']


def saved_players(path):
    "How many animation players the notebook file holds in its outputs."
    cells = json.loads(path.read_text())['cells']
    return sum('_anim_img' in ''.join(o.get('data', {}).get('text/html', ''))
               for c in cells for o in c.get('outputs', []))


def button(pg, img, title):
    "The button of `img`'s player, found through the player's id (every player has the same buttons)."
    return pg.locator(f'button[title="{title}"][onclick^="anim{img.get_attribute("id")[9:]}."]')


def check_players(pg, name, n_expected):
    players = pg.locator(PLAYER)
    assert players.count() == n_expected, f"{name}: {players.count()} players, expected {n_expected}"
    for i in range(n_expected):
        img = players.nth(i)
        check_picture(img, f"player {i} of {name}", save_path(f'{name}-player{i}.png'))
        if SCREENS: pg.screenshot(path=str(save_path(f'{name}-player{i}-page.png')))
        # no click yet: the player is on frame 0, and the <img> shows it
        assert img.evaluate(f"i => {ANIM}(i).current_frame") == 0
        assert img.evaluate(f"i => i.src === {ANIM}(i).frames[0].src")


def test_06_every_player_shows_a_picture_before_any_click(nb06):
    assert nb06.n_players == 5
    check_players(nb06, '06', 5)
    assert nb06.n_saved == 5, f"the notebook as saved shows {nb06.n_saved} players, expected 5"


def test_06_next_and_play_move_the_frame(nb06):
    img = nb06.locator(PLAYER).first
    check_picture(img, "player 0 of 06")
    before = shot(img)
    button(nb06, img, "Next frame").click()                 # the first click moves to frame 1
    assert img.evaluate(f"i => {ANIM}(i).current_frame") == 1
    assert img.evaluate(f"i => i.src === {ANIM}(i).frames[1].src")
    assert np.abs(shot(img).astype(int) - before).mean() > 0.1, "frame 1 looks like frame 0"
    button(nb06, img, "Play").click()
    nb06.wait_for_function(f"i => {ANIM}(i).current_frame >= 3", arg=img.element_handle(), timeout=10_000)
    button(nb06, img, "Pause").click()
    n = img.evaluate(f"i => {ANIM}(i).frames.length")
    button(nb06, img, "Last frame").click()
    assert img.evaluate(f"i => {ANIM}(i).current_frame") == n - 1


def test_06_explorer_redraws_when_a_slider_moves(nb06):
    box = nb06.locator('.widget-vbox', has=nb06.locator('.widget-image')).last
    image, status = box.locator('.widget-image'), box.locator('.widget-html-content')
    before, src = check_picture(image, "the explorer's picture", save_path('06-explorer.png')), image.get_attribute('src')
    k = box.locator('.widget-slider', has=nb06.locator('.widget-label:text-is("k")')).locator('.noUi-handle')
    k.focus()
    k.press('ArrowRight')                                                  # k 6 -> 7: a new fit, a new picture
    nb06.wait_for_function("([img, s]) => img.src !== s", arg=[image.element_handle(), src], timeout=20_000)
    assert 'k = 7' in status.text_content()
    after = check_picture(image, "the explorer's picture after k moved")
    assert np.abs(after.astype(int) - before).mean() > 0.1
    it = box.locator('.widget-slider', has=nb06.locator('.widget-label:text-is("iteration")')).locator('.noUi-handle')
    src = image.get_attribute('src')
    it.focus()
    it.press('Home')                                                       # back to iteration 0
    nb06.wait_for_function("([img, s]) => img.src !== s", arg=[image.element_handle(), src], timeout=20_000)
    assert np.abs(shot(image).astype(int) - after).mean() > 0.1


def test_07_player_shows_a_picture_before_any_click(nb07):
    assert nb07.n_players == 1
    check_players(nb07, '07', 1)
    assert nb07.n_saved == 1, f"the notebook as saved shows {nb07.n_saved} players, expected 1"


def test_no_javascript_errors(nb06, nb07):
    assert nb06.js_errors == [] and nb07.js_errors == [], (nb06.js_errors, nb07.js_errors)
    print(f"Run All took {nb06.run_s:.0f} s for 06 and {nb07.run_s:.0f} s for 07, side by side")

