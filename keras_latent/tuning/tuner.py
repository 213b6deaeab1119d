"""Loss-weight search with KerasTuner: a HyperModel over (ce_weight, recon_weight), KerasTuner's oracles,
resume and chief/worker mode; `keras_latent.tuning.results` writes trials.csv, pareto.png and best.json.

The HyperModel only maps hp values onto `build_model` + `compile_model`. Trials are scored by validation
classifier accuracy: `val_loss` sums the two losses with the very weights being searched, so it is not
comparable across trials. Each trial also records validation reconstruction MSE (Keras logs the unweighted
per-output loss as `val_reconstruction_loss`). The validation images are held out of the training split;
the test split is never seen by the search.
"""
from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import socket
import time

import keras
import keras_tuner
import numpy as np
from keras_tuner.engine.trial import TrialStatus

from keras_latent.data import Splits, load_splits
from keras_latent.data.pipeline import make_dataset
from keras_latent.errors import UsageError
from keras_latent.model.builders import build_model, reconstruction_outputs
from keras_latent.training.fit import compile_model
from keras_latent.tuning import patches
from keras_latent.tuning.config import SearchConfig, distributed_role, max_trials, search_spec, validate_search
from keras_latent.tuning.results import (
    MSE_METRIC,
    OBJECTIVE,
    check_settings,
    check_tuner_state,
    execution_metric,
    write_results,
    write_settings,
)

log = logging.getLogger("keras_latent")

IDLE_WAIT_S = 0.5  # a worker's pause when the oracle has no trial for it yet (others still running)


# ---------------------------------------------------------------- the hypermodel


class LossWeightHyperModel(keras_tuner.HyperModel):
    """hp -> the package's two-output model, compiled with the trial's two loss weights."""

    def __init__(self, search: SearchConfig = SearchConfig()):
        super().__init__(name="loss_weights")
        self.search = search

    def declare(self, hp: keras_tuner.HyperParameters) -> tuple[float, float]:
        """Register `ce_weight` and `recon_weight` (Choice for the grid, log Float otherwise); return values."""
        s, t = self.search, self.search.train
        if s.tuner == "grid":
            return (hp.Choice("ce_weight", list(s.ce_weights), default=_pick(s.ce_weights, t.ce_weight)),
                    hp.Choice("recon_weight", list(s.recon_weights), default=_pick(s.recon_weights, t.recon_weight)))
        return (hp.Float("ce_weight", *s.ce_range, sampling="log", default=float(np.clip(t.ce_weight, *s.ce_range))),
                hp.Float("recon_weight", *s.recon_range, sampling="log",
                         default=float(np.clip(t.recon_weight, *s.recon_range))))

    def build(self, hp: keras_tuner.HyperParameters) -> keras.Model:
        ce_weight, recon_weight = self.declare(hp)
        config = dataclasses.replace(self.search.train, ce_weight=float(ce_weight), recon_weight=float(recon_weight))
        return compile_model(build_model(config.model), config)

    def fit(self, hp, model, x, y, validation_data, seed: int | None = None, execution: int = 0,
            **kwargs) -> dict[str, float]:
        """Train on uint8 images `x` (N, S, S, 3) and labels `y` (N,) for the configured epochs; score on
        `validation_data` = (x_val, y_val). Reports the epoch with the best validation accuracy.

        `seed` (default: the search's) orders the batches and `execution` is the repeat's index within the trial
        (`patches.SeededExecutions` passes both). The tf.data pipelines are made here, per execution, so that
        repeat k of every trial sees the same batch order.
        """
        t = self.search.train
        targets = reconstruction_outputs(t.model)
        fit_ds = make_dataset(x, y, t.batch_size, training=True, seed=t.seed if seed is None else seed,
                              augment=t.data.augment, reconstruction_outputs=targets)
        val_ds = make_dataset(*validation_data, t.batch_size, training=False, reconstruction_outputs=targets)
        kwargs.setdefault("verbose", 0)
        start = time.perf_counter()
        history = model.fit(fit_ds, validation_data=val_ds, epochs=t.epochs, shuffle=False, **kwargs)
        return trial_metrics(history.history, time.perf_counter() - start, execution)


def _pick(values: tuple[float, ...], preferred: float) -> float:
    return preferred if preferred in values else values[0]


def trial_metrics(history: dict[str, list[float]], seconds: float, execution: int = 0) -> dict[str, float]:
    """Validation metrics at the epoch of best validation accuracy, plus `seconds`, `epochs`, `best_epoch`, and
    the accuracy and MSE again under this execution's own names (`results.execution_metric`).

    KerasTuner averages the dicts of a trial's executions key by key, so the shared names end up as the means
    and each execution's own names keep its values (for the standard deviation and the paired comparisons).
    """
    best = int(np.argmax(history[OBJECTIVE]))
    metrics = {name: float(values[best]) for name, values in history.items() if name.startswith("val_")}
    own = {execution_metric(execution, name): metrics[name] for name in (OBJECTIVE, MSE_METRIC) if name in metrics}
    return {**metrics, **own, "seconds": float(seconds), "epochs": len(history[OBJECTIVE]), "best_epoch": best + 1}


