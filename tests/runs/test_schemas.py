"""runs/schemas.py: every JSON and CSV file the project reads back is checked; a missing or edited field is one
line naming the file, the field, what is allowed and what was found, and the command that rebuilds the file."""
import json
import os

import pytest

from keras_latent.errors import UsageError
from keras_latent.runs import layout
from keras_latent.runs.records import read_csv, read_json
from keras_latent.tuning.results import check_settings, check_tuner_state

METRICS = {"test_accuracy": 0.31, "per_class_accuracy": {"cat": 0.2, "dog": None}, "test_reconstruction_mse": 0.05,
           "epochs": 2, "resumed_from_epoch": 0, "seconds": 3.5, "images_per_s": 120.0, "dataset": "sample",
           "train_images": 256, "test_images": 1017}
FIGURE = {"kind": "heatmap", "layer": "conv1", "path": "analysis/channel_class_heatmap_conv1.png"}
ANALYSIS = {"mode": "keep", "layers": ["conv1"], "images": [{"split": "test", "index": 0, "label": "cat"}],
            "files": [FIGURE], "intact_accuracy": 0.3, "class_channels": {"conv1": {"cat": [2, 0]}},
            "top_channels": {"conv1": [{"channel": 2, "accuracy_drop": 0.1}]}}
BEST = {"ce_weight": 1.0, "recon_weight": 2.0, "val_accuracy": 0.3, "val_recon_mse": 0.09, "trial_id": "01"}
TRIAL = {"trial_id": "0", "hyperparameters": {"space": [{"class_name": "Choice", "config": {"name": "ce_weight"}}],
                                              "values": {"ce_weight": 1.0}},
         "metrics": {"metrics": {"val_loss": {"direction": "min", "observations": [{"value": [float("nan")],
                                                                                      "step": 0}]}}},
         "score": None, "best_step": 0, "status": "COMPLETED", "message": None}


def edited(base: dict, **changes) -> dict:
    """A copy of `base` with fields replaced (KeyError: removed); `a__b` is the nested field a.b."""
    value = json.loads(json.dumps(base))
    for dotted, new in changes.items():
        *parents, name = dotted.split("__")
        target = value
        for parent in parents:
            target = target[int(parent)] if isinstance(target, list) else target[parent]
        if new is KeyError:
            del target[name]
        else:
            target[name] = new
    return value


JSON_CASES = [
    (layout.METRICS, edited(METRICS, test_accuracy="high"), "field 'test_accuracy' must be a number from 0 to 1, "
                                                             "got 'high'"),
    (layout.METRICS, edited(METRICS, test_accuracy=1.5), "field 'test_accuracy' must be a number from 0 to 1, got 1.5"),
    (layout.METRICS, edited(METRICS, epochs=KeyError), "lacks the field 'epochs' (an integer >= 1)"),
    (layout.METRICS, edited(METRICS, per_class_accuracy__cat=True), "field 'per_class_accuracy.cat' must be a number "
                                                                    "from 0 to 1 or null, got True"),
    (layout.ANALYSIS_SUMMARY, edited(ANALYSIS, mode="both"), "field 'mode' must be one of keep, drop, got 'both'"),
    (layout.ANALYSIS_SUMMARY, edited(ANALYSIS, files__0__path="../../../home/user/.ssh/id_rsa"),
     "field 'files[0].path' must be analysis/NAME, NAME a figure named in keras_latent.runs.layout, "
     "got '../../../home/user/.ssh/id_rsa'"),
    (layout.ANALYSIS_SUMMARY, edited(ANALYSIS, files__0__path="analysis/../config.json"), "field 'files[0].path'"),
    (layout.ANALYSIS_SUMMARY, edited(ANALYSIS, top_channels__conv1__0__channel=-1),
     "field 'top_channels.conv1[0].channel' must be an integer >= 0, got -1"),
    (layout.ANALYSIS_SUMMARY, edited(ANALYSIS, images=KeyError), "lacks the field 'images' (a list of images)"),
    (layout.BEST, edited(BEST, ce_weight=-1), "field 'ce_weight' must be a number >= 0, got -1"),
    (layout.BEST, edited(BEST, trial_id=KeyError), "lacks the field 'trial_id' (a string)"),
    (layout.BEST, [BEST], "must hold a JSON object, got list"),
    (layout.BACKUP_METADATA, {"epoch": "3"}, "field 'epoch' must be an integer >= 0, got '3'"),
    (layout.TRIAL_STATE, edited(TRIAL, status="DONE"), "field 'status' must be one of RUNNING, IDLE, INVALID, STOPPED, "
                                                       "COMPLETED, FAILED, got 'DONE'"),
    (layout.ORACLE_STATE, {"ongoing_trials": {}}, "lacks the field 'hyperparameters'"),
]


