"""Every file that keras-latent writes, by folder: its name, the command that writes it and what it holds.

This module is the one owner of the on-disk formats' *names*. Writers, readers, the `--overwrite`
cleanup, the report and the tests all take names from here, so adding an output file is one line
here plus its writer. No TensorFlow import: the commands check paths before TensorFlow loads.

Five folders:

    run folder (--out of train)            RUN_FILES
      analysis/                            ANALYSIS_FILES
    tuning results folder                  TUNING_FILES
    study folder (--out of study)          STUDY_FILES
      runs/<variant>/seed-<n>/             one run folder per variant and seed (STUDY_RUN)
    user cache folder                      CACHE_FILES  ($XDG_CACHE_HOME/keras_latent, never a run folder)

A name with `{fields}` is a family of files (`reconstructions_epoch_{epoch:03d}.png`); `Entry.path`
fills the fields, `Entry.glob` finds the members and `Entry.match` reads the fields back. Each entry
also names the command that makes it again (`Entry.rebuild`), so that every message about a missing
or damaged file says how to get it back (`damaged`).
"""
from __future__ import annotations

import dataclasses
import functools
import glob as _glob
import os
import re
import shlex
import string

TRAIN = "python -m keras_latent.train"
ANALYZE = "python -m keras_latent.analyze"
REPORT = "python -m keras_latent.report"
EXPORT = "python -m keras_latent.export"
SEARCH = "python tuning/search_weights.py"
STUDY = "python -m keras_latent.study"
ATTACH = "python -m keras_latent.attach"
KERAS = "Keras (BackupAndRestore)"
KERAS_TUNER = "KerasTuner"

# How each file is made again; RUN stands for the run folder, DIR for the tuning results folder.
RETRAIN = f"{TRAIN} --out RUN --overwrite (with the run's other flags: it trains again)"
BACKUP_RESTART = f"{TRAIN} --out RUN --overwrite (the resume point is lost: it trains again)"
REANALYZE = f"{ANALYZE} RUN"
RESEARCH = f"{SEARCH} with the same flags (it resumes and rewrites DIR's results)"
RESTART_SEARCH = f"{SEARCH} with the same flags and --overwrite (the search in DIR starts over)"
RESTUDY = f"{STUDY} with the same flags (it continues the study in DIR and rewrites its results)"


@dataclasses.dataclass(frozen=True)
class Entry:
    """One file (or folder, or family of files) in one of the project's folders."""

    name: str  # file or folder name; `{field}` or `{field:03d}` for a family of files
    written_by: str  # the command (or library) that writes it
    what: str  # one line: what it holds
    folder: bool = False  # a folder rather than a file
    rebuild: str = RETRAIN  # the command that makes it again (RUN: the run folder, DIR: the results folder)

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
METRICS = Entry("metrics.json", TRAIN, "test accuracy, per-class accuracy, precision, recall and F1, confusion "
                "matrix counts, reconstruction MSE, decode faithfulness, time, images/s")
MODEL_SUMMARY = Entry("model_summary.json", TRAIN, "the model's layers (output shape, parameters) for the report")
CLASSIFICATION_REPORT = Entry("classification_report.txt", TRAIN, "scikit-learn's report and per-class accuracy")
CONFUSION_MATRIX = Entry("confusion_matrix.png", TRAIN, "test confusion matrix")
CURVES = Entry("curves.png", TRAIN, "loss and accuracy per epoch, train and test")
SNAPSHOT = Entry("reconstructions_epoch_{epoch:03d}.png", TRAIN,
                 "originals over reconstructions of fixed test images after `epoch` epochs (0: untrained)")
TENSORBOARD = Entry("tensorboard", TRAIN, "TensorBoard logs (scalars and reconstruction images)", folder=True)
SAVED_MODEL = Entry("saved_model", f"{TRAIN}, {EXPORT}",
                    "TF SavedModel: serving_default, encode, decode_masked(_path), gradcam",
                    folder=True, rebuild=f"{EXPORT} RUN")
