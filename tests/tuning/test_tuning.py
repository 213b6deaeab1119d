"""Loss-weight search: keras_latent.tuning (tuner, config, results, plots), the CLI
tuning/search_weights.py, and `python -m keras_latent.train --weights-from`."""
import csv
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys

import keras_tuner
import numpy as np
import pytest
from helpers import REPO, copy_folder, free_ports, run_main

from keras_latent.config import DEFAULT_LAYER_RECON_WEIGHT
from keras_latent.errors import UsageError
from keras_latent.runs import layout
from keras_latent.tuning.config import SearchConfig, validate_search

SCRIPT = os.path.join(REPO, "tuning", "search_weights.py")
GRID_2X2 = ["--dataset", "sample", "--max-train-samples", "300", "--epochs", "1", "--ce-weights", "1,2",
            "--recon-weights", "0,2"]
PROJECT = "loss_weights_grid"

pytestmark = pytest.mark.slow  # every test here runs or reads a real search (about a minute in all)


def load_cli():
    spec = importlib.util.spec_from_file_location("search_weights", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_trials(results_dir: str) -> list[dict]:
    with open(layout.TRIALS.path(results_dir), encoding="utf-8") as f:
        return list(csv.DictReader(f))


def run_times(results_dir: str) -> dict:
    """KerasTuner's own count of how often each trial ended (oracle.json)."""
    with open(layout.ORACLE_STATE.path(results_dir), encoding="utf-8") as f:
        return json.load(f)["run_times"]


def subprocess_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KERASTUNER_")}
    return {**env, **extra}


@pytest.fixture(scope="module")
def grid_search(tmp_path_factory):
    """A finished 2x2 grid (1 epoch, 300 sample images), run through the CLI's main in this process."""
    directory = str(tmp_path_factory.mktemp("tuning"))
    code, _, _ = run_main(load_cli().main, GRID_2X2 + ["--directory", directory])
    assert code == 0
    return os.path.join(directory, PROJECT)


# ---------------------------------------------------------------- hypermodel and space


def test_build_on_default_hyperparameters_compiles_the_package_model_with_the_weights():
    from keras_latent.tuning.tuner import LossWeightHyperModel

    hp = keras_tuner.HyperParameters()
    model = LossWeightHyperModel().build(hp)
    assert hp.values == {"ce_weight": 1.0, "recon_weight": 2.0}
    assert set(model.output) == {"classifier", "reconstruction", "reconstruction_conv1"}  # layer decoders too
    assert [layer.name for layer in model.layers if layer.name in ("trunk", "classifier_head", "decoder")] == [
        "trunk", "classifier_head", "decoder"]
    # the hp values reach compile: the total loss is ce * cross-entropy + recon * MSE
    hp.values.update(ce_weight=0.5, recon_weight=4.0)
    model = LossWeightHyperModel().build(hp)
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (8, 32, 32, 3)).astype("float32")
    targets = {"classifier": np.arange(8) % 10, "reconstruction": x, "reconstruction_conv1": x}
    logs = model.evaluate(x, targets, verbose=0, return_dict=True)
    expected = (0.5 * logs["classifier_loss"] + 4.0 * logs["reconstruction_loss"]
                + DEFAULT_LAYER_RECON_WEIGHT * logs["reconstruction_conv1_loss"])  # the layer weight is not searched
    assert logs["loss"] == pytest.approx(expected, rel=1e-4)


def test_search_space_is_a_grid_of_choices_or_log_scaled_ranges():
    from keras_latent.tuning.tuner import LossWeightHyperModel

    hp = keras_tuner.HyperParameters()
    LossWeightHyperModel(SearchConfig(ce_weights=(2.0, 0.5), recon_weights=(0.0, 3.0))).declare(hp)
    assert [(type(p).__name__, list(p.values)) for p in hp.space] == [("Choice", [2.0, 0.5]), ("Choice", [0.0, 3.0])]
    hp = keras_tuner.HyperParameters()
    LossWeightHyperModel(SearchConfig(tuner="bayesian", recon_range=(0.2, 5.0))).declare(hp)
    recon = hp.space[1]
    assert (type(recon).__name__, recon.min_value, recon.max_value, recon.sampling) == ("Float", 0.2, 5.0, "log")


