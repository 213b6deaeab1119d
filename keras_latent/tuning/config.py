"""Settings of a loss-weight search: the frozen SearchConfig, its validation, and the distributed role.

Light on purpose (no TensorFlow or KerasTuner import): the CLI checks flags and KERASTUNER_* variables
here first, so bad input fails at once with one line. `keras_latent.tuning.tuner` runs the search.
"""
from __future__ import annotations

import dataclasses
import math
import os

from keras_latent import config as cfg
from keras_latent.errors import UsageError, check_choice

TUNERS = ("grid", "bayesian", "random")
DEFAULT_RANDOM_TRIALS = 15  # bayesian/random trials when --max-trials is not given (the default grid's size)


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    train: cfg.TrainConfig = cfg.TrainConfig()  # data, model and fit settings of every trial
    tuner: str = "grid"  # grid | bayesian | random (KerasTuner oracles)
    ce_weights: tuple[float, ...] = (0.5, 1.0, 2.0)  # grid: cross-entropy weights tried
    recon_weights: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0, 4.0)  # grid: reconstruction weights tried (0 allowed)
    ce_range: tuple[float, float] = (0.25, 4.0)  # bayesian/random: log-uniform cross-entropy weight range
    recon_range: tuple[float, float] = (0.1, 8.0)  # bayesian/random: log-uniform reconstruction range (> 0)
    max_trials: int | None = None  # trials in all (None: the whole grid, or 15 for bayesian/random)
    val_fraction: float = 0.2  # share of the training images held out to score the trials
    executions_per_trial: int = 1  # trainings per pair, repeat k seeded with train.seed + k (KerasTuner's own)


def _check_weights(flag: str, values: tuple[float, ...], allow_zero: bool) -> None:
    shown = ",".join(f"{v:g}" for v in values)
    if not values:
        raise UsageError(f"{flag} is empty: the grid needs at least one weight, e.g. {flag} 1,2")
    if not all(math.isfinite(v) and (v > 0 or (allow_zero and v == 0)) for v in values):
        raise UsageError(f"{flag} must be {'>= 0' if allow_zero else '> 0 (the search scores classifier accuracy)'}, "
                         f"got {shown}")
    if len(set(values)) != len(values):
        raise UsageError(f"{flag} lists a weight twice, got {shown}")


def _check_range(flag: str, values: tuple[float, ...]) -> None:
    if len(values) != 2 or not all(math.isfinite(v) for v in values) or not 0 < values[0] < values[1]:
        raise UsageError(f"{flag} must be two numbers LO,HI with 0 < LO < HI (searched on a log scale, which "
                         f"cannot reach 0: a zero weight is searched by --tuner grid only), got "
                         f"{','.join(f'{v:g}' for v in values) or 'nothing'}")


def validate_search(search: SearchConfig) -> SearchConfig:
    """Raise UsageError naming the bad flag, what is allowed and what was received."""
    cfg.validate(search.train)
    if not search.train.model.decoder:
        raise UsageError("the loss-weight search needs the reconstruction decoder (model.decoder=True)")
    check_choice("--tuner", search.tuner, TUNERS)
    if search.tuner == "grid":
        _check_weights("--ce-weights", search.ce_weights, allow_zero=False)
        _check_weights("--recon-weights", search.recon_weights, allow_zero=True)
    else:
        _check_range("--ce-range", search.ce_range)
        _check_range("--recon-range", search.recon_range)
    if search.max_trials is not None and search.max_trials < 1:
        raise UsageError(f"--max-trials must be >= 1, got {search.max_trials}")
    if not 0 < search.val_fraction < 1:
        raise UsageError(f"--val-fraction must be between 0 and 1, got {search.val_fraction}")
    if search.executions_per_trial < 1:
        raise UsageError(f"--executions-per-trial must be >= 1, got {search.executions_per_trial}")
    return search


def max_trials(search: SearchConfig) -> int:
    if search.tuner == "grid":
        cells = len(search.ce_weights) * len(search.recon_weights)
        return min(cells, search.max_trials or cells)
    return search.max_trials or DEFAULT_RANDOM_TRIALS


def distributed_role(overwrite: bool = False) -> str:
    """single | chief | worker, from KerasTuner's KERASTUNER_TUNER_ID / _ORACLE_IP / _ORACLE_PORT.

    A chief's KERASTUNER_TUNER_ID contains "chief" (KerasTuner's rule). A worker may not `overwrite`: it never
    deletes the search its chief holds.
    """
    names = ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT")
    if "KERASTUNER_ORACLE_IP" not in os.environ:
        return "single"
    missing = [name for name in names if not os.environ.get(name)]
    if missing:
        raise UsageError(f"KERASTUNER_ORACLE_IP is set, so {', '.join(names)} must all be set; missing "
                         f"{', '.join(missing)}")
    role = "chief" if "chief" in os.environ["KERASTUNER_TUNER_ID"] else "worker"
    if role == "worker" and overwrite:
        raise UsageError("--overwrite is for the chief (or a single process); a worker never deletes the search")
    return role


def search_spec(search: SearchConfig) -> dict:
    """What a rerun must repeat to resume a project: every setting but max_trials (which may grow)."""
    spec = cfg.to_json_dict(search)
    spec.pop("max_trials")
    if spec["executions_per_trial"] == 1:
        spec.pop("executions_per_trial")  # so a search made before the setting existed still resumes
    return spec
