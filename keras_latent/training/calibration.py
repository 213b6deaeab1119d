"""Choose the training formulation per machine by measuring it; cache the measurement per CPU and version.

What is fastest depends on the CPU: on one 2-core AVX-512 machine oneDNN's kernels make the plain graph
fastest and XLA costs half, on a 2-core AVX2 machine XLA gains 22% and threads handing work to each other
cost most of a core. So on first use for a workload (model, batch size, precision) on a machine (CPU
model, ISA and any ISA cap, cores, TensorFlow and Keras versions), `choose_formulation` measures a few
CANDIDATES for a few seconds each, caches the images/s it measured (CALIBRATION_CACHE, in the user's
cache folder, never in a run folder) and picks the fastest; later runs read the cache, so the same seed
on the same machine keeps giving the same numbers. A measurement that other processes disturbed (they
kept more than DISTURBED_CORES cores busy) is cached as provisional: reused while the machine stays busy,
measured again once on a quiet run. Formulation fields set explicitly (flags, or a
TrainConfig field that is not None) are kept, and only candidates that agree with them compete.

Thread settings belong to a process and are fixed once TensorFlow's runtime starts, so each group of
candidates with the same threads is measured in a child process of its own, which runs `python -m
keras_latent.training.timing REQUEST`'s code: a fork of the training process where that is safe
(`can_fork`: TensorFlow loaded but not started; ready ~5 s sooner), else a new Python process. It
measures on random images of the run's shape, through the same `compile_model` and tf.data pipeline
as training. The children start side by side and then take turns,
one timing while the others wait, over MIN_ROUNDS to REPEATS rounds: how fast the machine is drifts by
tens of percent within a minute on a shared host, and timing one child after the other let a slow spell
fall on one child's candidates only (a choice 1.36x off, docs/performance.md). Candidates are compared
round by round (the median of their per-round ratios), so drift between rounds cancels and one lucky
or unlucky round does not decide. Each candidate's best round did: `graph` was seen with one round 50%
above its others, and about one calibration in ten chose it at 0.73x of the batch split's training speed
(docs/performance.md). Rounds stop after MIN_ROUNDS once every round agrees on the choice, or after
FEWEST_ROUNDS once the choice was CLEAR_MARGIN faster than every other candidate in each; a candidate
below HOPELESS times the fastest one's speed is not timed again (on AVX-512, XLA at a third of the batch
split's speed), nor one CLEAR_MARGIN slower than it in each of FEWEST_ROUNDS rounds, and a child left with
no candidate is stopped. A child reads no data set and writes nothing, so it is killed once measured.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import importlib.metadata
import json
import logging
import os
import queue
import runpy
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from keras_latent import __version__, machine
from keras_latent.config import (
    FORMULATION_FIELDS,
    TrainConfig,
    to_json_dict,
    unresolved_formulation,
    with_static_formulation,
)
from keras_latent.files import atomic_write_text
from keras_latent.runs import layout

log = logging.getLogger("keras_latent")

CACHE_VERSION = 4  # older entries are measured again. 2: children take turns (1 timed them one after the other);
#                    3: the batch split computes flattened image losses (its figures changed); 4: per-round figures,
#                    compared round by round (3 kept each candidate's best round)
ENV_SWITCH = "KERAS_LATENT_CALIBRATE"  # "0": never calibrate (the static formulation), e.g. on CI
# How train() chose a formulation (TrainConfig.formulation_source).
SOURCES = ("calibration", "flags", "defaults")
READY_LINE = "CALIBRATION_READY"  # keras_latent.training.timing's line once its candidates are warmed up
ROUND_PREFIX = "CALIBRATION_ROUND "  # ... and the start of its line with one round's images/s per candidate
MARGIN = 0.03  # a later candidate must beat an earlier one by 3% to be chosen: noise does not flip the choice
CHILD_TIMEOUT_S = 300
TIMING_MODULE = "keras_latent.training.timing"  # a measuring child's entry point (`python -m`, or run in a fork)
REPEATS = 5  # rounds at most; candidates are compared round by round (the median of the per-round ratios)
MIN_ROUNDS = 3  # ... and at least: more only while some round disagrees with the choice
FEWEST_ROUNDS = 2  # ... or this many, where the choice was CLEAR_MARGIN faster than every other candidate in each
CLEAR_MARGIN = 0.15
HOPELESS = 0.6  # a candidate below this share of the fastest one's speed (per-round ratios) is not timed again
MEASURED_IMAGES = 512  # images per call into the compiled step while measuring (steps: 16 at batch 32, 4 at 128)
DISTURBED_CORES = 0.5  # other processes this busy while measuring: the result is provisional (measured again)
CHILD_ERRORS = (OSError, ValueError, TimeoutError)  # a measuring child failed (left out, never the run)
QUIET_PROBE_S = 0.5  # how long a run with a provisional cache entry looks at the load before deciding


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One formulation: values for every config.FORMULATION_FIELDS field."""

    name: str
    jit_compile: bool
    batch_split: int
    intra_op_threads: int
    inter_op_threads: int

    @property
    def threads(self) -> tuple[int, int]:
        return self.intra_op_threads, self.inter_op_threads

    def fields(self) -> dict:
        return {name: getattr(self, name) for name in FORMULATION_FIELDS}


