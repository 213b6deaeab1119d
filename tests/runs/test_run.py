"""runs/run.py: one Run per run folder reads each file once, lazily, with the checked readers; the model and the
data come only through the Loaders it is given (fakes here: no TensorFlow, no model, no data set)."""
import dataclasses
import json
import os

import pytest
from helpers import tiny_config

from keras_latent.errors import UsageError
from keras_latent.runs import layout, records
from keras_latent.runs.run import Loaders, Run

CLASSES = tuple(f"c{i}" for i in range(10))


@dataclasses.dataclass
class FakeSplits:
    class_names: tuple
    dataset: str = "fake"


def fake_loaders(calls: list, classes=CLASSES) -> Loaders:
    """Loaders that record each call: the model is a string, the data a FakeSplits with `classes`."""
    def model(path, compile):
        calls.append(("model", os.path.basename(path), compile))
        return "the model"

    def data(config):
        calls.append(("data", config.data.dataset))
        return FakeSplits(classes), dataclasses.replace(config, seed=99)

    return Loaders(model=model, data=data, layers=lambda m: ["conv1", "conv2"],
                   decode_paths=lambda measured, m: measured or {"conv1": "tail", "conv2": "tail"})


def metrics(accuracy: float) -> dict:
    return {"test_accuracy": accuracy, "per_class_accuracy": dict.fromkeys(CLASSES, accuracy), "epochs": 1,
            "resumed_from_epoch": 0, "seconds": 1.0, "images_per_s": 10.0, "dataset": "fake", "train_images": 10,
            "test_images": 10}


@pytest.fixture
def run_dir(tmp_path):
    folder = str(tmp_path / "run")
    os.makedirs(folder)
    config = tiny_config()
    records.save_config(dataclasses.replace(config, data=dataclasses.replace(config.data, class_names=CLASSES)),
                        folder)
    records.write_json(layout.METRICS.path(folder), metrics(0.5))
    open(layout.MODEL.path(folder), "wb").close()
    return folder


def test_each_file_is_read_once_and_only_when_asked(run_dir, monkeypatch):
    read = []
    real = records.read_json
    monkeypatch.setattr(records, "read_json", lambda path, entry: read.append(entry.name) or real(path, entry))
    run = Run(run_dir)
    assert read == []  # nothing read on opening
    assert run.metrics["test_accuracy"] == 0.5 and run.metrics is run.metrics
    assert run.analysis is None and run.analysis is None and run.model_summary is None
    assert run.config.data.class_names == CLASSES and run.config is run.config
    assert sorted(read) == sorted(["metrics.json", "analysis.json", "model_summary.json", "config.json"])


def test_model_layers_decode_paths_and_data_come_through_the_loaders_once(run_dir):
    calls = []
    run = Run(run_dir, fake_loaders(calls), dataset="elsewhere", compile=False)
    assert run.model == "the model" and run.layers == ["conv1", "conv2"]
    assert run.decode_paths == {"conv1": "tail", "conv2": "tail"}  # metrics.json measured none
    assert run.data.class_names == CLASSES and run.data.config.seed == 99
    assert run.config.data.dataset == "sample"  # the run's own config is not changed by dataset=
    _ = run.model, run.data  # cached: no second call
    assert calls == [("model", "model.keras", False), ("data", "elsewhere")]


def test_a_run_opened_without_loaders_reads_files_only(run_dir):
    run = Run(run_dir)
    for what in ("model", "data", "layers", "decode_paths"):
        with pytest.raises(UsageError, match="was opened to read its files only"):
            getattr(run, what)


def test_damage_and_absence_are_one_line(run_dir, tmp_path):
    with open(layout.METRICS.path(run_dir), "w") as f:
        json.dump({"test_accuracy": "high"}, f)
    with pytest.raises(UsageError, match=r"metrics.json field 'test_accuracy' must be a number from 0 to 1, got "
                                         r"'high'; rebuild it with: "):
        _ = Run(run_dir).metrics
    with pytest.raises(UsageError, match="is not a run folder"):
        _ = Run(str(tmp_path)).config
    os.remove(layout.MODEL.path(run_dir))
    os.makedirs(layout.BACKUP.path(run_dir))
    with pytest.raises(UsageError, match="its training has not finished"):
        _ = Run(run_dir, fake_loaders([])).model


def test_data_with_other_classes_is_refused(run_dir):
    run = Run(run_dir, fake_loaders([], classes=("cat", "dog")))
    with pytest.raises(UsageError, match="pass a data set with the run's classes"):
        _ = run.data


def test_forget_reads_a_rewritten_file_again(run_dir):
    run = Run(run_dir)
    assert run.metrics["test_accuracy"] == 0.5
    records.write_json(layout.METRICS.path(run_dir), metrics(0.75))
    assert run.metrics["test_accuracy"] == 0.5
    run.forget("metrics")
    assert run.metrics["test_accuracy"] == 0.75
