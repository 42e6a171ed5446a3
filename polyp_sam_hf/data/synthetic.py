"""Synthetic colonoscopy frames with polyps: the offline default for the demo and the tests.

Each frame is tissue-coloured, textured mucosa under an endoscope's vignetting, with specular
highlights, and holds one to three irregular, textured, dome-shaded polyps. Polyp outlines are
lobed and rotated, so the ellipse inscribed in a polyp's box misses much of it: a model must read
the image, not only the box, to beat that baseline.

`write_demo_data` writes them in the PraNet layout, deterministically from a seed.
"""

from __future__ import annotations

import logging
import string
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage
from tqdm.auto import tqdm

from polyp_sam_hf.data.sources import SOURCES

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FrameStyle:
    """Colours of one imaging setting; each test dataset gets a slightly different one."""

    tissue_rgb: tuple[float, float, float] = (196.0, 104.0, 92.0)
    polyp_rgb: tuple[float, float, float] = (222.0, 140.0, 124.0)


STYLES = {
    "kvasir": FrameStyle(),
    "cvc-clinicdb": FrameStyle((186.0, 96.0, 84.0), (214.0, 140.0, 118.0)),
    "cvc-colondb": FrameStyle((170.0, 100.0, 90.0), (205.0, 138.0, 122.0)),
    "etis": FrameStyle((200.0, 120.0, 96.0), (226.0, 162.0, 128.0)),
    "cvc-300": FrameStyle((190.0, 92.0, 96.0), (218.0, 136.0, 134.0)),
}


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Gaussian-filtered white noise scaled to unit standard deviation, shape (H, W)."""
    noise = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    return noise / (noise.std() + 1e-8)


def _polyp_shape(
    rng: np.random.Generator, height: int, width: int, center: tuple[float, float], radius: float
) -> tuple[np.ndarray, np.ndarray]:
    """A lobed, elongated, rotated blob.

    Returns:
        `inside`: (H, W) bool, the polyp; `depth`: (H, W) float in [0, 1], 1 at the centre, used
        for dome shading.
    """
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    cy, cx = center
    angle = rng.uniform(0, np.pi)
    dx, dy = xx - cx, yy - cy
    # rotate, then stretch one axis: elongated polyps at an angle fill their box poorly
    u = dx * np.cos(angle) + dy * np.sin(angle)
    v = -dx * np.sin(angle) + dy * np.cos(angle)
    v = v * rng.uniform(1.3, 2.6)
    r = np.hypot(u, v)
    theta = np.arctan2(v, u)
    outline = np.ones_like(theta)
    for k in range(2, 6):  # lobes
        outline += rng.uniform(0.0, 0.22 / (k - 1) ** 0.5) * np.cos(k * theta + rng.uniform(0, 6.3))
    outline += 0.05 * _smooth_noise(rng, (height, width), 3.0)  # ragged edge
    rel = r / (radius * outline)
    return rel <= 1.0, np.clip(1.0 - rel, 0.0, 1.0)


def synth_frame(
    rng: np.random.Generator,
    height: int = 224,
    width: int = 256,
    num_polyps: int = 1,
    style: FrameStyle = FrameStyle(),
) -> tuple[np.ndarray, np.ndarray]:
    """Draw one frame.

    Returns:
        `image`: (H, W, 3) uint8 RGB; `mask`: (H, W) bool, True on the polyps.
    """
    tissue = np.array(style.tissue_rgb)
    texture = 0.6 * _smooth_noise(rng, (height, width), 6.0) + 0.4 * _smooth_noise(
        rng, (height, width), 1.5
    )
    image = tissue[None, None, :] * (1.0 + 0.07 * texture[..., None])
    # folds: darker bands along a smooth random field's level lines
    folds = _smooth_noise(rng, (height, width), 18.0)
    image *= 1.0 - 0.18 * np.exp(-(folds**2) / 0.05)[..., None]

    mask = np.zeros((height, width), dtype=bool)
    scale = min(height, width)
    for _ in range(num_polyps):
        radius = rng.uniform(0.12, 0.25) * scale / max(num_polyps**0.5, 1.0)
        margin = radius * 1.2
        center = (rng.uniform(margin, height - margin), rng.uniform(margin, width - margin))
        inside, depth = _polyp_shape(rng, height, width, center, radius)
        surface = 1.0 + 0.10 * _smooth_noise(rng, (height, width), 2.0)
        shade = 0.82 + 0.28 * np.sqrt(depth)
        polyp_rgb = np.array(style.polyp_rgb) * rng.uniform(0.93, 1.07, size=3)
        colour = polyp_rgb[None, None, :] * (shade * surface)[..., None]
        image = np.where(inside[..., None], colour, image)
        mask |= inside

    # slight blur so polyp edges are not one-pixel steps, then endoscope vignetting
    image = ndimage.gaussian_filter(image, sigma=(0.8, 0.8, 0))
    yy, xx = np.mgrid[0:height, 0:width]
    rr = np.hypot((yy - height / 2) / (height / 2), (xx - width / 2) / (width / 2))
    image *= np.clip(1.15 - 0.55 * rr**2, 0.15, 1.0)[..., None]
    # specular highlights: small saturated spots anywhere, polyps included
    for _ in range(rng.integers(2, 7)):
        sy, sx = rng.uniform(0, height), rng.uniform(0, width)
        spot = np.exp(-(((yy - sy) ** 2) + (xx - sx) ** 2) / (2 * rng.uniform(0.8, 2.5) ** 2))
        image = image + 255.0 * spot[..., None]
    image += rng.normal(0, 3.0, size=image.shape)  # sensor noise
    return np.clip(image, 0, 255).astype(np.uint8), mask


def _kvasir_like_id(rng: np.random.Generator) -> str:
    alphabet = np.array(list(string.ascii_lowercase + string.digits))
    return "ck" + "".join(rng.choice(alphabet, size=23))


def _num_polyps(rng: np.random.Generator) -> int:
    # about one frame in four holds several polyps, as in ETIS and ColonDB
    return int(rng.choice([1, 2, 3], p=[0.75, 0.17, 0.08]))


def _write_pair(folder: Path, name: str, image: np.ndarray, mask: np.ndarray) -> None:
    Image.fromarray(image).save(folder / "images" / f"{name}.png")
    Image.fromarray(mask.astype(np.uint8) * 255).save(folder / "masks" / f"{name}.png")


# the file `write_demo_data` leaves in its root, and the description `prepare` gives the splits made from it
SYNTHETIC_MARKER = "SYNTHETIC.txt"
SYNTHETIC_DESCRIPTION = "synthetic polyp frames drawn by polyp-sam-hf (not real data)"


def write_demo_data(
    output: str | Path, num_train: int = 120, num_test: int = 12, seed: int = 0
) -> Path:
    """Write a synthetic dataset in the PraNet layout, deterministic by `seed`.

    `TrainDataset/` holds `num_train` frames named alternately like Kvasir ids and CVC-ClinicDB
    numbers, in colour styles drawn from all five; `TestDataset/<Dataset>/` holds `num_test`
    frames for each of the five test sets, each set in its own colour style.

    Returns:
        The output folder, ready for `polyp-sam prepare --data_root`.
    """
    output = Path(output)
    rng = np.random.default_rng(seed)
    jobs: list[tuple[Path, str, FrameStyle]] = []
    train = output / "TrainDataset"
    test_styles = [STYLES[source] for source in SOURCES]
    for i in range(num_train):
        name = _kvasir_like_id(rng) if i % 2 == 0 else str(i + 1)
        # training frames mix every test set's colours, as a training set pooled from several
        # centres would; each test set then keeps one style
        jobs.append((train, name, test_styles[int(rng.integers(len(test_styles)))]))
    for source in SOURCES.values():
        folder = output / "TestDataset" / source.pranet_test_dir
        jobs += [(folder, str(i + 1), STYLES[source.name]) for i in range(num_test)]
    for folder in {job[0] for job in jobs}:
        (folder / "images").mkdir(parents=True, exist_ok=True)
        (folder / "masks").mkdir(parents=True, exist_ok=True)
    for folder, name, style in tqdm(jobs, desc="Drawing demo frames", unit="img"):
        image, mask = synth_frame(rng, num_polyps=_num_polyps(rng), style=style)
        _write_pair(folder, name, image, mask)
    (output / SYNTHETIC_MARKER).write_text(
        "Synthetic polyp frames drawn by polyp-sam-hf (write_demo_data): not Kvasir-SEG, CVC-ClinicDB or any real "
        "dataset. Their folder names follow the PraNet layout only so that the library reads them as it reads real "
        "data; every score on them is labelled synthetic.\n")
    logger.info("Wrote %d demo frames to %s", len(jobs), output)
    return output


def is_synthetic(split) -> bool:
    """Whether a prepared split holds frames drawn by `write_demo_data` (prepare marks them)."""
    return split.info.description == SYNTHETIC_DESCRIPTION
