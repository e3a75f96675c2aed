"""The LSTM circuit page (lstm/static/) in headless Chromium, driven by Selenium against the
explorer's server (waitress) on a free localhost port, as tests/transformer/test_browser.py does.

It moves the time slider with the keyboard, reads every wire's value off both drawings and
compares it with the API, switches to the backward view and reads the errors, hovers a wire for
its numbers, switches variant, types a sequence, and checks a bad one is reported. No translator
is loaded: the page needs none. EXPLORER_REQUIRE_BROWSER=1 makes a missing browser an error
instead of a skip; LSTM_CIRCUIT_SCREENSHOT=PREFIX saves PREFIX-forward.png and PREFIX-backward.png.
"""

import json
import os
import shutil
from pathlib import Path
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

from lstm import circuit  # noqa: E402
from transformer.serve import app as serve  # noqa: E402

TIMEOUT = 60


@pytest.fixture(scope="module")
def base():
    server = serve.serve_in_thread(serve.create_app({"en-es": "no translator is needed for /lstm/"}))
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture(scope="module")
def browser(tmp_path_factory, chromium_options):
    options = chromium_options(CHROMIUM, tmp_path_factory.mktemp("chromium-profile"), "1400,1350")
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(TIMEOUT)
    yield driver
    driver.quit()


def api(base, variant, sequence):
    body = json.dumps({"variant": variant, "sequence": sequence}).encode()
    request = Request(f"{base}/api/lstm/run", body, {"Content-Type": "application/json"})
    with urlopen(request, timeout=TIMEOUT) as response:
        return json.loads(response.read())


def wait_ready(driver, count):
    WebDriverWait(driver, TIMEOUT).until(
        lambda d: (
            d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == str(count)
            or "error" in d.find_element(By.ID, "status").get_attribute("class")
        )
    )
    status = driver.find_element(By.ID, "status")
    assert "error" not in status.get_attribute("class"), status.text


def page_values(driver, diagram):
    """{wire: [value or None per unit]} read off the cells of one drawing."""
    cells = driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map("
        "(r) => [r.dataset.wire, Number(r.dataset.unit), r.dataset.value]);",
        f"#{diagram} rect.cell",
    )
    out = {}
    for wire, unit, value in cells:
        out.setdefault(wire, []).append(None)
        out[wire][unit] = float(value) if value != "" else None
    return out


def expected(answer, view, t):
    """{wire: values at step t} as the page should show them (None where it shows none)."""
    if view == "forward":
        values = {k: (v[t] if v is not None else None) for k, v in answer["forward"].items()}
    else:
        values = {k: (v[t] if v is not None else None) for k, v in answer["backward"].items()}
        values["c_prev"] = answer["backward"]["c"][t - 1] if t > 0 else None
        values["y_prev"] = answer["backward"]["y"][t - 1] if t > 0 else None
    values["x"] = [answer["x"][t]]
    return values


def check_drawings(driver, answer, view, t):
    want, checked = expected(answer, view, t), 0
    for diagram in ("circuit", "odyssey"):
        for wire, values in page_values(driver, diagram).items():
            target = want.get(wire)
            if target is None:
                assert all(v is None for v in values), (diagram, wire)
            else:
                assert values == target, (diagram, view, wire, t)  # exact: the page shows the API's float
                checked += 1
    assert checked >= 20
    label = driver.find_element(By.ID, "time-label").text
    assert label == f"t = {t + 1} of {len(answer['x'])}"