def candidates(cores: int) -> list[Candidate]:
    """The formulations calibration compares on a machine with `cores` cores, simplest first.

    The plain graph with TensorFlow's thread pools (STATIC_FORMULATION) and XLA; on several cores, the
    graph with one thread per op and one op per core (no hand-over of an op's work between threads),
    and the batch split into one part per core (up to 4), each part's ops on one thread.
    """
    found = [Candidate("graph", False, 1, 0, 0), Candidate("xla", True, 1, 0, 0)]
    if cores >= 2:
        parts = min(cores, 4)
        intra = max(1, cores // parts)
        found += [Candidate(f"threads{intra}x{parts}", False, 1, intra, parts),
                  Candidate(f"split{parts}", False, parts, intra, parts)]
    return found


def describe(config: TrainConfig) -> str:
    """The formulation of a resolved config in words: `XLA, batch split 2, threads 1/2`."""
    threads = ("TensorFlow's threads" if (config.intra_op_threads, config.inter_op_threads) == (0, 0)
               else f"threads {config.intra_op_threads or 'auto'}/{config.inter_op_threads or 'auto'}")
    graph = "graph (oneDNN)" if machine.onednn_rewrites() else "graph"
    return (f"{'XLA' if config.jit_compile else graph}, "
            f"{'no batch split' if config.batch_split == 1 else f'batch split {config.batch_split}'}, {threads}")


# ---------------------------------------------------------------- the cache


def cache_path() -> str:
    """$XDG_CACHE_HOME/keras_latent/calibration.json (default ~/.cache/keras_latent/)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return layout.CALIBRATION_CACHE.path(os.path.join(base, "keras_latent"))


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "none"


def workload(config: TrainConfig) -> dict:
    """What the speed of a step depends on besides the machine and the formulation."""
    return {"model": to_json_dict(config.model), "batch_size": config.batch_size,
            "steps_per_execution": config.steps_per_execution, "mixed_precision": config.mixed_precision,
            "optimizer": config.optimizer, "layer_recon_weights": list(config.layer_recon_weights or ())}


def machine_identity(cpu: machine.Cpu) -> dict:
    """The machine and software a measurement holds for (part of the cache key)."""
    return {"cpu": cpu.model, "isa": list(cpu.isa), "isa_caps": [list(c) for c in cpu.isa_caps], "cores": cpu.cores,
            "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"), "tensorflow": _version("tensorflow"),
            "keras": _version("keras"), "keras_latent": __version__}


def cache_key(identity: dict, work: dict) -> str:
    text = json.dumps({"machine": identity, "workload": work}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def read_cache(path: str) -> dict:
    """{key: entry} from the cache file; an absent, unreadable or foreign file reads as empty (with a notice)."""
    if not os.path.isfile(path):
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        entries = data["entries"] if data.get("version") == CACHE_VERSION else {}
        if not isinstance(entries, dict):
            raise TypeError("entries is not an object")
        return {key: entry for key, entry in entries.items() if _valid_entry(entry)}
    except (OSError, UnicodeDecodeError, ValueError, TypeError, KeyError, AttributeError) as err:
        log.warning(f"calibration cache {path} is unreadable ({type(err).__name__}: {err}); measuring again")
        return {}


def _speed(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def _valid_entry(entry) -> bool:
    """images_per_s {name: speed}, and rounds (optional) {name: [speed, ...]} for names among them."""
    timings = entry.get("images_per_s") if isinstance(entry, dict) else None
    rounds = entry.get("rounds", {}) if isinstance(entry, dict) else None
    return (isinstance(timings, dict) and all(isinstance(name, str) and _speed(v) for name, v in timings.items())
            and isinstance(rounds, dict) and all(
                name in timings and isinstance(values, list) and values and all(_speed(v) for v in values)
                for name, values in rounds.items()))


def write_cache_entry(path: str, key: str, entry: dict) -> None:
    """Add `entry` under `key` (atomically: a reader sees the old file or the new one)."""
    entries = read_cache(path)
    entries[key] = entry
    atomic_write_text(path, json.dumps({"version": CACHE_VERSION, "entries": entries}, indent=2) + "\n")


# ---------------------------------------------------------------- the choice


def compatible(candidate: Candidate, fixed: dict) -> bool:
    """Whether `candidate` agrees with every explicitly set formulation field in `fixed`."""
    return all(getattr(candidate, name) == value for name, value in fixed.items())


def per_round(a: str, b: str, rounds: dict[str, list[float]]) -> list[float]:
    """Candidate `a`'s images/s over `b`'s in each round both were timed in (a candidate no longer timed has
    fewer rounds: its first ones pair with the same rounds of the other)."""
    return [x / y for x, y in zip(rounds[a], rounds[b])]


def speedup(a: str, b: str, timings: dict[str, float], rounds: dict[str, list[float]] | None = None) -> float:
    """How many times faster candidate `a` trains than `b`: the median of their per-round ratios where both
    were timed in the same rounds (`rounds`, {name: images/s per round}), else the ratio of `timings`."""
    if rounds and a in rounds and b in rounds:
        return statistics.median(per_round(a, b, rounds))
    return timings[a] / timings[b]


def choose(timings: dict[str, float], pool: list[Candidate], fixed: dict,
           rounds: dict[str, list[float]] | None = None) -> Candidate | None:
    """The fastest measured candidate of `pool` that agrees with `fixed`; a later one (in `pool`'s order,
    simplest first) must be MARGIN faster (`speedup`) than the best earlier one to win. None if none was
    measured. `timings`: images/s per candidate; `rounds`: the per-round figures behind them, where known."""
    best = None
    for candidate in pool:
        if candidate.name not in timings or not compatible(candidate, fixed):
            continue
        if best is None or speedup(candidate.name, best.name, timings, rounds) > 1 + MARGIN:
            best = candidate
    return best


def medians(rounds: dict[str, list[float]]) -> dict[str, float]:
    """{name: the median of its rounds' images/s}: the figure cached and shown."""
    return {name: round(statistics.median(values), 1) for name, values in rounds.items()}


def settled(rounds: dict[str, list[float]], pool: list[Candidate]) -> bool:
    """Whether every round so far agrees with the choice (`choose` on `rounds`): it was MARGIN faster than each
    simpler candidate and no later one was MARGIN faster than it, in every round. More rounds cannot change
    such a choice's median ratios by much, so measuring stops (after MIN_ROUNDS)."""
    best = choose(medians(rounds), pool, {}, rounds)
    if best is None:
        return True
    order = [c.name for c in pool]
    for name in rounds:
        if name == best.name:
            continue
        ratios = per_round(best.name, name, rounds)  # the choice over `name`
        if order.index(name) < order.index(best.name) and min(ratios) <= 1 + MARGIN:
            return False
        if order.index(name) > order.index(best.name) and max(1 / r for r in ratios) > 1 + MARGIN:
            return False
    return True


def clearly_ahead(rounds: dict[str, list[float]], pool: list[Candidate]) -> bool:
    """Whether the choice (`choose` on `rounds`) was CLEAR_MARGIN faster than every other candidate in every round
    both were timed in: a lead no slower spell of one round explains, so measuring stops (after FEWEST_ROUNDS)."""
    best = choose(medians(rounds), pool, {}, rounds)
    if best is None:
        return True
    return all(min(per_round(best.name, name, rounds)) > 1 + CLEAR_MARGIN for name in rounds if name != best.name)


def hopeless(rounds: dict[str, list[float]]) -> set[str]:
    """The candidates not worth timing again: below HOPELESS times the fastest one's speed (the median of their
    per-round ratios, `speedup`), or, after FEWEST_ROUNDS rounds, CLEAR_MARGIN slower than it in every round
    (more rounds would not change the choice, only cost time). The fastest is never among them."""
    if not rounds:
        return set()
    fastest = max(medians(rounds).items(), key=lambda item: item[1])[0]
    found = set()
    for name in set(rounds) - {fastest}:
        ratios = per_round(name, fastest, rounds)  # its speed over the fastest's; their median is `speedup`'s
        if statistics.median(ratios) < HOPELESS or (
                len(ratios) >= FEWEST_ROUNDS and max(ratios) * (1 + CLEAR_MARGIN) < 1):
            found.add(name)
    return found


def finished(rounds: dict[str, list[float]], pool: list[Candidate], min_rounds: int = MIN_ROUNDS) -> bool:
    """Whether measuring can stop: `settled` after `min_rounds` rounds, or `clearly_ahead` after FEWEST_ROUNDS."""
    done = max((len(values) for values in rounds.values()), default=0)
    return ((done >= min_rounds and settled(rounds, pool))
            or (done >= min(FEWEST_ROUNDS, min_rounds) and clearly_ahead(rounds, pool)))


# ---------------------------------------------------------------- measuring (in child processes)


def measure(config: TrainConfig, pool: list[Candidate], steps: int | None = None, executions: int = 3,
            repeats: int = REPEATS, min_rounds: int = MIN_ROUNDS) -> dict[str, list[float]]:
    """{name: images/s of each round} of every candidate of `pool` for `config`'s workload: `min_rounds` to
    `repeats` rounds, stopping once `settled`.

    One child process per thread setting (`keras_latent.training.timing`): a fork of this process where that is
    safe (`can_fork`: TensorFlow is loaded already, so a child is ready after its warm-up alone), else a new
    Python process (which loads TensorFlow first, ~5 s). The children start and warm up
    side by side, then take turns: a round is one child timing each of its candidates (`executions` calls of
    `steps` steps, the first untimed) while the others wait, idle, for their turn; the next round starts once
    every child has had its turn. So a slower spell of the machine falls on every candidate alike instead of
    on whichever child ran during it. A child that fails costs its candidates (left out, with a notice),
    never the run.
    """
    steps = steps or measured_steps(config)
    fork = can_fork()
    started = []  # (process, its stderr file, names): every child is started before any reader thread
    for threads in dict.fromkeys(c.threads for c in pool):
        group = [c for c in pool if c.threads == threads]
        request = {"config": to_json_dict(config), "candidates": [dataclasses.asdict(c) for c in group],
                   "steps": steps, "executions": executions}
        try:
            started.append((*_start_process(request, fork), [c.name for c in group]))
        except OSError as err:
            log.warning(f"calibration of {', '.join(c.name for c in group)} failed ({err}); left out")
    children = [_Child(process, stderr, names) for process, stderr, names in started]
    return _take_turns(children, repeats, time.monotonic() + CHILD_TIMEOUT_S,
                       done=lambda rounds: finished(rounds, pool, min_rounds), drop=hopeless)


def measured_steps(config: TrainConfig) -> int:
    """Steps per call into the compiled step while measuring: about MEASURED_IMAGES images, at most the run's
    own steps per execution, at least one step. The same amount of work per call at every batch size keeps a
    round short at large batches, so that more rounds fit in the same few seconds."""
    return max(1, min(config.steps_per_execution, MEASURED_IMAGES // config.batch_size))


def _take_turns(children: list, repeats: int, deadline: float, done=lambda rounds: False,
                drop=lambda rounds: set()) -> dict:
    """{candidate name: [images/s of each round]} from `children` (`_Child`-like) timing in turns: every child
    ready first, then up to `repeats` rounds of one child at a time, until `done(rounds so far)`. After each round
    the candidates in `drop(rounds so far)` are not timed again (their rounds so far are kept), and a child left
    with none is stopped. A child that fails or runs past `deadline` is stopped and its candidates left out;
    every child is stopped at the end."""
    rounds: dict[str, list[float]] = {}
    working = []
    for child in children:
        try:
            child.wait_ready(deadline)
            working.append(child)
        except CHILD_ERRORS as err:
            _drop(child, err)
    timed = {id(child): list(child.names) for child in working}  # the candidates each child still times
    for _ in range(repeats):
        for child in list(working):
            try:
                child.send_round(timed[id(child)])
                speeds = child.read_round(deadline)
            except CHILD_ERRORS as err:
                _drop(child, err)
                working.remove(child)
                for name in child.names:
                    rounds.pop(name, None)
                continue
            for name, value in speeds.items():
                rounds.setdefault(name, []).append(round(float(value), 1))
        if not working or done(rounds):
            break
        dropped = drop(rounds)
        for child in list(working):
            timed[id(child)] = [name for name in timed[id(child)] if name not in dropped]
            if not timed[id(child)]:
                log.debug(f"calibration: {', '.join(child.names)} not timed again (below {HOPELESS:g}x of the fastest)")
                child.stop()
                working.remove(child)
    for child in working:
        child.stop()
    return rounds


def _drop(child, err: Exception) -> None:
    log.warning(f"calibration of {', '.join(child.names)} failed ({err}); left out")
    child.stop()


def can_fork() -> bool:
    """Whether a measuring child can be a fork of this process: on a POSIX system, with no other Python thread
    running (a fork copies only the calling thread, and the locks others hold), and TensorFlow's runtime not
    started here (a fork would inherit its thread pools without their threads, and the child must still set
    its own). Else the child is a new Python process."""
    if not hasattr(os, "fork") or threading.active_count() > 1:
        return False
    if "tensorflow" not in sys.modules:
        return True
    from keras_latent.training import distribute

    return distribute.threads_settable()


def _start_process(request: dict, fork: bool) -> tuple[object, object]:
    """(a running measuring child for `request`, the temporary file its stderr goes to)."""
    stderr = tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace")
    argv = [TIMING_MODULE, json.dumps(request)]
    try:
        if fork:  # the same entry point as `python -m`, in a copy of this process
            return _ForkedProcess(lambda: _run_module(argv), stderr), stderr
        command = [sys.executable, "-m", *argv]
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)  # this checkout's package
        return subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True,
                                env=env), stderr
    except BaseException:
        stderr.close()
        raise


def _run_module(argv: list[str]) -> None:
    """Run module argv[0] as `python -m` does, with `sys.argv` = argv."""
    sys.argv = list(argv)
    runpy.run_module(argv[0], run_name="__main__", alter_sys=True)


class _ForkedProcess:
    """A fork of this process running `target()` (its exit code) with its stdin and stdout on pipes to this one and
    its stderr on `stderr` (a file); as `subprocess.Popen(..., text=True)` for `_Child`: stdin, stdout, kill, wait.

    The child never returns into the caller's code: it ends with `os._exit`, so no atexit handler, buffer or
    `finally` of this process runs twice. `SystemExit` gives its code; another exception is the last stderr line
    and exit code 1."""

    def __init__(self, target, stderr):
        from_parent, to_child = os.pipe()  # (read end, write end)
        from_child, to_parent = os.pipe()
        for stream in (sys.stdout, sys.stderr):  # nothing buffered here is written twice
            with contextlib.suppress(Exception):
                stream.flush()
        try:
            self.pid = os.fork()
        except OSError:
            for fd in (from_parent, to_child, from_child, to_parent):
                os.close(fd)
            raise
        if self.pid == 0:
            _run_forked(target, from_parent, to_parent, stderr.fileno())  # never returns
        os.close(from_parent)
        os.close(to_parent)
        self.stdin = open(to_child, "w", encoding="utf-8")
        self.stdout = open(from_child, encoding="utf-8")
        self.returncode = None

    def kill(self) -> None:
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)

    def wait(self) -> int:
        if self.returncode is None:
            self.returncode = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
        return self.returncode


def _run_forked(target, stdin_fd: int, stdout_fd: int, stderr_fd: int) -> None:
    code = 1
    try:
        os.dup2(stdin_fd, 0)
        os.dup2(stdout_fd, 1)
        os.dup2(stderr_fd, 2)
        os.close(stdin_fd)
        os.close(stdout_fd)
        sys.stdin = open(0, encoding="utf-8", closefd=False)
        sys.stdout = open(1, "w", encoding="utf-8", closefd=False)
        sys.stderr = open(2, "w", encoding="utf-8", errors="replace", closefd=False)
        code = target() or 0
    except SystemExit as err:  # the module's own exit (its error line, if any, already written)
        code = err.code if isinstance(err.code, int) else (0 if err.code is None else 1)
    except BaseException as err:  # noqa: BLE001 (the child's last line, for the parent)
        with contextlib.suppress(Exception):
            print(f"{type(err).__name__}: {err}", file=sys.stderr)
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)


