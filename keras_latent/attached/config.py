"""What `python -m keras_latent.attach` does, as one frozen config: which model, which data, which layers, how the
decoders train (`AttachConfig`), checked by `validate_attach` before anything is read or written."""
from __future__ import annotations

import dataclasses

from keras_latent.config import DataConfig
from keras_latent.errors import UsageError, check_choice, shown

OUTPUT_KIND_CHOICES = ("auto", "probabilities", "logits")


@dataclasses.dataclass(frozen=True)
class AttachConfig:
    """Decoders attached to the user's model in `model_path`, trained on `data` (its images resized and converted
    to the model's input size and channels)."""

    model_path: str  # the user's .keras file (only read)
    data: DataConfig = DataConfig(dataset="sample")  # sample | cifar10 | auto | an image folder
    layers: tuple[str, ...] | None = None  # layer names or nested paths; None: ModelGraph.default_layers
    epochs: int = 10  # decoder training epochs
    batch_size: int = 64
    seed: int = 0  # decoder weights, order, channel dropout, data split
    input_range: tuple[float, float] | None = None  # the model's input pixel range; None: detected (Rescaling)
    image_size: tuple[int, int] | None = None  # (H, W) where the model's input size is open
    class_output: str | None = None  # the class output of a model with several outputs
    output_kind: str = "auto"  # auto | probabilities | logits
    channel_dropout: float = 0.0  # probability a training example is decoded from one random channel
    imports: tuple[str, ...] = ()  # modules imported before loading (runs the user's code)
    learning_rate: float = 1e-3  # Adam


def validate_attach(config: AttachConfig) -> AttachConfig:
    """Raise UsageError naming the bad field, what is allowed and what was received (no file is read)."""
    if not isinstance(config.model_path, str) or not config.model_path:
        raise UsageError(f"the model must be a path to a .keras file, got {shown(config.model_path)}")
    for name, value, least in (("--epochs", config.epochs, 1), ("--batch-size", config.batch_size, 1),
                               ("--seed", config.seed, 0)):
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise UsageError(f"{name} must be an integer >= {least}, got {shown(value)}")
    d = config.data
    if d.max_train_samples is not None and d.max_train_samples < 2:
        raise UsageError(f"--max-train-samples must be >= 2, got {d.max_train_samples}")
    if not 0 < d.test_fraction < 1:
        raise UsageError(f"--test-fraction must be between 0 and 1, got {d.test_fraction}")
    if not 0 <= config.channel_dropout < 1:
        raise UsageError(f"--channel-dropout must be a probability in [0, 1), got {shown(config.channel_dropout)}")
    if not 0 < config.learning_rate < 1:
        raise UsageError(f"--learning-rate must be in (0, 1), got {shown(config.learning_rate)}")
    check_choice("--output-kind", config.output_kind, OUTPUT_KIND_CHOICES)
    if config.layers is not None and (isinstance(config.layers, str) or not config.layers):
        raise UsageError(f"--layers must name at least one layer, got {shown(config.layers)}")
    if config.input_range is not None:
        lo, hi = config.input_range
        if not lo < hi:
            raise UsageError(f"--input-range must be LO,HI with LO < HI, got {shown(config.input_range)}")
    if config.image_size is not None and (len(config.image_size) != 2 or min(config.image_size) < 8):
        raise UsageError(f"--image-size must be H,W, two integers >= 8, got {shown(config.image_size)}")
    return config
