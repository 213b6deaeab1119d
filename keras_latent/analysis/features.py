"""Feature visualization (activation maximization): the input image that excites one channel most.

Gradient ascent on the input image, as Lucid (Olah et al., "Feature Visualization", Distill 2017;
github.com/tensorflow/lucid, `lucid.optvis`) and tf-keras-vis (`ActivationMaximization`) do it:

    image (K, S, S, 3) = 2 * sigmoid(colour_sqrt @ irfft2d(scale * spectrum)) - 1     # one image per channel
    every step:  transformed = random jitter + scale + rotation of each image (one affine resampling)
                 score_k     = mean over positions of channel c_k of `layer` on transformed image k
                 loss        = -sum_k score_k + l2 * sum_k mean(image_k^2) + tv * sum_k TV(image_k)
                 Adam step on the spectrum (or the pixels)

- **Parameterization.** By default the image lives in a scaled Fourier basis (Lucid's `fft_image`:
  each frequency scaled by 1/frequency, so the optimizer sees natural-image statistics and high
  frequencies do not run away) with decorrelated colours (Lucid's `to_valid_rgb(decorrelate=True)`:
  a 3x3 square root of the colour covariance, from the run's training images when given, else
  Lucid's ImageNet one), squashed by a sigmoid into the valid range. `parameterization="pixel"`
  optimizes the pixels directly (still through the sigmoid).
- **Transformation robustness.** Random jitter, scale and rotation at every step (Lucid's
  `transform.standard_transforms`, tf-keras-vis's `Jitter`, `Scale2D`, `Rotate2D`), scaled to a
  32 px image, as one affine map per image and step (one bilinear resampling, reflected borders).
- **Penalties.** An L2 penalty on the image (pulls it to mid-grey) and a total-variation penalty
  (mean absolute difference of neighbouring pixels), both per image.
- **Objective.** The channel's mean over positions of the trunk block's output with the block's
  ReLU left out (Lucid's `*_pre_relu` objectives): ReLU and max-pooling commute, so where the
  channel fires this *is* the block's activation, and a channel that is off everywhere at the
  start still gets a gradient.
- **One compiled call.** All K channels of a layer are optimized together: a batch of K images,
  image k scored on channel c_k, every step inside one `tf.function` (a `tf.while_loop`).
- **Seeded.** The start image and every step's transformations come from `settings.seed` and the
  channel index (stateless random ops): the same seed gives the same images, and a channel's image
  is the same whichever other channels are optimized beside it.

Defaults (`FeatureSettings`): 512 steps of Adam at learning rate 0.05 (Lucid's `render_vis`),
jitter 2 px, scale 0.9..1.1, rotation +-10 degrees, L2 weight 0.05, TV weight 0.25.
"""
from __future__ import annotations

import dataclasses

import keras
import numpy as np
from keras import ops

from keras_latent.analysis import latent
from keras_latent.errors import UsageError, check_choice
from keras_latent.model.builders import trunk_blocks

PARAMETERIZATIONS = ("fourier", "pixel")
# Lucid's square root of ImageNet's colour correlation (lucid/optvis/param/color.py), used when no images are given.
IMAGENET_COLOR_SQRT = np.array([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], np.float32)
INIT_SD = 0.01  # standard deviation of the random start (Lucid's default)


@dataclasses.dataclass(frozen=True)
class FeatureSettings:
    """How each channel's image is optimized; the defaults are documented in the module docstring."""

    steps: int = 512  # Adam steps
    learning_rate: float = 0.05  # Adam learning rate
    parameterization: str = "fourier"  # fourier: scaled spectrum (Lucid's fft_image); pixel: the pixels
    decorrelate: bool = True  # optimize in decorrelated colour space
    jitter: int = 2  # random shift, pixels, each way
    scale: float = 0.1  # random scale in 1 +- scale
    rotation: float = 10.0  # random rotation, degrees, each way
    l2: float = 0.05  # weight of the mean squared pixel value (image in [-1, 1])
    tv: float = 0.25  # weight of the total variation (mean absolute neighbour difference)
    seed: int = 0


def validate_settings(settings: FeatureSettings) -> FeatureSettings:
    """Raise UsageError naming the bad setting, what is allowed and what was received."""
    check_choice("parameterization", settings.parameterization, PARAMETERIZATIONS)
    checks = [("steps", settings.steps, settings.steps >= 1, ">= 1"),
              ("learning_rate", settings.learning_rate, settings.learning_rate > 0, "> 0"),
              ("jitter", settings.jitter, settings.jitter >= 0, ">= 0"),
              ("scale", settings.scale, 0 <= settings.scale < 1, "in [0, 1)"),
              ("rotation", settings.rotation, settings.rotation >= 0, ">= 0"),
              ("l2", settings.l2, settings.l2 >= 0, ">= 0"),
              ("tv", settings.tv, settings.tv >= 0, ">= 0")]
    for name, value, ok, allowed in checks:
        if not ok:
            raise UsageError(f"{name} must be {allowed}, got {value}")
    return settings


