"""The saved HTML animation plays in a real browser: Debian's Chromium driven by Playwright (Python)."""
import io, os, re
import numpy as np
import pytest
from PIL import Image

from kmeans_lessons.data import sample_blobs
from kmeans_lessons.estimators import KMeans
from kmeans_lessons.animation import animate_kmeans, save_animation

CHROMIUM = '/usr/bin/chromium'
pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                reason=f"{CHROMIUM} is missing: run tools/ensure_chromium.sh (make test does)")
ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
        '--disable-sync', '--no-first-run']
# The player's state, found through its <img id="_anim_img<id>">; matplotlib stores it as the global anim<id>.
ANIM = "(() => { const img = document.querySelector('img[id^=_anim_img]'); return window['anim' + img.id.slice(9)]; })()"


@pytest.fixture(scope='module')
def fitted():
    X, _, _ = sample_blobs(6, 250, seed=42)
    km = KMeans(6, init=X[:6], max_iter=50, keep_history=True).fit(X)   # a bad start: the centroids travel a lot
    return X, km


@pytest.fixture(scope='module')
def browser():
    playwright = pytest.importorskip('playwright.sync_api')
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope='module')
def page(fitted, browser, tmp_path_factory):
    X, km = fitted
    path = save_animation(animate_kmeans(X, km, dpi=50), tmp_path_factory.mktemp('html') / 'converge.html', fps=20)
    errors = []
    pg = browser.new_page()
    pg.on('pageerror', lambda exc: errors.append(f"pageerror: {exc}"))
    pg.on('console', lambda msg: errors.append(f"console {msg.type}: {msg.text}") if msg.type == 'error' else None)
    pg.goto(path.as_uri())
    pg.wait_for_function(f"() => {ANIM} !== undefined")
    pg.js_errors = errors
    yield pg
    pg.close()


def current(page): return page.evaluate(f"{ANIM}.current_frame")
def src(page): return page.get_attribute('img[id^=_anim_img]', 'src')
def shot(page): return np.asarray(Image.open(io.BytesIO(page.locator('img[id^=_anim_img]').screenshot())).convert('RGB'))


def test_frame_count(page, fitted):
    _, km = fitted
    n = km.n_iter_ + 1
    assert page.evaluate(f"{ANIM}.frames.length") == n
    assert page.evaluate("document.querySelector('input[id^=_anim_slider]').max") == str(n - 1)
    html = page.content()
    assert len(set(re.findall(r'frames\[(\d+)\] = "data:image/png', html))) == n


def test_next_frame_changes_image(page):
    page.click('button[title="First frame"]')
    assert current(page) == 0
    first = src(page)
    assert first == page.evaluate(f"{ANIM}.frames[0].src")
    page.click('button[title="Next frame"]')
    assert current(page) == 1
    assert src(page) != first and src(page) == page.evaluate(f"{ANIM}.frames[1].src")


def test_play_runs_to_the_last_frame(page, fitted):
    _, km = fitted
    last = km.n_iter_
    page.click('button[title="First frame"]')
    first = src(page)
    page.click('button[title="Play"]')
    page.wait_for_function(f"() => {ANIM}.current_frame > 0")           # it moves on by itself
    assert src(page) != first
    page.wait_for_function(f"() => {ANIM}.current_frame == {last}", timeout=20_000)   # 'once' mode stops there
    assert src(page) == page.evaluate(f"{ANIM}.frames[{last}].src")


