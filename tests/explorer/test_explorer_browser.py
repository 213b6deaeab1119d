"""The explorer's page in a real headless Chromium (Playwright driving the system browser; nothing is downloaded):
pick an image, switch a channel off, upload a picture, refuse a non-image; any console error fails the test."""
import threading

import numpy as np
import pytest
from helpers import chromium_binary, image_file_bytes

from keras_latent.explorer.config import ExploreConfig
from keras_latent.explorer.server import create_server, url_of

CONV2 = '.layer[data-layer="conv2"]'


@pytest.fixture(scope="module")
def served(trained_run):
    """The URL of a real explorer server (waitress, a free port) on the tiny run."""
    server, explorer = create_server(trained_run, ExploreConfig(port=0))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield url_of("127.0.0.1", server.effective_port)
    server.close()
    explorer.close()


@pytest.fixture(scope="module")
def browser():
    executable = chromium_binary()
    if executable is None:
        pytest.skip("chromium not installed (apt-get install chromium; .ci/run does)")
    playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed (requirements.txt)")
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox", "--disable-gpu"])
        yield chromium
        chromium.close()


def test_the_page_switches_channels_and_classifies_uploads(served, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems = []
    page.on("console", lambda message: message.type == "error" and problems.append(message.text))
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.set_default_timeout(30_000)
    page.goto(served)
    page.wait_for_selector("body[data-ready=true]")

    page.click("#thumbnails .thumb >> nth=2")  # pick test image 2
    page.wait_for_selector(f'#view[data-image="test-2"] {CONV2} .tile[data-channel="0"]')
    before = page.get_attribute(f"{CONV2} .masked-reconstruction", "src")
    page.click(f'{CONV2} .tile[data-channel="0"]')  # switch channel 0 off
    page.wait_for_selector(f'{CONV2}[data-seq="1"]:not([data-pending])')
    assert page.get_attribute(f'{CONV2} .tile[data-channel="0"]', "aria-pressed") == "false"
    assert page.get_attribute(f"{CONV2}", "data-kept") == "15"
    assert page.get_attribute(f"{CONV2} .masked-reconstruction", "src") != before
    page.click(f'{CONV2} button[data-action="reset"]')
    page.wait_for_selector(f'{CONV2}[data-seq="2"]:not([data-pending])')
    assert page.get_attribute(f"{CONV2} .masked-reconstruction", "src") == before  # all on: the same image again

    picture = tmp_path / "photo.png"
    picture.write_bytes(image_file_bytes(np.random.default_rng(0).integers(0, 256, (90, 60, 3), dtype=np.uint8)))
    page.set_input_files("#upload", str(picture))
    page.wait_for_selector('#view[data-image^="upload-"]')
    values = page.locator("#probabilities .prob-value").all_inner_texts()
    assert len(values) == 10 and abs(sum(float(v) for v in values) - 1) < 0.06  # ten bars, rounded to 2 places
    assert page.locator("#uploads .thumb").count() == 1
    assert page.is_hidden("#error")
    assert problems == []

    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("this is text, not a picture")
    page.set_input_files("#upload", str(not_an_image))
    page.wait_for_selector("#error:not([hidden])")
    assert "not a PNG or JPEG" in page.inner_text("#error")
    assert all("status of 400" in text for text in problems) and len(problems) == 1  # the refused upload itself
    page.click(f'{CONV2} .tile[data-channel="1"]')  # the page and the server still work
    page.wait_for_selector(f'{CONV2}[data-seq="1"]:not([data-pending])')
    assert page.get_attribute(f"{CONV2}", "data-kept") == "15"
    page.close()
