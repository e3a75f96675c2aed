"""The wheel installs like any other package: built from the checkout, installed (not editable)
into a fresh folder outside it, and used from another working directory, it translates with
the shipped models, draws heat maps and serves the explorer's page and API. The wheel holds
only the project's packages at the top level, with the shipped models and the page inside."""

import json
import os
import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from urllib.request import Request, urlopen

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {"transformer", "embeddings", "lstm", "tutorials_common"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    build = tmp_path_factory.mktemp("build")  # build from a copy: nothing is written into the checkout
    files = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    for name in filter(None, files):
        src = ROOT / name.decode()
        if src.is_file():
            dest = build / name.decode()
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(src.read_bytes())
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            ".",
        ],
        cwd=build,
        check=True,
        timeout=300,
    )
    (path,) = out.glob("*.whl")
    return path


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory):
    """(target folder, environment whose PYTHONPATH puts the installed copy first, a work folder)."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True,
        timeout=300,
    )
    cache = tmp_path_factory.mktemp("cache")  # the CTranslate2 engine's conversions of the shipped models
    env = {**os.environ, "PYTHONPATH": str(target), "CUDA_VISIBLE_DEVICES": "", "XDG_CACHE_HOME": str(cache)}
    return target, env, tmp_path_factory.mktemp("elsewhere")


def test_wheel_holds_only_the_project_packages_with_models_and_page(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert top == PACKAGES
    for direction in ("en-es", "es-en"):
        for file in ("weights.npz", "config.json", "tokenizer_shared.model", "SHA256SUMS"):
            assert f"transformer/pretrained/{direction}/{file}" in names
    for file in ("index.html", "app.js", "style.css"):
        assert f"transformer/serve/static/{file}" in names
    assert not any(n.startswith(("tests/", "tools/", "docs/")) for n in names)


def test_installed_copy_is_the_one_imported(installed):
    target, env, elsewhere = installed
    out = subprocess.run(
        [sys.executable, "-c", "import transformer, tutorials_common; print(transformer.__file__)"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert Path(out.strip()).is_relative_to(target)


def run_installed(env, cwd, *argv):
    return subprocess.run(
        [sys.executable, "-m", "transformer", *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_installed_translate_and_heatmaps(installed):
    target, env, elsewhere = installed
    r = run_installed(
        env, elsewhere, "translate", "--direction", "en-es", "Hello.", "He is a great director."
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["Hola.", "Él es un gran director."]
    r = run_installed(
        env, elsewhere, "heatmaps", "--direction", "es-en", "--sentence", "Hola.", "--out", "maps"
    )
    assert r.returncode == 0, r.stderr
    assert len(list((elsewhere / "maps").rglob("*.png"))) >= 4


def test_installed_translate_runs_on_ctranslate2_without_tensorflow(installed):
    """The default engine converts the shipped model into the user cache (site-packages stays as
    installed), imports no TensorFlow, and prints what the Keras path prints."""
    target, env, elsewhere = installed
    sentences = ["Él la admiraba como una gran directora.", "", "Tengo 345 gatos."]
    code = (
        "import sys; from tutorials_common import cliutil; from transformer.__main__ import main\n"
        "try:\n    cliutil.run(main, sys.argv[1:])\n"
        "finally:\n    print('tensorflow' in sys.modules, file=sys.stderr)\n"
    )
    args = ["translate", "--direction", "es-en", "--beam", "4", *sentences]
    r = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0 and r.stderr.splitlines()[-1] == "False", r.stderr
    keras = run_installed(env, elsewhere, *args, "--engine", "tensorflow")
    assert keras.returncode == 0, keras.stderr
    assert r.stdout == keras.stdout and r.stdout.splitlines()[1] == ""
    cache = Path(env["XDG_CACHE_HOME"]) / "transformer-tutorials" / "ctranslate2" / "es-en"
    assert [p.name for p in cache.iterdir()] and not list(target.rglob("*ctranslate2*/manifest.json"))


def test_installed_serve_page_and_api(installed):
    target, env, elsewhere = installed
    server = subprocess.Popen(
        [sys.executable, "-m", "transformer", "serve", "--port", "0"],
        cwd=elsewhere,
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    try:
        deadline, url = time.monotonic() + 600, None  # start-up compiles the decoder shapes
        while url is None and time.monotonic() < deadline:
            line = server.stderr.readline()
            if not line and server.poll() is not None:
                break
            found = re.search(r"(http://[\w.\[\]:]+/)", line)
            url = found.group(1) if found else None
        assert url, "the server never said where it listens"
        page = urlopen(url, timeout=30).read().decode()
        assert "<html" in page.lower() and "app.js" in page
        request = Request(
            url + "api/translate",
            data=json.dumps({"text": "Hello.", "direction": "en-es"}).encode(),
            headers={"Content-Type": "application/json"},
        )
        answer = json.loads(urlopen(request, timeout=60).read())
        assert answer["translation"] == "Hola."
        # the LSTM circuit page on the same server: its static files and models are package data
        assert "circuit.js" in urlopen(url + "lstm/", timeout=30).read().decode()
        assert b"drawDiagram" in urlopen(url + "lstm/static/diagram.js", timeout=30).read()
        body = json.dumps({"variant": "FGR", "sequence": [0.5, -1.0]}).encode()
        run = Request(url + "api/lstm/run", data=body, headers={"Content-Type": "application/json"})
        lstm = json.loads(urlopen(run, timeout=60).read())
        assert lstm["variant"] == "FGR" and len(lstm["forward"]["y"]) == 2
        assert max(lstm["autodiff"].values()) < 1e-6
    finally:
        server.terminate()
        server.wait(timeout=30)
