"""The attention explorer in a real browser: headless Chromium (Debian's `chromium` and
`chromium-driver`; `.ci/run` installs them) driven by Selenium against `serve` on a free
localhost port with a tiny 2-layer model.

It types a sentence, presses Translate, waits for the drawing, checks the translation
against the API, switches head and layer, hovers a token and reads a weight, and loads
the page's shared URL in a fresh load to check it restores the same view. The page's
click-to-drawing time (`window.explorer.timings`, from `performance.now()`) is printed
(`pytest -s` shows it).

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
SPANISH_15_WORDS = "Mi hermano y yo fuimos ayer al mercado para comprar fruta fresca, pan y leche."
TIMEOUT = 60


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
def browser(tmp_path_factory):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1400,1300",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(flag)
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


def api(base, text, direction, vectors=None, sizes=None):
    """The API's answer; ``sizes`` (a list) gets (request bytes, response bytes) appended."""
    payload = {"text": text, "direction": direction, **({"vectors": vectors} if vectors else {})}
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()  # as the page sends it
    request = Request(f"{base}/api/translate", body, {"Content-Type": "application/json"})
    with urlopen(request, timeout=TIMEOUT) as response:
        raw = response.read()
    if sizes is not None:
        sizes.append((len(body), len(raw)))
    return json.loads(raw)


def wait_for_drawing(driver, count):
    WebDriverWait(driver, TIMEOUT).until(
        lambda d: (
            d.execute_script("return window.explorer && window.explorer.draws") == count
            or d.find_element(By.ID, "status").get_attribute("class") == "error"
        )
    )
    assert "error" not in driver.find_element(By.ID, "status").get_attribute("class"), driver.find_element(
        By.ID, "status"
    ).text


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
    clicks = []
    for count, sentence in enumerate(SENTENCES_15_WORDS, 1):  # a new sentence each time, as a user would
        assert len(sentence.split()) == 15
        box.clear()
        box.send_keys(sentence)
        browser.find_element(By.ID, "translate").click()
        wait_for_drawing(browser, count)
        clicks.append(browser.execute_script("return window.explorer.timings"))
    measured = browser.execute_script(
        "return performance.getEntriesByName('explorer-click-to-drawing').map(e => e.duration)"
    )
    assert len(measured) == 3 and all(abs(m - t["clickToDrawingMs"]) < 5 for m, t in zip(measured, clicks))
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
        lambda d: (
            d.execute_script("return window.explorer.qk.draws") > draws
            or d.find_element(By.ID, "qk-status").text.startswith("Error")
        )
    )
    assert not driver.find_element(By.ID, "qk-status").text.startswith("Error")
    return driver.execute_script("return window.explorer.qk.draws")


def pick(driver, select_id, wanted, draws):
    """Choose option ``wanted`` (or the next one, if it is already chosen: a user's change) of
    a query-and-keys select and wait for the drawing; returns (the option, the draw count)."""
    select = Select(driver.find_element(By.ID, select_id))
    n, current = len(select.options), int(select.first_selected_option.get_attribute("value"))
    value = min(wanted, n - 1) if min(wanted, n - 1) != current else (current + 1) % n
    assert value != current, f"{select_id} has one option only"
    select.select_by_value(str(value))
    return value, wait_for_qk(driver, draws)


def save_panel(driver, element_id, path):
    """A PNG of the whole element, a key row hovered (the DevTools capture goes beyond the
    window, which an element screenshot does not)."""
    ActionChains(driver).move_to_element(
        driver.find_elements(By.CSS_SELECTOR, "#qk-table tbody tr")[1]
    ).perform()
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
    draws = browser.execute_script("return window.explorer.qk.draws")
    assert draws >= 1 and answer["translation"] == answers["cross"]["translation"]
    timings = []
    for kind in ("decoder_self", "cross", "encoder_self"):
        if kind != "decoder_self":  # a new kind: the page fetches that layer's vectors
            Select(browser.find_element(By.ID, "kind")).select_by_value(kind)
            draws = wait_for_qk(browser, draws)
            timings.append((f"{kind} (fetch)", browser.execute_script("return window.explorer.qk.timings")))
        head, draws = pick(browser, "qk-head", heads - 1, draws)
        timings.append((f"{kind} head", browser.execute_script("return window.explorer.qk.timings")))
        query, draws = pick(
            browser, "qk-query", {"decoder_self": 4, "cross": 2, "encoder_self": 3}[kind], draws
        )
        timings.append((f"{kind} query", browser.execute_script("return window.explorer.qk.timings")))
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
