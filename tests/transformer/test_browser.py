"""The attention explorer in a real browser: headless Chromium (Debian's `chromium` and
`chromium-driver`; `.ci/run` installs them) driven by Selenium against `serve` on a free
localhost port with a tiny 2-layer model.

It types a sentence, presses Translate, waits for the drawing, checks the translation
against the API, switches head and layer, hovers a token and reads a weight, and loads
the page's shared URL in a fresh load to check it restores the same view. The page's
click-to-drawing time (the performance entries "explorer-click-to-drawing", from
`performance.now()`; the page puts no test hooks on `window`) is printed (`pytest -s` shows it).

Environment: EXPLORER_CHECKPOINT=DIR runs the same test against another run (e.g. the
shipped `transformer/pretrained/en-es`, to measure its timing); EXPLORER_SCREENSHOT=FILE.png saves a
screenshot of the page while a target token of the last layer's cross-attention is
hovered; EXPLORER_QK_SCREENSHOT=FILE.png saves one of the query-and-keys view (decoder
self-attention of the last layer, future keys masked). EXPLORER_REQUIRE_BROWSER=1 (set by
.ci/run) makes a missing browser an error instead of a skip.

The query-and-keys test reads dot products, weights, masks and the summed head output off
the page for all three kinds and compares them with the API's vectors; it prints the request
and response sizes for a 15-word sentence and the page's click-to-drawing times.
"""

import base64
import json
import os
import shutil
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlparse
from urllib.request import Request, urlopen

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
    if os.environ.get("EXPLORER_REQUIRE_BROWSER"):  # set by .ci/run: CI must run this test
        raise RuntimeError(f"EXPLORER_REQUIRE_BROWSER is set but {CHROMIUM} or {CHROMEDRIVER} is missing")
    pytest.skip(
        "needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)",
        allow_module_level=True,
    )

from selenium import webdriver  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

from transformer.runs import load_run  # noqa: E402
from transformer.serve import app as serve  # noqa: E402

SENTENCES_15_WORDS = [
    "My brother and I went to the market yesterday to buy some fruit and bread.",
    "The old teacher told the children a long story about the war and the sea.",
    "We could not find the keys to the car after the long party last night.",
]
DEMO_SPANISH = "Él la admiraba como un gran director."  # "He admired her as a big direct lady." (README)
SPANISH_15_WORDS = "Mi hermano y yo fuimos ayer al mercado para comprar fruta fresca, pan y leche."
TIMEOUT = 60
QK_TIMING = "explorer-qk-click-to-drawing"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_trainer):
    if os.environ.get("EXPLORER_CHECKPOINT"):
        return Path(os.environ["EXPLORER_CHECKPOINT"])
    path = tmp_path_factory.mktemp("runs") / "en-es-tiny-2layers"
    assert tiny_trainer(path, epochs=2, num_layers=2, pack_width=0) == 0
    return path


@pytest.fixture(scope="module")
def server(run_dir):
    run = load_run(run_dir)
    serve.explain(run, "Hello.")  # trace the decoder and both passes before timing clicks, as `serve` does
    serve.explain(run, "Hello.", vectors=("cross", 1))
    server = serve.serve_in_thread(serve.create_app({run.direction: run}))
    yield f"http://127.0.0.1:{server.server_port}", run
    server.shutdown()


@pytest.fixture(scope="module")
def browser(tmp_path_factory, chromium_options):
    options = chromium_options(CHROMIUM, tmp_path_factory.mktemp("chromium-profile"), "1400,1300")
    downloads = tmp_path_factory.mktemp("downloads")
    options.add_experimental_option(
        "prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False}
    )
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    driver.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    driver.set_page_load_timeout(TIMEOUT)
    driver.downloads = downloads
    yield driver
    driver.quit()


def api(base, text, direction, vectors=None, sizes=None, **fields):
    """The API's answer; ``sizes`` (a list) gets (request bytes, response bytes) appended;
    ``fields``: more request fields (beam, prefix, alternatives, beam_tree)."""
    payload = {"text": text, "direction": direction, **({"vectors": vectors} if vectors else {}), **fields}
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()  # as the page sends it
    request = Request(f"{base}/api/translate", body, {"Content-Type": "application/json"})
    with urlopen(request, timeout=TIMEOUT) as response:
        raw = response.read()
    if sizes is not None:
        sizes.append((len(body), len(raw)))
    return json.loads(raw)


