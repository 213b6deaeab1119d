"""Serving the explorer: the run's model loaded once, the Flask app behind waitress (a production WSGI server,
pure Python), bound to loopback unless asked otherwise."""
from __future__ import annotations

import logging
from collections.abc import Callable

from keras_latent.errors import UsageError
from keras_latent.explorer.config import ExploreConfig, is_local_host, validate_explore

log = logging.getLogger("keras_latent")


def url_of(host: str, port: int) -> str:
    """The address to open in a browser (an any-address bind is reachable on loopback too)."""
    host = "127.0.0.1" if host in ("0.0.0.0", "") else "[::1]" if host == "::" else host
    return f"http://[{host}]:{port}/" if ":" in host and not host.startswith("[") else f"http://{host}:{port}/"


def create_server(run_dir: str, config: ExploreConfig = ExploreConfig()):
    """(server, explorer): the run loaded and traced, listening on config.host:config.port, not yet serving.

    `server.run()` serves until interrupted; `server.effective_port` is the port bound (config.port 0 picks one).
    """
    import waitress

    from keras_latent.explorer.app import create_app
    from keras_latent.explorer.session import Explorer

    validate_explore(config)
    if not is_local_host(config.host):
        log.warning(f"--host {config.host} is not a loopback address: anyone who can reach this machine on port "
                    f"{config.port} can use the explorer, which has no login; use --host 127.0.0.1 (the default) "
                    "to keep it to this machine")
    explorer = Explorer(run_dir, config)
    app = create_app(explorer, config.host)
    try:
        server = waitress.create_server(app, host=config.host, port=config.port, threads=config.threads,
                                        ident="keras-latent-explore", clear_untrusted_proxy_headers=True)
    except OSError as err:
        explorer.close()
        raise UsageError(f"cannot listen on {config.host}:{config.port} ({err.strerror or err}); pass another "
                         "--port (0 picks a free one) or --host") from None
    return server, explorer


def serve(run_dir: str, config: ExploreConfig = ExploreConfig(), on_ready: Callable[[str], None] | None = None) -> None:
    """Serve the explorer of `run_dir` until interrupted; `on_ready(url)` is called once it is listening."""
    server, explorer = create_server(run_dir, config)
    url = url_of(config.host, server.effective_port)
    log.debug(f"explorer: {explorer.run_name}, layers {', '.join(explorer.layers)}, {config.threads} threads")
    if on_ready:
        on_ready(url)
    try:
        server.run()
    finally:
        server.close()
        explorer.close()
