"""Run folder lifecycle: new, interrupted (resume it) or finished (refuse unless --overwrite).

A run folder (`--out`) is *finished* when it holds `model.keras` (written last, after every
report), *interrupted* when it holds a usable `backup/` (written atomically at the end of each
epoch by `training.callbacks.AtomicBackupAndRestore`) but no `model.keras`, and *new* otherwise.
Rerunning the same command resumes an interrupted run; `--overwrite` starts over. Checks that can
fail (writable folder, free space, matching config) all run before anything is deleted or trained.
File names come from `keras_latent.runs.layout`.
"""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Iterator

from keras_latent.config import TrainConfig, differences, to_json_dict
from keras_latent.errors import UsageError
from keras_latent.files import atomic_path, recover_directory, remove_stale_temps
from keras_latent.runs import layout
from keras_latent.runs.records import check_file, load_config, read_backup_epoch, read_history

_DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


def _missing_folders(path: str) -> list[str]:
    """`path` and its parents that do not exist yet, deepest first."""
    missing, path = [], os.path.abspath(path)
    while not os.path.exists(path) and os.path.dirname(path) != path:
        missing.append(path)
        path = os.path.dirname(path)
    return missing


PROBE_ATTEMPTS = 3


def _check_writable(run_dir: str) -> None:
    """Write and delete a probe file in `run_dir`; folders made for the probe are removed again, so a run
    refused later (bad data, say) leaves nothing behind.

    Another process may probe a folder above or below at the same moment (the workers of a multi-worker run:
    the chief's RUN, the others' RUN/worker-<i>), and its cleanup can remove a parent between this process's
    makedirs and its write (FileNotFoundError): the probe is then made again, up to PROBE_ATTEMPTS times."""
    made = _missing_folders(run_dir)
    try:
        for attempt in range(1, PROBE_ATTEMPTS + 1):
            try:
                os.makedirs(run_dir, exist_ok=True)
                with atomic_path(os.path.join(run_dir, ".write_test")) as tmp, open(tmp, "wb") as f:
                    f.write(b"ok")
                os.remove(os.path.join(run_dir, ".write_test"))
                break
            except FileNotFoundError:
                if attempt == PROBE_ATTEMPTS:
                    raise
    except OSError as err:
        raise UsageError(f"--out {run_dir!r} is not writable: {err.strerror or err}; "
                         "choose a folder you can write to") from None
    finally:
        for folder in made:
            with contextlib.suppress(OSError):
                os.rmdir(folder)


def finished_run_files(run_dir: str, config: TrainConfig) -> list[tuple[layout.Entry, str]]:
    """(entry, path) of every file a finished training run holds (its own outputs and the SavedModel)."""
    entries = (layout.CONFIG, layout.MODEL, layout.HISTORY, layout.METRICS, layout.CLASSIFICATION_REPORT,
               layout.CONFUSION_MATRIX, layout.CURVES, layout.SAVED_MODEL)
    files = [(entry, entry.path(run_dir)) for entry in entries]
    if config.model.decoder:
        files += [(layout.SNAPSHOT, layout.SNAPSHOT.path(run_dir, epoch=e))
                  for e in sorted(set(config.snapshot_epochs)) if e <= config.epochs]
    return files


def check_finished_run(run_dir: str) -> None:
    """Every file of the finished run in `run_dir` is there and readable; else one line naming the first that
    is not, and the command that rebuilds it."""
    for entry, path in finished_run_files(run_dir, load_config(run_dir)):
        if not os.path.exists(path):
            raise UsageError(layout.damaged(entry, path, "is missing from the finished run"))
        check_file(entry, path)


def inspect_run_dir(run_dir: str, overwrite: bool) -> int:
    """Check `run_dir` can take this run; return the finished epochs to resume from (0: start over).

    Deletes nothing but leftovers of killed writers (hidden temp files, half-swapped folders).
    """
    _check_writable(run_dir)
    remove_stale_temps(run_dir)
    for folder in (layout.BACKUP, layout.SAVED_MODEL):
        recover_directory(folder.path(run_dir))
    if overwrite:
        return 0
    if os.path.exists(layout.MODEL.path(run_dir)):
        check_finished_run(run_dir)  # a damaged file of it is named first: --overwrite is what rebuilds it
        raise UsageError(f"{run_dir!r} already holds a finished run ({layout.MODEL.name}); "
                         "pass --overwrite to retrain into it or choose another --out")
    epoch = read_backup_epoch(layout.BACKUP.path(run_dir))  # a damaged backup is one line
    if epoch is None and os.path.exists(layout.METRICS.path(run_dir)):  # written after training, before the model
        raise UsageError(layout.damaged(layout.MODEL, layout.MODEL.path(run_dir),
                                        f"is missing from a finished run (it has {layout.METRICS.name})"))
    if epoch is None and os.path.isfile(layout.HISTORY.path(run_dir)):  # epochs finished, their resume point gone
        raise UsageError(layout.damaged(layout.BACKUP, layout.BACKUP.path(run_dir), f"is missing, but "
                                        f"{layout.HISTORY.name} records finished epochs of an interrupted run"))
    if epoch:
        _check_resume_files(run_dir, epoch)
    return epoch or 0