TFLITE = Entry("model.tflite", f"{EXPORT} --tflite", "TFLite flatbuffer of serving_default",
               rebuild=f"{EXPORT} RUN --tflite")
BACKUP = Entry("backup", TRAIN, "the last finished epoch of an unfinished run (resume point); removed when done",
               folder=True, rebuild=BACKUP_RESTART)
DATA_CACHE = Entry("data_cache", TRAIN, "the data set's decoded uint8 images (x_train.npy, x_test.npy) when "
                   "they exceed --data-memory-budget, streamed from while training; removed when the run finishes",
                   folder=True)
LAST_GOOD = Entry("last_good.keras", TRAIN, "the model before a divergence (NaN loss) stopped training")
WORKER = Entry("worker-{index}", f"{TRAIN} --strategy multiworker",
               "a non-chief worker's own run folder (same files)", folder=True)
ANALYSIS_DIR = Entry("analysis", ANALYZE, "the latent analysis (ANALYSIS_FILES)", folder=True, rebuild=REANALYZE)
REPORT_FILE = Entry("report.html", REPORT, "the whole study as one self-contained HTML page",
                    rebuild=f"{REPORT} RUN")

# An attached run (python -m keras_latent.attach: decoders attached to a user's own model) writes CONFIG, MODEL,
# HISTORY and METRICS with its own content (config.json and metrics.json say "kind": "attached") and this copy.
REATTACH = f"{ATTACH} MODEL.keras --out RUN (with the run's other flags: it trains the decoders again)"
SOURCE_MODEL = Entry("source_model.keras", ATTACH, "an attached run's byte copy of the user's model file (same "
                     "sha256): the graph analysis rebuilds", rebuild=REATTACH)

RUN_FILES = (CONFIG, MODEL, HISTORY, METRICS, MODEL_SUMMARY, CLASSIFICATION_REPORT, CONFUSION_MATRIX, CURVES, SNAPSHOT,
             TENSORBOARD, SAVED_MODEL, TFLITE, BACKUP, DATA_CACHE, LAST_GOOD, WORKER, ANALYSIS_DIR, REPORT_FILE,
             SOURCE_MODEL)
# What a training run (and its export) made: removed, model first, when a run starts over (--overwrite).
# Other tools' outputs (analysis/, report.html) are left alone.
TRAINING_OUTPUTS = (MODEL, BACKUP, DATA_CACHE, LAST_GOOD, CONFIG, HISTORY, CURVES, CLASSIFICATION_REPORT,
                    CONFUSION_MATRIX, METRICS, MODEL_SUMMARY, SNAPSHOT, TENSORBOARD, SAVED_MODEL, TFLITE)

# Inside backup/: Keras's own BackupAndRestore names, written there by training.callbacks.
BACKUP_WEIGHTS = Entry("latest.weights.h5", KERAS, "weights after the last finished epoch", rebuild=BACKUP_RESTART)
BACKUP_METADATA = Entry("training_metadata.json", KERAS, '{"epoch": finished epochs, "batch": last batch}',
                        rebuild=BACKUP_RESTART)
BACKUP_FILES = (BACKUP_WEIGHTS, BACKUP_METADATA)

# ---------------------------------------------------------------- analysis/ (inside a run folder)

_analysis_file = functools.partial(Entry, written_by=ANALYZE, rebuild=REANALYZE)
ANALYSIS_SUMMARY = _analysis_file("analysis.json", what="settings, images, channel rankings, intact accuracy and the "
                                                        "list of every figure")
CHANNEL_STATS = _analysis_file("channel_stats.csv", what="mean activation of each channel, overall and per class")
ABLATION = _analysis_file("ablation.csv", what="test accuracy (overall and per class) with each channel zeroed")
CHANNEL_GRID = _analysis_file("channels_{split}_{index}_{layer}.png",
                              what="one image decoded from `layer` with one channel kept (or zeroed) per tile")
