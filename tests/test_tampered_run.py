"""A tampered run folder: each file of a run folder deleted or corrupted, then analyze, report, export and the
same train command run on it. A command that reads the file prints one line naming it and the command that
rebuilds it (exit 2); the others run as usual. Either way every other file is left as it was."""
import hashlib
import os
import shutil

import keras
import pytest
from helpers import TINY_ARGS, copy_folder, run_main

from keras_latent import analyze, export, report, train
from keras_latent.runs import layout

GARBAGE = b"garbage \x00\xff\xfe: not what this file holds"
# A folder entry is corrupted through the file inside it that its readers open first.
INNER = {layout.ANALYSIS_DIR: layout.ANALYSIS_SUMMARY.name, layout.SAVED_MODEL: "saved_model.pb",
         layout.BACKUP: layout.BACKUP_METADATA.name}
ANALYZE_ARGS = ["--layers", "conv1", "--channels", "0,1"]  # a small analysis: the same files, fewer figures
COMMANDS = {"analyze": (analyze.main, ANALYZE_ARGS), "report": (report.main, []), "export": (export.main, []),
            "train": (train.main, None)}
A, R, E, T = "analyze", "report", "export", "train"

# Finished run: (entry, damage) -> the commands that refuse with one line. Every other command runs as usual,
# except `train`, which never retrains a finished run: it names a damaged file of it, or says it is finished.
REFUSED = {
    (layout.CONFIG, "deleted"): {A, R, E, T}, (layout.CONFIG, "corrupted"): {A, R, E, T},
    (layout.MODEL, "deleted"): {A, E, T}, (layout.MODEL, "corrupted"): {A, E, T},  # the report never loads it
    **{(entry, "deleted"): {T} for entry in (layout.HISTORY, layout.METRICS, layout.CLASSIFICATION_REPORT,
                                             layout.CONFUSION_MATRIX, layout.CURVES, layout.SNAPSHOT,
                                             layout.SAVED_MODEL)},
    **{(entry, "corrupted"): {R, T} for entry in (layout.HISTORY, layout.CONFUSION_MATRIX, layout.CURVES,
                                                  layout.SNAPSHOT)},
    # the report reads classification_report.txt only for a run whose metrics.json lacks precision, recall and F1
    (layout.CLASSIFICATION_REPORT, "corrupted"): {T},
    (layout.METRICS, "corrupted"): {R, E, T},  # export reads the decode paths training measured
    (layout.MODEL_SUMMARY, "corrupted"): {R},  # train checks only the files every finished run has (older: not it)
    (layout.ANALYSIS_DIR, "corrupted"): {R},
}
# Deleted, these leave their part out of the report with one notice each (the report is still written);
# a deleted model_summary.json is a line in the report's model section (as for a run from before it).
NOTICED = (layout.HISTORY, layout.METRICS, layout.CONFUSION_MATRIX, layout.CURVES, layout.SNAPSHOT)
FINISHED_FILES = (layout.CONFIG, layout.MODEL, layout.HISTORY, layout.METRICS, layout.MODEL_SUMMARY,
                  layout.CLASSIFICATION_REPORT, layout.CONFUSION_MATRIX, layout.CURVES, layout.SNAPSHOT,
                  layout.TENSORBOARD, layout.SAVED_MODEL, layout.TFLITE, layout.ANALYSIS_DIR, layout.REPORT_FILE)
OUTPUTS = {A: layout.ANALYSIS_DIR, R: layout.REPORT_FILE, E: layout.SAVED_MODEL, T: None}  # what each rewrites


def target(run_dir: str, entry: layout.Entry) -> str:
    """The path of `entry` in the run (the last member of a family: reconstructions_epoch_001.png)."""
    return entry.glob(run_dir)[-1] if entry.fields else entry.path(run_dir)


def damage(path: str, how: str) -> str:
    """Delete or corrupt `path`; returns the file a message about it must name."""
    entry = next((e for e in INNER if os.path.basename(path) == e.name), None)
    if how == "deleted":
        shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
        return path
    if os.path.isdir(path):
        inner = [os.path.join(path, INNER[entry])] if entry else [os.path.join(r, n) for r, _, ns in os.walk(path)
                                                                   for n in ns]
        path = inner[0]
    with open(path, "wb") as f:
        f.write(GARBAGE)
    return path


