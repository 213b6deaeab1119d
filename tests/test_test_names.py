"""pytest imports test files by basename (tests/ has no packages): two files with one name break collection."""
import collections
import os

from helpers import REPO


def test_test_file_basenames_are_unique():
    names = collections.defaultdict(list)
    for folder, _, files in os.walk(os.path.join(REPO, "tests")):
        for name in files:
            if name.startswith("test_") and name.endswith(".py"):
                names[name].append(os.path.relpath(os.path.join(folder, name), REPO))
    clashes = {name: paths for name, paths in names.items() if len(paths) > 1}
    assert not clashes, f"test files share a basename: {clashes}"