def wait_for_drawing(driver, count):
    WebDriverWait(driver, TIMEOUT).until(
        lambda d: drawn(d) == count or d.find_element(By.ID, "status").get_attribute("class") == "error"
    )
    assert "error" not in driver.find_element(By.ID, "status").get_attribute("class"), driver.find_element(
        By.ID, "status"
    ).text


def drawn(driver, counter="draws"):
    """How many translations (``draws``) or query-and-keys tables (``qkDraws``) the page has drawn:
    document.body's data attributes."""
    return int(driver.execute_script(f"return document.body.dataset.{counter} || 0"))


def measures(driver, name="explorer-click-to-drawing"):
    """The page's click-to-drawing measurements (performance entries), oldest first."""
    return driver.execute_script(
        "return performance.getEntriesByName(arguments[0]).map(e => ({clickToDrawingMs: e.duration, ...e.detail}))",
        name,
    )


def view_of(url):
    query = parse_qs(urlparse(url).query)
    return {key: query[key][0] for key in ("text", "direction", "kind", "layer", "head")}


def test_translate_draw_switch_hover_and_share(server, browser):
    base, run = server
    layers, heads = run.config["num_layers"], run.config["num_heads"]
    browser.get(base + "/")
    WebDriverWait(browser, TIMEOUT).until(
        lambda d: len(Select(d.find_element(By.ID, "direction")).options) > 0
    )
    box = browser.find_element(By.ID, "text")
    for count, sentence in enumerate(SENTENCES_15_WORDS, 1):  # a new sentence each time, as a user would
        assert len(sentence.split()) == 15
        box.clear()
        box.send_keys(sentence)
        browser.find_element(By.ID, "translate").click()
        wait_for_drawing(browser, count)
    clicks = measures(browser)
    assert len(clicks) == 3 and all(t["prefix"] == "" for t in clicks)
    median = sorted(t["clickToDrawingMs"] for t in clicks)[1]
    print(
        f"\nclick to drawing, three new 15-word sentences, {run.run_dir}: median {median:.0f} ms; "
        + "; ".join(
            f"{t['clickToDrawingMs']:.0f} ms (request {t['requestMs']:.0f}, model "
            f"{t['serverSeconds'] * 1000:.0f}, drawing {t['drawMs']:.0f})"
            for t in clicks
        ),
        file=sys.stderr,
    )

    # the translation shown is the API's
    expected = api(base, sentence, run.direction)
    assert browser.find_element(By.ID, "translation").text == expected["translation"]
    # every layer x head drawn in the model view, one line colour (toggle) per head
    cells = browser.find_elements(By.CSS_SELECTOR, "#model-view canvas")
    assert len(cells) == layers * heads
    assert len(browser.find_elements(By.CSS_SELECTOR, "#head-toggles input[type=checkbox]")) == heads
    assert len(browser.find_elements(By.CSS_SELECTOR, "#summary tbody tr")) == layers * heads + layers

    # switch kind, layer and head with the controls
    Select(browser.find_element(By.ID, "kind")).select_by_value("cross")
    Select(browser.find_element(By.ID, "layer")).select_by_value(str(layers - 1))
    Select(browser.find_element(By.ID, "head")).select_by_value(str(heads - 1))
    title = browser.find_element(By.ID, "detail-title").text
    assert title == f"decoder-encoder (cross) attention, layer {layers}, head {heads}"
    selected = browser.find_element(By.CSS_SELECTOR, "#model-view canvas.selected")
    assert (selected.get_attribute("data-layer"), selected.get_attribute("data-head")) == (
        str(layers - 1),
        str(heads - 1),
    )
    assert view_of(browser.current_url) == {
        "text": sentence,
        "direction": run.direction,
        "kind": "cross",
        "layer": str(layers),
        "head": str(heads),
    }
    # clicking a small heat map picks its layer and head
    browser.find_element(By.CSS_SELECTOR, '#model-view canvas[data-layer="0"][data-head="0"]').click()
    assert view_of(browser.current_url)["layer"] == "1" and view_of(browser.current_url)["head"] == "1"
    browser.find_element(
        By.CSS_SELECTOR, f'#model-view canvas[data-layer="{layers - 1}"][data-head="{heads - 1}"]'
    ).send_keys(Keys.ENTER)  # ... and so does Enter on a focused one
    assert view_of(browser.current_url)["layer"] == str(layers) and view_of(browser.current_url)[
        "head"
    ] == str(heads)
    browser.switch_to.active_element.send_keys(Keys.ARROW_LEFT)  # arrow keys move through the grid
    assert view_of(browser.current_url)["head"] == str(heads - 1)
    browser.switch_to.active_element.send_keys(Keys.ARROW_RIGHT)
    assert view_of(browser.current_url)["head"] == str(heads)

    # hover a target token: the weights it gives each source token (chosen head) appear
    query = 1
    token = browser.find_elements(By.CSS_SELECTOR, "#left-tokens .token")[query]
    ActionChains(browser).move_to_element(token).perform()
    weights = [w.text for w in browser.find_elements(By.CSS_SELECTOR, "#right-tokens .token .weight")]
    row = expected["attention"]["cross"][layers - 1][heads - 1][query]
    assert weights == [f"{w:.3f}" for w in row]
    assert "active" in token.get_attribute("class")
    if os.environ.get("EXPLORER_SCREENSHOT"):
        browser.save_screenshot(os.environ["EXPLORER_SCREENSHOT"])
    # hovering a source token shows what attends to it, on the other side
    key = 0
    ActionChains(browser).move_to_element(
        browser.find_elements(By.CSS_SELECTOR, "#right-tokens .token")[key]
    ).perform()
    weights = [w.text for w in browser.find_elements(By.CSS_SELECTOR, "#left-tokens .token .weight")]
    column = [r[key] for r in expected["attention"]["cross"][layers - 1][heads - 1]]
    assert weights == [f"{w:.3f}" for w in column]

    # a shared link restores the view in a fresh page load
    shared = browser.find_element(By.ID, "share").get_attribute("href")
    assert view_of(shared) == view_of(browser.current_url)
    browser.get("about:blank")
    browser.get(shared)
    wait_for_drawing(browser, 1)
    assert browser.find_element(By.ID, "text").get_attribute("value") == sentence
    assert browser.find_element(By.ID, "translation").text == expected["translation"]
    assert Select(browser.find_element(By.ID, "kind")).first_selected_option.get_attribute("value") == "cross"
    assert Select(browser.find_element(By.ID, "layer")).first_selected_option.text == f"layer {layers}"
    assert Select(browser.find_element(By.ID, "head")).first_selected_option.text == f"head {heads}"
    assert browser.find_element(By.ID, "detail-title").text == title
    assert view_of(browser.current_url) == view_of(shared)

    # keyboard only: Enter in the text box translates a new sentence
    box = browser.find_element(By.ID, "text")
    box.clear()
    box.send_keys("Tom is happy.", Keys.ENTER)
    wait_for_drawing(browser, 2)
    assert (
        browser.find_element(By.ID, "translation").text
        == api(base, "Tom is happy.", run.direction)["translation"]
    )
    assert view_of(browser.current_url)["text"] == "Tom is happy."