@pytest.mark.parametrize("entry,value,message", JSON_CASES, ids=[f"{c[0].name}-{i}" for i, c in enumerate(JSON_CASES)])
def test_an_edited_json_file_is_one_line(tmp_path, entry, value, message):
    path = str(tmp_path / entry.name)
    with open(path, "w") as f:
        json.dump(value, f)
    with pytest.raises(UsageError) as err:
        read_json(path, entry)
    text = str(err.value)
    assert text.startswith(f"{path} ") and message in text and "\n" not in text, text
    assert text.endswith(f"; rebuild it with: {layout.rebuild_command(entry, path)}")


@pytest.mark.parametrize("entry,value", [(layout.METRICS, METRICS), (layout.ANALYSIS_SUMMARY, ANALYSIS),
                                         (layout.BEST, BEST), (layout.TRIAL_STATE, TRIAL),
                                         (layout.ANALYSIS_SUMMARY, edited(ANALYSIS, newer_key={"conv1": 0.9}))])
def test_a_file_that_follows_its_schema_reads_back_as_written(tmp_path, entry, value):
    """Keys a schema does not name are allowed: a newer writer may add some."""
    path = str(tmp_path / entry.name)
    with open(path, "w") as f:
        json.dump(value, f)
    assert json.dumps(read_json(path, entry)) == json.dumps(value)


def write_csv(path, text: str) -> str:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return str(path)


CSV_CASES = [
    (layout.HISTORY, "epoch,loss\n1,0.5\n3,0.4\n", "column 'epoch' must count 1, 2, 3, ... one row per finished "
                                                   "epoch, got [1, 3]"),
    (layout.HISTORY, "epoch,loss\n1,low\n", "line 2, column 'loss' must be a number (nan and inf allowed), got 'low'"),
    (layout.HISTORY, "epoch,val_loss\n1,0.5\n", "lacks the columns loss; expected at least epoch, loss, got epoch, "
                                                "val_loss"),
    (layout.HISTORY, "epoch,loss\n1,0.5,7\n", "line 2 has 3 cells but the header names 2 columns"),
    (layout.ABLATION, "layer,channel,accuracy,accuracy_drop\nconv1,x,0.2,0.1\n", "line 2, column 'channel' must be "
                                                                                "an integer >= 0, got 'x'"),
    (layout.TRIALS, "trial_id,ce_weight,recon_weight,val_accuracy,status\n0,1,2,0.3,DONE\n",
     "line 2, column 'status' must be one of RUNNING, IDLE, INVALID, STOPPED, COMPLETED, FAILED, got 'DONE'"),
    (layout.TRIALS, "trial_id,ce_weight,recon_weight,val_accuracy\n0,-1,2,0.3\n",
     "line 2, column 'ce_weight' must be a number >= 0, got '-1'"),
]


@pytest.mark.parametrize("entry,text,message", CSV_CASES, ids=[f"{c[0].name}-{i}" for i, c in enumerate(CSV_CASES)])
def test_an_edited_csv_file_is_one_line(tmp_path, entry, text, message):
    path = write_csv(tmp_path / entry.name, text)
    with pytest.raises(UsageError) as err:
        read_csv(path, entry)
    text = str(err.value)
    assert text.startswith(f"{path} ") and message in text and "\n" not in text, text
    assert text.endswith(f"; rebuild it with: {layout.rebuild_command(entry, path)}")


def test_a_history_with_a_diverged_epoch_and_a_later_column_reads_back(tmp_path):
    path = write_csv(tmp_path / layout.HISTORY.name, "epoch,loss,val_loss\n1,0.5,\n2,nan,inf\n")
    assert [r["loss"] for r in read_csv(path, layout.HISTORY)] == ["0.5", "nan"]


def test_edited_search_settings_and_kerastuner_state_are_one_line(tmp_path):
    """search.json is checked against SearchConfig; KerasTuner's own files against their schemas."""
    from keras_latent.tuning.config import SearchConfig, search_spec

    spec = search_spec(SearchConfig())
    folder = str(tmp_path)
    with open(layout.SEARCH_SETTINGS.path(folder), "w") as f:
        json.dump(edited(spec, tuner=3), f)
    with pytest.raises(UsageError, match=r"search.json is not a valid search settings file: field 'tuner' must be a "
                                         r"string, got 3; rebuild it with: python tuning/search_weights.py with the "
                                         r"same flags and --overwrite"):
        check_settings(folder, spec)
    os.makedirs(layout.TRIAL_DIR.path(folder, trial_id="0"))
    with open(layout.ORACLE_STATE.path(folder), "w") as f:
        f.write('{"ongoing_trials": ')
    with pytest.raises(UsageError, match=r"oracle.json is not valid JSON"):
        check_tuner_state(folder)
