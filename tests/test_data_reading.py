"""Reading images and masks of every mode the releases use, and the errors for bad files."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from polyp_sam_hf.data.reading import DataError, read_image, read_mask, read_pair

H, W = 12, 16


def _pattern() -> np.ndarray:
    mask = np.zeros((H, W), dtype=bool)
    mask[3:9, 4:12] = True
    return mask


def _image_as(mode: str) -> Image.Image:
    rgb = np.zeros((H, W, 3), dtype=np.uint8)
    rgb[..., 0] = 200
    rgb[..., 1] = np.arange(W, dtype=np.uint8)[None, :] * 10
    if mode == "RGB":
        return Image.fromarray(rgb)
    if mode == "RGBA":
        return Image.fromarray(np.dstack([rgb, np.full((H, W), 255, np.uint8)]))
    if mode == "P":
        return Image.fromarray(rgb).convert("P")
    if mode == "L":
        return Image.fromarray(rgb).convert("L")
    if mode == "I;16":
        return Image.fromarray((np.arange(W, dtype=np.uint16)[None, :] * 4000).repeat(H, 0))
    raise AssertionError(mode)


@pytest.mark.parametrize("mode,ext", [
    ("RGB", ".png"), ("RGB", ".jpg"), ("RGBA", ".png"), ("P", ".png"),
    ("L", ".png"), ("L", ".jpg"), ("I;16", ".png"), ("I;16", ".tif"), ("RGB", ".tif"),
])
def test_images_of_every_mode_read_as_8bit_rgb(tmp_path, mode, ext):
    path = tmp_path / f"img{ext}"
    _image_as(mode).save(path)
    image = read_image(path)
    assert image.mode == "RGB" and image.size == (W, H)
    arr = np.asarray(image)
    if mode == "I;16":  # 16-bit is rescaled, not clipped: the brightest column stays brightest
        assert arr[0, -1, 0] > 200 and arr[0, 0, 0] == 0
        assert np.all(np.diff(arr[0, :, 0].astype(int)) >= 0)
    if mode in ("RGB", "RGBA") and ext != ".jpg":
        assert arr[0, 0, 0] == 200


def _mask_as(mode: str) -> Image.Image:
    m = _pattern()
    grey = m.astype(np.uint8) * 255
    if mode == "L":
        return Image.fromarray(grey)
    if mode == "RGB":
        return Image.fromarray(np.dstack([grey] * 3))
    if mode == "RGBA":
        return Image.fromarray(np.dstack([grey] * 3 + [np.full_like(grey, 255)]))
    if mode == "P":
        img = Image.fromarray(m.astype(np.uint8), mode="L").convert("P")
        img.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
        return img
    if mode == "P-voc":  # VOC style: index 1 is a dark red, (128, 0, 0), luminance 38
        img = Image.fromarray(m.astype(np.uint8), mode="L").convert("P")
        img.putpalette([0, 0, 0, 128, 0, 0] + [0] * 762)
        return img
    if mode == "P-transparent":  # index 1 drawn black and only told apart by its index
        img = Image.fromarray(m.astype(np.uint8) * 2, mode="L").convert("P")
        img.putpalette([0, 0, 0, 255, 255, 255, 0, 0, 0] + [0] * 759)
        return img
    if mode == "RGBA-alpha":  # black everywhere, the polyp only in alpha
        return Image.fromarray(np.dstack([np.zeros_like(grey)] * 3 + [grey]))
    if mode == "LA-alpha":
        return Image.fromarray(np.dstack([np.full_like(grey, 255), grey]), mode="LA")
    if mode == "1":
        return Image.fromarray(grey).convert("1")
    if mode == "I;16":
        return Image.fromarray(m.astype(np.uint16) * 65535)
    if mode == "01":  # 0/1 export
        return Image.fromarray(m.astype(np.uint8))
    raise AssertionError(mode)


@pytest.mark.parametrize("mode,ext", [
    ("L", ".png"), ("RGB", ".png"), ("RGBA", ".png"), ("P", ".png"), ("1", ".png"),
    ("I;16", ".png"), ("I;16", ".tif"), ("01", ".png"), ("L", ".tif"),
    ("P-voc", ".png"), ("P-transparent", ".png"), ("RGBA-alpha", ".png"), ("LA-alpha", ".png"),
])
def test_masks_of_every_mode_read_as_the_same_boolean_mask(tmp_path, mode, ext):
    path = tmp_path / f"mask{ext}"
    _mask_as(mode).save(path)
    mask = read_mask(path)
    assert mask.dtype == bool
    np.testing.assert_array_equal(mask, _pattern())


def test_jpeg_mask_noise_is_thresholded_at_127(tmp_path):
    grey = np.array([[0, 40, 126, 127], [128, 200, 240, 255]], dtype=np.uint8)
    path = tmp_path / "m.png"
    Image.fromarray(grey).save(path)
    np.testing.assert_array_equal(read_mask(path), grey > 127)
    # a real lossy JPEG mask: values between 0 and 255 appear, the shape survives
    jpg = tmp_path / "m.jpg"
    Image.fromarray(_pattern().astype(np.uint8) * 255).save(jpg, quality=60)
    raw = np.asarray(Image.open(jpg))
    assert ((raw > 0) & (raw < 255)).any()
    np.testing.assert_array_equal(read_mask(jpg), _pattern())


def test_truncated_file_error_names_it(tmp_path):
    path = tmp_path / "cut.png"
    _image_as("RGB").resize((200, 200)).save(path)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(DataError, match=str(path)):
        read_image(path)


def test_unreadable_file_error_names_it(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("not an image")
    with pytest.raises(DataError, match="notes.png"):
        read_mask(path)


def test_size_mismatch_names_both_files(tmp_path):
    img, mask = tmp_path / "a.png", tmp_path / "a_mask.png"
    _image_as("RGB").save(img)
    Image.fromarray(np.zeros((H + 1, W), np.uint8)).save(mask)
    with pytest.raises(DataError) as err:
        read_pair(img, mask)
    assert str(img) in str(err.value) and str(mask) in str(err.value)