def test_downloads(server, browser):
    """A link opened directly shows its view; the buttons save that heat map as PNG and the
    attention as JSON."""
    base, run = server
    heads = run.config["num_heads"]
    browser.get(
        f"{base}/?text=Tom+is+happy.&direction={run.direction}&kind=encoder_self&layer=1&head={heads}"
    )
    wait_for_drawing(browser, 1)
    assert (
        browser.find_element(By.ID, "detail-title").text == f"encoder self-attention, layer 1, head {heads}"
    )
    browser.find_element(By.ID, "download-png").click()
    browser.find_element(By.ID, "download-json").click()
    png = browser.downloads / f"tom-is-happy_encoder_self_layer1_head{heads}.png"
    saved = browser.downloads / "tom-is-happy_attention.json"
    WebDriverWait(browser, TIMEOUT).until(lambda d: png.is_file() and saved.is_file())
    expected = api(base, "Tom is happy.", run.direction)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    width = int.from_bytes(png.read_bytes()[16:20], "big")
    assert width == 110 + 22 * len(expected["source_tokens"]) + 10  # labels margin + one 22 px cell per key
    data = json.loads(saved.read_text())
    assert data["translation"] == expected["translation"] and data["attention"] == expected["attention"]
    assert data["source_tokens"] == expected["source_tokens"] and data["summary"] == expected["summary"]