def fingerprints(folder: str) -> dict[str, str]:
    """{relative path: content hash} of every file (and '/' for every folder) below `folder`."""
    found = {}
    for root, dirs, names in os.walk(folder):
        for name in dirs:
            found[os.path.relpath(os.path.join(root, name), folder)] = "/"
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                found[os.path.relpath(path, folder)] = hashlib.sha256(f.read()).hexdigest()
    return found


def outside(prints: dict, run_dir: str, entry: layout.Entry | None) -> dict:
    """`prints` without the files of `entry` (what a command rewrites)."""
    if entry is None:
        return prints
    name = entry.name
    return {k: v for k, v in prints.items() if k != name and not k.startswith(name + os.sep)}


def run_command(command: str, run_dir: str, capsys) -> tuple[int, list[str], list[str]]:
    """Run `command` on `run_dir` in-process with -q: (exit code, its error and notice lines, stdout lines)."""
    main, args = COMMANDS[command]
    argv = TINY_ARGS + ["--out", run_dir] if args is None else [run_dir, *args]
    code, out, err = run_main(main, argv + ["-q"], capsys)
    assert "Traceback" not in err
    return code, [line for line in err.splitlines() if line.startswith(("error:", "notice:"))], out.splitlines()


@pytest.fixture(scope="module")
def full_run(trained_run, tmp_path_factory):
    """A finished tiny run with every file a run folder gets: its analysis, report and a model.tflite."""
    from keras_latent.analysis import AnalysisConfig, analyze_run
    from keras_latent.reporting import build_report

    run_dir = copy_folder(trained_run, tmp_path_factory.mktemp("full"))
    analyze_run(run_dir, AnalysisConfig(layers=("conv1",), channels=(0, 1)))
    build_report(run_dir)
    with open(layout.TFLITE.path(run_dir), "wb") as f:
        f.write(b"TFL3 stand-in: no command reads model.tflite")
    return run_dir


@pytest.mark.parametrize("entry,how,command", [(e, h, c) for (e, h), cs in REFUSED.items() for c in sorted(cs)],
                         ids=[f"{e.name}-{h}-{c}" for (e, h), cs in REFUSED.items() for c in sorted(cs)])
def test_a_damaged_file_is_one_line_naming_it_and_what_rebuilds_it(full_run, tmp_path, capsys, entry, how, command):
    run_dir = copy_folder(full_run, tmp_path)
    named = damage(target(run_dir, entry), how)
    before = fingerprints(run_dir)
    code, err, _ = run_command(command, run_dir, capsys)
    assert code == 2 and len(err) == 1 and err[0].startswith(f"error: {named} "), err
    rebuild = layout.rebuild_command(next(e for e in layout.RUN_FILES + layout.ANALYSIS_FILES + layout.BACKUP_FILES
                                          if e.match(os.path.basename(named)) is not None) if how == "corrupted"
                                     else entry, named)
    assert err[0].endswith(f"; rebuild it with: {rebuild}"), err[0]
    assert fingerprints(run_dir) == before  # nothing else touched, nothing half-written


@pytest.mark.parametrize("command", [pytest.param(A, marks=pytest.mark.slow), R,  # analyze, export: > 20 s
                                     pytest.param(E, marks=pytest.mark.slow), T])
@pytest.mark.parametrize("how", ["deleted", "corrupted"])
def test_files_a_command_does_not_read_are_left_as_they_were(full_run, tmp_path, capsys, command, how):
    """Everything the command does not read is damaged at once: it runs as usual (train: says the run is
    finished) and leaves those files exactly as they were."""
    run_dir = copy_folder(full_run, tmp_path)
    noticed = set(NOTICED) if command == R and how == "deleted" else set()
    unread = [e for e in FINISHED_FILES if command not in REFUSED.get((e, how), set()) and e not in noticed
              and (command, how, e) != (T, "deleted", layout.SAVED_MODEL)]
    for entry in unread:
        if entry is not OUTPUTS[command]:
            damage(target(run_dir, entry), how)
    before = outside(fingerprints(run_dir), run_dir, OUTPUTS[command])
    code, err, out = run_command(command, run_dir, capsys)
    if command == T:
        assert code == 2 and len(err) == 1 and "already holds a finished run (model.keras); pass --overwrite" in err[0]
    else:
        assert code == 0 and err == [], err
        assert os.path.exists(OUTPUTS[command].path(run_dir))
    assert outside(fingerprints(run_dir), run_dir, OUTPUTS[command]) == before