def interrupted_run_config(run_dir: str) -> TrainConfig | None:
    """The config of the interrupted run in `run_dir` that training there would resume; None when there is
    none (no backup, a finished run) or its config.json is unreadable (check_resume_config says so later)."""
    backup = layout.BACKUP.path(run_dir)
    if os.path.exists(layout.MODEL.path(run_dir)):
        return None
    if not (read_backup_epoch(backup) or read_backup_epoch(backup + ".old")):  # .old: a half-swapped backup
        return None
    try:
        return load_config(run_dir)
    except UsageError:
        return None


def config_differences(saved: dict, config: TrainConfig) -> list[str]:
    """`field: saved -> now` for every config field that differs (JSON-normalized)."""
    return [f"{k}: {old!r} -> {new!r}" for k, old, new in differences(saved, to_json_dict(config))]


def _check_resume_files(run_dir: str, resume_epoch: int) -> None:
    """An interrupted run resumes only with its config.json and history.csv intact (one line naming the file)."""
    for entry in (layout.CONFIG, layout.HISTORY):
        path = entry.path(run_dir)
        if not os.path.isfile(path):
            raise UsageError(layout.damaged(entry, path, f"is missing from the interrupted run (stopped after epoch "
                                            f"{resume_epoch})"))
    load_config(run_dir)
    finished = len((read_history(run_dir) or {}).get("loss", []))
    if finished < resume_epoch:  # history.csv is written before the backup: it may be one epoch ahead, never behind
        raise UsageError(layout.damaged(layout.HISTORY, layout.HISTORY.path(run_dir), f"has {finished} epochs but "
                                        f"{layout.BACKUP.name}/ says {resume_epoch} finished"))


def check_resume_config(run_dir: str, config: TrainConfig, resume_epoch: int) -> None:
    """An interrupted run resumes only under the config it started with (one line naming the differences)."""
    differences = config_differences(to_json_dict(load_config(run_dir)), config)
    if differences:
        shown = "; ".join(differences[:4]) + ("; ..." if len(differences) > 4 else "")
        raise UsageError(f"{run_dir!r} holds an interrupted run (stopped after epoch {resume_epoch}) with a "
                         f"different config ({shown}); rerun its own command to resume, pass --overwrite to "
                         "start over, or choose another --out")


def estimate_run_bytes(n_params: int, config: TrainConfig) -> int:
    """Rough disk need of a run of a model with `n_params` weights: model.keras + backup (twice while
    swapped) + SavedModel + reports."""
    weights = 4 * n_params
    with_optimizer = weights * (3 if config.optimizer == "adam" else 2)
    per_epoch = 300_000 if config.model.decoder else 50_000  # history, TensorBoard events, snapshots
    return 3 * with_optimizer + 3 * weights + 8_000_000 + per_epoch * config.epochs


def check_free_space(run_dir: str, needed: int) -> None:
    existing = os.path.abspath(run_dir)
    while not os.path.exists(existing):  # --out is made when its first file is written
        existing = os.path.dirname(existing)
    free = shutil.disk_usage(existing).free
    if free < needed:
        raise UsageError(f"--out {run_dir!r} has {free / 1e6:.1f} MB free but this run needs about "
                         f"{needed / 1e6:.1f} MB (model, backup, SavedModel, reports); free some space "
                         "or choose another --out")


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.remove(path)


def clear_run_outputs(run_dir: str) -> None:
    """Start over: delete what a previous run wrote, model.keras first (so a kill here is not 'finished')."""
    for entry in layout.TRAINING_OUTPUTS:
        for path in entry.glob(run_dir):
            _remove(path)
        if not entry.fields:
            _remove(entry.path(run_dir) + ".old")  # a folder swap a kill interrupted


def finish_run(run_dir: str) -> None:
    """After model.keras is written: drop the backup and any last-good model of a diverged attempt."""
    _remove(layout.BACKUP.path(run_dir))
    _remove(layout.LAST_GOOD.path(run_dir))


def keep_last_good(model, good_weights: list | None, good_epochs: int, run_dir: str) -> str:
    """Save `model` with `good_weights` (from after `good_epochs` epochs, before a divergence) as
    last_good.keras; returns a clause for the error message."""
    import keras

    if good_epochs == 0 or good_weights is None:
        return "no epoch had finished, so there is no good model to keep"
    good = keras.models.clone_model(model)
    good.set_weights(good_weights)
    path = layout.LAST_GOOD.path(run_dir)
    with atomic_path(path, suffix=".keras") as tmp:
        good.save(tmp)
    resumes = read_backup_epoch(layout.BACKUP.path(run_dir))  # backups are throttled: maybe an earlier epoch
    return (f"the model after epoch {good_epochs} is kept in {path} ({layout.BACKUP.name}/ resumes after epoch "
            f"{resumes})" if resumes else f"the model after epoch {good_epochs} is kept in {path}")


@contextlib.contextmanager
def disk_errors_as_usage(run_dir: str) -> Iterator[None]:
    """A full disk or a folder turned read-only mid-run: one line, and what was written stays complete."""
    try:
        yield
    except Exception as err:  # OSError from Python and h5py, tf.errors.OpError from TensorFlow's file IO
        disk = isinstance(err, OSError) and err.errno in _DISK_ERRNOS
        if not disk and "No space left on device" not in str(err):
            raise
        reason = err.strerror if isinstance(err, OSError) and err.strerror else "No space left on device"
        where = f" ({err.filename})" if getattr(err, "filename", None) else ""
        raise UsageError(f"writing into --out {run_dir!r} failed: {reason}{where}; files written before are "
                         "complete; free space and rerun the same command to resume") from None
