"""The demo app through its HTTP API, and once end to end in a real headless Chromium."""

from __future__ import annotations

import shutil
import socket

import numpy as np
import pytest
from PIL import Image

from polyp_sam_hf.demo_app import add_corner, build_app, parse_boxes
from polyp_sam_hf.inference import PolypSegmenter

gradio_client = pytest.importorskip("gradio_client")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(micro_checkpoint):
    app = build_app(PolypSegmenter.from_pretrained(str(micro_checkpoint), device="cpu"))
    port = _free_port()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{port}/"
    app.close()


@pytest.fixture
def frame(samples_root):
    return samples_root / "pranet" / "TestDataset" / "ETIS-LaribPolypDB" / "images" / "135.png"


def test_two_clicks_make_a_box():
    pending, text = add_corner(None, "", 200, 50)
    assert pending == [200, 50] and text == ""
    pending, text = add_corner(pending, text, 40, 180)
    assert pending is None and text == "40,50,200,180"
    assert parse_boxes(add_corner([1, 2], text, 9, 9)[1]) == [[40, 50, 200, 180], [1, 2, 9, 9]]
    with pytest.raises(ValueError, match="at least one box"):
        parse_boxes("  ")


def test_http_api_segments_a_real_frame(server, frame):
    client = gradio_client.Client(server, verbose=False)
    overlay_path, mask_path = client.predict(gradio_client.handle_file(str(frame)),
                                             "100,100,200,220; 300,50,400,120", api_name="/segment")
    overlay, mask = Image.open(overlay_path), Image.open(mask_path)
    assert overlay.size == mask.size == (512, 512)
    assert set(np.unique(np.asarray(mask))) <= {0, 255}
    # the cyan box outline is drawn on the overlay where the box is
    assert tuple(np.asarray(overlay.convert("RGB"))[100, 150]) == (0, 255, 255)


def test_http_api_reports_a_bad_box(server, frame):
    client = gradio_client.Client(server, verbose=False)
    with pytest.raises(Exception, match="outside"):
        client.predict(gradio_client.handle_file(str(frame)), "100,100,900,220", api_name="/segment")


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_browser_end_to_end(server, frame, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page()
        page.goto(server)
        page.locator("#frame input[type=file]").set_input_files(str(frame))
        page.locator("#frame img").first.wait_for(timeout=60_000)
        page.locator("#boxes textarea").fill("100,100,200,220")
        page.locator("#segment").click()
        result = page.locator("#overlay img").first
        result.wait_for(timeout=120_000)
        width = page.wait_for_function(
            "() => { const i = document.querySelector('#overlay img'); return i && i.naturalWidth; }",
            timeout=60_000).json_value()
        page.screenshot(path=str(tmp_path / "app.png"), full_page=True)
        src = result.get_attribute("src")
        body = page.request.get(src).body()
        browser.close()
    assert width == 512
    (tmp_path / "overlay.png").write_bytes(body)
    overlay = np.asarray(Image.open(tmp_path / "overlay.png").convert("RGB"))
    assert overlay.shape == (512, 512, 3)
    assert tuple(overlay[100, 150]) == (0, 255, 255)  # the box the browser typed is on the overlay