@dataclasses.dataclass(frozen=True)
class FeatureVisualization:
    """The optimized image of each channel and the activation it reaches."""

    layer: str
    channels: np.ndarray  # (K,) channel indices
    images: np.ndarray  # (K, S, S, 3) float32 in [-1, 1]: images[k] maximizes channel channels[k]
    activation: np.ndarray  # (K,) the channel's mean block activation on its own image (as channel_stats measures)


# ---------------------------------------------------------------- colour and spectrum


def color_correlation_sqrt(images: np.ndarray) -> np.ndarray:
    """A square root of the colour covariance of `images` (N, H, W, 3), as Lucid's `color_correlation_svd_sqrt`:
    U sqrt(S) of the covariance's SVD, (3, 3) float32. Multiplying decorrelated noise by it gives the data's
    colour statistics."""
    pixels = np.asarray(images, np.float64).reshape(-1, 3)
    if len(pixels) < 2:
        raise UsageError(f"colour statistics need at least 2 pixels, got {len(pixels)}")
    u, s, _ = np.linalg.svd(np.cov(pixels, rowvar=False))
    return (u * np.sqrt(s)[None, :]).astype(np.float32)


def spectrum_scale(size: int, decay_power: float = 1.0) -> np.ndarray:
    """Per-frequency scale of the Fourier parameterization (Lucid's `fft_image`): 1 / max(f, 1/size) ** decay,
    times `size` (a unitary transform, so pixel-space learning rates carry over). (size, size // 2 + 1)."""
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    frequency = np.sqrt(fx * fx + fy * fy)
    return (size / np.maximum(frequency, 1.0 / size) ** decay_power).astype(np.float32)


def _to_image(param, settings: FeatureSettings, size: int, color_sqrt):
    """Parameter -> images (K, S, S, 3) in [-1, 1] (the sigmoid of Lucid's `to_valid_rgb`, rescaled)."""
    import tensorflow as tf

    if settings.parameterization == "fourier":
        spectrum = tf.complex(param[0], param[1]) * spectrum_scale(size)  # (K, 3, S, S//2+1)
        x = tf.transpose(tf.signal.irfft2d(spectrum, fft_length=[size, size]), (0, 2, 3, 1)) / 4.0  # Lucid's /4
    else:
        x = param
    if color_sqrt is not None:
        x = ops.matmul(x, ops.transpose(color_sqrt))  # (K, S, S, 3) decorrelated -> RGB statistics
    return 2.0 * ops.sigmoid(x) - 1.0


