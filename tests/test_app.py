"""The demo app through its HTTP API, and once end to end in a real headless Chromium."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from conftest import chromium_page, needs_chromium

from polyp_sam_hf.evaluation.figures import NEGATIVE_COLOUR, POSITIVE_COLOUR
from polyp_sam_hf.models.segmenter import PolypSegmenter
from polyp_sam_hf.publishing.gradio_demo import (
    LAUNCH_SETTINGS,
    MAX_PIXELS,
    add_click,
    add_corner,
    build_app,
    parse_boxes,
    parse_clicks,
    undo,
)

gradio_client = pytest.importorskip("gradio_client")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(micro_checkpoint):
    # the no-box buttons' endpoints are served only for a prompt-free model; these tests call them
    app = build_app(PolypSegmenter.from_pretrained(str(micro_checkpoint), device="cpu"), prompt_free=True)
    port = _free_port()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **LAUNCH_SETTINGS)
    yield f"http://127.0.0.1:{port}/"
    app.close()


@pytest.fixture(params=["generated", "real"])
def frame(request, tmp_path_factory):
    """A 512 x 512 frame: drawn by the library (so a clone without the real samples tests the app),
    and a real ETIS frame where the samples are present."""
    if request.param == "real":
        return request.getfixturevalue("samples_root") / "pranet" / "TestDataset" / "ETIS-LaribPolypDB" / "images" / "135.png"
    from polyp_sam_hf.data.synthetic import synth_frame

    image, _ = synth_frame(np.random.default_rng(1), height=512, width=512, num_polyps=2)
    path = tmp_path_factory.mktemp("frame") / "generated.png"
    Image.fromarray(image).save(path)
    return path


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
                                             "100,100,200,220; 300,50,400,120", "", api_name="/segment")
    overlay, mask = Image.open(overlay_path), Image.open(mask_path)
    assert overlay.size == mask.size == (512, 512)
    assert set(np.unique(np.asarray(mask))) <= {0, 255}
    # the cyan box outline is drawn on the overlay where the box is
    assert tuple(np.asarray(overlay.convert("RGB"))[100, 150]) == (0, 255, 255)


def test_clicks_text_adds_and_undo_takes_back_the_last_click_then_boxes():
    text = add_click(add_click("", 10, 20, 1), 30, 40, 0)
    assert text == "10,20,1; 30,40,0" and parse_clicks(text) == [(10, 20, 1), (30, 40, 0)]
    assert parse_clicks("5,6") == [(5, 6, 1)]  # a click without a label is on polyp
    with pytest.raises(ValueError, match="label is 1 .polyp. or 0"):
        parse_clicks("5,6,3")
    assert undo("1,1,9,9; 2,2,8,8", text) == ("1,1,9,9; 2,2,8,8", "10,20,1")
    assert undo("1,1,9,9; 2,2,8,8", "") == ("1,1,9,9", "")
    assert undo("", "") == ("", "")
    assert parse_boxes("", required=False) == []


def test_http_api_segments_from_clicks_alone_or_beside_a_box_and_draws_them(server, tmp_path):
    """Clicks alone segment, clicks beside a box too; each is drawn where it was made, in its label's
    colour; no prompt, or a click off the frame, is refused with the library's message."""
    client = gradio_client.Client(server, verbose=False)
    rng = np.random.default_rng(3)
    path = tmp_path / "frame.png"
    Image.fromarray(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(path)
    overlay_path, mask_path = client.predict(gradio_client.handle_file(str(path)), "", "40,50,1", api_name="/segment")
    overlay_rgb = np.asarray(Image.open(overlay_path).convert("RGB"))
    assert Image.open(mask_path).size == (128, 96)
    assert tuple(overlay_rgb[50, 40]) == POSITIVE_COLOUR  # the click is drawn where it was made: on polyp
    _, with_box = client.predict(gradio_client.handle_file(str(path)), "10,10,90,80", "40,50,1; 60,30,0",
                                 api_name="/segment")
    overlay_rgb = np.asarray(Image.open(_).convert("RGB"))
    assert tuple(overlay_rgb[30, 60]) == NEGATIVE_COLOUR  # not polyp
    with pytest.raises(Exception, match="Draw or type at least one box"):
        client.predict(gradio_client.handle_file(str(path)), "", "", api_name="/segment")
    with pytest.raises(Exception, match="lies outside the uploaded frame"):
        client.predict(gradio_client.handle_file(str(path)), "", "400,50,1", api_name="/segment")


def test_http_api_reports_a_bad_box(server, frame):
    client = gradio_client.Client(server, verbose=False)
    with pytest.raises(Exception, match="outside"):
        client.predict(gradio_client.handle_file(str(frame)), "100,100,900,220", "", api_name="/segment")


def test_http_api_refuses_an_oversized_frame_before_decoding_it(server, tmp_path, monkeypatch):
    """A 5000 x 5000 frame (a 30 kB PNG) is refused with its size named, from its header alone."""
    big = tmp_path / "big.png"
    Image.new("RGB", (5000, 5000)).save(big)
    assert 5000 * 5000 > MAX_PIXELS
    decoded = []
    real_load = Image.Image.load
    monkeypatch.setattr(Image.Image, "load", lambda self: decoded.append(self.size) or real_load(self))
    client = gradio_client.Client(server, verbose=False)
    with pytest.raises(Exception, match="5000 x 5000 pixels; this app takes frames up to"):
        client.predict(gradio_client.handle_file(str(big)), "100,100,200,220", "", api_name="/segment")
    assert (5000, 5000) not in decoded


def test_http_api_shows_the_librarys_message_for_a_missing_frame(server):
    client = gradio_client.Client(server, verbose=False)
    with pytest.raises(Exception, match="Upload a frame first"):
        client.predict(None, "1,1,5,5", "", api_name="/segment")


@needs_chromium
@pytest.mark.slow
def test_browser_end_to_end(server, frame, tmp_path):
    pytest.importorskip("playwright.sync_api")
    with chromium_page() as page:
        page.goto(server)
        page.locator("#frame input[type=file]").set_input_files(str(frame))
        # timeout=0: no time limit (a loaded machine may be slow; speed is measured in benchmarks/)
        page.locator("#frame img").first.wait_for(timeout=0)
        page.locator("#boxes textarea").fill("100,100,200,220")
        page.locator("#segment").click()
        result = page.locator("#overlay img").first
        result.wait_for(timeout=0)
        width = page.wait_for_function(
            "() => { const i = document.querySelector('#overlay img'); return i && i.naturalWidth; }",
            timeout=0).json_value()
        page.screenshot(path=str(tmp_path / "app.png"), full_page=True)
        src = result.get_attribute("src")
        body = page.request.get(src).body()
    assert width == 512
    (tmp_path / "overlay.png").write_bytes(body)
    overlay = np.asarray(Image.open(tmp_path / "overlay.png").convert("RGB"))
    assert overlay.shape == (512, 512, 3)
    assert tuple(overlay[100, 150]) == (0, 255, 255)  # the box the browser typed is on the overlay


def _overlay_in(page, tmp_path, name: str) -> np.ndarray:
    """The overlay the page shows now, as the server sent it."""
    src = page.locator("#overlay img").first.get_attribute("src")
    (tmp_path / name).write_bytes(page.request.get(src).body())
    return np.asarray(Image.open(tmp_path / name).convert("RGB"))


@needs_chromium
@pytest.mark.slow
def test_browser_clicks_correct_the_mask_and_undo_takes_them_back(server, frame, tmp_path):
    """In the browser: switch the toggle to polyp and click on the frame; the click lands in the clicks
    field at the frame's pixel under the pointer and the overlay comes back with it drawn; a click on
    not polyp follows; Undo takes the last one back and the overlay loses it."""
    pytest.importorskip("playwright.sync_api")
    with chromium_page() as page:
        page.goto(server)
        page.locator("#frame input[type=file]").set_input_files(str(frame))
        shown = page.locator("#frame img").first
        shown.wait_for(timeout=0)
        clicks = page.locator("#clicks textarea")
        overlay_src = "() => { const i = document.querySelector('#overlay img'); return i ? i.src : null; }"

        def act(action) -> None:
            """Do `action`; wait until the page shows another overlay (one event updates the fields and it)."""
            before = page.evaluate(overlay_src)
            action()
            page.wait_for_function(f"before => ({overlay_src})() !== before", arg=before, timeout=0)

        def click_at(x: int, y: int, kind: str) -> None:
            """Click the frame's pixel (x, y) as `kind` (the toggle set first)."""
            page.locator("#click-kind").get_by_label(kind, exact=True).check()
            box = shown.bounding_box()
            natural = shown.evaluate("img => [img.naturalWidth, img.naturalHeight]")
            act(lambda: shown.click(position={"x": (x + 0.5) * box["width"] / natural[0],
                                              "y": (y + 0.5) * box["height"] / natural[1]}))

        click_at(150, 160, "polyp")
        (x, y, label), = parse_clicks(clicks.input_value())
        assert abs(x - 150) <= 2 and abs(y - 160) <= 2 and label == 1
        first = _overlay_in(page, tmp_path, "one.png")
        assert tuple(first[int(y), int(x)]) == POSITIVE_COLOUR
        click_at(300, 80, "not polyp")
        (x2, y2, label2) = parse_clicks(clicks.input_value())[1]
        assert label2 == 0
        second = _overlay_in(page, tmp_path, "two.png")
        assert tuple(second[int(y2), int(x2)]) == NEGATIVE_COLOUR
        act(lambda: page.locator("#undo").click())
        assert parse_clicks(clicks.input_value()) == [(x, y, 1)]
        after = _overlay_in(page, tmp_path, "undone.png")
        assert tuple(after[int(y2), int(x2)]) != NEGATIVE_COLOUR
        assert np.array_equal(after, first)  # the same prompts, the same overlay: the rounds replayed exactly
        page.screenshot(path=str(tmp_path / "clicks.png"), full_page=True)


def test_model_choice_and_warning(tmp_path, monkeypatch):
    from polyp_sam_hf.publishing.gradio_demo import MODEL_ENV, choose_model

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(MODEL_ENV, raising=False)
    name, warning = choose_model(None)  # nothing found: the random tiny model, with a warning
    assert name == "tiny-sam" and "random weights" in warning
    (tmp_path / "models" / "mobile-sam").mkdir(parents=True)
    (tmp_path / "models" / "mobile-sam" / "config.json").write_text("{}")
    assert choose_model(None) == (str(Path("models") / "mobile-sam"), None)
    (tmp_path / "models" / "polyp-sam-mobile").mkdir(parents=True)  # the fine-tuned export goes first
    (tmp_path / "models" / "polyp-sam-mobile" / "config.json").write_text("{}")
    assert choose_model(None) == (str(Path("models") / "polyp-sam-mobile"), None)
    monkeypatch.setenv(MODEL_ENV, "runs/x/best")
    assert choose_model(None) == ("runs/x/best", None)
    assert choose_model("runs/y/best") == ("runs/y/best", None)
    assert "random weights" in choose_model("micro-sam-test")[1]


def test_encoder_runs_once_per_frame(micro_checkpoint, tmp_path):
    from unittest import mock

    from polyp_sam_hf.publishing.gradio_demo import EmbeddingMemo, segment

    segmenter = PolypSegmenter.from_pretrained(str(micro_checkpoint), device="cpu")
    memo = EmbeddingMemo(segmenter, size=1)
    rng = np.random.default_rng(0)
    a = Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8))
    b = Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8))
    with mock.patch.object(segmenter, "embed", wraps=segmenter.embed) as embed:
        first, _ = segment(segmenter, a, "5,5,30,30", tmp_path, memo)
        second, _ = segment(segmenter, a, "5,5,30,30; 40,10,70,50", tmp_path, memo)
        assert embed.call_count == 1  # the second click on the same frame reuses its embedding
        segment(segmenter, b, "5,5,30,30", tmp_path, memo)
        segment(segmenter, a, "5,5,30,30", tmp_path, memo)
        assert embed.call_count == 3  # memo of one frame: b replaced a
    unmemoised, _ = segment(segmenter, a, "5,5,30,30", tmp_path)
    assert np.array_equal(np.asarray(first), np.asarray(unmemoised))