class _Child:
    """A measuring child process (`process`: a `subprocess.Popen` or a `_ForkedProcess`, text pipes on stdin and
    stdout) and its line protocol (keras_latent.training.timing): it prints READY_LINE once warmed up; for each
    `round` line on its stdin it times its candidates (or those of the JSON list after `round`) and prints
    ROUND_PREFIX and {name: images/s}; `done` (or the end of its stdin) ends it. Its stderr goes to a temporary
    file (`stderr`, read for the last line when it fails), so that a chatty child never blocks on a full pipe. It
    writes nothing, so the parent kills it once measured (`stop`): ending on its own, TensorFlow unwinds for
    seconds."""

    def __init__(self, process, stderr, names: list[str]):
        self.names = names
        self._timed = list(names)  # the candidates of the last round asked for
        self._process, self._stderr = process, stderr
        self._lines: queue.Queue = queue.Queue()
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()

    def _read_stdout(self) -> None:
        for line in self._process.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)  # the child closed its stdout (ended)

    def _expect(self, prefix: str, deadline: float) -> str:
        """The rest of the child's next line starting with `prefix` (other lines are skipped)."""
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"no answer within {CHILD_TIMEOUT_S} s") from None
            if line is None:
                raise ValueError(f"exit {self._process.wait()}: {self._last_error_line()}")
            if line.startswith(prefix):
                return line.removeprefix(prefix)

    def _last_error_line(self) -> str:
        self._stderr.seek(0)
        return (self._stderr.read().strip().splitlines() or ["no output"])[-1]

    def wait_ready(self, deadline: float) -> None:
        self._expect(READY_LINE, deadline)

    def send_round(self, names: list[str]) -> None:
        """Ask for a round of `names` (some of the child's candidates): `round`, or `round` and their JSON list."""
        self._timed = list(names)
        self._process.stdin.write("round\n" if self._timed == self.names else f"round {json.dumps(self._timed)}\n")
        self._process.stdin.flush()

    def read_round(self, deadline: float) -> dict:
        speeds = json.loads(self._expect(ROUND_PREFIX, deadline))
        if not (isinstance(speeds, dict) and set(speeds) == set(self._timed) and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in speeds.values())):
            raise ValueError(f"unexpected answer {speeds!r}")
        return speeds

    def stop(self) -> None:
        """Kill the child (measured, failed or late)."""
        self._process.kill()
        self._process.wait()
        try:
            self._process.stdin.close()
        except OSError:  # its end of the pipe is gone
            pass
        self._reader.join(timeout=5)  # its stdout ends with it
        if not self._reader.is_alive():
            self._process.stdout.close()
        self._stderr.close()


