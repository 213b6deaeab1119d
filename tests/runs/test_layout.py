"""runs/layout.py names every file a run folder, analysis/ and a tuning folder hold: checked against real
folders the commands wrote, and against the --overwrite cleanup."""
import os

import pytest

from keras_latent.runs import layout
from keras_latent.runs.lifecycle import clear_run_outputs


def _unnamed(folder: str, entries) -> list[str]:
    """Names in `folder` that no entry of `entries` covers."""
    return sorted(name for name in os.listdir(folder) if not any(e.match(name) is not None for e in entries))


def test_a_family_fills_globs_and_reads_back_its_fields(tmp_path):
    path = layout.SNAPSHOT.path(str(tmp_path), epoch=7)
    assert os.path.basename(path) == "reconstructions_epoch_007.png"
    open(path, "w").close()
    open(tmp_path / "reconstructions_epoch_notes.txt", "w").close()  # same prefix, not a member
    assert layout.SNAPSHOT.glob(str(tmp_path)) == [path]
    assert layout.SNAPSHOT.match("reconstructions_epoch_007.png") == {"epoch": "007"}
    assert layout.CHANNEL_GRID.match("channels_test_3_conv2.png") == {"split": "test", "index": "3", "layer": "conv2"}
    assert layout.CONFIG.match("config.json") == {} and layout.CONFIG.match("config.json.bak") is None


def test_every_file_of_a_finished_run_is_named(trained_run):
    assert _unnamed(trained_run, layout.RUN_FILES) == []
    # training writes no analysis/ (analyze does: test_every_file_the_analysis_writes_is_named names its files)
    assert not os.path.exists(layout.analysis_dir(trained_run))


@pytest.mark.slow
def test_every_file_the_analysis_writes_is_named(copy_run):
    from keras_latent.analysis.config import AnalysisConfig
    from keras_latent.analysis.run import analyze_run

    run_dir = copy_run()
    summary = analyze_run(run_dir, AnalysisConfig(channels=(0, 1)))
    folder = layout.analysis_dir(run_dir)
    assert _unnamed(folder, layout.ANALYSIS_FILES) == []
    listed = {entry["path"] for entry in summary["files"]}
    on_disk = {f"{layout.ANALYSIS_DIR.name}/{name}" for name in os.listdir(folder) if name.endswith(".png")}
    assert listed == on_disk


def test_overwrite_cleanup_removes_every_training_output_and_keeps_other_tools_files(copy_run):
    run_dir = copy_run()
    for entry in (layout.TFLITE, layout.LAST_GOOD):  # outputs this tiny run did not make
        open(entry.path(run_dir), "w").close()
    os.makedirs(layout.BACKUP.path(run_dir) + ".old")  # a folder swap a kill interrupted
    os.makedirs(layout.analysis_dir(run_dir), exist_ok=True)
    open(layout.REPORT_FILE.path(run_dir), "w").close()
    clear_run_outputs(run_dir)
    assert sorted(os.listdir(run_dir)) == sorted([layout.ANALYSIS_DIR.name, layout.REPORT_FILE.name])


def test_a_run_knows_its_study_from_the_layout_alone(tmp_path):
    run_dir = layout.study_run_dir(str(tmp_path / "study"), "two-output", 3)
    assert run_dir == str(tmp_path / "study" / "runs" / "two-output" / "seed-3")
    os.makedirs(run_dir)
    assert layout.study_of_run(run_dir) is None  # no study.json: a folder that only looks like a study
    open(layout.STUDY_SETTINGS.path(str(tmp_path / "study")), "w").close()
    assert layout.study_of_run(run_dir) == str(tmp_path / "study")
    assert layout.study_of_run(str(tmp_path / "study")) is None
    os.makedirs(tmp_path / "study" / "runs" / "two-output" / "best")
    assert layout.study_of_run(str(tmp_path / "study" / "runs" / "two-output" / "best")) is None


def test_every_entry_says_who_writes_it_what_it_holds_and_what_rebuilds_it():
    for entry in layout.RUN_FILES + layout.ANALYSIS_FILES + layout.TUNING_FILES + layout.BACKUP_FILES:
        assert entry.written_by and entry.what and entry.rebuild.startswith("python "), entry.name
    for entry in layout.STUDY_FILES + (layout.VARIANT_DIR, layout.STUDY_RUN):
        assert entry.written_by and entry.what, entry.name
    assert layout.rebuild_command(layout.ABLATION, "runs/my run/analysis/ablation.csv") == \
        "python -m keras_latent.analyze 'runs/my run'"
    assert layout.damaged(layout.TFLITE, "r/model.tflite", "is missing") == \
        "r/model.tflite is missing; rebuild it with: python -m keras_latent.export r --tflite"
    for files in (layout.RUN_FILES, layout.STUDY_FILES):
        names = [e.name for e in files]
        assert len(names) == len(set(names))