def test_errors_are_shown_not_thrown(server, browser):
    base, run = server
    browser.get(base + "/")
    WebDriverWait(browser, TIMEOUT).until(
        lambda d: len(Select(d.find_element(By.ID, "direction")).options) > 0
    )
    browser.find_element(By.ID, "text").send_keys(" ".join(["zqx"] * 100))
    browser.find_element(By.ID, "translate").click()
    WebDriverWait(browser, TIMEOUT).until(
        lambda d: d.find_element(By.ID, "status").get_attribute("class") == "error"
    )
    assert "this model reads at most" in browser.find_element(By.ID, "status").text
    logs = [
        entry
        for entry in browser.get_log("browser")
        if entry["level"] == "SEVERE" and "413" not in entry["message"]
    ]
    assert logs == []


def qk_rows(driver):
    """The query-and-keys table as [{dot, scaled, mask, weight}] per key, and the two sums."""
    rows = driver.execute_script(
        """return [...document.querySelectorAll('#qk-table tbody tr')].map(tr => ({
             dot: tr.querySelector('.dot').textContent, scaled: tr.querySelector('.scaled').textContent,
             mask: tr.querySelector('.mask').textContent, weight: tr.querySelector('.weight .w').textContent,
             masked: tr.classList.contains('masked')}))"""
    )
    sums = {
        name: json.loads(
            driver.find_element(By.CSS_SELECTOR, f"#{name} canvas.strip").get_attribute("data-values")
        )
        for name in ("qk-sum", "qk-output")
    }
    return rows, sums


def wait_for_qk(driver, draws):
    """Wait until the query-and-keys view has been drawn more than ``draws`` times."""
    WebDriverWait(driver, TIMEOUT).until(
        lambda d: drawn(d, "qkDraws") > draws or d.find_element(By.ID, "qk-status").text.startswith("Error")
    )
    assert not driver.find_element(By.ID, "qk-status").text.startswith("Error")
    return drawn(driver, "qkDraws")


def pick(driver, select_id, wanted, draws):
    """Choose option ``wanted`` (or the next one, if it is already chosen: a user's change) of
    a query-and-keys select and wait for the drawing; returns (the option, the draw count)."""
    select = Select(driver.find_element(By.ID, select_id))
    n, current = len(select.options), int(select.first_selected_option.get_attribute("value"))
    value = min(wanted, n - 1) if min(wanted, n - 1) != current else (current + 1) % n
    assert value != current, f"{select_id} has one option only"
    select.select_by_value(str(value))
    return value, wait_for_qk(driver, draws)


def save_panel(driver, element_id, path, hover="#qk-table tbody tr:nth-child(2)"):
    """A PNG of the whole element, ``hover`` (a key row) hovered (the DevTools capture goes beyond
    the window, which an element screenshot does not)."""
    ActionChains(driver).move_to_element(driver.find_element(By.CSS_SELECTOR, hover)).perform()
    rect = driver.execute_script(
        "const r = document.getElementById(arguments[0]).getBoundingClientRect();"
        "return {x: r.left + scrollX, y: r.top + scrollY, width: r.width, height: r.height, scale: 1};",
        element_id,
    )
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": rect}
    )
    Path(path).write_bytes(base64.b64decode(shot["data"]))


