"""Settings of a latent analysis: the frozen AnalysisConfig and its validation (no TensorFlow import,
so the command checks its flags before TensorFlow loads)."""
from __future__ import annotations

import dataclasses

from keras_latent.config import DECODE_PATHS
from keras_latent.errors import UsageError, check_choice

MODES = ("keep", "drop")  # keep: only channel k kept; drop: only channel k zeroed
DECODE_PATH_CHOICES = ("auto", *DECODE_PATHS)  # auto: each layer's faithful path, measured on the test split


@dataclasses.dataclass(frozen=True)
class AnalysisConfig:
    dataset: str | None = None  # override the run's data set (same choices as training); None: the run's own
    train_index: int = 0  # training-split image to decode
    test_index: int = 0  # test-split image to decode
    layers: tuple[str, ...] | None = None  # trunk layers, e.g. ("conv1", "conv2"); None: all
    channels: tuple[int, ...] | None = None  # channels to decode and ablate; None: every channel of each layer
    mode: str = "keep"  # keep: decode with only channel k kept; drop: with only channel k zeroed
    top: int = 5  # channels listed per layer and class in analysis.json
    decode_path: str = "auto"  # auto (each layer's measured faithful path) | tail | propagate


def validate_analysis(config: AnalysisConfig) -> AnalysisConfig:
    """Raise UsageError naming the bad setting, what is allowed and what was received."""
    check_choice("--mode", config.mode, MODES)
    check_choice("--decode-path", config.decode_path, DECODE_PATH_CHOICES)
    if config.top < 1:
        raise UsageError(f"--top must be >= 1, got {config.top}")
    return config
