"""Every file that keras-latent writes, by folder: its name, the command that writes it and what it holds.

This module is the one owner of the on-disk formats' *names*. Writers, readers, the `--overwrite`
cleanup, the report and the tests all take names from here, so adding an output file is one line
here plus its writer. No TensorFlow import: the commands check paths before TensorFlow loads.

Four folders:

    run folder (--out of train)            RUN_FILES
      analysis/                            ANALYSIS_FILES
    tuning results folder                  TUNING_FILES
    study folder (--out of study)          STUDY_FILES
      runs/<variant>/seed-<n>/             one run folder per variant and seed (STUDY_RUN)

A name with `{fields}` is a family of files (`reconstructions_epoch_{epoch:03d}.png`); `Entry.path`
fills the fields, `Entry.glob` finds the members and `Entry.match` reads the fields back.
"""
from __future__ import annotations

import dataclasses
import glob as _glob
import os
import re
import string

TRAIN = "python -m keras_latent.train"
ANALYZE = "python -m keras_latent.analyze"
REPORT = "python -m keras_latent.report"
EXPORT = "python -m keras_latent.export"
SEARCH = "python tuning/search_weights.py"
STUDY = "python -m keras_latent.study"
KERAS = "Keras (BackupAndRestore)"
KERAS_TUNER = "KerasTuner"


@dataclasses.dataclass(frozen=True)
class Entry:
    """One file (or folder, or family of files) in one of the project's folders."""

    name: str  # file or folder name; `{field}` or `{field:03d}` for a family of files
    written_by: str  # the command (or library) that writes it
    what: str  # one line: what it holds
    folder: bool = False  # a folder rather than a file

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(f for _, f, _, _ in string.Formatter().parse(self.name) if f)

    def path(self, parent: str, **fields) -> str:
        """The entry's path inside `parent` (fields filled in for a family)."""
        return os.path.join(parent, self.name.format(**fields) if self.fields else self.name)

    def glob(self, parent: str) -> list[str]:
        """Existing paths in `parent` that belong to this entry (one or none for a plain name), sorted."""
        pattern = re.sub(r"\{[^}]*\}", "*", self.name)
        found = _glob.glob(os.path.join(_glob.escape(parent), pattern))
        return sorted(p for p in found if self.match(os.path.basename(p)) is not None)

    def match(self, name: str) -> dict[str, str] | None:
        """The fields of a file name in this family ({} for the plain name itself), or None."""
        regex = ""
        for literal, field, _, _ in string.Formatter().parse(self.name):
            regex += re.escape(literal) + (f"(?P<{field}>.+?)" if field else "")
        found = re.fullmatch(regex, name)
        return found.groupdict() if found else None


# ---------------------------------------------------------------- run folder (--out of train)

CONFIG = Entry("config.json", TRAIN, "the run's exact TrainConfig; analysis, report and export rebuild from it")
MODEL = Entry("model.keras", TRAIN, "the trained model; written last, so its presence marks a finished run")
HISTORY = Entry("history.csv", TRAIN, "one row per finished epoch: train and test losses and accuracy")
METRICS = Entry("metrics.json", TRAIN, "test accuracy, per-class accuracy, reconstruction MSE, time, images/s")
CLASSIFICATION_REPORT = Entry("classification_report.txt", TRAIN, "scikit-learn's report and per-class accuracy")
CONFUSION_MATRIX = Entry("confusion_matrix.png", TRAIN, "test confusion matrix")
CURVES = Entry("curves.png", TRAIN, "loss and accuracy per epoch, train and test")
SNAPSHOT = Entry("reconstructions_epoch_{epoch:03d}.png", TRAIN,
                 "originals over reconstructions of fixed test images after `epoch` epochs (0: untrained)")
TENSORBOARD = Entry("tensorboard", TRAIN, "TensorBoard logs (scalars and reconstruction images)", folder=True)
SAVED_MODEL = Entry("saved_model", f"{TRAIN}, {EXPORT}",
                    "TF SavedModel: serving_default, encode, decode_masked, gradcam", folder=True)
TFLITE = Entry("model.tflite", f"{EXPORT} --tflite", "TFLite flatbuffer of serving_default")
BACKUP = Entry("backup", TRAIN, "the last finished epoch of an unfinished run (resume point); removed when done",
               folder=True)
