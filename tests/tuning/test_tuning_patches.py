"""tuning/patches.py: every private KerasTuner name checked at import, and each patch still taking effect."""
import json
import os

import keras
import keras_tuner
import pytest

from keras_latent.errors import UsageError
from keras_latent.tuning import patches
from keras_latent.tuning.tuner import GridOracle, WeightTuner


def test_every_private_name_exists_in_the_installed_versions():
    assert patches.missing_private_names() == []


def test_a_missing_private_name_is_one_line_naming_the_supported_versions(monkeypatch):
    monkeypatch.setattr(patches, "PRIVATE_NAMES", patches.PRIVATE_NAMES + (("keras_tuner", "Oracle._gone"),))
    with pytest.raises(UsageError) as err:
        patches.check_private_names()
    message = str(err.value)
    assert "\n" not in message and "keras_tuner.Oracle._gone" in message and patches.SUPPORTED in message


class TwoWeights(keras_tuner.HyperModel):
    def build(self, hp):
        hp.Choice("ce_weight", [1.0, 2.0])
        hp.Fixed("recon_weight", 1.0)
        inputs = keras.Input((4,))
        return keras.Model(inputs, keras.layers.Dense(2)(inputs))

    def fit(self, hp, model, *args, **kwargs):
        return {"val_classifier_accuracy": hp.get("ce_weight") / 4}


def _oracle():
    return GridOracle(objective=keras_tuner.Objective("val_classifier_accuracy", "max"), max_trials=2, seed=1)


def test_tuner_state_files_are_written_by_our_mixins(tmp_path, monkeypatch):
    """Every state file KerasTuner keeps goes through our atomic writes (AtomicOracleFiles, AtomicTunerFile);
    KerasTuner's own in-place writes would leave `written` without them."""
    written = []

    def spy(path, text):
        written.append(os.path.relpath(path, tmp_path / "p"))
        return atomic_write_text(path, text)

    atomic_write_text = patches.atomic_write_text
    monkeypatch.setattr(patches, "atomic_write_text", spy)
    oracle = _oracle()
    WeightTuner(oracle, TwoWeights(), trial_seed=0, directory=str(tmp_path), project_name="p").search()
    trial_ids = sorted(oracle.trials)
    assert sorted(oracle.trials[t].hyperparameters.get("ce_weight") for t in trial_ids) == [1.0, 2.0]
    assert {"oracle.json", "tuner0.json"} | {f"trial_{t}/trial.json" for t in trial_ids} <= set(written)
    project = tmp_path / "p"
    assert [n for _, _, names in os.walk(project) for n in names if ".tmp" in n] == []


def test_reload_keeps_the_grid_walk_and_does_not_retry_an_ended_trial(tmp_path):
    """A kill between end_trial's two saves leaves a trial COMPLETED in its trial.json but still ongoing in
    oracle.json: KerasTuner's reload would run it again, AtomicOracleFiles.reload does not."""
    oracle = _oracle()
    WeightTuner(oracle, TwoWeights(), trial_seed=0, directory=str(tmp_path), project_name="p").search()
    first = sorted(oracle.trials)[0]
    state_file = tmp_path / "p" / "oracle.json"
    state = json.loads(state_file.read_text())
    state["ongoing_trials"] = {"tuner0": first}
    state_file.write_text(json.dumps(state))

    reloaded = _oracle()
    WeightTuner(reloaded, TwoWeights(), trial_seed=0, directory=str(tmp_path), project_name="p")  # reloads
    assert reloaded.trials[first].status == "COMPLETED" and reloaded._retry_queue == []
    tried = [{"ce_weight": 1.0, "recon_weight": 1.0}, {"ce_weight": 2.0, "recon_weight": 1.0}]
    assert patches.next_untried_grid_cell(reloaded, tried) is None
    untried = {"ce_weight": 3.0, "recon_weight": 1.0}
    assert patches.next_untried_grid_cell(reloaded, tried + [untried]) == untried