def test_frames_are_not_blank(page, fitted):
    _, km = fitted
    images = []
    for i in [0, km.n_iter_ // 2, km.n_iter_]:
        page.evaluate(f"{ANIM}.set_frame({i})")
        img = shot(page)
        assert img.shape[0] > 100 and img.shape[1] > 100
        assert img.std() > 20, f"frame {i} looks blank (pixel std {img.std():.1f})"
        assert len(np.unique(img.reshape(-1, 3), axis=0)) > 50, f"frame {i} has too few colours"
        images.append(img.astype(int))
    assert np.abs(images[0] - images[-1]).mean() > 0.5        # the first and the last frame differ visibly


def test_no_js_errors(page):
    page.click('button[title="Last frame"]')
    page.click('button[title="Play backwards"]')
    page.wait_for_timeout(300)
    page.click('button[title="Pause"]')
    assert page.js_errors == []


def test_self_contained_with_visible_icons(fitted, browser, tmp_path):
    "Offline, the page fetches nothing and every button shows a glyph (matplotlib's own page asks a CDN for icons)."
    X, km = fitted
    path = save_animation(animate_kmeans(X, km, dpi=30), tmp_path / 'p.html')
    requests = []
    pg = browser.new_page()
    pg.on('request', lambda r: requests.append(r.url))
    pg.goto(path.as_uri())
    pg.wait_for_function(f"() => {ANIM} !== undefined")
    glyphs = pg.evaluate("""() => [...document.querySelectorAll('.anim-buttons button i')]
                             .map(i => getComputedStyle(i, '::before').content)""")
    widths = pg.evaluate("() => [...document.querySelectorAll('.anim-buttons button i')].map(i => i.getBoundingClientRect().width)")
    pg.close()
    assert [u for u in requests if not u.startswith(('file:', 'data:'))] == []
    assert len(glyphs) == 9 and all(g not in ('none', 'normal', '""') for g in glyphs), glyphs
    assert all(w > 3 for w in widths), widths


def test_first_frame_shows_without_any_script(fitted, browser, tmp_path):
    "An untrusted notebook runs no script: the player's <img> must hold frame 0 by itself, at its full size."
    X, km = fitted
    path = save_animation(animate_kmeans(X, km, dpi=40), tmp_path / 'nojs.html')
    context = browser.new_context(java_script_enabled=False)
    pg = context.new_page()
    pg.goto(path.as_uri())
    img = pg.locator('img[id^=_anim_img]')
    pg.wait_for_function("() => document.querySelector('img[id^=_anim_img]').complete")
    size = img.evaluate("i => [i.naturalWidth, i.naturalHeight, i.getBoundingClientRect().width]")
    shot_ = np.asarray(Image.open(io.BytesIO(img.screenshot())).convert('RGB'))
    context.close()
    assert size == [200, 200, 200], size                         # 5 inches at 40 dpi
    assert shot_.std() > 20 and len(np.unique(shot_.reshape(-1, 3), axis=0)) > 50


def test_page_has_a_heading_and_one_sans_serif_font(fitted, browser, tmp_path):
    X, km = fitted
    path = save_animation(animate_kmeans(X, km, dpi=30), tmp_path / 'f.html', title='k-means on the course data',
                          subtitle='kmeans-lessons animate --out f.html')
    pg = browser.new_page()
    pg.goto(path.as_uri())
    pg.wait_for_function(f"() => {ANIM} !== undefined")
    assert pg.locator('h1').text_content() == 'k-means on the course data'
    assert pg.locator('h1 + p').text_content() == 'kmeans-lessons animate --out f.html'
    fonts = pg.evaluate("""() => ['h1', 'p', 'label', 'button', 'input', '.anim-buttons .fa']
                             .map(s => getComputedStyle(document.querySelector(s)).fontFamily)""")
    pg.close()
    assert len(set(fonts)) == 1 and fonts[0].endswith('sans-serif'), fonts


def test_side_by_side_plays_in_one_player(browser, tmp_path):
    "Lesson 12's animation: a plain and a balanced fit in one player, as many frames as the longer fit, two panels."
    from kmeans_lessons.animation import animate_side_by_side
    from kmeans_lessons.balanced import BalancedKMeans
    X, _, _ = sample_blobs(4, 100, seed=0)
    km = KMeans(4, init=X[:4], n_init=1, keep_history=True).fit(X)
    bk = BalancedKMeans(4, size_min=100, size_max=100, init=X[:4], keep_history=True).fit(X)
    anim = animate_side_by_side(X, [km, bk], titles=['Lloyd', 'balanced'], dpi=40)
    n = max(km.n_iter_, bk.n_iter_) + 1
    path = save_animation(anim, tmp_path / 'two.html', fps=20)
    errors = []
    pg = browser.new_page()
    pg.on('pageerror', lambda exc: errors.append(str(exc)))
    pg.goto(path.as_uri())
    pg.wait_for_function(f"() => {ANIM} !== undefined")
    assert pg.evaluate(f"{ANIM}.frames.length") == n == anim.n_frames
    size = pg.locator('img[id^=_anim_img]').evaluate("i => [i.naturalWidth, i.naturalHeight]")
    assert size == [320, 160], size                                   # two 4-inch panels at 40 dpi
    first = src(pg)
    pg.click('button[title="Play"]')
    pg.wait_for_function(f"() => {ANIM}.current_frame == {n - 1}", timeout=20_000)
    assert src(pg) != first and src(pg) == pg.evaluate(f"{ANIM}.frames[{n - 1}].src")
    img = shot(pg)
    assert img.std() > 20 and len(np.unique(img.reshape(-1, 3), axis=0)) > 20
    pg.close()
    assert errors == []
