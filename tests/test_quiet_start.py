"""quiet_start.py: a command's first `import tensorflow` loses exactly TensorFlow's start-up notices on stderr;
every other line it writes (C++ or Python, an error's traceback included) still reaches stderr; TensorFlow and
Keras load without the optional extras (SKIPPED_EXTRAS), which import as usual afterwards."""
import importlib
import json
import subprocess
import sys
import textwrap

import pytest
from helpers import REPO, fake_tensorflow

NOTICE_LINES = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796575866.123247    3263 port.cc:153] oneDNN custom operations are on. You may see slightly "
    "different numerical results due to floating-point round-off errors from different computation orders.",
]


def _fake_tensorflow(tmp_path, tail: str = "VALUE = 7") -> str:
    """A package named tensorflow that writes the notices, a real C++-style error and a Python line to stderr."""
    writes = "".join(f"os.write(2, {(line + chr(10)).encode()!r})\n" for line in NOTICE_LINES)
    init = ("import os, sys\n" + writes + "os.write(2, b'E0000 00:00:1.5 1 real.cc:9] a real error\\n')\n"
            "print('a Python warning', file=sys.stderr)\n" + tail + "\n")
    return fake_tensorflow(tmp_path / "fake", init)


def _import_quietly(fake: str, install: bool = True,
                    report: str = "print('value', tensorflow.VALUE, type(tensorflow.__spec__.loader).__name__)"
                    ) -> subprocess.CompletedProcess:
    """A fresh process importing the fake TensorFlow at `fake` (after the command's start where `install`), then
    running the line `report`."""
    script = textwrap.dedent(f"""
        import importlib, json, sys
        sys.path.insert(0, {fake!r})
        from keras_latent.quiet_start import SKIPPED_EXTRAS, quiet_tensorflow_import
        if {install}:
            quiet_tensorflow_import()
        import tensorflow
    """) + report + "\n"
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=REPO)


def test_the_notices_are_dropped_and_every_other_line_kept(tmp_path):
    fake = _fake_tensorflow(tmp_path)
    plain = _import_quietly(fake, install=False)  # the control: without the filter, the notices are there
    assert plain.returncode == 0 and all(line in plain.stderr.splitlines() for line in NOTICE_LINES)
    quiet = _import_quietly(fake)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr.splitlines() == ["E0000 00:00:1.5 1 real.cc:9] a real error", "a Python warning"]
    assert quiet.stdout.split()[:2] == ["value", "7"]  # the module itself, loaded as usual


def test_an_import_that_fails_still_shows_its_lines_and_traceback(tmp_path):
    fake = _fake_tensorflow(tmp_path, tail="raise ImportError('libtensorflow_framework.so.2: cannot open')")
    proc = _import_quietly(fake)
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert "E0000 00:00:1.5 1 real.cc:9] a real error" in lines and "a Python warning" in lines
    assert lines[-1] == "ImportError: libtensorflow_framework.so.2: cannot open"
    assert not any(line in lines for line in NOTICE_LINES)