# ---------------------------------------------------------------- oracles and tuner


class _ResultsOracle(patches.AtomicOracleFiles):
    """Mixin for KerasTuner oracles: state files written atomically (`patches.AtomicOracleFiles`), results
    rewritten after every trial. In a distributed search only the chief's oracle ends trials, so only the
    chief writes results."""

    results_hook = None  # callable(oracle), set by make_tuner

    @keras_tuner.synchronized
    def end_trial(self, trial):
        super().end_trial(trial)
        self.save()  # Oracle.end_trial saves before it drops the trial from `ongoing_trials`: save that too
        if self.results_hook is not None:
            self.results_hook(self)


class GridOracle(_ResultsOracle, keras_tuner.oracles.GridSearchOracle):
    """GridSearchOracle proposing the first untried cell of the grid, in the order the values were given.

    keras-tuner 1.4.8's GridSearchOracle keeps its walk out of its saved state, so a reloaded search stops at
    once or fails with KeyError (keras-team/keras-tuner#1055), and it proposes only the successor of a finished
    trial, so parallel workers wait on one another. The space here is a plain product of Choices, so the next
    cell is the first one not tried yet (`patches.next_untried_grid_cell`).
    """

    def populate_space(self, trial_id):
        space = self.get_space().space
        cells = ({hp.name: value for hp, value in zip(space, cell)}
                 for cell in itertools.product(*(hp.values for hp in space)))
        values = patches.next_untried_grid_cell(self, cells)
        if values is not None:
            return {"status": TrialStatus.RUNNING, "values": values}
        # Every cell handed out: wait (IDLE) while trials run, as a failed one may be retried; then stop.
        return {"status": TrialStatus.IDLE if self.ongoing_trials else TrialStatus.STOPPED, "values": None}


class BayesianOracle(_ResultsOracle, keras_tuner.oracles.BayesianOptimizationOracle):
    pass


class RandomOracle(_ResultsOracle, keras_tuner.oracles.RandomSearchOracle):
    pass


class WeightTuner(patches.SeededExecutions, patches.AtomicTunerFile, keras_tuner.Tuner):
    """KerasTuner's Tuner, reseeded before each execution of a trial and saving its state file atomically.

    Execution k of every trial starts from the same initial weights and batch order (seed `trial_seed + k`), so
    trials differ only in their loss weights, the repeats of one trial differ in their seed (KerasTuner's
    `executions_per_trial`), and a resumed or distributed search reproduces an uninterrupted serial one.
    """

    def __init__(self, oracle, hypermodel, trial_seed: int, **kwargs):
        super().__init__(oracle, hypermodel, **kwargs)
        self.trial_seed = trial_seed
        self._waiting = False

    def execution_seed(self, execution: int) -> int:
        return self.trial_seed + execution

    def on_search_begin(self):
        # KerasTuner resumes only when the tuner's own file exists, which it first writes after a trial
        # ends: write it now, so that a search killed during its first trial is resumed, not restarted.
        self.save()
        super().on_search_begin()

    def pre_create_trial(self):
        if self._waiting:  # the last request got no trial (IDLE): pause instead of polling the oracle non-stop
            time.sleep(IDLE_WAIT_S)
        self._waiting = True

    def on_trial_begin(self, trial):
        self._waiting = False
        values = trial.hyperparameters.values
        log.info(f"{self.tuner_id}: trial {trial.trial_id}: ce_weight {values['ce_weight']:g}, "
                 f"recon_weight {values['recon_weight']:g}")
        super().on_trial_begin(trial)


def make_tuner(search: SearchConfig, directory: str, project_name: str, overwrite: bool) -> WeightTuner:
    """A tuner over `search`'s space; resumes `directory/project_name` unless `overwrite` (KerasTuner's reload)."""
    oracle_class = {"grid": GridOracle, "bayesian": BayesianOracle, "random": RandomOracle}[search.tuner]
    # KerasTuner treats seed 0 as "no seed", hence + 1.
    oracle = oracle_class(objective=keras_tuner.Objective(OBJECTIVE, direction="max"),
                          max_trials=max_trials(search), seed=search.train.seed + 1)
    project_dir = os.path.join(directory, project_name)
    if not overwrite:
        check_tuner_state(project_dir)
    oracle.results_hook = lambda o: write_results(o.trials.values(), project_dir, **results_labels(search))
    try:
        return WeightTuner(oracle, LossWeightHyperModel(search), trial_seed=search.train.seed, directory=directory,
                           project_name=project_name, overwrite=overwrite,
                           executions_per_trial=search.executions_per_trial)
    except (ValueError, KeyError, TypeError, RuntimeError) as err:  # JSONDecodeError is a ValueError
        raise UsageError(f"cannot resume the search in {project_dir}: its saved state is unreadable "
                         f"({type(err).__name__}: {err}); pass --overwrite to start over") from None


