"""Tuning's uses of private KerasTuner names, guarded.

The weight search patches or extends KerasTuner internals in two places, each for a reason:

1. KerasTuner 1.4 writes its state files in place and loses the grid's walk on reload
   (keras-team/keras-tuner#1055): `AtomicOracleFiles`, `next_untried_grid_cell` and
   `AtomicTunerFile` use private Oracle and Tuner members.
2. KerasTuner's `executions_per_trial` repeats `Tuner._build_and_fit_model` without telling the
   hypermodel which repeat it is, and keeps only the average of the repeats
   (keras-team/keras-tuner#1022, #737): `SeededExecutions` seeds repeat k with its own seed and
   passes its index on, so the repeats differ and each one's figures can be kept.

At import this module checks that every private name it uses exists in the installed KerasTuner and
fails with one line naming the supported versions otherwise, instead of a patch that silently does
nothing. `tests/tuning/test_tuning_patches.py` checks that each patch still takes effect. Training's patches
(Keras `fit` under multi-worker, BackupAndRestore) live with training (`keras_latent.training.patches`).
"""
from __future__ import annotations

import json

import keras
import keras_tuner
from keras_tuner.engine.trial import TrialStatus

from keras_latent.errors import UsageError
from keras_latent.files import atomic_write_text
from keras_latent.training.patches import missing_names

SUPPORTED = "keras-tuner 1.4 (tested: 1.4.8)"

# (module, dotted attribute) pairs this module relies on.
PRIVATE_NAMES = (
    ("keras_tuner", "Oracle._get_oracle_fname"),
    ("keras_tuner", "Oracle._get_trial_dir"),
    ("keras_tuner", "Oracle._save_trial"),
    ("keras_tuner", "Oracle._duplicate"),
    ("keras_tuner", "Tuner._is_worker"),
    ("keras_tuner", "Tuner._get_tuner_fname"),
    ("keras_tuner", "Tuner._build_and_fit_model"),
)
# Attributes set in __init__, checked on a fresh instance.
ORACLE_ATTRIBUTES = ("_retry_queue", "_tried_so_far")


def missing_private_names() -> list[str]:
    """The private names this module uses that the installed KerasTuner lacks."""
    oracle = keras_tuner.oracles.GridSearchOracle()
    return missing_names(PRIVATE_NAMES) + [f"keras_tuner.Oracle().{a}" for a in ORACLE_ATTRIBUTES
                                           if not hasattr(oracle, a)]


def check_private_names() -> None:
    """Fail with one line when the installed KerasTuner lacks a private name used here."""
    missing = missing_private_names()
    if missing:
        raise UsageError(f"keras-tuner {keras_tuner.__version__} lacks {', '.join(missing)}, "
                         f"which keras_latent's weight search patches; supported: {SUPPORTED}")


# ---------------------------------------------------------------- 1. KerasTuner state files


class AtomicOracleFiles:
    """Mixin for KerasTuner oracles: oracle.json and each trial.json written atomically; a trial that a
    kill caught between its two saves is not retried."""

    def save(self):
        atomic_write_text(self._get_oracle_fname(), json.dumps(self.get_state()))

    def _save_trial(self, trial):
        atomic_write_text(f"{self._get_trial_dir(trial.trial_id)}/trial.json", json.dumps(trial.get_state()))

    def reload(self):
        """KerasTuner's reload sends every trial that was running to the retry queue; one whose trial.json
        already says it ended (killed between the two saves of `end_trial`) is not run again."""
        super().reload()
        ended = (TrialStatus.COMPLETED, TrialStatus.FAILED)
        self._retry_queue = [i for i in self._retry_queue if self.trials[i].status not in ended]


def next_untried_grid_cell(oracle, cells) -> dict | None:
    """The first of `cells` ({name: value} dicts, in grid order) the oracle has not tried yet, or None.

    KerasTuner 1.4.8's GridSearchOracle keeps its walk out of its saved state (keras-team/keras-tuner#1055);
    `_tried_so_far`, which `_duplicate` reads, is saved, so the next cell can be found again after a reload.
    """
    return next((values for values in cells if not oracle._duplicate(values)), None)


class AtomicTunerFile:
    """Mixin for `keras_tuner.Tuner`: its state file written atomically (and the oracle's, unless a worker)."""

    def save(self):
        if not self._is_worker():
            self.oracle.save()
        atomic_write_text(self._get_tuner_fname(), json.dumps(self.get_state()))


# ---------------------------------------------------------------- 2. KerasTuner executions_per_trial


class SeededExecutions:
    """Mixin for `keras_tuner.Tuner`: repeat k of every trial (KerasTuner's `executions_per_trial`) is seeded
    with `execution_seed(k)` and told its index.

    `Tuner.run_trial` calls `_build_and_fit_model` once per execution, all under one random state, and averages
    the results (keras-team/keras-tuner#1022, #737). Here each execution first calls
    `keras.utils.set_random_seed(execution_seed(k))`, so its initial weights differ from the other repeats but
    are the same as repeat k of every other trial, and the hypermodel's `fit` gets `seed=` and `execution=k`
    (for its batch order, and to report its own figures under names of its own).
    """

    def execution_seed(self, execution: int) -> int:
        raise NotImplementedError

    def run_trial(self, trial, *args, **kwargs):
        self._next_execution = 0
        return super().run_trial(trial, *args, **kwargs)

    def _build_and_fit_model(self, trial, *args, **kwargs):
        execution = self._next_execution
        self._next_execution += 1
        seed = self.execution_seed(execution)
        keras.utils.set_random_seed(seed)
        return super()._build_and_fit_model(trial, *args, seed=seed, execution=execution, **kwargs)


check_private_names()