def check_qk_view(driver, answer, kind, layer, head, query):
    """The numbers on the page for (kind, layer, head, query) against the API's: each dot
    product is q . k_j of the returned vectors, each weight the returned one, the masked keys
    are the mask's, and the page's sum of w_j v_j is the model's head output (within rounding)."""
    vectors = answer["vectors"]
    assert (vectors["kind"], vectors["layer"]) == (kind, layer)
    q = vectors["queries"][head][query]
    keys, values = vectors["keys"][head], vectors["values"][head]
    weights = answer["attention"][kind][layer - 1][head][query]
    rows, sums = qk_rows(driver)
    assert len(rows) == len(keys)
    for j, row in enumerate(rows):
        dot = sum(a * b for a, b in zip(q, keys[j]))
        assert abs(float(row["dot"]) - dot) <= 0.0005 + 1e-9  # the page's sum, shown to 3 decimals
        assert abs(float(row["scaled"]) - dot / vectors["depth"] ** 0.5) <= 0.0005 + 1e-9
        assert row["weight"] == f"{weights[j]:.3f}"
        assert row["masked"] == (vectors["mask"][query][j] == 0) == bool(row["mask"])
        if row["masked"]:
            assert row["weight"] == "0.000"
    summed = [sum(w * v[d] for w, v in zip(weights, values)) for d in range(vectors["depth"])]
    assert sums["qk-sum"] == pytest.approx(summed, abs=0.0006)
    assert sums["qk-output"] == vectors["outputs"][head][query]
    # the model's output against the sum of the rounded numbers: sum_j |w| HALF + (|v| + HALF) HALF
    for d, output in enumerate(sums["qk-output"]):
        bound = sum(w * 0.0005 + (abs(v[d]) + 0.0005) * 0.0005 for w, v in zip(weights, values)) + 0.0005
        assert abs(summed[d] - output) <= bound + 1e-9
    return rows


def test_query_and_keys_view(server, browser):
    """Open the view on a 15-word sentence, pick a head and a query token for each kind, and
    read dot products, weights and masks off the page; hover a key; time the clicks."""
    base, run = server
    layers, heads = run.config["num_layers"], run.config["num_heads"]
    sentence = SENTENCES_15_WORDS[0] if run.direction.startswith("en") else SPANISH_15_WORDS
    assert len(sentence.split()) == 15
    plain, sizes = [], []
    answer = api(base, sentence, run.direction, sizes=plain)
    answers = {
        kind: api(base, sentence, run.direction, {"kind": kind, "layer": layers}, sizes=sizes)
        for kind in ("decoder_self", "cross", "encoder_self")
    }
    print(
        f"\n15-word sentence, {run.run_dir}: without vectors request {plain[0][0]} B, response "
        f"{plain[0][1]} B; with vectors (decoder_self, cross, encoder_self, layer {layers}): "
        + ", ".join(f"request {a} B, response {b} B" for a, b in sizes),
        file=sys.stderr,
    )
    assert all(b < 1_000_000 for _, b in sizes)
    view = {"text": sentence, "direction": run.direction, "kind": "decoder_self", "layer": layers, "head": 1}
    browser.get(f"{base}/?{urlencode({**view, 'query': 3})}")
    wait_for_drawing(browser, 1)
    draws = drawn(browser, "qkDraws")
    assert draws >= 1 and answer["translation"] == answers["cross"]["translation"]
    timings = []
    for kind in ("decoder_self", "cross", "encoder_self"):
        if kind != "decoder_self":  # a new kind: the page fetches that layer's vectors
            Select(browser.find_element(By.ID, "kind")).select_by_value(kind)
            draws = wait_for_qk(browser, draws)
            timings.append((f"{kind} (fetch)", measures(browser, QK_TIMING)[-1]))
        head, draws = pick(browser, "qk-head", heads - 1, draws)
        timings.append((f"{kind} head", measures(browser, QK_TIMING)[-1]))
        query, draws = pick(
            browser, "qk-query", {"decoder_self": 4, "cross": 2, "encoder_self": 3}[kind], draws
        )
        timings.append((f"{kind} query", measures(browser, QK_TIMING)[-1]))
        rows = check_qk_view(browser, answers[kind], kind, layers, head, query)
        masked = [j for j, r in enumerate(rows) if r["masked"]]
        assert masked == (list(range(query + 1, len(rows))) if kind == "decoder_self" else [])
        if kind == "decoder_self":
            assert "look-ahead" in rows[-1]["mask"]
            if os.environ.get("EXPLORER_QK_SCREENSHOT"):
                save_panel(browser, "qk-panel", os.environ["EXPLORER_QK_SCREENSHOT"])
    # hovering a key highlights its row, across every column
    row = browser.find_elements(By.CSS_SELECTOR, "#qk-table tbody tr")[1]
    ActionChains(browser).move_to_element(row.find_element(By.CSS_SELECTOR, ".dot")).perform()
    assert "hl" in row.get_attribute("class")
    assert browser.find_elements(By.CSS_SELECTOR, "#qk-table tbody tr.hl") == [row]
    assert view_of(browser.current_url)["kind"] == "encoder_self"
    assert parse_qs(urlparse(browser.current_url).query)["query"] == [str(query + 1)]
    print(
        f"query-and-keys view, click to drawing, {run.run_dir}: "
        + "; ".join(f"{name} {t['clickToDrawingMs']:.0f} ms" for name, t in timings),
        file=sys.stderr,
    )
    assert all(t["fetched"] == name.endswith("(fetch)") for name, t in timings)


