"""Reading one image or mask file into the library's canonical form, with errors that name the file.

Canonical forms:
- image: `PIL.Image` in mode `RGB`, 8 bits per channel;
- mask: `numpy.ndarray` of shape (H, W), dtype `bool`, True on the polyp.

Files arrive in every mode the public releases use (RGB and grayscale JPEG, palette and RGBA PNG,
8- and 16-bit TIFF), and JPEG masks carry compression noise between 0 and 255.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from polyp_sam_hf.core.errors import DataError  # re-exported: `from .reading import DataError`

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")

# Grey level above which a mask pixel is foreground: the middle of the 8-bit range, so JPEG noise
# near 0 and near 255 falls on the right side.
MASK_THRESHOLD = 127


def stored_mask(mask) -> np.ndarray:
    """A prepared dataset's `mask` value (0/255 grey, a PIL image or an array) as (H, W) bool."""
    return np.asarray(mask) > MASK_THRESHOLD



def open_image_file(path: str | Path, keep_palette: bool = False) -> Image.Image:
    """Open and fully decode an image file.

    Args:
        keep_palette: return a palette image as it is (mode `P`, its indices), for masks; else
            it becomes RGBA.

    Raises:
        DataError: the file is missing, not an image, or truncated; the message names it.
    """
    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()  # decode now, so a truncated file fails here and not deep in training
            return img.copy() if img.mode != "P" or keep_palette else img.convert("RGBA")
    except FileNotFoundError:
        raise DataError(f"File not found: {path}") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise DataError(
            f"Cannot read {path}: {err}. The file is unreadable or truncated; "
            "re-download it or remove it (with its pair) from the data root."
        ) from None


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    """Scale 16- or 32-bit integer pixels to 8 bits by their type's range."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255
    if np.issubdtype(arr.dtype, np.integer):
        top = 65535 if arr.max(initial=0) > 255 or arr.dtype == np.uint16 else 255
        return np.clip(arr.astype(np.float64) * (255.0 / top), 0, 255).round().astype(np.uint8)
    # float images are expected in [0, 1]
    return np.clip(arr * 255.0, 0, 255).round().astype(np.uint8)


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB. RGBA is composited on black, 16-bit is rescaled."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        grey = _to_uint8(np.asarray(img))
        return Image.fromarray(grey, mode="L").convert("RGB")
    if img.mode in ("RGBA", "LA", "P", "PA"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def to_binary_mask(img: Image.Image) -> np.ndarray:
    """Convert a mask image of any mode to a boolean (H, W) array.

    - palette masks (mode `P`, VOC style): by index, any non-zero index is polyp, whatever colour
      the palette gives it (index 1 is often a dark red that luminance would call background);
    - masks with an alpha channel whose colour channels are all one value: the polyp is the alpha;
    - colour masks are read as luminance; 16-bit masks are rescaled to 8 bits; then pixels above
      `MASK_THRESHOLD` are foreground. A mask whose only values are 0 and 1 (a common export)
      takes 1 as foreground rather than thresholding it to nothing.
    """
    if img.mode == "P":
        return np.asarray(img) > 0
    if img.mode in ("RGBA", "LA", "PA"):
        bands = np.asarray(img.convert("RGBA" if img.mode != "LA" else "LA"))
        colour, alpha = bands[..., :-1], bands[..., -1]
        if colour.min(initial=0) == colour.max(initial=0) and alpha.min(initial=0) != alpha.max(initial=0):
            return alpha > MASK_THRESHOLD  # the polyp is drawn in alpha only
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img)
        if arr.max(initial=0) <= 1:
            return arr > 0
        grey = _to_uint8(arr)
    elif img.mode == "1":
        return np.asarray(img, dtype=bool)
    else:
        if img.mode in ("RGBA", "LA", "PA"):
            img = to_rgb(img)
        grey = np.asarray(img.convert("L"))
    if grey.max(initial=0) == 1:
        return grey == 1
    return grey > MASK_THRESHOLD


def read_image(path: str | Path) -> Image.Image:
    """Read an image file as 8-bit RGB. Raises `DataError` naming the file if it cannot."""
    return to_rgb(open_image_file(path))


def read_mask(path: str | Path) -> np.ndarray:
    """Read a mask file as a boolean (H, W) array. Raises `DataError` naming the file."""
    return to_binary_mask(open_image_file(path, keep_palette=True))


def read_pair(image_path: str | Path, mask_path: str | Path) -> tuple[Image.Image, np.ndarray]:
    """Read an image and its mask and check they are the same size.

    Returns:
        The RGB image (W x H) and its boolean mask of shape (H, W).

    Raises:
        DataError: either file is unreadable, or their sizes differ (both paths named).
    """
    image = read_image(image_path)
    mask = read_mask(mask_path)
    if mask.shape != (image.height, image.width):
        raise DataError(
            f"Image {image_path} is {image.width}x{image.height} but its mask {mask_path} is "
            f"{mask.shape[1]}x{mask.shape[0]} (width x height). Pair each image with the mask "
            "of the same frame, or remove the pair."
        )
    return image, mask


def encode_png(array_or_image: np.ndarray | Image.Image) -> bytes:
    """Encode an image or a boolean mask (stored as 0/255) as PNG bytes."""
    if isinstance(array_or_image, np.ndarray):
        arr = array_or_image
        if arr.dtype == bool:
            arr = arr.astype(np.uint8) * 255
        array_or_image = Image.fromarray(arr)
    buffer = io.BytesIO()
    array_or_image.save(buffer, format="PNG")
    return buffer.getvalue()
