"""Settings of a latent analysis: the frozen AnalysisConfig and its validation (no TensorFlow import,
so the command checks its flags before TensorFlow loads)."""
from __future__ import annotations

import dataclasses

from keras_latent.config import DECODE_PATHS
from keras_latent.errors import UsageError, check_choice

MODES = ("keep", "drop")  # keep: only channel k kept; drop: only channel k zeroed
DECODE_PATH_CHOICES = ("auto", *DECODE_PATHS)  # auto: each layer's faithful path, measured on the test split
# the views: decode (channel grids, activation maps), features (feature visualization), gradcam, saliency (SmoothGrad);
# sanity: the controls and sanity checks of every view (issue 23), opt-in (minutes on 2 cores)
METHODS = ("decode", "features", "gradcam", "saliency", "sanity")
DEFAULT_METHODS = ("decode", "features", "gradcam", "saliency")


@dataclasses.dataclass(frozen=True)
class AnalysisConfig:
    dataset: str | None = None  # override the run's data set (same choices as training); None: the run's own
    train_index: int = 0  # training-split image to decode
    test_index: int = 0  # test-split image to decode
    layers: tuple[str, ...] | None = None  # trunk layers, e.g. ("conv1", "conv2"); None: all
    channels: tuple[int, ...] | None = None  # channels to decode, visualize and ablate; None: every channel
    mode: str = "keep"  # keep: decode with only channel k kept; drop: with only channel k zeroed
    top: int = 5  # channels listed per layer and class in analysis.json
    decode_path: str = "auto"  # auto (each layer's measured faithful path) | tail | propagate
    methods: tuple[str, ...] = DEFAULT_METHODS  # views to make (channel statistics and ablation are always measured)
    feature_steps: int = 512  # gradient-ascent steps of the feature visualization
    feature_lr: float = 0.05  # its Adam learning rate
    saliency_samples: int = 50  # noisy copies per image in SmoothGrad
    # the sanity method (analysis.sanity.SanitySettings; seeded with the run's seed)
    sanity_images: int = 32  # analysed test images of the sanity checks
    sanity_accuracy_images: int = 512  # test images of the channel-deletion check (half rank, half score)
    sanity_decoder_epochs: int = 5  # epochs of each decoder fitted for the randomized-trunk control
    sanity_decoder_images: int = 1024  # training images of those decoders


def validate_analysis(config: AnalysisConfig) -> AnalysisConfig:
    """Raise UsageError naming the bad setting, what is allowed and what was received."""
    check_choice("--mode", config.mode, MODES)
    check_choice("--decode-path", config.decode_path, DECODE_PATH_CHOICES)
    if config.top < 1:
        raise UsageError(f"--top must be >= 1, got {config.top}")
    unknown = [m for m in config.methods if m not in METHODS]
    if unknown or not config.methods:
        raise UsageError(f"--methods must be a comma-separated list of {', '.join(METHODS)}, "
                         f"got {','.join(config.methods) or 'nothing'}")
    checks = [("--feature-steps", config.feature_steps, config.feature_steps >= 1, ">= 1"),
              ("--feature-lr", config.feature_lr, config.feature_lr > 0, "> 0"),
              ("--saliency-samples", config.saliency_samples, config.saliency_samples >= 1, ">= 1"),
              ("--sanity-images", config.sanity_images, config.sanity_images >= 2, ">= 2"),
              ("--sanity-accuracy-images", config.sanity_accuracy_images, config.sanity_accuracy_images >= 2, ">= 2"),
              ("--sanity-decoder-epochs", config.sanity_decoder_epochs, config.sanity_decoder_epochs >= 1, ">= 1"),
              ("--sanity-decoder-images", config.sanity_decoder_images, config.sanity_decoder_images >= 1, ">= 1")]
    for flag, value, ok, allowed in checks:
        if not ok:
            raise UsageError(f"{flag} must be {allowed}, got {value}")
    return config