ACTIVATION_MAPS = _analysis_file("activations_{split}_{index}_{layer}.png", what="raw feature maps of one image")
CLASS_HEATMAP = _analysis_file("channel_class_heatmap_{layer}.png", what="mean activation per channel and class")
ABLATION_PLOT = _analysis_file("ablation_{layer}.png", what="accuracy drop per zeroed channel, overall and per class")
FEATURES_TABLE = _analysis_file("features.csv", written_by=f"{ANALYZE} --methods features",
                               what="activation each channel's optimized image reaches, against the highest over the "
                                    "test images")
FEATURE_GRID = _analysis_file("features_{layer}.png", written_by=f"{ANALYZE} --methods features",
                              what="feature visualization: the optimized image of each channel of `layer`")
GRAD_CAM = _analysis_file("gradcam_{split}_{index}.png", written_by=f"{ANALYZE} --methods gradcam",
                          what="Grad-CAM of the predicted and the true class at each trunk layer, over one image")
SALIENCY = _analysis_file("saliency_{split}_{index}.png", written_by=f"{ANALYZE} --methods saliency",
                          what="SmoothGrad saliency of the predicted and the true class for one image")
CHANNEL_VIEWS = _analysis_file("views_{layer}.npz",
                               what="per-channel arrays of `layer` the report's channel cards show (decoded tiles, "
                                    "activation maps, optimized images)")
# The arrays views_{layer}.npz may hold (numeric only): channels (K,) int64; originals (N, S, S, 3) uint8, the
# analysed images in analysis.json's order; optimized and best_test (K, S, S, 3) uint8, each channel's optimized
# image and the test image that excites it most; decoded (N, K, S, S, 3) uint8; activation_maps (N, K, h, w)
# float32. The arrays of a method that did not run are left out.
CHANNEL_VIEW_ARRAYS = ("channels", "originals", "optimized", "best_test", "decoded", "activation_maps")
# the sanity method (issue 23), opt-in: analyze --methods decode,features,gradcam,saliency,sanity
SANITY_METHODS = "decode,features,gradcam,saliency,sanity"
SANITY_SUMMARY = _analysis_file("sanity.json", written_by=f"{ANALYZE} --methods ...,sanity",
                                rebuild=f"{REANALYZE} --methods {SANITY_METHODS}",
                                what="the controls and sanity checks of every view: each check's numbers, p-values "
                                     "and intervals, a verdict per view, timings per part, the list of its figures")
SANITY_FIGURE = _analysis_file("sanity_{figure}.png", written_by=f"{ANALYZE} --methods ...,sanity",
                               rebuild=f"{REANALYZE} --methods {SANITY_METHODS}",
                               what="one figure of the sanity checks: cascade_<view>, deletion_<view>, "
                                    "channel_deletion_<layer> or trunk_control_<layer>")

ANALYSIS_FILES = (ANALYSIS_SUMMARY, CHANNEL_STATS, ABLATION, CHANNEL_GRID, ACTIVATION_MAPS, CLASS_HEATMAP,
                  ABLATION_PLOT, FEATURES_TABLE, FEATURE_GRID, GRAD_CAM, SALIENCY, CHANNEL_VIEWS, SANITY_SUMMARY,
                  SANITY_FIGURE)

# ---------------------------------------------------------------- tuning results folder

_results_file = functools.partial(Entry, written_by=SEARCH, rebuild=RESEARCH)
_tuner_state = functools.partial(Entry, written_by=KERAS_TUNER, rebuild=RESTART_SEARCH)
TRIALS = _results_file("trials.csv", what="one row per trial: weights, validation accuracy and MSE, epochs, status")
BEST = _results_file("best.json", what="the best trial's weights and figures, the Pareto front, the search's settings")
PARETO = _results_file("pareto.png", what="validation accuracy against reconstruction MSE, one point per trial")
SEARCH_SETTINGS = Entry("search.json", SEARCH, "the settings a rerun must repeat to resume the search",
                        rebuild=RESTART_SEARCH)
ORACLE_STATE = _tuner_state("oracle.json", what="KerasTuner's oracle state (resume)")
TUNER_STATE = _tuner_state("{tuner_id}.json", what="KerasTuner's tuner state, one per process (resume)")
TRIAL_DIR = _tuner_state("trial_{trial_id}", what="KerasTuner's trial.json of one trial", folder=True)

