"""`rewardlab report`: a static HTML page over runs and sweeps, checked in a real headless Chromium (Debian's
chromium + chromedriver): the page renders (the screenshot is not blank) and every image it references loads."""

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from rewardlab.cli import main

REQUIRE = os.environ.get("REWARDLAB_REQUIRE_EXTRAS") == "1"
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and DRIVER):
        if REQUIRE:
            pytest.fail("chromium and chromedriver are needed (apt-get install chromium chromium-driver)")
        pytest.skip("no chromium/chromedriver")
    if not REQUIRE:
        pytest.importorskip("selenium")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,1600",
        "--allow-file-access-from-files",
    ]:
        opts.add_argument(a)
    d = webdriver.Chrome(service=Service(DRIVER), options=opts)
    yield d
    d.quit()


def _open(browser, page: Path, shot: Path) -> tuple[list, np.ndarray]:
    """Load the page from disk; return [src, loaded] of every <img> and the screenshot as an array."""
    from PIL import Image

    browser.get(page.resolve().as_uri())
    browser.execute_async_script(  # wait until every image has loaded or failed
        "const done = arguments[arguments.length - 1];"
        "Promise.all(Array.from(document.images).map(i => i.complete ? 0 : new Promise(r => {i.onload = r;"
        " i.onerror = r;}))).then(() => done());"
    )
    imgs = browser.execute_script(
        "return Array.from(document.images).map(i => [i.getAttribute('src'), i.complete && i.naturalWidth > 0]);"
    )
    browser.save_screenshot(str(shot))
    return imgs, np.asarray(Image.open(shot).convert("RGB"), dtype=float)


def _not_blank(px: np.ndarray) -> bool:
    return px.std() > 20 and len(np.unique(px.reshape(-1, 3), axis=0)) > 50


@pytest.mark.slow
def test_report_over_runs_and_a_sweep_renders_in_chromium(browser, sweep_run, irrl_digits_run, tmp_path):
    root = tmp_path / "all"
    shutil.copytree(sweep_run, root / "sweep")
    shutil.copytree(irrl_digits_run, root / "digits", ignore=shutil.ignore_patterns("data", "*.pt", "*.npz", "tb"))
    assert main(["report", str(root)]) == 0
    page = root / "report.html"
    text = page.read_text()
    assert "(sweep)" in text and "learner.lr=0.004" in text and "config.yaml" in text  # status of every run
    assert "IQM" in text and "95% CI" in text
    assert "test_accuracy" in text and "paper, ram" in text  # our number beside the paper's
    assert "<details><summary>config" in text
    # the overview first: a row per run whose study declares its paper's effect, with our number
    overview = text[text.index("<h2 id='overview'>") : text.index("<h2 id='sweep'>")]
    assert "RAM learns to classify digits" in overview and "60x60 canvas, 4 clutter" in overview

    imgs, px = _open(browser, page, tmp_path / "shot.png")
    assert len(imgs) >= 3  # the sweep's curve and the digits run's figures
    assert all(ok for _, ok in imgs), [s for s, ok in imgs if not ok]
    assert _not_blank(px)

    # the check can fail: a figure removed after the page was written is caught as not loading
    first = root / imgs[0][0]
    first.unlink()
    imgs, _ = _open(browser, page, tmp_path / "shot2.png")
    assert [s for s, ok in imgs if not ok] == [imgs[0][0]]


@pytest.mark.slow
def test_report_single_run_to_another_folder(browser, sweep_run, tmp_path):
    run = sweep_run / "learner.lr=0.004" / "seed0"
    out = tmp_path / "elsewhere" / "r.html"
    assert main(["report", str(run), "--output", str(out)]) == 0
    imgs, px = _open(browser, out, tmp_path / "s.png")
    assert imgs and all(ok for _, ok in imgs)  # relative paths from the page's own folder
    assert _not_blank(px)


def test_report_bad_input(tmp_path, capsys):
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert main(["report", str(tmp_path)]) == 2
    assert "holds no run" in capsys.readouterr().err
