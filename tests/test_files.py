"""files.py: a failed or killed write leaves the previous complete file; leftovers are cleaned up."""
import os
import signal
import subprocess
import sys
import textwrap

import pytest
from helpers import REPO

from keras_latent import files
from keras_latent.files import (
    atomic_directory,
    atomic_path,
    atomic_write_bytes,
    atomic_write_text,
    recover_directory,
    remove_stale_temps,
)


def test_write_replaces_the_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "metrics.json"
    atomic_write_text(str(path), "old")
    atomic_write_text(str(path), "new")
    assert path.read_text() == "new" and os.listdir(tmp_path) == ["metrics.json"]


def test_file_mode_follows_the_umask_not_mkstemp(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_bytes(str(tmp_path / "a.bin"), b"x")
        with atomic_directory(str(tmp_path / "folder")) as tmp:
            open(os.path.join(tmp, "f"), "w").close()
    finally:
        os.umask(old)
    assert (tmp_path / "a.bin").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "folder").stat().st_mode & 0o777 == 0o755


def test_a_writer_that_fails_midway_keeps_the_previous_file(tmp_path):
    path = tmp_path / "history.csv"
    atomic_write_text(str(path), "epoch\n1\n")
    with pytest.raises(RuntimeError, match="disk hiccup"):
        with atomic_path(str(path)) as tmp, open(tmp, "w") as f:
            f.write("epoch\n1\n2")  # half of the new content, then the writer dies
            raise RuntimeError("disk hiccup")
    assert path.read_text() == "epoch\n1\n" and os.listdir(tmp_path) == ["history.csv"]


def test_a_failing_rename_keeps_the_previous_file(tmp_path, monkeypatch):
    """A fault injected in the writer's last step (os.replace, e.g. ENOSPC on a full disk)."""
    path = tmp_path / "model.keras"
    atomic_write_bytes(str(path), b"old model")

    def full_disk(src, dst):
        raise OSError(28, "No space left on device", dst)

    monkeypatch.setattr(files.os, "replace", full_disk)
    with pytest.raises(OSError, match="No space left"):
        atomic_write_bytes(str(path), b"new model" * 1000)
    assert path.read_bytes() == b"old model" and os.listdir(tmp_path) == ["model.keras"]


def test_a_failing_directory_export_keeps_the_previous_folder(tmp_path):
    target = tmp_path / "saved_model"
    with atomic_directory(str(target)) as tmp:
        (tmp_path / tmp / "saved_model.pb").write_text("v1")
    with pytest.raises(ValueError):
        with atomic_directory(str(target)) as tmp:
            (tmp_path / tmp / "saved_model.pb").write_text("v2 half")
            raise ValueError("export failed")
    assert (target / "saved_model.pb").read_text() == "v1" and sorted(os.listdir(tmp_path)) == ["saved_model"]


def test_a_kill_between_the_two_folder_renames_is_recovered(tmp_path):
    """The swap renames path -> path.old, then tmp -> path; a kill between leaves only path.old."""
    target = tmp_path / "backup"
    (tmp_path / "backup.old").mkdir()
    (tmp_path / "backup.old" / "training_metadata.json").write_text('{"epoch": 2}')
    recover_directory(str(target))
    assert (target / "training_metadata.json").read_text() == '{"epoch": 2}'
    assert not (tmp_path / "backup.old").exists()
    (tmp_path / "backup.old").mkdir()  # a kill after the second rename: the new copy wins
    with atomic_directory(str(target)) as tmp:
        (tmp_path / tmp / "training_metadata.json").write_text('{"epoch": 3}')
    assert (target / "training_metadata.json").read_text() == '{"epoch": 3}'
    assert sorted(os.listdir(tmp_path)) == ["backup"]


def test_sigkill_during_a_write_leaves_the_previous_file(tmp_path):
    """A real process killed while writing: the old file is intact; the temp it left is cleaned up."""
    path = tmp_path / "history.csv"
    atomic_write_text(str(path), "epoch\n1\n")
    script = textwrap.dedent(f"""
        import sys, time
        from keras_latent.files import atomic_path
        with atomic_path({str(path)!r}) as tmp, open(tmp, "w") as f:
            f.write("epoch\\n1\\n2")
            f.flush()
            print("writing", flush=True)
            time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": REPO})
    try:
        assert proc.stdout.readline().strip() == "writing"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert path.read_text() == "epoch\n1\n"
    leftovers = [n for n in os.listdir(tmp_path) if n != "history.csv"]
    assert len(leftovers) == 1 and leftovers[0].startswith(".history.csv.")
    assert remove_stale_temps(str(tmp_path)) == leftovers
    assert os.listdir(tmp_path) == ["history.csv"]


def test_stale_temp_cleanup_touches_only_our_temps(tmp_path):
    for name in (".model.keras.ab12_x9z.tmp.keras", ".saved_model.q1w2e3r4.tmp", "notes.tmp", ".hidden",
                 "model.keras"):
        (tmp_path / name).write_text("x")
    (tmp_path / ".backup.zz99yy88.tmp").mkdir()
    removed = remove_stale_temps(str(tmp_path))
    assert sorted(removed) == [".backup.zz99yy88.tmp", ".model.keras.ab12_x9z.tmp.keras", ".saved_model.q1w2e3r4.tmp"]
    assert sorted(os.listdir(tmp_path)) == [".hidden", "model.keras", "notes.tmp"]
