"""keras-latent: train a small two-output CNN on CIFAR-10 and look inside its channels."""
import os
import platform
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter out of the CLI
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# TensorFlow turns its oneDNN graph rewrites (fused conv, matmul and pooling kernels) on by default only on x86 CPUs
# with AVX512_VNNI, AVX512_BF16, AVX_VNNI or AMX; on others (AVX2 ones) they stay off and this model trains about
# half as fast (docs/performance.md#onednn-on-avx2-cpus). On for every x86-64 CPU, unless the user chose: set
# TF_ENABLE_ONEDNN_OPTS=0 to turn them off. No effect where TensorFlow was imported first.
_tensorflow_imported_first = "tensorflow" in sys.modules  # then too late (machine.onednn_import_order_notice)
if platform.machine().lower() in ("x86_64", "amd64") and not _tensorflow_imported_first:
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.2.0"  # the same as pyproject.toml's (tests/test_version.py)
