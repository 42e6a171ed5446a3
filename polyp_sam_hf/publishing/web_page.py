"""`web/` beside an ONNX export: a static page that segments in the visitor's browser.

    polyp-sam export --model_name_or_path runs/x/best --repo_id ORG/NAME --output_dir upload/ --web

The page (`polyp_sam_hf/web/`: `index.html`, `segment.js`) runs the export's two graphs with
ONNX Runtime Web. Its one JavaScript package, `onnxruntime-web`, comes from the npm registry at the
version `package-lock.json` pins, installed once per lock into the user's cache (`npm ci`), and the
two files the page loads are copied beside it: nothing is fetched from a CDN when the page runs, and
the frame is never sent anywhere. `web/model.json` holds the preprocessing (from the model's
processor) and where the graphs are: `..` (the export the page sits in), else the Hub repository, so
the folder is a static Space as written (`web/README.md` is its card).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

from polyp_sam_hf.core.errors import ConfigError
from polyp_sam_hf.core.files import replace_atomically, staging_folder
from polyp_sam_hf.data.preprocessing import Preprocessing

PAGE = Path(__file__).resolve().parents[1] / "web"
PAGE_FILES = ("index.html", "segment.js")
RUNTIME_FILES = ("ort.wasm.bundle.min.mjs", "ort-wasm-simd-threaded.wasm")  # from onnxruntime-web's dist/
WEB_DIR = "web"
# frames the page refuses, with a message, rather than freezing the tab (a 4K frame is 8.3 megapixels)
MAX_SIDE, MAX_PIXELS = 4096, 16_000_000


def runtime_dir(cache: Path | None = None) -> Path:
    """onnxruntime-web's `dist/`, installed by `npm ci` from the pinned lock into a cache folder
    named by the lock's hash (once per lock; later exports reuse it).

    Raises:
        ConfigError: npm is not installed, or the install fails (its last lines are quoted).
    """
    lock = (PAGE / "package-lock.json").read_bytes()
    cache = cache or Path(os.environ.get("POLYP_SAM_WEB_CACHE", Path.home() / ".cache" / "polyp-sam-hf" / "web"))
    folder = cache / hashlib.sha256(lock).hexdigest()[:16]
    dist = folder / "node_modules" / "onnxruntime-web" / "dist"
    if all((dist / name).is_file() for name in RUNTIME_FILES):
        return dist
    npm = shutil.which("npm")
    if npm is None:
        raise ConfigError("The web page bundles onnxruntime-web with npm, which is not installed: install Node.js "
                          "(it brings npm), or export without --web.")
    tmp = staging_folder(folder, "npm-tmp")
    tmp.mkdir(parents=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copy(PAGE / name, tmp / name)
    result = subprocess.run([npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=tmp,
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        tail = " ".join((result.stderr or result.stdout).strip().splitlines()[-3:])
        raise ConfigError(f"npm ci of the page's pinned onnxruntime-web failed: {tail}")
    replace_atomically(tmp, folder)
    return dist


def page_settings(processor, config: dict, repo_id: str | None, dtype: str = "fp32") -> dict:
    """`web/model.json`: what `segment.js` needs to prepare a frame as the model's processor does."""
    prep = Preprocessing.of(processor)
    image = processor.image_processor
    prompt = config["prompt_encoder_config"]
    return {
        "model": "..",
        "hub_model": f"https://huggingface.co/{repo_id}/resolve/main/" if repo_id else None,
        "dtype": dtype,
        "longest_edge": prep.longest_edge,
        "pad_size": prep.pad_size,
        "mean": [float(v) for v in image.image_mean],
        "std": [float(v) for v in image.image_std],
        "grid": 4 * (prompt["image_size"] // prompt["patch_size"]),
        "max_side": MAX_SIDE,
        "max_pixels": MAX_PIXELS,
    }


def write_page(export_dir: str | Path, processor, repo_id: str | None = None, dtype: str = "fp32",
               cache: Path | None = None) -> Path:
    """Write `export_dir/web/`: the page, the bundled runtime, `model.json` and a static Space's card."""
    export_dir = Path(export_dir)
    if not (export_dir / "onnx").is_dir():
        raise ConfigError(f"{export_dir} has no onnx/ folder: the page runs the ONNX graphs (export with --onnx).")
    dist = runtime_dir(cache)
    target = export_dir / WEB_DIR
    tmp = staging_folder(target, "web-tmp")
    tmp.mkdir(parents=True)
    for name in PAGE_FILES:
        shutil.copy(PAGE / name, tmp / name)
    for name in RUNTIME_FILES:
        shutil.copy(dist / name, tmp / name)
    config = json.loads((export_dir / "config.json").read_text())
    (tmp / "model.json").write_text(json.dumps(page_settings(processor, config, repo_id, dtype), indent=1) + "\n")
    name = (repo_id or export_dir.name).split("/")[-1]
    (tmp / "README.md").write_text(
        f"---\ntitle: {name} in the browser\nsdk: static\napp_file: index.html\npinned: false\n---\n\n"
        f"Polyp segmentation with {name}, run in the visitor's browser by ONNX Runtime Web: the frame never\n"
        "leaves the machine. Open `index.html` from a web server (any static host, or a static Space made\n"
        "of this folder); it loads the model's ONNX graphs from `..`, else from the model's Hub repository.\n"
        "Research and education only, not for diagnosis.\n")
    replace_atomically(tmp, target)
    return target
