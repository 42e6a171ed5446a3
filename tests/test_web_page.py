"""The static page of an export (`polyp-sam export --web`), in the real headless Chromium: a frame is
opened, a box drawn with the mouse, the mask saved, and compared with PyTorch's; nothing is fetched
from outside the local server."""

from __future__ import annotations

import functools
import http.server
import io
import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import chromium_page, needs_chromium

pytest.importorskip("onnxruntime")
pytest.importorskip("playwright")

REPO_ROOT = Path(__file__).resolve().parents[1]
needs_npm = pytest.mark.skipif(shutil.which("npm") is None, reason="npm (Node.js) is not installed (.ci/run installs it)")


@pytest.fixture(scope="module")
def web_export(converted, tmp_path_factory) -> Path:
    """Converted MobileSAM exported by the real command with its page."""
    out = tmp_path_factory.mktemp("web-export") / "upload"
    result = subprocess.run([sys.executable, "-m", "polyp_sam_hf", "export", "--model_name_or_path",
                             str(converted("mobile-sam")), "--repo_id", "org/polyp-mobile", "--output_dir", str(out),
                             "--web"], capture_output=True, text=True, cwd=REPO_ROOT, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


@pytest.fixture
def served(web_export):
    """The export served over HTTP on 127.0.0.1 (the page needs a server, as any static host is)."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(web_export))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def frame_and_box(samples_root: Path | None, folder: Path) -> tuple[Path, list[float], np.ndarray | None]:
    """A real frame and its polyp's box (the shared samples), else a drawn frame with its polyp's box."""
    from PIL import Image

    if samples_root is not None:
        frame = samples_root / "pranet" / "TrainDataset" / "images" / "52.jpg"
        polyp = np.asarray(Image.open(str(frame).replace("images", "masks")).convert("L")) > 127
    else:
        from polyp_sam_hf.data.synthetic import synth_frame

        image, polyp = synth_frame(np.random.default_rng(3), num_polyps=1)
        frame = folder / "drawn.png"
        Image.fromarray(image).save(frame)
        polyp = polyp > 0
    ys, xs = np.nonzero(polyp)
    return frame, [float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())], polyp


@needs_chromium
@needs_npm
def test_the_page_segments_a_real_frame_in_the_browser_as_pytorch_does(web_export, served, converted, tmp_path,
                                                                       request):
    from PIL import Image

    from polyp_sam_hf.models.segmenter import PolypSegmenter

    try:
        samples = request.getfixturevalue("samples_root")
    except pytest.skip.Exception:
        samples = None  # no shared samples here: a drawn frame
    frame, box, _ = frame_and_box(samples, tmp_path)
    outside: list[str] = []
    with chromium_page(accept_downloads=True) as page:
        page.on("request", lambda r: None if r.url.startswith((served, "data:", "blob:")) else outside.append(r.url))
        page.goto(f"{served}/web/index.html")
        page.wait_for_function("window.polypSam && window.polypSam.state.decoder", timeout=120_000)
        page.set_input_files("#file", str(frame))
        page.wait_for_function("window.polypSam.state.embedding !== null", timeout=120_000)
        # the box, dragged with the mouse on the canvas (frame pixels -> screen pixels)
        rect = page.eval_on_selector("#frame", "c => { const r = c.getBoundingClientRect();"
                                               " return [r.left, r.top, r.width / c.width, r.height / c.height]; }")
        left, top, sx, sy = rect
        page.mouse.move(left + box[0] * sx, top + box[1] * sy)
        page.mouse.down()
        page.mouse.move(left + (box[0] + box[2]) / 2 * sx, top + (box[1] + box[3]) / 2 * sy)
        page.mouse.move(left + box[2] * sx, top + box[3] * sy)
        page.mouse.up()
        page.wait_for_function("window.polypSam.state.mask !== null", timeout=60_000)
        drawn_box = page.evaluate("window.polypSam.state.box")
        with page.expect_download() as download:
            page.click("#save")
        saved = tmp_path / download.value.suggested_filename
        download.value.save_as(saved)
        timings = page.evaluate("window.polypSam.timings")
    assert outside == []  # the page fetched nothing beyond the local server
    assert saved.name == f"{frame.stem}_mask.png"
    browser_mask = np.asarray(Image.open(saved).convert("L")) > 127
    seg = PolypSegmenter.from_pretrained(str(converted("mobile-sam")), device="cpu")
    expected = seg.predict(Image.open(frame).convert("RGB"), [drawn_box])[0]  # the box the page used
    assert browser_mask.shape == expected.shape
    dice = 2 * (browser_mask & expected).sum() / (browser_mask.sum() + expected.sum())
    assert dice >= 0.99, dice
    assert timings["embed_s"] > 0 and len(timings["prompt_ms"]) == 1
    # the figures docs/publishing.md records (run with -s to see them)
    print(f"\nin headless Chromium: model loaded in {timings['load_s']:.2f} s, frame embedded in {timings['embed_s']:.2f} s, "
          f"box prompt {timings['prompt_ms'][0]:.0f} ms; mask Dice {dice:.4f} against PyTorch's")


@needs_chromium
@needs_npm
def test_a_frame_too_large_is_refused_with_a_message(served, tmp_path):
    from PIL import Image

    big = tmp_path / "huge.png"
    buffer = io.BytesIO()
    Image.new("RGB", (5000, 300), (90, 40, 40)).save(buffer, format="PNG")
    big.write_bytes(buffer.getvalue())
    with chromium_page() as page:
        page.goto(f"{served}/web/index.html")
        page.wait_for_function("window.polypSam && window.polypSam.state.decoder", timeout=120_000)
        page.set_input_files("#file", str(big))
        page.wait_for_selector("#status.error", timeout=30_000)
        message = page.inner_text("#status")
        assert page.evaluate("window.polypSam.state.embedding") is None
    assert "huge.png is 5000 x 300: larger than this page takes (4096 px a side" in message


@needs_npm
def test_the_page_files_are_written_with_the_pinned_runtime(web_export):
    """web/ holds the page, the runtime files of the locked onnxruntime-web and its settings; the card
    links the page."""
    from polyp_sam_hf.publishing.web_page import PAGE, PAGE_FILES, RUNTIME_FILES

    web = web_export / "web"
    assert sorted(p.name for p in web.iterdir()) == sorted([*PAGE_FILES, *RUNTIME_FILES, "model.json", "README.md"])
    lock = json.loads((PAGE / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/onnxruntime-web"]["version"] == "1.31.1"
    settings = json.loads((web / "model.json").read_text())
    assert settings["model"] == ".." and settings["hub_model"] == "https://huggingface.co/org/polyp-mobile/resolve/main/"
    assert (settings["longest_edge"], settings["pad_size"], settings["grid"]) == (1024, 1024, 256)
    assert "sdk: static" in (web / "README.md").read_text()
    assert "Try it in your browser" in (web_export / "README.md").read_text()
    for name in PAGE_FILES:  # no script or style from elsewhere: the model's own Hub repo is the one other address
        assert "http://" not in (web / name).read_text() and "https://" not in (web / name).read_text()


def test_without_npm_the_page_says_what_to_install(monkeypatch, tmp_path):
    from polyp_sam_hf.core.errors import ConfigError
    from polyp_sam_hf.publishing.web_page import runtime_dir

    monkeypatch.setenv("PATH", str(tmp_path))  # no npm on it
    with pytest.raises(ConfigError, match="install Node.js .* or export without --web"):
        runtime_dir(cache=tmp_path / "cache")
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())