def test_slider_views_variants_and_typed_numbers(base, browser):
    driver = browser
    driver.get(f"{base}/lstm/")
    wait_ready(driver, 1)
    answer = api(base, "V", "first positive")
    check_drawings(driver, answer, "forward", 0)

    slider = driver.find_element(By.ID, "time")  # keyboard: the slider moves with the arrow keys
    slider.send_keys(Keys.RIGHT, Keys.RIGHT, Keys.RIGHT)
    check_drawings(driver, answer, "forward", 3)
    slot = driver.find_element(By.CSS_SELECTOR, "#circuit .slot[data-wire='c']")
    ActionChains(driver).move_to_element(slot).perform()
    tip = driver.find_element(By.ID, "tip")
    assert tip.is_displayed() and tip.text.startswith("c(t=4) = [")
    assert f"{answer['forward']['c'][3][0]:.4g}"[:5] in tip.text
    if os.environ.get("LSTM_CIRCUIT_SCREENSHOT"):
        driver.save_screenshot(os.environ["LSTM_CIRCUIT_SCREENSHOT"] + "-forward.png")

    driver.find_element(By.CSS_SELECTOR, "input[name=view][value=backward]").click()
    check_drawings(driver, answer, "backward", 3)
    slider.send_keys(Keys.LEFT)
    check_drawings(driver, answer, "backward", 2)
    routes = driver.find_elements(By.CSS_SELECTOR, "#circuit path.wire.route")
    assert {r.get_attribute("id") for r in routes} >= {"circuit-hw_out", "circuit-h_in", "circuit-y_out"}
    delta = driver.find_element(By.ID, "route-delta").text  # the routes' table ends with bptt's delta c
    shown = driver.execute_script(
        "return arguments[0].map((v) => v.toPrecision(4))", answer["backward"]["c"][2]
    )
    assert delta == f"[{', '.join(shown)}]"
    Select(driver.find_element(By.ID, "route-var")).select_by_value("f")
    routes = driver.find_elements(By.CSS_SELECTOR, "#circuit path.wire.route")
    assert {r.get_attribute("id") for r in routes} == {"circuit-f_wire", "circuit-hw_in", "circuit-hw_mid"}
    if os.environ.get("LSTM_CIRCUIT_SCREENSHOT"):
        Select(driver.find_element(By.ID, "route-var")).select_by_value("c")
        driver.save_screenshot(os.environ["LSTM_CIRCUIT_SCREENSHOT"] + "-backward.png")

    rows = driver.find_elements(By.CSS_SELECTOR, "#grads tbody tr")
    assert [r.get_attribute("data-param") for r in rows] == list(answer["gradients"])
    for row in rows:
        shown = float(row.find_element(By.CSS_SELECTOR, "td.rel").text)
        assert shown == pytest.approx(
            answer["autodiff"][row.get_attribute("data-param")], rel=0.01, abs=1e-300
        )
        assert shown < 1e-6

    Select(driver.find_element(By.ID, "variant")).select_by_value("CIFG")  # switching variant runs it
    wait_ready(driver, 2)
    assert driver.find_element(By.TAG_NAME, "body").get_attribute("data-variant") == "CIFG"
    cifg = api(base, "CIFG", "first positive")
    check_drawings(driver, cifg, "backward", 2)
    driver.find_element(By.CSS_SELECTOR, "input[name=view][value=forward]").click()
    check_drawings(driver, cifg, "forward", 2)
    f_sum = driver.find_element(By.ID, "circuit-f_sum")  # CIFG has no forget gate of its own
    assert not f_sum.is_displayed()

    typed = driver.find_element(By.ID, "numbers")
    typed.send_keys("-0.5, 1, 2.5")
    driver.find_element(By.ID, "run").click()
    wait_ready(driver, 3)
    check_drawings(driver, api(base, "CIFG", [-0.5, 1, 2.5]), "forward", 2)
    typed.clear()
    assert driver.get_log("browser") == []  # no script errors on the way
    typed.send_keys("1, abc")
    driver.find_element(By.ID, "run").click()
    WebDriverWait(driver, TIMEOUT).until(
        lambda d: "error" in d.find_element(By.ID, "status").get_attribute("class")
    )
    assert "numbers only, not str" in driver.find_element(By.ID, "status").text
    typed.clear()
    typed.send_keys(", ".join(["1"] * (circuit.MAX_LENGTH + 1)))
    driver.find_element(By.ID, "run").click()
    WebDriverWait(driver, TIMEOUT).until(lambda d: "the limit is" in d.find_element(By.ID, "status").text)


def test_chain_rule_routes_sum_to_the_errors_in_every_variant(base, browser):
    """For every variant, step and error, the page's route terms (computed in JavaScript from the
    forward values, the parameters and the next step's errors) add up to lstm/bptt.py's error."""
    driver = browser
    driver.get_log("browser")  # drop what earlier tests left (their deliberate 400s)
    driver.get(f"{base}/lstm/")
    wait_ready(driver, 1)
    driver.find_element(By.CSS_SELECTOR, "input[name=view][value=backward]").click()
    for count, variant in enumerate(circuit.VARIANTS, start=1):
        if variant != "V":
            Select(driver.find_element(By.ID, "variant")).select_by_value(variant)
            wait_ready(driver, count)
        answer = api(base, variant, "first positive")
        for name in ("c", "y", "o", "f", "i", "z"):
            Select(driver.find_element(By.ID, "route-var")).select_by_value(name)
            for t in range(len(answer["x"])):
                driver.execute_script(
                    "const s = document.getElementById('time'); s.value = arguments[0];"
                    "s.dispatchEvent(new Event('input'));",
                    t + 1,
                )
                text = driver.find_element(By.ID, "routes").text
                if answer["backward"][name] is None:
                    assert f"{variant} has no {name}" in text
                    continue
                error = float(text.rsplit("= ", 1)[1])
                scale = max(abs(v) for v in answer["backward"][name][t])
                assert error <= 1e-12 * max(scale, 1e-300), (variant, name, t, text)
    assert driver.get_log("browser") == []
