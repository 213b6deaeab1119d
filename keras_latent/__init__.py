"""keras-latent: train a small two-output CNN on CIFAR-10 and look inside its channels."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter out of the CLI
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

__version__ = "0.2.0"  # the same as pyproject.toml's (tests/test_version.py)
