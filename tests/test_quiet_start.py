"""quiet_start.py: a command's first `import tensorflow` loses exactly TensorFlow's start-up notices on stderr;
every other line it writes (C++ or Python, an error's traceback included) still reaches stderr."""
import subprocess
import sys
import textwrap

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


def _import_quietly(fake: str, install: bool = True) -> subprocess.CompletedProcess:
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {fake!r})
        from keras_latent.quiet_start import quiet_tensorflow_import
        if {install}:
            quiet_tensorflow_import()
        import tensorflow
        print("value", tensorflow.VALUE, type(tensorflow.__spec__.loader).__name__)
    """)
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
