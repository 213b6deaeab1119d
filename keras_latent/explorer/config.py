"""Settings of the explorer: the frozen ExploreConfig and its validation (no TensorFlow import, so the command
checks its flags before TensorFlow loads)."""
from __future__ import annotations

import dataclasses
import ipaddress

from keras_latent.errors import UsageError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")  # what a browser on this machine calls the loopback address


@dataclasses.dataclass(frozen=True)
class ExploreConfig:
    host: str = DEFAULT_HOST  # address to listen on; anything but loopback is reachable from other machines
    port: int = DEFAULT_PORT  # TCP port; 0 picks a free one
    dataset: str | None = None  # override the run's data set (same choices as training); None: the run's own
    max_upload_mb: float = 10.0  # largest accepted upload, in MB (10^6 bytes)
    max_upload_pixels: int = 40_000_000  # largest accepted upload in pixels (width x height), before decoding
    threads: int = 64  # server threads: requests in flight at once (model calls still run one batch at a time)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1e6)


def is_local_host(host: str) -> bool:
    """Whether `host` is a loopback name or address (only this machine can connect)."""
    if host.lower() in LOCAL_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def validate_explore(config: ExploreConfig) -> ExploreConfig:
    """Raise UsageError naming the bad setting, what is allowed and what was received."""
    if not config.host or any(c.isspace() or c in "/?#@" for c in config.host):
        raise UsageError(f"--host must be a host name or IP address such as {DEFAULT_HOST}, got {config.host!r}")
    checks = [
        ("--port", config.port, 0 <= config.port <= 65535, "between 0 and 65535 (0: any free port)"),
        ("--max-upload-mb", config.max_upload_mb, 0 < config.max_upload_mb <= 1000, "> 0 and <= 1000"),
        ("max_upload_pixels", config.max_upload_pixels, config.max_upload_pixels >= 1, ">= 1"),
        ("threads", config.threads, config.threads >= 1, ">= 1"),
    ]
    for flag, value, ok, allowed in checks:
        if not ok:
            raise UsageError(f"{flag} must be {allowed}, got {value}")
    return config
