"""Make docs/images/explorer.png, the README's picture, from a real run, so it stays true as the code changes.

Trains a short run on the bundled CIFAR-10 sample, analyses it (channel ablation, which ranks the explorer's
channels), serves the live explorer (keras_latent.explorer) on a free localhost port, switches a few conv2
channels off in the page and screenshots it with Playwright driving the system Chromium (nothing is
downloaded). About two minutes on 2 CPU cores.

    python docs/pictures/make_readme_picture.py            # writes docs/images/explorer.png
    python docs/pictures/make_readme_picture.py --dry-run  # checks Chromium and Playwright, makes nothing
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading

import keras_latent  # noqa: F401  (before keras: it quiets TensorFlow's start-up lines)

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(os.path.dirname(HERE), "images", "explorer.png")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
CONV2 = '.layer[data-layer="conv2"]'


def chromium() -> str:
    """The system Chromium (Debian's `chromium`), or exit with one line saying how to install it."""
    found = next((shutil.which(n) for n in ("chromium", "chromium-browser") if shutil.which(n)), None)
    if found is None:
        sys.exit("error: no chromium on PATH (apt-get install -y chromium)")
    return found


def train_and_analyze(run_dir: str, epochs: int, seed: int) -> None:
    import keras

    from keras_latent.analysis.config import AnalysisConfig
    from keras_latent.analysis.run import analyze_run
    from keras_latent.config import DataConfig, TrainConfig
    from keras_latent.training.fit import train

    keras.utils.set_random_seed(seed)
    train(TrainConfig(data=DataConfig(dataset="sample"), epochs=epochs, seed=seed, snapshot_epochs=()), run_dir,
          verbose=0)
    analyze_run(run_dir, AnalysisConfig(methods=("decode",)))  # the ablation ranking the explorer shows


def screenshot(run_dir: str, out: str, image: int, off: int, width: int, height: int) -> None:
    """Serve the explorer on `run_dir`, pick test image `image`, switch the first `off` conv2 channels off and
    save the page (PNG, `width` x `height` CSS pixels) to `out`."""
    from playwright.sync_api import sync_playwright

    from keras_latent.explorer.config import ExploreConfig
    from keras_latent.explorer.server import create_server, url_of

    server, explorer = create_server(run_dir, ExploreConfig(port=0))  # port 0: a free one
    threading.Thread(target=server.run, daemon=True).start()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS)
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(60_000)
            page.goto(url_of("127.0.0.1", server.effective_port))
            page.wait_for_selector("body[data-ready=true]")
            page.click(f"#thumbnails .thumb >> nth={image}")
            page.wait_for_selector(f'#view[data-image="test-{image}"] {CONV2} .tile[data-channel="0"]')
            for seq, channel in enumerate(range(off), start=1):
                page.click(f'{CONV2} .tile[data-channel="{channel}"]')
                page.wait_for_selector(f'{CONV2}[data-seq="{seq}"]:not([data-pending])')
            page.evaluate("window.scrollTo(0, 0)")  # from the page's top: the header, conv1 and conv2
            tmp = out + ".tmp.png"
            page.screenshot(path=tmp, full_page=False)
            browser.close()
        shrink(tmp, out)
    finally:
        server.close()
        explorer.close()


def shrink(source: str, out: str) -> None:
    """Save `source` as a palette PNG (256 colours), which keeps the screenshot well under 300 KB."""
    from PIL import Image

    with Image.open(source) as picture:
        picture.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
    os.remove(source)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", default=DEFAULT_OUT, help="PNG file to write")
    p.add_argument("--epochs", type=int, default=5, help="training epochs on the bundled sample")
    p.add_argument("--seed", type=int, default=0, help="seed of the run")
    p.add_argument("--image", type=int, default=3, help="test image shown")
    p.add_argument("--off", type=int, default=4, help="conv2 channels switched off (the first N)")
    p.add_argument("--width", type=int, default=1200, help="page width, CSS pixels")
    p.add_argument("--height", type=int, default=1400, help="page height, CSS pixels")
    p.add_argument("--dry-run", action="store_true", help="check that Chromium and Playwright are there, then stop")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    executable = chromium()
    import playwright.sync_api  # noqa: F401  (fails here, before training, when Playwright is missing)

    if args.dry_run:
        print(f"chromium: {executable}; playwright: importable; would write {args.out}")
        return 0
    os.environ.setdefault("KERAS_LATENT_CALIBRATE", "0")  # the picture needs no speed measurement
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = os.path.join(tmp, f"sample-{args.epochs}-epochs")  # the page header names the run
        train_and_analyze(run_dir, args.epochs, args.seed)
        screenshot(run_dir, args.out, args.image, args.off, args.width, args.height)
    print(f"wrote {args.out} ({os.path.getsize(args.out) // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
