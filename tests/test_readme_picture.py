"""docs/pictures/make_readme_picture.py, the script that makes the README's picture: it parses its flags, writes
by default the picture the README shows, and the README names the script."""
import importlib.util
import os

from helpers import REPO

SCRIPT = os.path.join(REPO, "docs", "pictures", "make_readme_picture.py")
PICTURE = os.path.join(REPO, "docs", "images", "explorer.png")


def _script():
    spec = importlib.util.spec_from_file_location("make_readme_picture", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_script_parses_its_flags_and_writes_the_readmes_picture():
    script = _script()
    args = script.build_parser().parse_args(["--epochs", "2", "--dry-run"])
    assert (args.epochs, args.dry_run) == (2, True)
    assert os.path.samefile(os.path.dirname(args.out), os.path.dirname(PICTURE))
    assert os.path.basename(args.out) == os.path.basename(PICTURE)


def test_the_readme_shows_the_picture_and_names_its_script():
    readme = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    assert "(docs/images/explorer.png)" in readme and "docs/pictures/make_readme_picture.py" in readme
    assert os.path.isfile(PICTURE) and os.path.getsize(PICTURE) < 300 * 1024
    with open(PICTURE, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