LAST_GOOD = Entry("last_good.keras", TRAIN, "the model before a divergence (NaN loss) stopped training")
WORKER = Entry("worker-{index}", f"{TRAIN} --strategy multiworker",
               "a non-chief worker's own run folder (same files)", folder=True)
ANALYSIS_DIR = Entry("analysis", ANALYZE, "the latent analysis (ANALYSIS_FILES)", folder=True)
REPORT_FILE = Entry("report.html", REPORT, "the whole study as one self-contained HTML page")

RUN_FILES = (CONFIG, MODEL, HISTORY, METRICS, CLASSIFICATION_REPORT, CONFUSION_MATRIX, CURVES, SNAPSHOT,
             TENSORBOARD, SAVED_MODEL, TFLITE, BACKUP, LAST_GOOD, WORKER, ANALYSIS_DIR, REPORT_FILE)
# What a training run (and its export) made: removed, model first, when a run starts over (--overwrite).
# Other tools' outputs (analysis/, report.html) are left alone.
TRAINING_OUTPUTS = (MODEL, BACKUP, LAST_GOOD, CONFIG, HISTORY, CURVES, CLASSIFICATION_REPORT, CONFUSION_MATRIX,
                    METRICS, SNAPSHOT, TENSORBOARD, SAVED_MODEL, TFLITE)

# Inside backup/: Keras's own BackupAndRestore names, written there by training.callbacks.
BACKUP_WEIGHTS = Entry("latest.weights.h5", KERAS, "weights after the last finished epoch")
BACKUP_METADATA = Entry("training_metadata.json", KERAS, '{"epoch": finished epochs, "batch": last batch}')

# ---------------------------------------------------------------- analysis/ (inside a run folder)

ANALYSIS_SUMMARY = Entry("analysis.json", ANALYZE,
                         "settings, images, channel rankings, intact accuracy and the list of every figure")
CHANNEL_STATS = Entry("channel_stats.csv", ANALYZE, "mean activation of each channel, overall and per class")
ABLATION = Entry("ablation.csv", ANALYZE, "test accuracy (overall and per class) with each channel zeroed")
CHANNEL_GRID = Entry("channels_{split}_{index}_{layer}.png", ANALYZE,
                     "one image decoded from `layer` with one channel kept (or zeroed) per tile")
ACTIVATION_MAPS = Entry("activations_{split}_{index}_{layer}.png", ANALYZE, "raw feature maps of one image")
CLASS_HEATMAP = Entry("channel_class_heatmap_{layer}.png", ANALYZE, "mean activation per channel and class")
ABLATION_PLOT = Entry("ablation_{layer}.png", ANALYZE, "accuracy drop per zeroed channel, overall and per class")
FEATURES_TABLE = Entry("features.csv", f"{ANALYZE} --methods features",
                       "activation each channel's optimized image reaches, against the highest over the test images")
FEATURE_GRID = Entry("features_{layer}.png", f"{ANALYZE} --methods features",
                     "feature visualization: the optimized image of each channel of `layer`")
GRAD_CAM = Entry("gradcam_{split}_{index}.png", f"{ANALYZE} --methods gradcam",
                 "Grad-CAM of the predicted and the true class at each trunk layer, over one image")
SALIENCY = Entry("saliency_{split}_{index}.png", f"{ANALYZE} --methods saliency",
                 "SmoothGrad saliency of the predicted and the true class for one image")
CHANNEL_VIEWS = Entry("views_{layer}.npz", ANALYZE,
                      "per-channel arrays of `layer` the report's channel cards show (decoded tiles, activation "
                      "maps, optimized images)")
# The arrays views_{layer}.npz may hold (numeric only): channels (K,) int64; originals (N, S, S, 3) uint8, the
# analysed images in analysis.json's order; optimized and best_test (K, S, S, 3) uint8, each channel's optimized
# image and the test image that excites it most; decoded (N, K, S, S, 3) uint8; activation_maps (N, K, h, w)
# float32. The arrays of a method that did not run are left out.
CHANNEL_VIEW_ARRAYS = ("channels", "originals", "optimized", "best_test", "decoded", "activation_maps")

ANALYSIS_FILES = (ANALYSIS_SUMMARY, CHANNEL_STATS, ABLATION, CHANNEL_GRID, ACTIVATION_MAPS, CLASS_HEATMAP,
                  ABLATION_PLOT, FEATURES_TABLE, FEATURE_GRID, GRAD_CAM, SALIENCY, CHANNEL_VIEWS)

