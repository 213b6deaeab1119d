"""Time training formulations on random data: the child process of the calibration.

    python -m keras_latent.training.timing REQUEST_JSON

REQUEST_JSON (from `calibration.measure`): the run's config, the candidates to time (all with the
same thread settings, which this process takes before TensorFlow starts), the steps per call into
the compiled step, the calls per round and the rounds. Prints `calibration.RESULT_PREFIX` and
{candidate name: images/s} as JSON. Reads no data set (random images of the run's shape) and writes
no file.
"""
from __future__ import annotations

import dataclasses
import json
import sys
import time

from keras_latent.config import from_dict
from keras_latent.errors import UsageError
from keras_latent.training.calibration import RESULT_PREFIX, Candidate


def measure_formulations(request: dict) -> dict[str, float]:
    """Time each candidate of `request` on random data: in each of `repeats` rounds a short `fit` of
    `executions` calls into the compiled step (`steps` steps each), timed from the end of the first call to
    the end of the last, so that neither fit's set-up nor the input pipeline's start counts. Candidates take
    turns round by round, so that a burst of other load hits them alike; each keeps its best round. A warm-up
    round first (tracing, XLA compiling). Must run before TensorFlow's runtime starts in this process."""
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
        trainers[candidate.name].fit(data, epochs=1, verbose=0)  # tracing, compiling, warm-up
    best = dict.fromkeys(trainers, 0.0)
    timed_images = (executions - 1) * steps * config.batch_size
    for _ in range(request["repeats"]):
        for name, trainer in trainers.items():
            trainer.fit(data, epochs=1, verbose=0, callbacks=[timer])
            best[name] = max(best[name], timed_images / (timer.ends[-1] - timer.ends[0]))
    return {name: round(value, 1) for name, value in best.items()}


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
    print(RESULT_PREFIX + json.dumps(measure_formulations(request)), flush=True)
    return 0


if __name__ == "__main__":
    from keras_latent.cli import run_cli

    run_cli(main)
