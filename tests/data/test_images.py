"""data/images.py: image folders. Valid images in unusual forms are converted; broken inputs are one line, exit 2,
nothing written (the table in docs/data.md)."""
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from helpers import REPO, refused_by_train
from PIL import Image

from keras_latent.data import load_dataset
from keras_latent.data.images import MAX_IMAGE_PIXELS, read_image


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def raw_png(path, width: int, height: int, bit_depth: int, color_type: int, row: bytes) -> None:
    """A PNG whose every row is `row` (filter byte 0 added), compressed as it is written: a huge image costs
    little memory or disk. color_type 0: grey, 2: RGB."""
    compressor, idat = zlib.compressobj(9), []
    line = b"\x00" + row
    for start in range(0, height, 1024):
        idat.append(compressor.compress(line * min(1024, height - start)))
    idat.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", b"".join(idat))
                + png_chunk(b"IEND", b""))


def save(image: Image.Image, path, **kwargs):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    image.save(path, **kwargs)
    return path


def two_classes(root, n: int = 2, size: int = 8) -> None:
    """root/<cat, dog>/<i>.png: plain RGB images, `n` per class."""
    rng = np.random.default_rng(0)
    for name in ("cat", "dog"):
        for i in range(n):
            save(Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)), root / name / f"{i}.png")


# ---------------------------------------------------------------- converted


def test_unusual_valid_images_are_converted_to_rgb(tmp_path):
    """Grayscale, RGBA, palette (with transparency), 16-bit grey and RGB PNGs, a CMYK JPEG, an EXIF-rotated
    JPEG and a GIF: each becomes the RGB image a viewer shows (transparency over white)."""
    d = tmp_path / "forms"
    d.mkdir()
    grey = save(Image.new("L", (4, 4), 100), d / "grey.png")
    transparent = Image.new("RGBA", (4, 4), (255, 0, 0, 255))
    transparent.putpixel((0, 0), (0, 0, 0, 0))
    rgba = save(transparent, d / "rgba.png")
    palette = Image.new("P", (4, 4), 1)
    palette.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)
    pal = save(palette, d / "palette.png")
    pal_t = save(palette, d / "palette_transparent.png", transparency=1)
    raw_png(d / "grey16.png", 4, 4, 16, 0, struct.pack(">H", 65535) * 4)  # full white in 16 bits
    raw_png(d / "rgb16.png", 4, 4, 16, 2, struct.pack(">HHH", 0x8000, 0x4000, 0xFFFF) * 4)
    cmyk = save(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), d / "cmyk.jpg", quality=95)  # red in CMYK
    upright = Image.new("RGB", (16, 8), (0, 0, 255))
    upright.paste((255, 255, 0), (0, 0, 8, 8))  # left half yellow
    exif = upright.getexif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to view
    rotated = save(upright, d / "rotated.jpg", exif=exif, quality=95)
    gif = save(Image.new("P", (4, 4), 0), d / "one.gif")

    assert (read_image(str(grey), 4) == 100).all()
    assert read_image(str(rgba), 4)[0, 0].tolist() == [255, 255, 255]  # transparent pixel over white
    assert read_image(str(rgba), 4)[3, 3].tolist() == [255, 0, 0]
    assert (read_image(str(pal), 4) == [0, 0, 255]).all()
    assert (read_image(str(pal_t), 4) == 255).all()  # palette entry 1 transparent: white
    assert (read_image(str(d / "grey16.png"), 4) == 255).all()  # scaled, not clipped: 65535 -> 255
    assert np.abs(read_image(str(d / "rgb16.png"), 4).astype(int) - [128, 64, 255]).max() <= 1
    red = read_image(str(cmyk), 16).reshape(-1, 3).mean(axis=0)
    assert red[0] > 200 and red[1] < 40 and red[2] < 40, red
    turned = read_image(str(rotated), 8)  # viewed upright: 8 wide, 16 tall squeezed to 8 x 8; top half yellow
    assert turned[0, 4, 2] < 60 and turned[-1, 4, 2] > 200, turned[:, 4]
    assert read_image(str(gif), 4).shape == (4, 4, 3)


