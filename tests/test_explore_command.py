"""explore.py: flags checked before TensorFlow loads, the non-local --host warning, and a real server process."""
import json
import os
import signal
import subprocess
import sys
import urllib.request

import pytest
from helpers import REPO, run_main

from keras_latent.explore import main


@pytest.mark.parametrize("argv, words", [
    (["RUN", "--port", "70000"], "--port must be between 0 and 65535 (0: any free port), got 70000"),
    (["RUN", "--max-upload-mb", "0"], "--max-upload-mb must be > 0 and <= 1000, got 0.0"),
    (["RUN", "--host", "http://x/"], "--host must be a host name or IP address"),
    (["RUN", "--port", "eighty"], "invalid int value: 'eighty'"),
])
def test_bad_flags_are_one_line_errors(argv, words, capsys):
    code, out, err = run_main(main, argv, capsys)
    assert code == 2 and words in err and err.count("\n") == 1 and "Traceback" not in err


def test_a_non_local_host_is_warned_about(tmp_path, capsys):
    code, _, err = run_main(main, [str(tmp_path / "missing"), "--host", "0.0.0.0"], capsys)
    assert "notice: --host 0.0.0.0 is not a loopback address" in err and "no login" in err
    assert code == 2 and "is not a run folder" in err  # then the missing run is refused as usual
    _, _, err = run_main(main, [str(tmp_path / "missing"), "--host", "localhost"], capsys)
    assert "notice" not in err


def _ctrl_c_stops_it() -> None:
    """In the child before exec: SIGINT back to its default, which Python turns into KeyboardInterrupt. A suite
    started in the background of a shell without job control (`nohup ... &`) inherits SIGINT ignored, and
    an ignored signal stays ignored across exec: the server would never see the Ctrl+C this test sends."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
def test_the_command_prints_its_url_and_serves_the_api(trained_run):
    env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "keras_latent.explore", trained_run, "--port", "0", "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO,
                            preexec_fn=_ctrl_c_stops_it)
    try:
        line = proc.stdout.readline()  # the one line printed once the server listens
        assert "http://127.0.0.1:" in line, (line, proc.stderr.read() if proc.poll() is not None else "")
        url = next(word for word in line.split() if word.startswith("http://"))
        with urllib.request.urlopen(url + "api/model", timeout=30) as response:
            assert [layer["name"] for layer in json.load(response)["layers"]] == ["conv1", "conv2"]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    assert proc.returncode == 0  # Ctrl+C is how the server is meant to stop