# ---------------------------------------------------------------- running a search


def split_validation(splits: Splits, fraction: float, seed: int) -> tuple[tuple, tuple]:
    """Hold out a stratified `fraction` of the training images: ((x, y) to fit, (x, y) to score trials)."""
    from sklearn.model_selection import train_test_split

    try:
        x_fit, x_val, y_fit, y_val = train_test_split(splits.x_train, splits.y_train, test_size=fraction,
                                                      random_state=seed, stratify=splits.y_train)
    except ValueError as err:
        raise UsageError(f"cannot hold out --val-fraction {fraction} of {len(splits.y_train)} training images with "
                         f"every class on both sides ({err}); use more images or another --val-fraction") from None
    return (x_fit, y_fit), (x_val, y_val)


def results_labels(search: SearchConfig) -> dict:
    """write_results' `about` (extra best.json keys) and plot `title` for this search."""
    t, n = search.train, search.executions_per_trial
    return {"about": {"tuner": search.tuner, "dataset": t.data.dataset, "max_train_samples": t.data.max_train_samples,
                      "val_fraction": search.val_fraction, "epochs_per_trial": t.epochs, "seed": t.seed,
                      "executions_per_trial": n},
            "title": f"{search.tuner} search of the loss weights ({t.data.dataset}, epochs per trial: {t.epochs}"
                     + (f", {n} executions each)" if n > 1 else ")")}


def check_chief_port() -> None:
    """Fail with one line, before KerasTuner starts its gRPC server, when the chief's address cannot be bound."""
    ip, port = os.environ["KERASTUNER_ORACLE_IP"], os.environ["KERASTUNER_ORACLE_PORT"]
    try:
        family, kind, proto, _, address = socket.getaddrinfo(ip, int(port), type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.bind(address)
    except (OSError, ValueError) as err:
        raise UsageError(f"the chief cannot serve on KERASTUNER_ORACLE_IP:KERASTUNER_ORACLE_PORT = {ip}:{port} "
                         f"({err}); choose a free port on an address of this machine") from None


def load_search_data(search: SearchConfig) -> tuple[SearchConfig, tuple, tuple]:
    """Load the data set and hold out validation images: (resolved search, (x, y) to fit, (x, y) to score)."""
    splits, train = load_splits(search.train)
    fit, val = split_validation(splits, search.val_fraction, train.seed)
    log.info(f"data: {splits.description}; fitting on {len(fit[1])}, scoring trials on {len(val[1])} held-out "
          "training images (the test split is not used)")
    return dataclasses.replace(search, train=train), fit, val


def run_search(search: SearchConfig, directory: str, project_name: str, overwrite: bool = False) -> dict | None:
    """Run or resume the search as this process's KerasTuner role (single, chief or worker).

    Validates `search` and seeds (`search.train.seed`) first, as the command does. Returns best.json's
    content (None on a worker, or when no trial completed).
    """
    validate_search(search)
    keras.utils.set_random_seed(search.train.seed)
    role, project_dir = distributed_role(overwrite), os.path.join(directory, project_name)
    spec = search_spec(search)
    if not overwrite:
        check_settings(project_dir, spec)
    trial_search, fit, val = search, (), None
    if role == "chief":
        check_chief_port()  # the chief only serves the oracle: it needs no data
    else:
        trial_search, fit, val = load_search_data(search)
    tuner = make_tuner(trial_search, directory, project_name, overwrite)
    if role != "worker":
        write_settings(project_dir, spec)
    served = (f"; oracle served on {os.environ['KERASTUNER_ORACLE_IP']}:{os.environ['KERASTUNER_ORACLE_PORT']} "
              "for workers started with the same flags") if role == "chief" else ""
    n, seed = search.executions_per_trial, search.train.seed
    repeats = f", each trained {n} times (seeds {seed}..{seed + n - 1})" if n > 1 else ""
    log.info(f"{role}: {search.tuner} search, up to {max_trials(search)} trials{repeats} in {project_dir}{served}")
    kwargs = {} if role == "chief" else {"validation_data": val, "callbacks": [keras.callbacks.TerminateOnNaN()]}
    tuner.search(*fit, **kwargs)
    if role == "worker":
        return None
    return write_results(tuner.oracle.trials.values(), project_dir, **results_labels(trial_search))