# ---------------------------------------------------------------- the Decoding panel

VIRIDIS = [(68, 1, 84), (71, 44, 122), (59, 81, 139), (44, 113, 142), (33, 144, 141), (39, 173, 129)]
VIRIDIS += [(92, 200, 99), (170, 220, 50), (253, 231, 37)]


def viridis(t):
    """matplotlib's viridis at 9 points, linearly interpolated: what a heat map pixel should be."""
    t = min(1.0, max(0.0, t)) * (len(VIRIDIS) - 1)
    i = min(int(t), len(VIRIDIS) - 2)
    return [c + (t - i) * (d - c) for c, d in zip(VIRIDIS[i], VIRIDIS[i + 1])]


def heat_map_pixels(driver, layer, head):
    """The small heat map of (layer, head) in the model view: rows x cols x RGB, one pixel a weight."""
    return driver.execute_script(
        """const c = document.querySelector(`#model-view canvas[data-layer="${arguments[0]}"]`
                                            + `[data-head="${arguments[1]}"]`);
           const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data, rows = [];
           for (let r = 0; r < c.height; r++) {
             const row = [];
             for (let k = 0; k < c.width; k++) row.push([...d.slice(4 * (r * c.width + k), 4 * (r * c.width + k) + 3)]);
             rows.push(row);
           }
           return rows;""",
        layer,
        head,
    )


def assert_heat_map(driver, matrix, layer, head):
    """The model view's map of (layer, head) is ``matrix`` (the API's weights) in viridis, scaled to its max."""
    pixels = heat_map_pixels(driver, layer, head)
    assert (len(pixels), len(pixels[0])) == (len(matrix), len(matrix[0]))
    top = max(max(row) for row in matrix) or 1
    for got_row, row in zip(pixels, matrix):
        for got, w in zip(got_row, row):
            assert got == pytest.approx(viridis(w / top), abs=1.01)


def pieces_text(pieces):
    """SentencePiece pieces as text, as the page sends a forced prefix."""
    return "".join(pieces).replace("\u2581", " ").strip()


def page_steps(driver):
    """The Decoding panel: per column, its candidates as (token, probability, chosen)."""
    return driver.execute_script(
        """return [...document.querySelectorAll('#decoding-steps .step')].map(s =>
             [...s.querySelectorAll('.candidate:not(.outside)')].map(b =>
               [b.dataset.token, Number(b.dataset.prob), b.classList.contains('chosen')]))"""
    )


