"""Reading a user's own `.keras` model safely, and proving it was not changed.

`load_user_model` loads with `safe_mode=True` and `compile=False`: a Lambda layer holding Python
bytecode, or a class Keras does not know, is refused with one line. A model with custom layers loads
once the user names the modules that register them (`imports=("pkg.mod",)`, the command's `--import`):
IMPORTING A MODULE RUNS THE USER'S OWN CODE, which is why it is never done implicitly. A Lambda layer
whose function is a registered (named) function of such a module loads too; one holding bytecode never
does. `file_sha256` and `weights_digest` let callers show that the file and the weights are unchanged:
nothing here or in `keras_latent.attached` sets weights or flips a trainable flag on the user's model.
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib
import os
import re
import zipfile

import keras
import numpy as np

from keras_latent.errors import UsageError, shown

IMAGE_CHANNELS = (1, 3)


@dataclasses.dataclass(frozen=True)
class UserModel:
    """A user's model as loaded, with where it came from."""

    model: keras.Model
    path: str
    sha256: str  # of the file's bytes
    weights_digest: str  # `weights_digest(model)` right after loading
    imports: tuple[str, ...]  # the modules imported before loading (user code that ran)


def file_sha256(path: str) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def weights_digest(model: keras.Model) -> str:
    """Hex sha256 over every weight of `model` (trainable or not, e.g. BatchNorm's moving statistics): each
    weight's position, dtype, shape and bytes, in `model.weights` order (a variable's `path` is not used: it
    depends on how the model was built, e.g. "stem/conv1/kernel" before saving, "conv1/kernel" after loading).
    Equal digests: the same weights."""
    digest = hashlib.sha256()
    for i, weight in enumerate(model.weights):
        value = np.ascontiguousarray(keras.ops.convert_to_numpy(weight))
        digest.update(f"{i}|{value.dtype}|{value.shape}|".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def import_user_modules(imports) -> tuple[str, ...]:
    """Import each named module (this RUNS the user's code: their custom layers register themselves)."""
    names = tuple(imports or ())
    for name in names:
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*", name):
            raise UsageError(f"--import takes a module name such as mypackage.layers, got {shown(name)}")
        try:
            importlib.import_module(name)
        except Exception as err:  # the user's module failing to import is their error, in one line
            first = (str(err).splitlines() or [""])[0]
            raise UsageError(f"--import {name}: the module cannot be imported ({type(err).__name__}: {first})") \
                from None
    return names


def _why_refused(path: str, err: Exception, imports: tuple[str, ...]) -> str:
    message = str(err)
    if "Lambda" in message or "safe_mode" in message:
        return (f"{path!r} holds Python code (a Lambda layer with bytecode), which is refused (safe_mode): replace "
                "it by a registered custom layer or function in a module of yours and name it with --import")
    unknown = re.search(r"Could not locate (?:class|function) '([^']+)'", message)
    if unknown:
        named = f" (imported: {', '.join(imports)})" if imports else ""
        return (f"{path!r} uses a class Keras does not know ({unknown.group(1)}){named}: name the module that "
                "registers it with --import MODULE (this runs that module's code)")
    first = (message.splitlines() or [""])[0]
    return f"{path!r} cannot be loaded as a Keras model ({type(err).__name__}: {shown(first, 120)})"


def load_user_model(path: str, imports=()) -> UserModel:
    """A user's `.keras` file loaded with safe_mode=True and compile=False, after importing `imports`.

    Not a file, not a .keras archive, a damaged archive, code refused by safe_mode, an unknown class,
    or something that is not a Keras model: one UsageError line each. The file is only read.
    """
    if not os.path.isfile(path):
        raise UsageError(f"model file {path!r} does not exist (expected a .keras file saved by Keras 3)")
    if not zipfile.is_zipfile(path):
        raise UsageError(f"{path!r} is not a Keras model file (expected a .keras zip archive saved by Keras 3)")
    names = import_user_modules(imports)
    sha = file_sha256(path)
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as err:  # zip, json, h5 and deserialization errors all mean: not loadable as data
        raise UsageError(_why_refused(path, err, names)) from None
    if not isinstance(model, keras.Model):
        raise UsageError(f"{path!r} holds a {type(model).__name__}, not a Keras model")
    return UserModel(model, path, sha, weights_digest(model), names)


@dataclasses.dataclass(frozen=True)
class ImageSpec:
    """The images a model takes: (height, width, channels) and the value range of its input pixels."""

    height: int
    width: int
    channels: int  # 1 (grey) or 3
    input_range: tuple[float, float]  # (lo, hi): uint8 0 maps to lo, 255 to hi

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.height, self.width, self.channels)