# ---------------------------------------------------------------- the entry point of train()


def switched_off() -> bool:
    return os.environ.get(ENV_SWITCH, "1").strip().lower() in ("0", "false", "no", "off")


def choose_formulation(config: TrainConfig, saved: TrainConfig | None = None,
                       running_threads: tuple[int, int] | None = None) -> tuple[TrainConfig, str]:
    """`config` with every formulation field resolved, and one line saying what was chosen and how.

    `saved`: the config of the interrupted run being resumed (its formulation is kept). `running_threads`:
    TensorFlow's threads when its runtime already runs in this process (they cannot change; only candidates
    with those threads compete), else None. Measures only on a cache miss.
    """
    auto = unresolved_formulation(config)
    fixed = {name: getattr(config, name) for name in FORMULATION_FIELDS if name not in auto}
    if not auto:
        return _resolved(config, "flags")
    if saved is not None:  # the run's formulation, and how it was chosen, as config.json recorded them
        kept = dataclasses.replace(config, **{name: getattr(saved, name) for name in auto}, calibrate=saved.calibrate)
        line = _resolved(kept, "resumed", "the interrupted run's, kept")[1]
        return dataclasses.replace(kept, formulation_source=saved.formulation_source), line
    why_not = _why_not_calibrate(config)
    if why_not:
        return _resolved(with_static_formulation(config), "defaults", why_not)
    pool = candidates(machine.usable_cores())
    if running_threads is not None:
        pool = [c for c in pool if c.threads == running_threads] or pool
        fixed.update(intra_op_threads=running_threads[0], inter_op_threads=running_threads[1])
    timings, rounds, where = _cached_or_measured(config, [c for c in pool if compatible(c, fixed)])
    best = choose(timings, pool, fixed, rounds)
    if best is None:
        return _resolved(with_static_formulation(config), "defaults", "no candidate could be measured")
    chosen = dataclasses.replace(config, **{name: getattr(best, name) for name in auto})
    ranked = sorted(((c.name, timings[c.name]) for c in pool if c.name in timings), key=lambda item: -item[1])
    shown = ", ".join(f"{name} {speed:,.0f}" for name, speed in ranked)
    return _resolved(chosen, "calibration", f"{best.name}; images/s {shown}; {where}")


