"""Image folders: one subfolder per class, every file read with Pillow and checked, into uint8 arrays.

Two layouts: `FOLDER/train/<class>/...` and `FOLDER/test/<class>/...` (the same classes in both), or
`FOLDER/<class>/...` (then a seeded `test_fraction` of each class is held out). Subfolders of a class
folder and symbolic links are followed (a link loop is refused); hidden files are ignored and other
files that are not images by their name are skipped with one notice.

Valid images in unusual forms are converted to RGB: grayscale, palette, 16-bit (scaled to 8 bits),
transparent ones (composited over white, as a viewer shows them), CMYK JPEGs, EXIF-rotated photos,
and any size (resized to `image_size` x `image_size`; JPEGs are decoded at up to 1/8 scale first, so
memory stays bounded). A file that is not an image, a damaged one, one above MAX_IMAGE_PIXELS, an
empty class folder, a single class, or train/ and test/ with different classes is one line naming
the file or folder. The whole table: docs/data.md.
"""
from __future__ import annotations

import errno
import logging
import os
import re
import unicodedata
import warnings
from collections.abc import Callable

import numpy as np

from keras_latent.data.store import Store
from keras_latent.errors import UsageError

log = logging.getLogger("keras_latent")

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
MAX_IMAGE_PIXELS = 25_000_000  # decoded pixels per image (after JPEG draft scaling): at most ~300 MB while converted
BACKGROUND = (255, 255, 255)  # what shows through transparent pixels
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")  # Pillow's modes for 16-bit grayscale PNGs
LAYOUT = "expected train/ and test/ with one subfolder per class, or one subfolder per class"


# ---------------------------------------------------------------- finding the files


def _stat_link(path: str) -> None:
    """A symbolic link that leads nowhere (or around in a circle) is one line."""
    try:
        os.stat(path)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise UsageError(f"{path} is a symbolic link loop; remove it") from None
        raise UsageError(f"{path} is a broken symbolic link (its target {os.readlink(path)!r} does not exist); "
                         "remove it or fix its target") from None


def _listing(folder: str) -> list[str]:
    try:
        return sorted(name for name in os.listdir(folder) if not name.startswith("."))  # hidden: .DS_Store, ...
    except OSError as err:
        raise UsageError(f"cannot list {folder}: {err.strerror or err}") from None


def _files_under(folder: str, ancestors: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """(image files, other files) below `folder`, links followed, sorted by path; a link back to a folder
    above (`ancestors`: real paths) is a loop."""
    real = os.path.realpath(folder)
    if real in ancestors:
        raise UsageError(f"{folder} is a symbolic link loop (it leads back to {real}); remove the link")
    images, others = [], []
    for name in _listing(folder):
        path = os.path.join(folder, name)
        if os.path.islink(path):
            _stat_link(path)
        if os.path.isdir(path):
            found, skipped = _files_under(path, ancestors + (real,))
            images, others = images + found, others + skipped
        elif name.lower().endswith(IMAGE_EXTENSIONS):
            images.append(path)
        else:
            others.append(path)
    return images, others


def _class_name(folder_name: str, root: str) -> str:
    try:
        folder_name.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError(f"class folder {os.path.join(root, folder_name)!r} has a name that is not valid UTF-8; "
                         "rename it") from None
    return unicodedata.normalize("NFC", folder_name)  # macOS writes decomposed names: café == café


def find_classes(root: str) -> tuple[dict[str, list[str]], list[str]]:
    """({class name: image files}, files skipped) of one split folder; classes sorted by name."""
    classes, skipped, real_root = {}, [], os.path.realpath(root)
    loose = []
    for name in _listing(root):
        path = os.path.join(root, name)
        if os.path.islink(path):
            _stat_link(path)
        if not os.path.isdir(path):
            (loose if name.lower().endswith(IMAGE_EXTENSIONS) else skipped).append(path)
            continue
        label = _class_name(name, root)
        if label in classes:
            raise UsageError(f"{root} has two class folders named {label!r} (they differ only in Unicode form)")
        classes[label], others = _files_under(path, (real_root,))
        skipped += others
        if not classes[label]:
            raise UsageError(f"class folder {path} holds no images ({', '.join(IMAGE_EXTENSIONS)}); add images or "
                             "remove the folder")
    if loose:
        raise UsageError(f"{root} holds images outside any class folder ({os.path.basename(loose[0])}"
                         f"{', ...' if len(loose) > 1 else ''}); put each image into the subfolder of its class")
    if not classes:
        raise UsageError(f"image folder {root!r} holds no images ({', '.join(IMAGE_EXTENSIONS)}); {LAYOUT}")
    if len(classes) < 2:
        raise UsageError(f"{root} has one class folder ({next(iter(classes))}); a classifier needs at least two "
                         f"classes: {LAYOUT}")
    return dict(sorted(classes.items())), skipped


# ---------------------------------------------------------------- reading one image


def _to_rgb(image):
    """A loaded Pillow image of any mode -> RGB."""
    from PIL import Image

    if image.mode in SIXTEEN_BIT_MODES:  # 0..65535 -> 0..255 (a plain convert would clip at 255)
        values = np.asarray(image, dtype=np.float64) / 257.0
        image = Image.fromarray(np.clip(np.round(values), 0, 255).astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, BACKGROUND + (255,)), rgba).convert("RGB")
    return image.convert("RGB")


