"""One version: keras_latent.__version__ (written into reports and the calibration cache) is pyproject.toml's."""
import os
import re

from helpers import REPO

import keras_latent


def test_the_package_version_is_pyprojects():
    with open(os.path.join(REPO, "pyproject.toml"), encoding="utf-8") as f:  # no tomllib: Python 3.10 is supported
        project = f.read().split("[project]", 1)[1].split("\n[", 1)[0]
    assert keras_latent.__version__ == re.search(r'^version = "([^"]+)"', project, re.MULTILINE).group(1)