def test_a_huge_jpeg_is_decoded_at_reduced_scale_in_bounded_memory(tmp_path):
    """A 9,000 x 9,000 JPEG (81 megapixels: 81 MB decoded in full, 243 MB as RGB) is decoded at 1/8 scale: reading
    it grows the process's peak memory by far less than the full image."""
    path = save(Image.new("L", (9000, 9000), 90), tmp_path / "big" / "huge.jpg", quality=50)
    code = ("import resource, sys, PIL.Image; from keras_latent.data.images import read_image; "
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; x = read_image(sys.argv[1], 32); "
            "print(*x.shape, int(x.mean()), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)")
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": REPO})
    assert proc.returncode == 0, proc.stderr[-2000:]
    height, width, channels, mean, grown_kb = map(int, proc.stdout.split())
    assert (height, width, channels) == (32, 32, 3) and abs(mean - 90) <= 2
    assert grown_kb < 30_000, f"peak memory grew by {grown_kb} kB while reading one image"


def test_non_ascii_class_names_and_stray_files(tmp_path, caplog):
    for split in ("train", "test"):
        for name in ("chat noir", "café", "猫"):
            rng = np.random.default_rng(len(name))
            save(Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)), tmp_path / split / name / "a.png")
    decomposed = "cafe\u0301"  # what macOS writes for café: the same class after NFC normalization
    os.rename(tmp_path / "test" / "café", tmp_path / "test" / decomposed)
    (tmp_path / "train" / "chat noir" / "notes.txt").write_text("not an image")
    (tmp_path / "train" / "chat noir" / ".DS_Store").write_bytes(b"\0")
    splits = load_dataset(str(tmp_path), image_size=6)
    assert splits.class_names == ("café", "chat noir", "猫") and len(splits.x_train) == len(splits.x_test) == 3
    notices = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(notices) == 1 and "skipped 1 file(s) that are not images by their name (notes.txt)" in notices[0]


@pytest.mark.slow
def test_a_run_on_converted_images_keeps_non_ascii_class_names_to_the_saved_model(tmp_path, capsys):
    """Grey, transparent and 16-bit images under the classes 猫 and café: trained on (1 epoch), and the names
    reach config.json and the SavedModel's class_name output unchanged."""
    import json

    import tensorflow as tf
    from helpers import run_main

    from keras_latent.runs import layout
    from keras_latent.train import main

    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("test", 2)):
        for name in ("猫", "café"):
            for i in range(n):
                pixels = rng.integers(0, 256, (20, 20, 4), dtype=np.uint8)
                image = Image.fromarray(pixels, "RGBA") if i % 2 else Image.fromarray(pixels[..., 0], "L")
                save(image, tmp_path / "data" / split / name / f"{i}.png")
        raw_png(tmp_path / "data" / split / "猫" / "deep.png", 20, 20, 16, 0, b"\x80\x00" * 20)
    out = str(tmp_path / "run")
    code, _, err = run_main(main, ["--dataset", str(tmp_path / "data"), "--image-size", "16", "--epochs", "1",
                                   "--snapshot-epochs", "", "--out", out, "-q"], capsys)
    assert code == 0, err
    assert json.load(open(layout.CONFIG.path(out), encoding="utf-8"))["data"]["class_names"] == ["café", "猫"]
    serve = tf.saved_model.load(layout.SAVED_MODEL.path(out)).signatures["serving_default"]
    names = serve(images=tf.zeros((2, 16, 16, 3), tf.uint8))["class_name"].numpy()
    assert {n.decode("utf-8") for n in names} <= {"café", "猫"}


def test_a_symlinked_class_folder_is_followed(tmp_path):
    two_classes(tmp_path / "elsewhere")
    (tmp_path / "data").mkdir()
    for name in ("cat", "dog"):
        os.symlink(tmp_path / "elsewhere" / name, tmp_path / "data" / name)
    splits = load_dataset(str(tmp_path / "data"), image_size=8, test_fraction=0.5)
    assert splits.class_names == ("cat", "dog") and len(splits.x_train) == 2 and len(splits.x_test) == 2