def read_image(path: str, size: int) -> np.ndarray:
    """One image file -> (size, size, 3) uint8, converted and resized (bilinear, antialiased); a file that
    is not an image, is damaged or is too large is one line naming it."""
    return decode_image(path, size, path)


def decode_image(source, size: int | None, name: str) -> np.ndarray:
    """An image (a path or a binary file object) -> (size, size, 3) uint8 as an image folder's files are read
    (converted, EXIF-rotated, resized bilinear with antialiasing), or (H, W, 3) at its own size when `size`
    is None; a source that is not an image, is damaged or is too large is one line naming it (`name`)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = name
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own, lower limit follows
            with Image.open(source) as image:
                if image.format in ("JPEG", "MPO") and size is not None:
                    image.draft(None, (size, size))  # libjpeg decodes at 1/2, 1/4 or 1/8 scale, still >= size
                width, height = image.size
                if width * height > MAX_IMAGE_PIXELS:
                    raise UsageError(_too_large(path, width * height, f"{width} x {height} pixels, "))
                image.load()
                try:
                    image = ImageOps.exif_transpose(image)  # photos upright, as viewers show them
                except Exception:  # a damaged EXIF block: the pixels are still good
                    pass
                rgb = _to_rgb(image)
    except Image.DecompressionBombError as err:  # Pillow's own limit, checked at open: "Image size (N pixels) ..."
        pixels = re.search(r"\((\d+) pixels\)", str(err))
        raise UsageError(_too_large(path, int(pixels.group(1)) if pixels else None)) from None
    except UnidentifiedImageError:
        if _has_image_signature(source):
            raise UsageError(f"{path} is a damaged image (it starts like one, but Pillow cannot open it); "
                             "remove or replace it") from None
        raise UsageError(f"{path} is not an image Pillow can read; an image folder may hold only images "
                         f"({', '.join(IMAGE_EXTENSIONS)}): remove or replace it") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, MemoryError) as err:  # Pillow's decoders
        raise UsageError(f"{path} is a damaged image ({type(err).__name__}: {err}); remove or replace it") from None
    if size is None:
        return np.asarray(rgb, dtype=np.uint8)
    return np.asarray(rgb.resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)


def _has_image_signature(source) -> bool:
    """Does the file (a path or a binary file object) start like a PNG, JPEG, GIF or BMP (so a failure to open
    it means it is damaged)?"""
    if hasattr(source, "read"):
        source.seek(0)
        head = source.read(8)
    else:
        with open(source, "rb") as f:
            head = f.read(8)
    return head.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM"))


def _too_large(path: str, pixels: int | None, size: str = "") -> str:
    megapixels = f"{pixels / 1e6:.0f} megapixels" if pixels else "more than Pillow's own limit"
    return (f"{path} is too large ({size}{megapixels}); images above {MAX_IMAGE_PIXELS / 1e6:.0f} megapixels are "
            "refused to keep memory bounded (JPEGs count after decoding at up to 1/8 scale): downscale it")


def read_images(paths: list[str], size: int, out: np.ndarray | None = None) -> np.ndarray:
    """(N, size, size, 3) uint8 of `paths`, one image in memory at a time besides the result (`out`, e.g. a
    `store.Store`'s memory map, or a new array)."""
    out = np.empty((len(paths), size, size, 3), np.uint8) if out is None else out
    for i, path in enumerate(paths):
        out[i] = read_image(path, size)
    return out


# ---------------------------------------------------------------- a whole folder


def _arrays(classes: dict[str, list[str]], names: list[str], size: int, store: Store,
            name: str) -> tuple[np.ndarray, np.ndarray]:
    paths = [p for name in names for p in classes[name]]
    labels = np.array([k for k, name in enumerate(names) for _ in classes[name]], np.int64)
    return store.done(read_images(paths, size, store.empty((len(paths), size, size, 3), name))), labels


def _split_each_class(classes: dict[str, list[str]], fraction: float, seed: int) -> tuple[dict, dict]:
    """Hold out a seeded `fraction` of each class (at least one image, never all): (train, test)."""
    rng = np.random.default_rng(seed)
    train, test = {}, {}
    for name, files in classes.items():
        if len(files) < 2:
            raise UsageError(f"class {name!r} has 1 image ({files[0]}); with one subfolder per class each class "
                             "needs at least 2 images, one to train on and one to test")
        n_test = min(len(files) - 1, max(1, round(len(files) * fraction)))
        order = rng.permutation(len(files))
        test[name] = [files[i] for i in sorted(order[:n_test])]
        train[name] = [files[i] for i in sorted(order[n_test:])]
    return train, test


def load_image_folder(folder: str, image_size: int, test_fraction: float, seed: int,
                      store_for: Callable[[int], Store] | None = None) -> dict:
    """Read an image folder (see the module docstring) into uint8 arrays (N, image_size, image_size, 3):
    in memory, or where `store_for(number of images)` says (`store.Store`: streaming, `.npy` memory maps
    written one image at a time)."""
    train_dir, test_dir = os.path.join(folder, "train"), os.path.join(folder, "test")
    has_train, has_test = os.path.isdir(train_dir), os.path.isdir(test_dir)
    if has_train != has_test:
        there, missing = ("train", "test") if has_train else ("test", "train")
        raise UsageError(f"image folder {folder!r} has {there}/ but no {missing}/; {LAYOUT}")
    if has_train:
        train, skipped = find_classes(train_dir)
        test, more = find_classes(test_dir)
        skipped += more
        if set(train) != set(test):
            only_train = ", ".join(sorted(set(train) - set(test))) or "none"
            only_test = ", ".join(sorted(set(test) - set(train))) or "none"
            raise UsageError(f"image folder {folder!r}: train/ and test/ must have the same class folders; only in "
                             f"train/: {only_train}; only in test/: {only_test}")
    else:
        classes, skipped = find_classes(folder)
        train, test = _split_each_class(classes, test_fraction, seed)
    if skipped:
        log.warning(f"{folder}: skipped {len(skipped)} file(s) that are not images by their name "
                    f"({', '.join(os.path.basename(p) for p in skipped[:3])}{', ...' if len(skipped) > 3 else ''}); "
                    f"images end in {', '.join(IMAGE_EXTENSIONS)}")
    names = sorted(train)
    total = sum(map(len, train.values())) + sum(map(len, test.values()))
    store = store_for(total) if store_for else Store()
    x_train, y_train = _arrays(train, names, image_size, store, "x_train")
    x_test, y_test = _arrays(test, names, image_size, store, "x_test")
    return dict(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test, class_names=tuple(names))
