"""lifecycle.py's write probe: a parent folder removed by another process's probe under this one's makedirs
(two workers of one multi-worker run probing RUN and RUN/worker-1 at once) is made again, not a refusal."""
import errno
import os

import pytest

from keras_latent.errors import UsageError
from keras_latent.runs import lifecycle


def _vanishing_makedirs(monkeypatch, run_dir: str, times: int) -> list[str]:
    """os.makedirs that fails its first `times` calls for `run_dir` as it does when another process removes the
    parent between its check and its mkdir (FileNotFoundError); other calls, its own for parents, pass."""
    real, calls = os.makedirs, []

    def makedirs(path, *args, **kwargs):
        if os.path.abspath(path) == os.path.abspath(run_dir):
            calls.append(path)
            if len(calls) <= times:
                raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
        real(path, *args, **kwargs)

    monkeypatch.setattr(lifecycle.os, "makedirs", makedirs)
    return calls


def test_a_folder_removed_under_the_probe_is_made_again(tmp_path, monkeypatch):
    run_dir = str(tmp_path / "run" / "worker-1")
    calls = _vanishing_makedirs(monkeypatch, run_dir, times=lifecycle.PROBE_ATTEMPTS - 1)
    lifecycle._check_writable(run_dir)
    assert len(calls) >= lifecycle.PROBE_ATTEMPTS  # every attempt made it; the last one succeeded
    assert not os.path.exists(tmp_path / "run")  # the folders made for the probe are removed again


def test_a_folder_that_keeps_vanishing_is_one_line(tmp_path, monkeypatch):
    run_dir = str(tmp_path / "run")
    _vanishing_makedirs(monkeypatch, run_dir, times=lifecycle.PROBE_ATTEMPTS)
    with pytest.raises(UsageError, match=r"is not writable: No such file or directory; choose a folder"):
        lifecycle._check_writable(run_dir)