# ---------------------------------------------------------------- tuning results folder

TRIALS = Entry("trials.csv", SEARCH, "one row per trial: weights, validation accuracy and MSE, epochs, status")
BEST = Entry("best.json", SEARCH, "the best trial's weights and figures, the Pareto front, the search's settings")
PARETO = Entry("pareto.png", SEARCH, "validation accuracy against reconstruction MSE, one point per trial")
SEARCH_SETTINGS = Entry("search.json", SEARCH, "the settings a rerun must repeat to resume the search")
ORACLE_STATE = Entry("oracle.json", KERAS_TUNER, "KerasTuner's oracle state (resume)")
TUNER_STATE = Entry("{tuner_id}.json", KERAS_TUNER, "KerasTuner's tuner state, one per process (resume)")
TRIAL_DIR = Entry("trial_{trial_id}", KERAS_TUNER, "KerasTuner's trial.json of one trial", folder=True)

TUNING_FILES = (TRIALS, BEST, PARETO, SEARCH_SETTINGS, ORACLE_STATE, TUNER_STATE, TRIAL_DIR)

# ---------------------------------------------------------------- study folder (--out of study)

STUDY_SETTINGS = Entry("study.json", STUDY, "the study's settings: seeds, and each variant's flags and TrainConfig")
STUDY_CSV = Entry("study.csv", STUDY, "one row per finished run: variant, seed, test accuracy, reconstruction MSE, "
                  "seconds, per-class accuracy")
STUDY_SUMMARY = Entry("summary.json", STUDY, "per variant mean, sd and 95% CI of test accuracy; per pair of variants "
                      "the paired difference, its 95% CI and paired t-test p-value; the same per class; conclusions")
ACCURACY_BY_EPOCH = Entry("accuracy_by_epoch.png", STUDY, "test accuracy against epochs per variant: mean, 95% band")
PER_CLASS = Entry("per_class.png", STUDY, "per-class paired difference between variants with 95% intervals")
STUDY_REPORT = Entry("report.html", STUDY, "the study as one self-contained HTML page, linking each run's report")
STUDY_RUNS = Entry("runs", STUDY, "the study's run folders, runs/<variant>/seed-<n>/", folder=True)

STUDY_FILES = (STUDY_SETTINGS, STUDY_CSV, STUDY_SUMMARY, ACCURACY_BY_EPOCH, PER_CLASS, STUDY_REPORT, STUDY_RUNS)

# Inside runs/: one folder per variant, holding one ordinary run folder (RUN_FILES) per seed.
VARIANT_DIR = Entry("{variant}", STUDY, "the runs of one variant", folder=True)
STUDY_RUN = Entry("seed-{seed}", STUDY, "an ordinary run folder (RUN_FILES), trained with that seed", folder=True)


def study_run_dir(study_dir: str, variant: str, seed: int) -> str:
    """STUDY/runs/<variant>/seed-<seed>: the run folder of one variant and seed."""
    return STUDY_RUN.path(VARIANT_DIR.path(STUDY_RUNS.path(study_dir), variant=variant), seed=seed)


def study_of_run(run_dir: str) -> str | None:
    """The study folder a run folder belongs to (it is STUDY/runs/<variant>/seed-<n> and STUDY holds
    study.json), or None for a run of its own."""
    seed_dir = os.path.abspath(run_dir)
    variant_dir = os.path.dirname(seed_dir)
    runs_dir = os.path.dirname(variant_dir)
    study_dir = os.path.dirname(runs_dir)
    if (STUDY_RUN.match(os.path.basename(seed_dir)) is None or os.path.basename(runs_dir) != STUDY_RUNS.name
            or not os.path.isfile(STUDY_SETTINGS.path(study_dir))):
        return None
    return study_dir


def analysis_dir(run_dir: str) -> str:
    """RUN/analysis."""
    return ANALYSIS_DIR.path(run_dir)


def analysis_file(run_dir: str, entry: Entry, **fields) -> str:
    """A file of RUN/analysis/."""
    return entry.path(analysis_dir(run_dir), **fields)


def analysis_relative(entry: Entry, **fields) -> str:
    """A file of analysis/ as analysis.json lists it: relative to the run folder, with '/'."""
    return f"{ANALYSIS_DIR.name}/{entry.name.format(**fields)}"