def test_the_report_names_each_missing_file_once_and_is_still_written(full_run, tmp_path, capsys):
    run_dir = copy_folder(full_run, tmp_path)
    paths = [target(run_dir, entry) for entry in NOTICED]
    for path in paths:
        damage(path, "deleted")
    code, err, out = run_command(R, run_dir, capsys)
    assert code == 0 and len(err) == len(NOTICED), err
    for entry, path in zip(NOTICED, paths):
        assert f"notice: {path} is missing: its part of the report is left out; rebuild it with: " \
               f"{layout.rebuild_command(entry, path)}" in err
    assert os.path.isfile(layout.REPORT_FILE.path(run_dir)) and out and out[-1].startswith("report: ")


# ---------------------------------------------------------------- an interrupted run


@pytest.fixture(scope="module")
def interrupted_run(trained_run, tmp_path_factory):
    """The tiny run as a kill after its last epoch's backup leaves it: backup/, no files written at the end."""
    run_dir = copy_folder(trained_run, tmp_path_factory.mktemp("interrupted"))
    backup = layout.BACKUP.path(run_dir)
    os.makedirs(backup)
    keras.saving.load_model(layout.MODEL.path(run_dir), safe_mode=True).save_weights(
        layout.BACKUP_WEIGHTS.path(backup))
    with open(layout.BACKUP_METADATA.path(backup), "w") as f:
        f.write('{"epoch": 1, "batch": 0}')
    for entry in (layout.MODEL, layout.METRICS, layout.CURVES, layout.CONFUSION_MATRIX, layout.CLASSIFICATION_REPORT,
                  layout.SAVED_MODEL):
        damage(entry.path(run_dir), "deleted")
    return run_dir


@pytest.mark.parametrize("entry,how", [(layout.CONFIG, "deleted"), (layout.CONFIG, "corrupted"),
                                       (layout.HISTORY, "deleted"), (layout.HISTORY, "corrupted"),
                                       (layout.BACKUP, "deleted"), (layout.BACKUP, "corrupted"),
                                       (layout.BACKUP_WEIGHTS, "deleted"), (layout.BACKUP_WEIGHTS, "corrupted")],
                         ids=lambda v: v.name if isinstance(v, layout.Entry) else v)
def test_resuming_a_damaged_interrupted_run_is_one_line(interrupted_run, tmp_path, capsys, entry, how):
    run_dir = copy_folder(interrupted_run, tmp_path)
    path = entry.path(layout.BACKUP.path(run_dir)) if entry in layout.BACKUP_FILES else entry.path(run_dir)
    named = damage(path, how)
    before = fingerprints(run_dir)
    code, err, _ = run_command(T, run_dir, capsys)
    assert code == 2 and len(err) == 1 and err[0].startswith(f"error: {named} "), err
    assert "rebuild it with: python -m keras_latent.train --out " in err[0] and "--overwrite" in err[0]
    assert fingerprints(run_dir) == before


@pytest.mark.slow
def test_resuming_with_a_snapshot_and_the_tensorboard_logs_damaged_finishes_the_run(interrupted_run, tmp_path,
                                                                                      capsys):
    run_dir = copy_folder(interrupted_run, tmp_path)
    damage(layout.SNAPSHOT.path(run_dir, epoch=0), "deleted")
    events = damage(layout.TENSORBOARD.path(run_dir), "corrupted")
    code, err, _ = run_command(T, run_dir, capsys)
    assert code == 0 and err == [], err
    assert os.path.isfile(layout.MODEL.path(run_dir)) and os.path.isfile(layout.SNAPSHOT.path(run_dir, epoch=0))
    assert open(events, "rb").read() == GARBAGE  # TensorBoard writes a new event file beside it
