"""The training formulation: how a step is computed, not what it computes (config.FORMULATION_FIELDS).

Four settings change the speed of a training step and nothing else (to float round-off): XLA
(`jit_compile`), the batch split, and TensorFlow's two thread pools. Which combination is fastest
depends on the CPU (oneDNN's kernels and XLA's code differ by ISA, and waking threads costs more on
some virtual machines than others), so `keras_latent.training.calibration` measures them per machine.

The batch split (`BatchSplitTrainer`) computes each batch as `parts` equal slices through the same
model, side by side, and concatenates the outputs before the loss: the loss, the metrics and the
gradient are those of the whole batch, summed in another order. With one thread per op
(`intra_op_threads=1`) and one inter-op thread per part, each slice runs on its own core with no
hand-over between threads inside an op: on a small network whose ops take tens of microseconds, that
hand-over (thread wake-ups, futex calls, spinning) is what keeps two cores from being twice as fast
as one (see docs/performance.md, Where the time goes). Validation and predictions through it are split
the same way (the outputs of each image do not depend on the others), so they use both cores too.

The trainer also computes each mean squared error on flattened images (`flat_image_losses`): the same
value, in one reduction, where Keras's `MeanSquaredError` reduces the 3-channel axis first.
"""
from __future__ import annotations

from collections.abc import Mapping

import keras
import tensorflow as tf

from keras_latent.config import TrainConfig
from keras_latent.training import distribute


class BatchSplitTrainer(keras.Model):
    """Trains `model` (outputs a dict) on each batch as `parts` slices side by side; the same function.

    Only for training: fit, evaluate and predict go through it (each batch split, training or not),
    while the model that is saved, exported and analysed is `model` itself (`unwrap`). Weights, the
    optimizer and BackupAndRestore all see `model`'s variables, in `model`'s order.
    """

    def __init__(self, model: keras.Model, parts: int, **kwargs):
        super().__init__(name=kwargs.pop("name", "batch_split_trainer"), **kwargs)
        if parts < 1:
            raise ValueError(f"parts must be >= 1, got {parts}")
        self.model, self.parts = model, parts
        self.built = model.built  # it has no weights of its own (BackupAndRestore wants a built model)

    @property
    def output(self):  # the wrapped model's symbolic outputs (callbacks look up output names here)
        return self.model.output

    def call(self, images, training=None):
        # (B, H, W, C) -> `parts` slices (B/parts rounded up first). A batch smaller than `parts` (the last of
        # an epoch, at worst) is padded with zero images whose outputs are cut off again, so that no slice is
        # empty (oneDNN rejects empty batches); for other batches the pad and the cut pass their input through.
        n = tf.shape(images)[0]
        padded = tf.pad(images, [[0, tf.maximum(self.parts - n, 0)]] + [[0, 0]] * (len(images.shape) - 1))
        m = tf.maximum(n, self.parts)  # the padded batch's size
        sizes = tf.stack([(m + self.parts - 1 - i) // self.parts for i in range(self.parts)])
        outputs = [self.model(piece, training=training) for piece in tf.split(padded, sizes, num=self.parts)]
        return {name: _first_rows(tf.concat([out[name] for out in outputs], axis=0), n) for name in outputs[0]}

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """Keras's loss of the compiled outputs, each mean squared error on images flattened first."""
        y, y_pred = flat_image_losses(self.loss, y, y_pred)
        return super().compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training)


def flat_image_losses(losses, y, y_pred):
    """`y` and `y_pred` (dicts by output name) with each output whose loss is a `MeanSquaredError` flattened:
    (B, H, W, C) -> (B, H*W*C), for target and prediction alike; other outputs and non-dicts as they are.

    The loss is the same (every image has H*W*C values, so the mean of per-image means is the mean over all),
    summed in another order; Keras's MeanSquaredError reduces over the last axis, of 3 channels, and then
    over the rest: the flat tensor is reduced in one pass and its gradient is one broadcast (about 5% of a
    default-model step at batch 128, measured in docs/performance.md).
    """
    if not (isinstance(losses, Mapping) and isinstance(y, Mapping) and isinstance(y_pred, Mapping)):
        return y, y_pred
    image_outputs = {name for name, loss in losses.items()
                     if isinstance(loss, keras.losses.MeanSquaredError) and name in y and name in y_pred
                     and len(y_pred[name].shape) > 2}

    def flat(tensors):  # (B, H, W, C) -> (B, H*W*C) for the image outputs
        return {name: tf.reshape(t, [tf.shape(t)[0], -1]) if name in image_outputs else t
                for name, t in tensors.items()}

    return flat(y), flat(y_pred)


def _first_rows(x, n):
    """x[:n], whose gradient pads with zero rows: free when nothing was cut (TensorFlow's pad then passes its
    input through), where the gradient of a slice (StridedSliceGrad) copies the whole tensor every step."""

    @tf.custom_gradient
    def cut(x):
        def gradient(dy):
            return tf.pad(dy, [[0, tf.shape(x)[0] - n]] + [[0, 0]] * (len(x.shape) - 1))

        return x[:n], gradient

    return cut(x)


def for_training(model: keras.Model, config: TrainConfig) -> keras.Model:
    """The model `fit` trains: `model` itself, or a BatchSplitTrainer around it (config.batch_split > 1)."""
    parts = config.batch_split or 1
    return BatchSplitTrainer(model, parts) if parts > 1 else model


def unwrap(model: keras.Model) -> keras.Model:
    """The model inside a BatchSplitTrainer (or `model` itself): what is saved, exported and evaluated."""
    return model.model if isinstance(model, BatchSplitTrainer) else model


def apply_threads(config: TrainConfig) -> bool:
    """Set TensorFlow's thread pools to the config's; False when TensorFlow already runs with others."""
    return distribute.configure_threads(config.intra_op_threads or 0, config.inter_op_threads or 0)