def test_importing_the_library_changes_no_import():
    proc = subprocess.run([sys.executable, "-c", "import sys, keras_latent, keras_latent.training.fit; "
                           "print([type(f).__name__ for f in sys.meta_path if 'Quiet' in type(f).__name__])"],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0 and proc.stdout.strip().splitlines()[-1] == "[]"


def _fake_install(root, tensorflow_version: str) -> str:
    """A fake TensorFlow (distribution `tensorflow_version`) whose import records which SKIPPED_EXTRAS it could
    import, fake extras (instant to import) and a fake Keras distribution at a checked version."""
    from keras_latent.quiet_start import SKIPPED_EXTRAS

    tries = "".join(f"try:\n    import {name}\n    SEEN.append({name!r})\nexcept ImportError:\n    pass\n"
                    for name in SKIPPED_EXTRAS)
    folder = fake_tensorflow(root, "SEEN = []\n" + tries)
    for name in SKIPPED_EXTRAS:  # jax, IPython, sklearn, matplotlib.pyplot, scipy: empty stand-ins
        path = root.joinpath(*name.split("."))
        path.mkdir(parents=True, exist_ok=True)
        path.joinpath("__init__.py").write_text("")
    for distribution, version in (("tensorflow", tensorflow_version), ("keras", "3.15.1")):
        info = root / f"{distribution}-{version}.dist-info"
        info.mkdir()
        info.joinpath("METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n")
    return folder


def _seen_by_tensorflow(fake: str, install: bool = True) -> tuple[list, list]:
    """(the extras the fake TensorFlow imported while it loaded, the extras importable afterwards)."""
    proc = _import_quietly(fake, install, report="print(json.dumps([tensorflow.SEEN, "
                           "[name for name in SKIPPED_EXTRAS if importlib.import_module(name)]]))")
    assert proc.returncode == 0, proc.stderr
    return tuple(json.loads(proc.stdout.strip().splitlines()[-1]))


def test_the_extras_are_hidden_while_a_checked_tensorflow_loads_and_import_as_usual_after(tmp_path):
    from keras_latent.quiet_start import SKIPPED_EXTRAS

    fake = _fake_install(tmp_path, "2.21.0")
    assert _seen_by_tensorflow(fake, install=False) == (list(SKIPPED_EXTRAS), list(SKIPPED_EXTRAS))  # control
    assert _seen_by_tensorflow(fake) == ([], list(SKIPPED_EXTRAS))


def test_nothing_is_hidden_from_a_tensorflow_version_not_checked(tmp_path):
    from keras_latent.quiet_start import SKIPPED_EXTRAS

    fake = _fake_install(tmp_path, "2.22.0")
    assert _seen_by_tensorflow(fake) == (list(SKIPPED_EXTRAS), list(SKIPPED_EXTRAS))


def test_extras_hidden_restores_sys_modules_and_leaves_loaded_modules_alone():
    from keras_latent.quiet_start import extras_hidden

    with extras_hidden(("json", "keras_latent_no_such_extra")) as hidden:
        assert hidden == ["keras_latent_no_such_extra"]  # json was loaded already: kept
        with pytest.raises(ImportError):
            importlib.import_module("keras_latent_no_such_extra")
        assert importlib.import_module("json") is sys.modules["json"]
    assert "keras_latent_no_such_extra" not in sys.modules


@pytest.mark.slow
def test_a_command_loads_the_real_tensorflow_and_keras_without_the_extras_and_trains_without_scikit_learn():
    """The real TensorFlow and Keras (the pinned versions) load with the extras hidden, nothing they need is
    missing, and importing the training code loads none of them; scikit-learn imports afterwards."""
    script = textwrap.dedent("""
        import sys
        from keras_latent.quiet_start import SKIPPED_EXTRAS, quiet_tensorflow_import
        if sys.argv[1] == "command":
            quiet_tensorflow_import()
        import keras_latent.training.fit, keras_latent.training.evaluation, keras_latent.training.plots
        import keras, tensorflow
        assert keras.ops.sum(keras.ops.ones((2, 3))) == 6
        print(sorted(name for name in SKIPPED_EXTRAS if name in sys.modules))
        import sklearn.metrics
        print(sklearn.metrics.accuracy_score([0, 1], [0, 1]))
    """)
    runs = {how: subprocess.run([sys.executable, "-c", script, how], capture_output=True, text=True, timeout=180,
                                cwd=REPO) for how in ("library", "command")}
    assert all(proc.returncode == 0 for proc in runs.values()), {how: p.stderr[-2000:] for how, p in runs.items()}
    library, command = (runs[how].stdout.strip().splitlines() for how in ("library", "command"))
    assert "'sklearn'" in library[-2]  # the control: without the command's start, Keras loads scikit-learn
    assert command[-2:] == ["[]", "1.0"]
