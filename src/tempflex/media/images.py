"""``load_image``: any image source -> ``[H, W, 3]`` uint8 RGB, upright, alpha composited on white.

Sources: a path, ``bytes``, a base64 ``data:`` URI, a PIL image or a numpy array (``[H, W]`` grey, ``[H, W, 3]``
RGB, ``[H, W, 4]`` RGBA; uint8, or uint16 scaled down). EXIF orientation is applied. Every PIL mode becomes
RGB: palette and grey modes are expanded, CMYK converted, 16-bit and float modes scaled to 8 bits, and any
alpha channel is composited on white (so a transparent logo is not a black square). An image of more than
``max_pixels`` pixels (default 100 M) is refused before it is decoded, with a ``MediaError`` naming the
source and its size (a decompression-bomb guard that does not touch PIL's global limit).

    >>> load_image(Image.new("LA", (4, 2), (0, 0))).tolist()[0][0]  # fully transparent -> white
    [255, 255, 255]
"""

from __future__ import annotations

import base64
import binascii
import io
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from tempflex.media.errors import MediaError

__all__ = ["DEFAULT_MAX_PIXELS", "decode_data_uri", "load_image"]

DEFAULT_MAX_PIXELS = 100_000_000


def _describe(source: Any) -> str:
    if isinstance(source, (str, Path)):
        text = str(source)
        return repr(text[:40] + "...") if text.startswith("data:") else repr(text)
    return f"<{type(source).__name__}>"


def decode_data_uri(uri: str) -> bytes:
    """The bytes of a base64 ``data:`` URI; MediaError naming the URI's start when it is not one."""
    header, _, payload = uri.partition(",")
    if ";base64" not in header:
        raise MediaError(f"data URI {_describe(uri)} is not base64-encoded")
    try:
        return base64.b64decode(payload, validate=True)
    except binascii.Error as error:
        raise MediaError(f"data URI {_describe(uri)} holds invalid base64: {error}") from error


def _open(source: Any) -> Image.Image:
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, (bytes, bytearray)):
        return Image.open(io.BytesIO(bytes(source)))
    if isinstance(source, str) and source.startswith("data:"):
        return Image.open(io.BytesIO(decode_data_uri(source)))
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise MediaError(f"image {str(path)!r}: no such file")
        if path.stat().st_size == 0:
            raise MediaError(f"image {str(path)!r}: the file is empty")
        return Image.open(path)
    raise MediaError(f"unsupported image source of type {type(source).__name__}")


def _array_to_image(array: np.ndarray) -> Image.Image:
    if array.dtype == np.uint16:
        array = (array // 257).astype(np.uint8)
    if array.dtype != np.uint8:
        raise MediaError(f"image array of dtype {array.dtype}; expected uint8 (or uint16)")
    if array.ndim == 2:
        return Image.fromarray(array, mode="L")
    if array.ndim == 3 and array.shape[-1] in (3, 4):
        return Image.fromarray(array, mode="RGB" if array.shape[-1] == 3 else "RGBA")
    raise MediaError(f"image array of shape {array.shape}; expected [H, W], [H, W, 3] or [H, W, 4]")


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") else max(float(values.max()), 1.0)
        image = Image.fromarray((np.clip(values / top, 0, 1) * 255).round().astype(np.uint8), mode="L")
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (image.mode == "P" and "transparency" in image.info)
    if has_alpha:
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return image.convert("RGB")


def load_image(source: Any, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode ``source`` (path, bytes, data URI, PIL image, array) to ``[H, W, 3]`` uint8 RGB."""
    if isinstance(source, np.ndarray):
        source = _array_to_image(source)
    try:
        image = _open(source)
        width, height = image.size
        if width * height > max_pixels:
            raise MediaError(
                f"image {_describe(source)} is {width}x{height} (width x height) = {width * height} pixels, "
                f"above max_pixels={max_pixels}: refusing to decode it"
            )
        image = ImageOps.exif_transpose(image)
        return np.asarray(_to_rgb(image))
    except MediaError:
        raise
    except (OSError, ValueError, Image.DecompressionBombError, SyntaxError) as error:
        raise MediaError(f"cannot read image {_describe(source)}: {error}") from error