TUNING_FILES = (TRIALS, BEST, PARETO, SEARCH_SETTINGS, ORACLE_STATE, TUNER_STATE, TRIAL_DIR)
# Inside trial_{trial_id}/: KerasTuner's own name.
TRIAL_STATE = _tuner_state("trial.json", what="one trial's hyperparameters, metrics and status")

# ---------------------------------------------------------------- study folder (--out of study)

_study_file = functools.partial(Entry, written_by=STUDY, rebuild=RESTUDY)
STUDY_SETTINGS = _study_file("study.json", what="the study's settings: seeds, and each variant's flags and TrainConfig")
STUDY_CSV = _study_file("study.csv", what="one row per finished run: variant, seed, test accuracy, reconstruction MSE, "
                                          "seconds, per-class accuracy")
STUDY_SUMMARY = _study_file("summary.json", what="per variant mean, sd and 95% CI of test accuracy; per pair of "
                                                 "variants the paired difference, its 95% CI and paired t-test "
                                                 "p-value; the same per class; conclusions")
ACCURACY_BY_EPOCH = _study_file("accuracy_by_epoch.png",
                                what="test accuracy against epochs per variant: mean, 95% band")
PER_CLASS = _study_file("per_class.png", what="per-class paired difference between variants with 95% intervals")
STUDY_REPORT = _study_file("report.html", what="the study as one self-contained HTML page, linking each run's report")
STUDY_RUNS = _study_file("runs", what="the study's run folders, runs/<variant>/seed-<n>/", folder=True)

STUDY_FILES = (STUDY_SETTINGS, STUDY_CSV, STUDY_SUMMARY, ACCURACY_BY_EPOCH, PER_CLASS, STUDY_REPORT, STUDY_RUNS)

# Inside runs/: one folder per variant, holding one ordinary run folder (RUN_FILES) per seed.
VARIANT_DIR = _study_file("{variant}", what="the runs of one variant", folder=True)
STUDY_RUN = _study_file("seed-{seed}", what="an ordinary run folder (RUN_FILES), trained with that seed", folder=True)


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

# ---------------------------------------------------------------- user cache folder ($XDG_CACHE_HOME/keras_latent)

CALIBRATION_CACHE = Entry("calibration.json", TRAIN, "images/s of each training formulation, measured once per "
                          "machine (CPU, ISA, cores, versions) and workload (again once quiet if other processes "
                          "disturbed it: provisional); train() runs the fastest",
                          rebuild=f"{TRAIN} (any run: a missing or unreadable cache is measured again)")

CACHE_FILES = (CALIBRATION_CACHE,)


def analysis_dir(run_dir: str) -> str:
    """RUN/analysis."""
    return ANALYSIS_DIR.path(run_dir)


def analysis_file(run_dir: str, entry: Entry, **fields) -> str:
    """A file of RUN/analysis/."""
    return entry.path(analysis_dir(run_dir), **fields)


def analysis_relative(entry: Entry, **fields) -> str:
    """A file of analysis/ as analysis.json lists it: relative to the run folder, with '/'."""
    return f"{ANALYSIS_DIR.name}/{entry.name.format(**fields)}"


def rebuild_command(entry: Entry, path: str) -> str:
    """`entry.rebuild` for the file (or folder) `path`, with RUN or DIR replaced by the folder it belongs to."""
    folder = os.path.dirname(os.path.normpath(path))
    if entry in ANALYSIS_FILES or entry in BACKUP_FILES or entry is TRIAL_STATE:  # one folder deeper
        folder = os.path.dirname(folder)
    quoted = shlex.quote(folder or ".")
    return re.sub(r"\b(RUN|DIR)\b", lambda _: quoted, entry.rebuild)


def damaged(entry: Entry, path: str, problem: str) -> str:
    """One line for a missing or damaged file: `PATH PROBLEM; rebuild it with: COMMAND`."""
    return f"{path} {problem}; rebuild it with: {rebuild_command(entry, path)}"
