"""Time training formulations on random data: a child process of the calibration.

    python -m keras_latent.training.timing REQUEST_JSON

in a new process or in a fork of the training process (calibration.can_fork) alike. REQUEST_JSON (from
`calibration.measure`): the run's config, the candidates to time (all with the same thread settings, which
this process takes before TensorFlow starts), the steps per call into the compiled step and the calls per
round. The child warms every candidate up, prints `calibration.READY_LINE`, then answers each `round` line
on its stdin (`round ["name", ...]`: those candidates only) with `calibration.ROUND_PREFIX` and {candidate
name: images/s} as JSON, until `done` or the end of its stdin. The parent takes the children's rounds in
turns (one child timing at a time). Reads no data set (random images of the run's shape) and writes no file.
"""
from __future__ import annotations

import dataclasses
import json
import sys
import time

from keras_latent.config import from_dict
from keras_latent.errors import UsageError
from keras_latent.training.calibration import READY_LINE, ROUND_PREFIX, Candidate


def prepare_formulations(request: dict):
    """A function timing one round of `request`'s candidates (or of the names it is given), each warmed up
    first by one call into its compiled step (tracing, XLA compiling).

    A round: each candidate in turn runs a short `fit` of `executions` calls into the compiled step (`steps`
    steps each), timed from the end of the first call to the end of the last, so that neither fit's set-up
    nor the input pipeline's start counts; it returns {candidate name: images/s}. Must run before
    TensorFlow's runtime starts in this process (it takes the candidates' thread settings)."""
    import numpy as np

    from keras_latent.training import formulation

    config = from_dict(request["config"])
    group = [Candidate(**c) for c in request["candidates"]]
    if not formulation.apply_threads(dataclasses.replace(config, **group[0].fields())):
        raise UsageError("TensorFlow was already running in this process; cannot set its threads")
    import keras

    from keras_latent.data.pipeline import make_dataset
    from keras_latent.model import build_model
    from keras_latent.model.builders import reconstruction_outputs
    from keras_latent.training import distribute
    from keras_latent.training.fit import compile_model

    steps, executions = request["steps"], request["executions"]
    config = dataclasses.replace(config, steps_per_execution=steps)
    size = config.model.image_size
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (executions * steps * config.batch_size, size, size, 3), dtype=np.uint8)
    labels = rng.integers(0, config.model.num_classes, len(images))
    data = make_dataset(images, labels, config.batch_size, training=True,
                        reconstruction_outputs=reconstruction_outputs(config.model))
    timer = _execution_times()
    trainers = {}
    for candidate in group:
        keras.utils.set_random_seed(0)
        with distribute.model_scope(distribute.make_strategy("default"), config.mixed_precision):
            trainers[candidate.name] = compile_model(build_model(config.model),
                                                     dataclasses.replace(config, **candidate.fields()))
        trainers[candidate.name].fit(data, epochs=1, steps_per_epoch=steps, verbose=0)  # one call: tracing, compiling
    timed_images = (executions - 1) * steps * config.batch_size

    def one_round(names: list[str] | None = None) -> dict[str, float]:
        speeds = {}
        for name, trainer in trainers.items():
            if names is not None and name not in names:
                continue
            trainer.fit(data, epochs=1, verbose=0, callbacks=[timer])
            speeds[name] = round(timed_images / (timer.ends[-1] - timer.ends[0]), 1)
        return speeds

    return one_round


def _execution_times():
    import keras

    class ExecutionTimes(keras.callbacks.Callback):
        """The time each call into the compiled step ends (Keras calls on_train_batch_end once per call)."""

        def on_train_begin(self, logs=None):
            self.ends = []

        def on_train_batch_end(self, batch, logs=None):
            self.ends.append(time.perf_counter())

    return ExecutionTimes()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        request = json.loads(argv[0])
    except (IndexError, ValueError):
        raise UsageError("usage: python -m keras_latent.training.timing REQUEST_JSON") from None
    one_round = prepare_formulations(request)
    print(READY_LINE, flush=True)
    for line in sys.stdin:  # the parent's turns: `round` or `round ["name", ...]`
        command, _, names = line.strip().partition(" ")
        if command != "round":
            break
        print(ROUND_PREFIX + json.dumps(one_round(json.loads(names) if names else None)), flush=True)
    return 0


if __name__ == "__main__":
    from keras_latent.cli import run_cli

    run_cli(main)