def test_pareto_front_and_best_trial():
    from keras_latent.tuning.results import best_index, pareto_mask

    accuracy = np.array([0.30, 0.35, 0.35, 0.20, 0.32])
    mse = np.array([0.05, 0.09, 0.08, 0.04, 0.10])
    assert pareto_mask(accuracy, mse).tolist() == [True, False, True, True, False]
    assert best_index(accuracy, mse) == 2  # tie on accuracy: the lower MSE wins


def make_trial(trial_id: str, ce: float, recon: float, status: str, accuracy=None, mse=None):
    hp = keras_tuner.HyperParameters()
    hp.values.update(ce_weight=ce, recon_weight=recon)
    trial = keras_tuner.engine.trial.Trial(hp, trial_id=trial_id, status=status)
    if accuracy is not None:
        for name, value in [("val_classifier_accuracy", accuracy), ("val_reconstruction_loss", mse), ("epochs", 2),
                            ("seconds", 1.5), ("best_epoch", 2)]:
            trial.metrics.update(name, value)
    return trial


@pytest.mark.filterwarnings("ignore:All-NaN axis encountered:RuntimeWarning")  # KerasTuner's tracker on the NaN
def test_write_results_lists_every_trial_and_ranks_completed_finite_ones(tmp_path):
    from keras_latent.tuning.results import write_results

    trials = [make_trial("10", 2, 2, "COMPLETED", 0.35, 0.04), make_trial("0", 1, 0, "COMPLETED", 0.30, 0.05),
              make_trial("1", 1, 2, "COMPLETED", 0.90, float("nan")), make_trial("2", 2, 0, "RUNNING")]
    best = write_results(trials, str(tmp_path), about={"tuner": "grid"})
    rows = read_trials(str(tmp_path))
    assert [(r["trial_id"], r["status"]) for r in rows] == [
        ("0", "COMPLETED"), ("1", "COMPLETED"), ("2", "RUNNING"), ("10", "COMPLETED")]
    assert rows[2]["val_accuracy"] == rows[2]["val_recon_mse"] == rows[2]["epochs"] == ""
    assert (best["trial_id"], best["ce_weight"], best["recon_weight"], best["best_epoch"]) == ("10", 2, 2, 2)
    assert best["pareto_trial_ids"] == ["10"] and best["completed_trials"] == 2 and best["tuner"] == "grid"
    assert os.path.getsize(tmp_path / "pareto.png") > 0
    assert write_results([make_trial("0", 1, 0, "RUNNING")], str(tmp_path / "new")) is None
    assert sorted(os.listdir(tmp_path / "new")) == ["trials.csv"]


# ---------------------------------------------------------------- a finished grid