def image_input_shape(model: keras.Model, image_size=None) -> tuple[int, int, int]:
    """(H, W, C) of the model's one image input: 4-D (B, H, W, C) with C in {1, 3}; H and W from the model,
    or from `image_size=(H, W)` where the model leaves them open. Anything else is one UsageError line."""
    inputs = model.inputs
    shapes = [tuple(x.shape) for x in inputs]
    if len(inputs) != 1 or len(shapes[0]) != 4 or shapes[0][-1] not in IMAGE_CHANNELS:
        raise UsageError(f"the model's inputs are not images: expected one input of shape (batch, height, width, "
                         f"1 or 3), got {', '.join(str(s) for s in shapes)}")
    _, h, w, c = shapes[0]
    if image_size is not None:
        size = tuple(image_size)
        if len(size) != 2 or not all(isinstance(v, int | np.integer) and v >= 8 for v in size):
            raise UsageError(f"image size must be (height, width), two integers >= 8, got {shown(image_size)}")
        if (h is not None and h != size[0]) or (w is not None and w != size[1]):
            raise UsageError(f"image size {size} does not match the model's fixed input size ({h}, {w})")
        h, w = int(size[0]), int(size[1])
    if h is None or w is None:
        raise UsageError(f"the model's input size is not fixed ({shapes[0]}): give the image size "
                         "(--image-size HxW, image_size=(H, W))")
    return int(h), int(w), int(c)


def check_input_range(input_range) -> tuple[float, float]:
    """(lo, hi) as floats with lo < hi, else one UsageError line."""
    try:
        lo, hi = (float(v) for v in input_range)
    except (TypeError, ValueError):
        raise UsageError(f"input range must be two numbers (lo, hi), got {shown(input_range)}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise UsageError(f"input range must be two finite numbers with lo < hi, got {shown(input_range)}")
    return lo, hi


def to_model_input(images_uint8: np.ndarray, spec: ImageSpec) -> np.ndarray:
    """uint8 images (N, H, W, C) -> float32 in the model's input range: lo + (hi - lo) * x / 255."""
    lo, hi = spec.input_range
    return (lo + (hi - lo) * (np.asarray(images_uint8, np.float32) / 255.0)).astype(np.float32)


def prepare_images(images_uint8: np.ndarray, spec: ImageSpec) -> np.ndarray:
    """uint8 images (N, h, w, 1 or 3) -> uint8 (N, H, W, C) at the model's size and channels: resized
    bilinearly (antialiased when shrinking), RGB -> grey by luma or grey -> RGB by repetition."""
    images = np.asarray(images_uint8)
    if images.ndim != 4 or images.dtype != np.uint8 or images.shape[-1] not in IMAGE_CHANNELS or not len(images):
        raise UsageError(f"images must be uint8 (N, height, width, 1 or 3) with N >= 1, got "
                         f"{images.dtype} {images.shape}")
    import tensorflow as tf

    x = tf.convert_to_tensor(images)
    if images.shape[-1] != spec.channels:
        x = tf.image.rgb_to_grayscale(x) if spec.channels == 1 else tf.image.grayscale_to_rgb(x)
    if images.shape[1:3] != (spec.height, spec.width):
        x = tf.image.resize(tf.cast(x, tf.float32), (spec.height, spec.width), antialias=True)
        x = tf.cast(tf.clip_by_value(tf.round(x), 0, 255), tf.uint8)
    return np.asarray(x)