def _initial_parameter(settings: FeatureSettings, channels: np.ndarray, n_channels: int, size: int,
                       colors: int = 3, width: int | None = None) -> np.ndarray:
    """The random start of each chosen channel's image, drawn for all `n_channels` and then picked, so a
    channel starts the same whichever other channels are optimized with it. Images are (size, width or size,
    colors); the Fourier parameterization needs square images."""
    rng = np.random.default_rng(settings.seed)
    if settings.parameterization == "fourier":
        return rng.normal(0.0, INIT_SD, (2, n_channels, colors, size, size // 2 + 1)).astype(np.float32)[:, channels]
    return rng.normal(0.0, INIT_SD, (n_channels, size, width or size, colors)).astype(np.float32)[channels]


# ---------------------------------------------------------------- transformations, penalties, objective


def random_affine(images, step, settings: FeatureSettings, channels=None, n_channels: int | None = None):
    """Each image shifted (+-jitter px), scaled (1 +- scale) and rotated (+-rotation deg) about its centre, one
    bilinear resampling with reflected borders. (K, S, S, 3) -> same.

    Image k's draws depend only on (seed, step, channels[k]) (default channels: 0..K-1, of n_channels: K),
    so a channel's image does not depend on which other channels share the batch.
    """
    import tensorflow as tf

    size = images.shape[1]
    channels = np.arange(images.shape[0]) if channels is None else np.asarray(channels)
    seed = tf.stack([tf.constant(settings.seed, tf.int32), tf.cast(step, tf.int32)])
    table = tf.random.stateless_uniform((n_channels or len(channels), 4), seed, -1.0, 1.0)  # angle, scale, dx, dy
    draws = tf.gather(table, channels)  # (K, 4)
    angle = draws[:, 0] * settings.rotation * np.pi / 180.0
    zoom = 1.0 + draws[:, 1] * settings.scale
    shift = tf.round(draws[:, 2:] * settings.jitter)
    cos, sin = tf.cos(angle) / zoom, tf.sin(angle) / zoom
    centre = (size - 1) / 2.0
    # output pixel p samples input pixel A (p - centre) + centre + shift
    transform = tf.stack([cos, -sin, centre - cos * centre + sin * centre + shift[:, 0],
                          sin, cos, centre - sin * centre - cos * centre + shift[:, 1],
                          tf.zeros_like(cos), tf.zeros_like(cos)], axis=1)
    return ops.image.affine_transform(images, transform, interpolation="bilinear", fill_mode="reflect")


def total_variation(images):
    """Mean absolute difference between neighbouring pixels, per image: (K, S, S, 3) -> (K,)."""
    down = ops.mean(ops.abs(images[:, 1:] - images[:, :-1]), axis=(1, 2, 3))
    across = ops.mean(ops.abs(images[:, :, 1:] - images[:, :, :-1]), axis=(1, 2, 3))
    return down + across


def block_before_relu(block, x):
    """A trunk block's output with its ReLU left out: conv without activation, then the block's pooling.

    ReLU and max-pooling commute, so relu(this) is the block's output. A block of another shape is
    run as it is (then the objective is the activation itself).
    """
    conv, *rest = block.layers
    if conv.activation is not keras.activations.relu or not all(
            isinstance(layer, keras.layers.MaxPooling2D) for layer in rest):
        return block(x, training=False)
    x = conv.convolution_op(x, conv.kernel)
    if conv.use_bias:
        x = x + conv.bias
    for layer in rest:
        x = layer(x, training=False)
    return x


def pre_relu_channel_means(model: keras.Model, layer: str):
    """images (B, S, S, 3) -> (B, C): each channel's mean over positions of `layer`'s output before its ReLU."""
    k = latent.layer_index(model, layer)
    blocks = trunk_blocks(model)[:k]

    def means(images):
        x = images
        for block in blocks[:-1]:
            x = block(x, training=False)
        return ops.mean(ops.cast(block_before_relu(blocks[-1], x), "float32"), axis=(1, 2))

    return means


def channel_means(model: keras.Model, images: np.ndarray, layer: str, batch_size: int = 256) -> np.ndarray:
    """Each image's mean activation of every channel of `layer` (its block output): (N, S, S, 3) -> (N, C).

    The same per-image quantity `latent.channel_statistics` averages into channel_stats.csv.
    """
    return latent.layer_activations(model, images, layer, batch_size).mean(axis=(1, 2))


# ---------------------------------------------------------------- the optimization


def visualize_channels(model: keras.Model, layer: str, channels=None, settings: FeatureSettings = FeatureSettings(),
                       color_images: np.ndarray | None = None) -> FeatureVisualization:
    """Optimize one image per channel of `layer` to maximize that channel's mean activation.

    channels: indices (default: every channel); color_images: normalized images (N, S, S, 3) whose
    colour covariance defines the decorrelated colour space (default: Lucid's ImageNet matrix).
    All K images are optimized in one compiled call. Returns the images (K, S, S, 3) in [-1, 1] and
    the mean block activation each reaches on its channel.
    """

    validate_settings(settings)
    n_channels = latent.num_channels(model, layer)
    chosen = latent.check_channels(n_channels, channels, layer)
    images = optimize_channel_images(pre_relu_channel_means(model, layer), tuple(model.inputs[0].shape[1:]), chosen,
                                     n_channels, settings, color_images)
    reached = channel_means(model, images, layer)[np.arange(len(chosen)), chosen]
    return FeatureVisualization(layer, chosen, images, reached.astype(np.float32))


def optimize_channel_images(score, image_shape, chosen: np.ndarray, n_channels: int,
                            settings: FeatureSettings = FeatureSettings(),
                            color_images: np.ndarray | None = None) -> np.ndarray:
    """The optimization of `visualize_channels` for any model: score(images (K, H, W, C) in [-1, 1]) -> (K,
    n_channels) channel means to maximize; returns the optimized images (K, H, W, C) in [-1, 1] float32.
    Non-square or grey images use the pixel parameterization (the Fourier one is square RGB) and no colour
    decorrelation for grey."""
    import tensorflow as tf

    height, width, colors = (int(d) for d in image_shape)
    size = height
    if height != width or colors != 3:
        settings = dataclasses.replace(settings, parameterization="pixel", decorrelate=settings.decorrelate and
                                       colors == 3)
    color_sqrt = None
    if settings.decorrelate:
        color_sqrt = IMAGENET_COLOR_SQRT if color_images is None else color_correlation_sqrt(color_images)
        color_sqrt = tf.constant(color_sqrt / np.max(np.linalg.norm(color_sqrt, axis=0)))  # Lucid's normalization
    param = tf.Variable(_initial_parameter(settings, chosen, n_channels, size, colors, width))
    optimizer = keras.optimizers.Adam(settings.learning_rate)
    optimizer.build([param])
    pick = tf.constant(np.stack([np.arange(len(chosen)), chosen], axis=1), tf.int32)  # (K, 2): image k, channel c_k

    @tf.function(jit_compile=False)
    def optimize():
        for step in tf.range(settings.steps):
            with tf.GradientTape() as tape:
                images = _to_image(param, settings, size, color_sqrt)
                moved = random_affine(images, step, settings, chosen, n_channels)
                scores = tf.gather_nd(score(moved), pick)  # (K,)
                penalty = settings.l2 * ops.mean(images * images, axis=(1, 2, 3)) + settings.tv * total_variation(
                    images)
                loss = ops.sum(penalty - scores)
            optimizer.apply_gradients([(tape.gradient(loss, param), param)])
        return _to_image(param, settings, size, color_sqrt)

    return np.asarray(optimize(), np.float32)