# ---------------------------------------------------------------- refused


def _not_an_image(root):
    two_classes(root)
    (root / "cat" / "2.png").write_text("this is text, not a PNG")


def _corrupt_png(root):
    two_classes(root, size=64)
    data = (root / "dog" / "1.png").read_bytes()
    (root / "dog" / "1.png").write_bytes(data[:40] + b"\xff" * 64 + data[104:])  # damaged IDAT


def _truncated_jpeg(root):
    two_classes(root)
    rng = np.random.default_rng(1)
    path = save(Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)), root / "cat" / "2.jpg")
    path.write_bytes(path.read_bytes()[:600])


def _huge_png(root):
    two_classes(root)
    raw_png(root / "dog" / "huge.png", 6000, 6000, 8, 0, b"\x00" * 6000)  # 36 megapixels, 40 kB on disk


def _empty_class(root):
    two_classes(root)
    (root / "bird").mkdir()


def _single_class(root):
    two_classes(root)
    os.rename(root / "dog" / "0.png", root / "cat" / "9.png")
    os.rename(root / "dog" / "1.png", root / "cat" / "8.png")
    os.rmdir(root / "dog")


def _different_classes(root):
    two_classes(root / "train")
    two_classes(root / "test")
    os.rename(root / "test" / "dog", root / "test" / "bird")


def _symlink_loop(root):
    two_classes(root)
    os.symlink(root, root / "cat" / "again")


def _link_to_itself(root):
    two_classes(root)
    os.symlink(root / "dog" / "self", root / "dog" / "self")


def _broken_link(root):
    two_classes(root)
    os.symlink(root / "gone.png", root / "cat" / "2.png")


def _train_without_test(root):
    two_classes(root / "train")


def _loose_images(root):
    two_classes(root)
    os.rename(root / "cat" / "0.png", root / "stray.png")


def _one_image_class(root):
    two_classes(root)
    os.remove(root / "dog" / "1.png")


# (what is wrong, how the folder is made, what the one line must say)
CASES = [
    ("non-image file", _not_an_image, "cat/2.png is not an image Pillow can read; an image folder may hold only"),
    ("corrupt PNG", _corrupt_png, "dog/1.png is a damaged image"),
    ("truncated JPEG", _truncated_jpeg, "cat/2.jpg is a damaged image (OSError: "),
    ("very large image", _huge_png, f"huge.png is too large (6000 x 6000 pixels, 36 megapixels); images above "
                                    f"{MAX_IMAGE_PIXELS / 1e6:.0f} megapixels are refused to keep memory bounded"),
    ("empty class folder", _empty_class, "class folder {root}/bird holds no images"),
    ("single class", _single_class, "{root} has one class folder (cat); a classifier needs at least two classes"),
    ("train/ and test/ with different classes", _different_classes,
     "train/ and test/ must have the same class folders; only in train/: dog; only in test/: bird"),
    ("symlink loop", _symlink_loop, "{root}/cat/again is a symbolic link loop (it leads back to"),
    ("symlink to itself", _link_to_itself, "{root}/dog/self is a symbolic link loop; remove it"),
    ("broken symlink", _broken_link, "{root}/cat/2.png is a broken symbolic link"),
    ("train/ without test/", _train_without_test, "has train/ but no test/; expected train/ and test/"),
    ("images outside a class folder", _loose_images, "holds images outside any class folder (stray.png)"),
    ("a class of one image", _one_image_class, "class 'dog' has 1 image"),
]


@pytest.mark.parametrize("make,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_bad_image_folder_is_one_line_and_nothing_is_written(tmp_path, capsys, make, expected):
    root = tmp_path / "images"
    root.mkdir()
    make(root)
    line = refused_by_train(root, tmp_path / "run", capsys)
    assert expected.format(root=root) in line, line