def _why_not_calibrate(config: TrainConfig) -> str:
    if not config.calibrate:
        return "--no-calibrate"
    if switched_off():
        return f"{ENV_SWITCH}=0"
    if config.strategy != "default":
        return f"--strategy {config.strategy}: calibration is for one device"
    return ""


def other_load_now(seconds: float = QUIET_PROBE_S) -> float | None:
    """How many cores other processes keep busy now (over `seconds`); None where that cannot be told."""
    with machine.OtherLoad() as load:
        time.sleep(seconds)
    return load.cores


def provisional_note(cores: float) -> str:
    return (f"provisional: other processes kept {cores:g} cores busy; will measure again on a quiet run")


def _is_provisional(entry: dict) -> bool:
    """An entry measured while other processes were busy (entries from before the field: by their load)."""
    if "provisional" in entry:
        return entry["provisional"] is True
    cores = entry.get("other_processes_cores")
    return isinstance(cores, (int, float)) and cores > DISTURBED_CORES


def _cached_or_measured(config: TrainConfig, pool: list[Candidate]) -> tuple[dict, dict, str]:
    """(images/s per candidate name, their per-round figures where timed in the same rounds, where they come
    from): the cache's figures, plus measurements of the candidates it lacks (then cached). The entry's
    `rounds` hold the last measurement's candidates only, so that only figures timed side by side are paired.

    A measurement during which other processes kept more than DISTURBED_CORES cores busy is cached as
    provisional: later runs reuse it while the machine stays busy (a probe of QUIET_PROBE_S), and measure
    every candidate again, once, on a quiet run; a final (quiet) measurement is never repeated.
    """
    path = cache_path()
    cpu = machine.describe_cpu()
    identity, work = machine_identity(cpu), workload(config)
    key = cache_key(identity, work)
    entry = read_cache(path).get(key, {"images_per_s": {}})
    timings, rounds = dict(entry["images_per_s"]), dict(entry.get("rounds") or {})
    missing = [c for c in pool if c.name not in timings]
    provisional = _is_provisional(entry)
    if provisional and not missing:
        busy = other_load_now()
        if busy is None or busy > DISTURBED_CORES:  # still busy (or unknown): keep the provisional figures
            return timings, rounds, f"cached in {path}; {provisional_note(entry.get('other_processes_cores') or 0)}"
        log.info(f"the cached calibration was provisional (measured while other processes were busy); the machine "
                 f"is quiet now (other processes {busy:g} cores): measuring again")
        missing = list(pool)  # all again (a failed child keeps its candidate's provisional figure)
    if not missing:
        return timings, rounds, f"cached in {path}"
    names = ", ".join(c.name for c in missing)
    log.info(f"calibrating the training formulation on {cpu.describe()} "
             f"(once per machine and workload; candidates {names})")
    start = time.perf_counter()
    with machine.OtherLoad() as others:
        measured = measure(config, missing)
    timings.update(medians(measured))
    disturbed = others.cores is not None and others.cores > DISTURBED_CORES
    where = f"measured in {time.perf_counter() - start:.0f} s, cached in {path}"
    if measured:
        rounds = measured  # this measurement's candidates only: the figures timed side by side
        entry = {"images_per_s": timings, "rounds": rounds, "machine": identity, "workload": work,
                 "measured": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                 "seconds": round(time.perf_counter() - start, 1), "other_processes_cores": others.cores,
                 "provisional": disturbed}
        try:
            write_cache_entry(path, key, entry)
        except OSError as err:
            log.warning(f"could not write the calibration cache {path} ({err.strerror or err}); "
                        "the next run measures again")
    return timings, rounds, where + (f"; {provisional_note(others.cores)}" if disturbed else "")


def _resolved(config: TrainConfig, source: str, detail: str = "") -> tuple[TrainConfig, str]:
    """`config` recording `source` (SOURCES), and the line train() logs."""
    config = dataclasses.replace(config, formulation_source=source)
    return config, f"formulation: {describe(config)} (from {source}{': ' + detail if detail else ''})"