def test_decoding_panel_forces_an_alternative(server, browser):
    """The panel shows the API's candidates per step; clicking one forces it: the page shows the
    API's translation for that prefix, and the heat maps and query-and-keys view redraw for it."""
    base, run = server
    layers, heads = run.config["num_layers"], run.config["num_heads"]
    sentence = "Tom is happy." if run.direction.startswith("en") else DEMO_SPANISH
    first = api(base, sentence, run.direction, alternatives=5)
    view = {"text": sentence, "direction": run.direction, "kind": "cross", "layer": layers, "head": heads}
    browser.get(f"{base}/?{urlencode(view)}")
    wait_for_drawing(browser, 1)
    steps = first["decoding"]["steps"]
    assert page_steps(browser) == [
        [[c["token"], c["prob"], c["id"] == s["id"]] for c in s["candidates"]] for s in steps
    ]
    assert not browser.find_elements(By.CSS_SELECTOR, "#decoding-steps .step.forced")
    # the closest call: the most likely candidate that was not chosen and is text (not </s>)
    _, step, rank = max(
        (c["prob"], s["step"], r)
        for s in steps
        for r, c in enumerate(s["candidates"], 1)
        if c["id"] != s["id"] and not (c["token"].startswith("<") and c["token"].endswith(">"))
    )
    if os.environ.get("EXPLORER_DECODING_SCREENSHOT"):  # the candidates, before forcing one
        hover = f'#decoding-steps .candidate[data-step="{step}"][data-rank="{rank}"]'
        save_panel(browser, "decoding-panel", os.environ["EXPLORER_DECODING_SCREENSHOT"], hover)
    candidate = steps[step]["candidates"][rank - 1]
    prefix = pieces_text([s["token"] for s in steps[:step]] + [candidate["token"]])
    button = browser.find_element(
        By.CSS_SELECTOR, f'#decoding-steps .candidate[data-step="{step}"][data-rank="{rank}"]'
    )
    assert button.tag_name == "button" and "force it" in button.get_attribute("aria-label")
    button.click()
    wait_for_drawing(browser, 2)
    forced = api(
        base, sentence, run.direction, {"kind": "cross", "layer": layers}, prefix=prefix, alternatives=5
    )
    assert forced["decoding"]["prefix_tokens"], prefix
    assert browser.find_element(By.ID, "translation").text == forced["translation"]
    assert browser.find_element(By.ID, "forced-text").text == pieces_text(forced["decoding"]["prefix_tokens"])
    assert parse_qs(urlparse(browser.current_url).query)["prefix"] == [prefix]
    loaded, clicked = measures(browser)
    assert clicked["prefix"] == prefix and loaded["prefix"] == ""
    print(
        f"\nDecoding panel, {run.run_dir}: {sentence!r} drawn {loaded['clickToDrawingMs']:.0f} ms after the "
        f"request started (model {loaded['serverSeconds'] * 1000:.0f} ms); forcing {prefix!r}: "
        f"{clicked['clickToDrawingMs']:.0f} ms click to drawing (model {clicked['serverSeconds'] * 1000:.0f} ms), "
        f"{clicked['clickToDrawingMs'] / loaded['clickToDrawingMs']:.2f}x the first",
        file=sys.stderr,
    )
    # every view redrew for the forced translation: candidates, heat maps, head view, query and keys
    assert page_steps(browser) == [
        [[c["token"], c["prob"], c["id"] == s["id"]] for c in s["candidates"]]
        for s in forced["decoding"]["steps"]
    ]
    n_forced = sum(s["forced"] for s in forced["decoding"]["steps"])
    assert n_forced == len(forced["decoding"]["prefix_tokens"])
    assert len(browser.find_elements(By.CSS_SELECTOR, "#decoding-steps .step.forced")) == n_forced
    for layer in range(layers):
        for head in range(heads):
            assert_heat_map(browser, forced["attention"]["cross"][layer][head], layer, head)
    left = [b.text for b in browser.find_elements(By.CSS_SELECTOR, "#left-tokens .token .text")]
    assert left == [t.replace("\u2581", "\u00b7") or "\u2205" for t in forced["target_tokens"]]
    query = min(1, len(forced["target_tokens"]) - 1)
    Select(browser.find_element(By.ID, "qk-query")).select_by_value(str(query))
    check_qk_view(browser, forced, "cross", layers, heads - 1, query)
    # keyboard: the focus is back on the forced column, the candidates' one Tab stop; the arrow
    # keys move to the next column and down its candidates, Enter forces the one reached
    stops = browser.find_elements(By.CSS_SELECTOR, '#decoding-steps .candidate[tabindex="0"]')
    assert len(stops) == 1 and stops[0].get_attribute("data-step") == str(step)
    assert browser.switch_to.active_element == stops[0]
    following = forced["decoding"]["steps"][step + 1]
    stops[0].send_keys(Keys.ARROW_RIGHT)
    for _ in range(len(following["candidates"])):
        focused = browser.switch_to.active_element
        assert (
            focused.get_attribute("data-step") == str(step + 1) and focused.get_attribute("tabindex") == "0"
        )
        if "chosen" not in focused.get_attribute("class") and not focused.get_attribute("aria-disabled"):
            break
        focused.send_keys(Keys.ARROW_DOWN)
    token = focused.get_attribute("data-token")
    again = pieces_text([s["token"] for s in forced["decoding"]["steps"][: step + 1]] + [token])
    focused.send_keys(Keys.ENTER)
    wait_for_drawing(browser, 3)
    third = measures(browser)[-1]
    assert third["prefix"] == again
    print(
        f"forcing {again!r} (a second forced request): {third['clickToDrawingMs']:.0f} ms click to drawing "
        f"(model {third['serverSeconds'] * 1000:.0f} ms)",
        file=sys.stderr,
    )
    assert (
        browser.find_element(By.ID, "translation").text
        == api(base, sentence, run.direction, prefix=again)["translation"]
    )
    # fewer candidates per step: the same forced translation asked again with "alternatives": 3
    Select(browser.find_element(By.ID, "alternatives")).select_by_value("3")
    wait_for_drawing(browser, 4)
    three = api(base, sentence, run.direction, prefix=again, alternatives=3)
    assert measures(browser)[-1]["prefix"] == again
    assert page_steps(browser) == [
        [[c["token"], c["prob"], c["id"] == s["id"]] for c in s["candidates"]]
        for s in three["decoding"]["steps"]
    ]
    assert all(len(column) == 3 for column in page_steps(browser))
    browser.find_element(By.ID, "unforce").click()  # back to the model's own choice
    wait_for_drawing(browser, 5)
    assert browser.find_element(By.ID, "translation").text == first["translation"]
    assert "prefix" not in parse_qs(urlparse(browser.current_url).query)