def test_random_weights_warning_is_on_the_page(micro_checkpoint):
    import urllib.request

    from polyp_sam_hf.publishing.gradio_demo import choose_model

    name, warning = choose_model("tiny-sam")
    app = build_app(PolypSegmenter.from_pretrained(name, device="cpu"), warning=warning)
    port = _free_port()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **LAUNCH_SETTINGS)
    try:
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/config").read().decode()
    finally:
        app.close()
    assert "random weights" in page and "model-warning" in page


def test_no_box_buttons_only_for_a_model_trained_without_boxes(micro_checkpoint, tmp_path):
    import json
    import urllib.request

    from polyp_sam_hf.models.provenance import read_train_config
    from polyp_sam_hf.publishing.gradio_demo import trained_prompt_free

    assert read_train_config(micro_checkpoint)["prompt_mode"] != "none" and not trained_prompt_free(str(micro_checkpoint))
    free_model = tmp_path / "free"
    shutil.copytree(micro_checkpoint, free_model)
    record = free_model / "polyp_sam_training.json"
    record.write_text(json.dumps({**json.loads(record.read_text()), "prompt_mode": "none"}))
    assert trained_prompt_free(str(free_model)) and not trained_prompt_free("tiny-sam")
    pages = {}
    for name, free in (("box", False), ("free", True)):
        app = build_app(PolypSegmenter.from_pretrained(str(micro_checkpoint), device="cpu"), prompt_free=free)
        port = _free_port()
        app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **LAUNCH_SETTINGS)
        try:
            pages[name] = urllib.request.urlopen(f"http://127.0.0.1:{port}/config").read().decode()
        finally:
            app.close()
    assert "Self-made boxes" not in pages["box"] and "No box" not in pages["box"]
    assert "Self-made boxes" in pages["free"] and "No box" in pages["free"]


