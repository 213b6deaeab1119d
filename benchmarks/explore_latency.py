"""Benchmark: click-to-image latency of the explorer at 1 and at 20 concurrent clients.

    python benchmarks/explore_latency.py RUN_FOLDER [--clients 1,20] [--interactions 300] [--layer conv2]

Starts the real command (`python -m keras_latent.explore RUN_FOLDER --port 0`) and drives its JSON API as
the page does: one interaction is one channel toggle, i.e. POST /api/decode and POST /api/classify sent at
once on two keep-alive connections (as a browser does), timed until both answers are in. Each client
toggles random channels of its own test image, back to back. Also times picking a new image
(GET /api/images/<id>: every channel decoded alone and ablated, for every layer) at 1 client.

Prints p50 / p95 / max per client count, the CPU (model name, ISA flags) and the load average before and
after (the machine may be shared), then one JSON line. The browser's own drawing is not included: the
page shows it as "updated in N ms" under each layer.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse

from keras_latent.cli import int_list, run_cli
from keras_latent.errors import UsageError
from keras_latent.machine import describe_cpu

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
def load_average() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "unknown"


def start_server(run_dir: str) -> tuple[subprocess.Popen, str]:
    """The explorer command on a free port; (process, base URL) once it prints its URL."""
    env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "keras_latent.explore", run_dir, "--port", "0", "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    line = proc.stdout.readline()
    urls = [w for w in line.split() if w.startswith("http://")]
    if not urls:
        proc.kill()
        raise UsageError(f"the explorer did not start: {(line + proc.stderr.read()).strip().splitlines()[-1:]}")
    return proc, urls[0]


class Client:
    """Two keep-alive connections, like a browser tab firing decode and classify at once."""

    def __init__(self, url: str):
        parts = urlparse(url)
        self.connections = [http.client.HTTPConnection(parts.hostname, parts.port, timeout=60) for _ in range(2)]

    def call(self, index: int, method: str, path: str, body: dict | None = None) -> dict:
        connection = self.connections[index]
        data = None if body is None else json.dumps(body)
        connection.request(method, path, data, {"Content-Type": "application/json"} if data else {})
        response = connection.getresponse()
        answer = json.loads(response.read())
        if response.status != 200:
            raise UsageError(f"{method} {path} answered {response.status}: {answer.get('error')}")
        return answer

    def toggle(self, pool: ThreadPoolExecutor, image: str, layer: str, mask: list[int]) -> float:
        """Seconds from sending both requests until both answers are read."""
        body = {"image": image, "layer": layer, "mask": mask}
        start = time.perf_counter()
        decode = pool.submit(self.call, 0, "POST", "/api/decode", body)
        self.call(1, "POST", "/api/classify", body)
        decode.result()
        return time.perf_counter() - start


def run_clients(url: str, n_clients: int, interactions: int, layer: str, channels: int, seed: int) -> list[float]:
    """`interactions` toggles shared out over `n_clients` concurrent clients; every latency in seconds."""
    latencies, lock = [], threading.Lock()
    per_client = max(1, interactions // n_clients)

    def client_loop(k: int) -> None:
        rng, client = random.Random(seed + k), Client(url)
        mask = [1] * channels
        with ThreadPoolExecutor(1) as pool:
            for _ in range(per_client):
                mask[rng.randrange(channels)] ^= 1
                seconds = client.toggle(pool, f"test-{k}", layer, mask)
                with lock:
                    latencies.append(seconds)

    with ThreadPoolExecutor(n_clients) as clients:
        list(clients.map(client_loop, range(n_clients)))
    return latencies


def percentiles(seconds: list[float]) -> dict:
    ms = sorted(s * 1e3 for s in seconds)
    q = statistics.quantiles(ms, n=100, method="inclusive")
    return {"n": len(ms), "p50_ms": round(q[49], 1), "p95_ms": round(q[94], 1), "max_ms": round(ms[-1], 1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", metavar="RUN_FOLDER", help="a finished run folder")
    p.add_argument("--clients", type=int_list, default=(1, 20), help="concurrent client counts, e.g. 1,20")
    p.add_argument("--interactions", type=int, default=300, help="timed toggles per client count")
    p.add_argument("--picks", type=int, default=30, help="timed image picks (new images, 1 client)")
    p.add_argument("--layer", default="conv2", help="trunk layer whose channels are toggled")
    args = p.parse_args(argv)
    if args.interactions < 2 or args.picks < 2 or not args.clients or min(args.clients) < 1:
        raise UsageError(f"--interactions and --picks must be >= 2 and --clients >= 1, got {args.interactions}, "
                         f"{args.picks}, {args.clients}")
    load_before = load_average()
    proc, url = start_server(args.run_dir)
    try:
        info = Client(url).call(0, "GET", "/api/model")
        layers = {layer["name"]: layer["channels"] for layer in info["layers"]}
        if args.layer not in layers:
            raise UsageError(f"--layer must be one of {', '.join(layers)}, got {args.layer!r}")
        run_clients(url, max(args.clients), 2 * max(args.clients), args.layer, layers[args.layer], seed=99)  # warm-up
        results = {}
        for n in args.clients:
            results[n] = percentiles(run_clients(url, n, args.interactions, args.layer, layers[args.layer], seed=n))
        picker = Client(url)
        picks = []
        for i in range(args.picks):  # images no client has touched: nothing cached
            start = time.perf_counter()
            picker.call(0, "GET", f"/api/images/test-{100 + i}")
            picks.append(time.perf_counter() - start)
    finally:
        proc.terminate()
        proc.wait(30)
    summary = {"benchmark": "explore_latency", "run": os.path.basename(os.path.normpath(args.run_dir)),
               "layer": args.layer, "cpu": describe_cpu().describe(), "load_before": load_before,
               "load_after": load_average(),
               "toggle": {str(n): r for n, r in results.items()}, "pick_1_client": percentiles(picks)}
    print(f"explorer click-to-image latency ({args.layer} toggle = decode + classify at once), {summary['cpu']}")
    print(f"load average (1/5/15 min) before {load_before}, after {summary['load_after']}")
    for n, r in results.items():
        print(f"  {n:3d} clients: p50 {r['p50_ms']:7.1f} ms   p95 {r['p95_ms']:7.1f} ms   max {r['max_ms']:7.1f} ms"
              f"   ({r['n']} toggles)")
    r = summary["pick_1_client"]
    print(f"  pick an image (every layer's channels decoded and ablated), 1 client: p50 {r['p50_ms']:.1f} ms   "
          f"p95 {r['p95_ms']:.1f} ms")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    run_cli(main)
