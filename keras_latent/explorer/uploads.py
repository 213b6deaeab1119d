"""Uploaded pictures in, PNG pictures out.

An upload is data from a stranger: it is checked with Pillow (format PNG or JPEG, size within limits, the
whole file decodes) before anything else reads it, then decoded and resized exactly as the run's training
read its images (`keras_latent.data.sources.outside_image`: converted to RGB and EXIF-rotated as an image
folder's files are, resized as the run's data set was).
"""
from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image, UnidentifiedImageError

from keras_latent.data.sources import outside_image
from keras_latent.errors import UsageError

UPLOAD_FORMATS = ("PNG", "JPEG")


class UploadTooLarge(UsageError):
    """An upload over the size limit (HTTP 413)."""


def _describe(data: bytes) -> str:
    return f"{len(data):,} bytes starting {data[:8]!r}"


def check_upload(data: bytes, max_bytes: int, max_pixels: int) -> tuple[str, tuple[int, int]]:
    """Pillow's reading of an upload: (format, (width, height)); anything but a whole PNG or JPEG within the
    limits is a UsageError (UploadTooLarge for too many bytes or pixels) naming what was received."""
    if not data:
        raise UsageError("the upload is empty; expected a PNG or JPEG image file")
    if len(data) > max_bytes:
        raise UploadTooLarge(f"the upload has {len(data):,} bytes; at most {max_bytes:,} are accepted "
                             "(--max-upload-mb)")
    try:
        with Image.open(io.BytesIO(data), formats=UPLOAD_FORMATS) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise UploadTooLarge(f"the upload is {width}x{height} = {width * height:,} pixels; at most "
                                     f"{max_pixels:,} are accepted")
            image.load()  # decodes the whole file: a truncated or damaged one fails here
            return image.format, (width, height)
    except UnidentifiedImageError:
        raise UsageError(f"the upload is not a PNG or JPEG image (got {_describe(data)}); "
                         f"allowed formats: {', '.join(UPLOAD_FORMATS)}") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise UsageError(f"the upload is a damaged image ({type(err).__name__}: {err}); "
                         f"expected a whole {' or '.join(UPLOAD_FORMATS)} file") from None


def read_upload(data: bytes, image_size: int, dataset: str, max_bytes: int, max_pixels: int) -> np.ndarray:
    """A checked PNG or JPEG upload as the model's input: uint8 (image_size, image_size, 3), read as training
    read `dataset`'s images."""
    check_upload(data, max_bytes, max_pixels)
    return outside_image(data, image_size, dataset)


def png_bytes(image: np.ndarray) -> bytes:
    """uint8 (H, W, 3) -> PNG file content."""
    out = io.BytesIO()
    image = np.asarray(image, np.uint8)
    if image.ndim == 3 and image.shape[-1] == 1:  # a grey model's image (an attached run)
        image = np.repeat(image, 3, axis=-1)
    Image.fromarray(image, "RGB").save(out, format="PNG", compress_level=1)
    return out.getvalue()


def png_data_url(image: np.ndarray) -> str:
    """uint8 (H, W, 3) -> `data:image/png;base64,...` (what an <img src> and a JSON answer can carry)."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(image)).decode("ascii")