def test_a_bad_box_message_names_no_command_line_flag():
    with pytest.raises(ValueError) as err:
        parse_boxes("1,2,3")
    assert "--box" not in str(err.value) and "x0,y0,x1,y1" in str(err.value)


def test_http_api_auto_proposes_boxes_the_user_can_correct(server, frame):
    """Auto segments with no box and returns its proposed boxes as text; that text, corrected or
    not, goes straight back to Segment."""
    client = gradio_client.Client(server, verbose=False)
    overlay_path, mask_path, boxes_text = client.predict(gradio_client.handle_file(str(frame)), api_name="/auto")
    mask = np.asarray(Image.open(mask_path))
    assert mask.shape == (512, 512) and set(np.unique(mask)) <= {0, 255}
    proposed = parse_boxes(boxes_text) if boxes_text.strip() else []
    corrected = "; ".join([boxes_text, "100,100,200,220"]) if proposed else "100,100,200,220"
    overlay_path, mask_path = client.predict(gradio_client.handle_file(str(frame)), corrected, "",
                                             api_name="/segment")
    assert Image.open(mask_path).size == (512, 512)


def test_http_api_segments_with_no_box_at_all(server, frame):
    client = gradio_client.Client(server, verbose=False)
    overlay_path, mask_path = client.predict(gradio_client.handle_file(str(frame)), api_name="/none")
    mask = np.asarray(Image.open(mask_path))
    assert mask.shape == (512, 512) and set(np.unique(mask)) <= {0, 255}


def test_without_gradio_the_app_says_how_to_install_it():
    import subprocess
    import sys

    code = ("import sys; sys.modules['gradio'] = None  # as if not installed\n"
            "from polyp_sam_hf.commands.cli import main; sys.exit(main(['app', '--model_name_or_path', 'tiny-sam']))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 1
    assert "pip install" in result.stderr and "[app]" in result.stderr and "Traceback" not in result.stderr