@pytest.mark.slow
def test_grid_search_writes_trials_pareto_and_best(grid_search):
    rows = read_trials(grid_search)
    assert list(rows[0]) == ["trial_id", "ce_weight", "recon_weight", "executions", "val_accuracy", "val_accuracy_sd",
                             "val_accuracy_se", "val_recon_mse", "val_recon_mse_sd", "val_recon_mse_se", "p_vs_best",
                             "within_noise", "epochs", "seconds", "status"]
    assert {r["executions"] for r in rows} == {"1"} and {r["val_accuracy_sd"] for r in rows} == {""}
    assert sorted((float(r["ce_weight"]), float(r["recon_weight"])) for r in rows) == [(1, 0), (1, 2), (2, 0), (2, 2)]
    for r in rows:
        assert r["status"] == "COMPLETED" and r["epochs"] == "1" and float(r["seconds"]) > 0
        assert 0 <= float(r["val_accuracy"]) <= 1 and 0 < float(r["val_recon_mse"]) < 4
    with open(os.path.join(grid_search, "pareto.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    with open(layout.BEST.path(grid_search), encoding="utf-8") as f:
        best = json.load(f)
    top = max(rows, key=lambda r: (float(r["val_accuracy"]), -float(r["val_recon_mse"])))
    assert (best["trial_id"], best["ce_weight"], best["recon_weight"]) == (
        top["trial_id"], float(top["ce_weight"]), float(top["recon_weight"]))
    assert best["val_accuracy"] == pytest.approx(float(top["val_accuracy"]))
    assert best["val_recon_mse"] == pytest.approx(float(top["val_recon_mse"]))
    assert best["trial_id"] in best["pareto_trial_ids"] and best["objective"] == "val_classifier_accuracy"


def test_objective_is_validation_classifier_accuracy_not_val_loss(grid_search, tmp_path):
    from keras_latent.tuning.tuner import make_tuner

    tuner = make_tuner(SearchConfig(), str(tmp_path), "fresh", overwrite=False)
    assert (tuner.oracle.objective.name, tuner.oracle.objective.direction) == ("val_classifier_accuracy", "max")
    for row in read_trials(grid_search):
        trial = keras_tuner.engine.trial.Trial.load(os.path.join(grid_search, f"trial_{row['trial_id']}", "trial.json"))
        assert trial.score == trial.metrics.get_last_value("val_classifier_accuracy")
        assert trial.score != pytest.approx(trial.metrics.get_last_value("val_loss"))


def test_rerun_resumes_without_retraining_and_refuses_other_settings(grid_search, capsys):
    before = read_trials(grid_search)
    directory = os.path.dirname(grid_search)
    code, _, _ = run_main(load_cli().main, GRID_2X2 + ["--directory", directory], capsys)
    assert code == 0 and read_trials(grid_search) == before
    assert run_times(grid_search) == {r["trial_id"]: 1 for r in before}
    code, _, err = run_main(load_cli().main, GRID_2X2[:-1] + ["0,4", "--directory", directory], capsys)
    assert code == 2 and err.count("\n") == 1 and "recon_weights [0.0, 2.0] -> [0.0, 4.0]" in err


def test_a_search_json_from_before_the_formulation_fields_resumes(grid_search, tmp_path, capsys):
    """search.json written before the per-machine formulation (issue 17) lacks its fields: how a step is computed
    is not a setting of the search, so the rerun resumes instead of refusing."""
    from keras_latent.config import HOW_COMPUTED_FIELDS

    project = copy_folder(grid_search, tmp_path, os.path.basename(grid_search))
    before = read_trials(project)
    settings = json.loads(open(layout.SEARCH_SETTINGS.path(project)).read())
    top = [name for name in HOW_COMPUTED_FIELDS if "." not in name]  # "data.memory_budget_mb": a nested field
    assert set(top) <= set(settings["train"]) and "memory_budget_mb" in settings["train"]["data"]
    settings["train"] = {k: v for k, v in settings["train"].items() if k not in top}
    settings["train"]["data"].pop("memory_budget_mb")
    settings["train"]["jit_compile"] = False  # as the static default was written then
    with open(layout.SEARCH_SETTINGS.path(project), "w") as f:
        json.dump(settings, f)
    code, _, err = run_main(load_cli().main, GRID_2X2 + ["--directory", str(tmp_path)], capsys)
    assert code == 0, err
    assert read_trials(project) == before


def test_train_takes_the_weights_from_best_json(grid_search, tmp_path, capsys):
    from keras_latent import train
    from keras_latent.training.options import config_from_flags

    with open(layout.BEST.path(grid_search), encoding="utf-8") as f:
        best = json.load(f)
    for source in (layout.BEST.path(grid_search), grid_search):  # the file or its results folder
        config = config_from_flags(train.build_parser().parse_args(["--weights-from", source]))
        assert (config.ce_weight, config.recon_weight) == (best["ce_weight"], best["recon_weight"])
    corrupt = tmp_path / "best.json"
    corrupt.write_text('{"ce_weight": 1.0, "recon_')
    cases = [(["--weights-from", str(corrupt)], f"{corrupt} is not valid JSON"),
             (["--weights-from", str(tmp_path / "missing.json")], "no such file"),
             (["--weights-from", grid_search, "--recon-weight", "3"], "drop --recon-weight or --weights-from")]
    for argv, message in cases:
        code, _, err = run_main(train.main, argv + ["--out", str(tmp_path / "run")], capsys)
        assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and message in err
    assert not os.path.exists(tmp_path / "run")


@pytest.mark.parametrize("name,text,message", [
    ("oracle.json", '{"ongoing_trials": {', "oracle.json is not valid JSON"),
    ("trial_0/trial.json", None, "trial.json field 'status' must be one of RUNNING, IDLE, INVALID, STOPPED, COMPLETED, "
                                 "FAILED, got 'DONE'"),
])
def test_resuming_with_a_damaged_kerastuner_state_file_is_one_line(grid_search, tmp_path, capsys, name, text, message):
    directory = tmp_path / "results"
    shutil.copytree(grid_search, directory / PROJECT)
    path = directory / PROJECT / name
    if text is None:
        state = json.loads(path.read_text())
        text = json.dumps({**state, "status": "DONE"})
    path.write_text(text)
    code, _, err = run_main(load_cli().main, GRID_2X2 + ["--directory", str(directory)], capsys)
    assert code == 2 and err.count("\n") == 1 and f"error: {path} " in err and message in err, err
    assert "rebuild it with: python tuning/search_weights.py with the same flags and --overwrite" in err
    assert path.read_text() == text


@pytest.mark.slow
def test_bayesian_and_random_search_stay_in_their_log_ranges(tmp_path, capsys):
    cli = load_cli()
    for tuner in ("bayesian", "random"):
        argv = ["--tuner", tuner, "--dataset", "sample", "--max-train-samples", "200", "--epochs", "1",
                "--max-trials", "2", "--ce-range", "0.5,2", "--recon-range", "0.25,4", "--directory", str(tmp_path)]
        code, _, _ = run_main(cli.main, argv, capsys)
        rows = read_trials(os.path.join(tmp_path, f"loss_weights_{tuner}"))
        assert code == 0 and [r["status"] for r in rows] == ["COMPLETED", "COMPLETED"]
        for r in rows:
            assert 0.5 <= float(r["ce_weight"]) <= 2 and 0.25 <= float(r["recon_weight"]) <= 4


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("argv, message", [
    (["--recon-weights", "-1"], "--recon-weights must be >= 0, got -1"),
    (["--ce-weights", ""], "--ce-weights is empty"),
    (["--recon-weights", ","], "--recon-weights is empty"),
    (["--ce-weights", "0,1"], "--ce-weights must be > 0"),
    (["--ce-weights", "1,1"], "lists a weight twice"),
    (["--tuner", "hyperband"], "invalid choice: 'hyperband' (choose from 'grid', 'bayesian', 'random')"),
    (["--max-trials", "0"], "--max-trials must be >= 1, got 0"),
    (["--max-trials", "few"], "invalid int value: 'few'"),
    (["--tuner", "bayesian", "--recon-range", "0,4"], "0 < LO < HI"),
    (["--tuner", "random", "--recon-weights", "1,2"], "--tuner random takes --ce-range/--recon-range"),
    (["--ce-range", "1,2"], "--tuner grid takes --ce-weights/--recon-weights"),
    (["--epochs", "0"], "--epochs must be >= 1, got 0"),
    (["--executions-per-trial", "0"], "--executions-per-trial must be >= 1, got 0"),
])
def test_bad_flags_get_one_line_and_exit_2(argv, message, capsys):
    code, _, err = run_main(load_cli().main, argv, capsys)
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and message in err


def test_bad_distributed_settings_get_one_line_and_exit_2(monkeypatch, capsys):
    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
    code, _, err = run_main(load_cli().main, [], capsys)
    assert code == 2 and "missing KERASTUNER_TUNER_ID, KERASTUNER_ORACLE_PORT" in err
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", "8000")
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "tuner0")
    code, _, err = run_main(load_cli().main, ["--overwrite"], capsys)
    assert code == 2 and "a worker never deletes the search" in err


def test_validate_search_rejects_a_config_without_decoder():
    from keras_latent.config import ModelConfig, TrainConfig

    with pytest.raises(UsageError, match="needs the reconstruction decoder"):
        validate_search(SearchConfig(train=TrainConfig(model=ModelConfig(decoder=False))))


def test_cli_bad_input_from_a_shell_is_one_line_without_traceback():
    result = subprocess.run([sys.executable, SCRIPT, "--recon-weights", "-1"], capture_output=True, text=True,
                            cwd=REPO, env=subprocess_env(), timeout=120)
    assert result.returncode == 2
    assert result.stderr == "error: --recon-weights must be >= 0, got -1\n"


# ---------------------------------------------------------------- interruption and distribution


def completed(results_dir: str) -> list[dict]:
    try:
        return [r for r in read_trials(results_dir) if r["status"] == "COMPLETED"]
    except FileNotFoundError:
        return []


# The search command, holding its process right after the first trial has ended (results and oracle state
# written): the test kills it there, so where the kill lands depends on no clock and no scheduler.
PAUSED_AFTER_FIRST_TRIAL = """
import sys, time
from keras_latent.tuning import tuner

end_trial = tuner._ResultsOracle.end_trial

def end_trial_and_pause(self, trial):
    end_trial(self, trial)
    print("first trial ended", flush=True)
    time.sleep(600)

tuner._ResultsOracle.end_trial = end_trial_and_pause
from keras_latent.search_weights import main
main(sys.argv[1:])
"""


@pytest.mark.slow
def test_search_killed_after_its_first_trial_resumes_without_rerunning_it(tmp_path, capsys):
    results_dir = os.path.join(tmp_path, PROJECT)
    argv = GRID_2X2 + ["--directory", str(tmp_path)]
    process = subprocess.Popen([sys.executable, "-c", PAUSED_AFTER_FIRST_TRIAL, *argv], cwd=REPO,
                               env=subprocess_env(PYTHONPATH=REPO), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    try:
        output = []
        for line in process.stdout:  # ends at the pause, or when the process exits
            output.append(line)
            if line.strip() == "first trial ended":
                break
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert output and output[-1].strip() == "first trial ended", "".join(output)[-2000:]
    before = completed(results_dir)
    assert len(before) == 1
    code, _, _ = run_main(load_cli().main, argv, capsys)
    after = read_trials(results_dir)
    assert code == 0 and [r["status"] for r in after] == ["COMPLETED"] * 4
    own = lambda rows: [{k: v for k, v in r.items() if k not in ("p_vs_best", "within_noise")}  # noqa: E731
                        for r in rows]  # without the comparison to the best, which moves as trials finish
    assert own(r for r in after if r["trial_id"] in {b["trial_id"] for b in before}) == own(before)  # not rerun
    assert run_times(results_dir) == {r["trial_id"]: 1 for r in after}  # each trial ended exactly once


@pytest.mark.slow
def test_chief_and_two_workers_run_each_grid_trial_once(grid_search, tmp_path):
    argv = [sys.executable, SCRIPT, *GRID_2X2, "--directory", str(tmp_path)]
    address = dict(KERASTUNER_ORACLE_IP="127.0.0.1", KERASTUNER_ORACLE_PORT=str(free_ports(1)[0]))
    processes, logs = {}, {}
    try:
        for name in ("chief", "tuner0", "tuner1"):
            logs[name] = tmp_path / f"{name}.log"
            with open(logs[name], "w") as log:
                processes[name] = subprocess.Popen(argv, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                                   env=subprocess_env(KERASTUNER_TUNER_ID=name, **address))
        codes = {name: processes[name].wait(timeout=300) for name in ("tuner0", "tuner1", "chief")}
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
    assert codes == {"chief": 0, "tuner0": 0, "tuner1": 0}, {n: logs[n].read_text()[-2000:] for n in logs}
    ran = {name: [line.split(":")[1].split()[-1] for line in logs[name].read_text().splitlines()
                  if line.startswith(f"{name}: trial ")] for name in ("tuner0", "tuner1")}
    # each trial ran once, on one worker or the other: how they shared the four depends on the scheduler
    assert sorted(ran["tuner0"] + ran["tuner1"]) == ["0", "1", "2", "3"], ran
    results_dir = os.path.join(tmp_path, PROJECT)
    rows = read_trials(results_dir)
    assert [r["status"] for r in rows] == ["COMPLETED"] * 4
    assert run_times(results_dir) == {"0": 1, "1": 1, "2": 1, "3": 1}
    assert os.path.isfile(layout.BEST.path(results_dir))
    # every trial is reseeded, so the workers reproduce the serial search's numbers
    serial = {(r["ce_weight"], r["recon_weight"]): float(r["val_accuracy"]) for r in read_trials(grid_search)}
    assert {(r["ce_weight"], r["recon_weight"]): float(r["val_accuracy"]) for r in rows} == pytest.approx(serial)