def test_beam_tree(server, browser):
    """With beam 3 the panel's beam tree lists the API's finished hypotheses in rank order, draws
    every node (pruned ones faded) with its numbers in a <title>, and follows a hypothesis's path."""
    base, run = server
    sentence = "Tom is happy." if run.direction.startswith("en") else DEMO_SPANISH
    answer = api(base, sentence, run.direction, beam=3, alternatives=5, beam_tree=True)
    tree = answer["beam_tree"]
    browser.get(f"{base}/?{urlencode({'text': sentence, 'direction': run.direction, 'beam': 3})}")
    wait_for_drawing(browser, 1)
    box = browser.find_element(By.ID, "beam-tree-box")
    assert box.is_displayed() and box.get_attribute("open") is None
    browser.find_element(By.ID, "beam-tree-summary").click()
    assert box.get_attribute("open") == "true"
    rows = browser.find_elements(By.CSS_SELECTOR, "#beam-finished li")
    finished = sorted(tree["finished"], key=lambda f: f["rank"])
    assert [
        (r.find_element(By.CSS_SELECTOR, ".rank").text, r.find_element(By.CSS_SELECTOR, ".score").text)
        for r in rows
    ] == [(f"#{f['rank']}", f"{f['score']:.4f}") for f in finished]
    assert [r.find_element(By.CSS_SELECTOR, ".text").text for r in rows] == [f["text"] for f in finished]
    chosen = [r for r, f in zip(rows, finished) if f["chosen"]]
    assert len(chosen) == 1 and "chosen" in chosen[0].get_attribute("class")
    nodes = browser.find_elements(By.CSS_SELECTOR, "#beam-tree g.node")
    by_id = {n["id"]: n for n in tree["nodes"]}
    assert sorted(int(n.get_attribute("data-node")) for n in nodes) == sorted(by_id)
    for n in nodes:
        node = by_id[int(n.get_attribute("data-node"))]
        assert node["status"] in n.get_attribute("class").split()
        title = n.find_element(By.TAG_NAME, "title").get_attribute("textContent")
        assert f"score {node['score']:.4f}" in title and f"log p {node['logprob']:.4f}" in title
    pruned = [n for n in tree["nodes"] if n["status"] == "pruned"]
    assert len(browser.find_elements(By.CSS_SELECTOR, "#beam-tree g.node.pruned")) == len(pruned)
    # hovering (or focusing) a finished hypothesis highlights its path, root to leaf
    last = finished[-1]
    path, node = [], last["node"]
    while node is not None:
        path.append(node)
        node = by_id[node]["parent"]
    ActionChains(browser).move_to_element(rows[-1]).perform()
    lit = browser.find_elements(By.CSS_SELECTOR, "#beam-tree g.node.highlight")
    assert sorted(int(n.get_attribute("data-node")) for n in lit) == sorted(path)
    if os.environ.get("EXPLORER_BEAM_TREE_SCREENSHOT"):
        save_panel(
            browser,
            "decoding-panel",
            os.environ["EXPLORER_BEAM_TREE_SCREENSHOT"],
            "#beam-finished li:last-child",
        )
    assert browser.find_element(By.ID, "translation").text == answer["translation"]
