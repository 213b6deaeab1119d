"""calibration.py: the choice from measured images/s (stubbed), the per-machine cache, explicit flags and
--no-calibrate overriding it, a resumed run keeping its formulation; and one real measurement in a child."""
import dataclasses
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import threading
import time

import pytest
from helpers import tiny_config

from keras_latent.config import FORMULATION_FIELDS, STATIC_FORMULATION, ModelConfig, TrainConfig
from keras_latent.runs import layout
from keras_latent.training import calibration
from keras_latent.training.calibration import Candidate, choose, choose_formulation

POOL = calibration.candidates(2)  # graph, xla, threads1x2, split2


def _read_cache() -> dict:
    return json.loads(pathlib.Path(calibration.cache_path()).read_text())


def formulation(config) -> tuple:
    """(jit_compile, batch_split, intra_op_threads, inter_op_threads) of a config."""
    return tuple(getattr(config, name) for name in FORMULATION_FIELDS)
FAST_SPLIT = {"graph": 3000.0, "xla": 1800.0, "threads1x2": 3600.0, "split2": 4500.0}


@pytest.fixture
def other_load(monkeypatch):
    """The load of other processes, injected: {"measuring": cores while the calibration measures, "now": cores
    a later run's probe sees}; quiet (0) unless a test sets them. No real load, no timing."""
    load = {"measuring": 0.0, "now": 0.0}

    class FakeOtherLoad:
        def __enter__(self):
            self.cores = None
            return self

        def __exit__(self, *exc):
            self.cores = load["measuring"]

    monkeypatch.setattr(calibration.machine, "OtherLoad", FakeOtherLoad)
    monkeypatch.setattr(calibration, "other_load_now", lambda: load["now"])
    return load


@pytest.fixture
def calibrating(monkeypatch, tmp_path, other_load):
    """Calibration switched on (the suite switches it off), a cache of this test's own, two cores, other processes
    quiet (`other_load`), and a stub instead of the measuring child processes: calls[i] lists the candidates the
    i-th measurement was asked for."""
    calls = []

    def fake_measure(config, pool, steps=None, executions=3, repeats=calibration.REPEATS):
        calls.append([c.name for c in pool])
        return {c.name: [FAST_SPLIT[c.name] * f for f in (1.0, 0.9, 1.1)] for c in pool}  # median: FAST_SPLIT

    monkeypatch.setenv(calibration.ENV_SWITCH, "1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(calibration.machine, "usable_cores", lambda: 2)
    monkeypatch.setattr(calibration, "measure", fake_measure)
    return calls


def test_candidates_start_with_the_static_formulation():
    assert [c.name for c in POOL] == ["graph", "xla", "threads1x2", "split2"]
    assert POOL[0].fields() == STATIC_FORMULATION
    assert POOL[2].fields() == {"jit_compile": False, "batch_split": 1, "intra_op_threads": 1, "inter_op_threads": 2}
    assert POOL[3].fields() == {"jit_compile": False, "batch_split": 2, "intra_op_threads": 1, "inter_op_threads": 2}
    assert [c.name for c in calibration.candidates(1)] == ["graph", "xla"]
    assert calibration.candidates(16)[3].fields() == {"jit_compile": False, "batch_split": 4, "intra_op_threads": 4,
                                                      "inter_op_threads": 4}


def test_candidates_are_compared_round_by_round_not_by_their_best_round():
    """graph's one spike (a lucky round) gave it the best single round; split2 was faster in four rounds of five."""
    rounds = {"graph": [3531.0, 3341.0, 3393.0, 6060.0, 3379.0], "split2": [4856.0, 4086.0, 5521.0, 5680.0, 3531.0]}
    best = {name: max(values) for name, values in rounds.items()}
    assert choose(best, POOL, {}).name == "graph"  # what the best round chose
    assert choose(best, POOL, {}, rounds).name == "split2"  # per-round ratios: median 1.22
    assert calibration.speedup("split2", "graph", best, rounds) == pytest.approx(4086.0 / 3341.0)  # round 2
    assert calibration.medians(rounds) == {"graph": 3393.0, "split2": 4856.0}
    # drift between rounds cancels: split2 2% faster in every round is within the margin, whatever the drift
    drifting = {"graph": [1000.0, 3000.0, 2000.0], "split2": [1020.0, 3060.0, 2040.0]}
    assert choose(calibration.medians(drifting), POOL, {}, drifting).name == "graph"


def test_measuring_stops_once_every_round_agrees_with_the_choice():
    clear = {"graph": [3500.0, 3300.0, 3400.0], "xla": [2000.0, 2100.0, 1900.0], "split2": [4800.0, 4100.0, 5500.0]}
    assert calibration.settled(clear, POOL)
    close = {**clear, "split2": [4800.0, 3350.0, 5500.0]}  # the second round: within 3% of graph
    assert not calibration.settled(close, POOL)
    later_once_faster = {"graph": [3500.0, 3300.0, 3400.0], "split2": [3000.0, 3500.0, 3100.0]}  # graph chosen
    assert not calibration.settled(later_once_faster, POOL)
    assert calibration.settled({"graph": [3500.0, 3300.0, 3400.0], "split2": [3000.0, 3200.0, 3100.0]}, POOL)


def test_a_clear_lead_stops_measuring_after_two_rounds():
    """CLEAR_MARGIN (15%) over every other candidate in each round: two rounds suffice; a lead within it in one
    round needs MIN_ROUNDS rounds that all agree (`settled`)."""
    clear = {"graph": [3400.0, 3300.0], "xla": [1200.0], "threads1x2": [4000.0, 4100.0], "split2": [4800.0, 4900.0]}
    assert calibration.clearly_ahead(clear, POOL) and calibration.finished(clear, POOL)
    assert not calibration.finished({name: values[:1] for name, values in clear.items()}, POOL)  # one round
    narrow = {**clear, "threads1x2": [4000.0, 4300.0]}  # split2 only 14% ahead in round 2
    assert calibration.settled(narrow, POOL) and not calibration.clearly_ahead(narrow, POOL)
    assert not calibration.finished(narrow, POOL)
    three = {name: values + values[-1:] for name, values in narrow.items()}
    assert calibration.finished(three, POOL)  # settled after MIN_ROUNDS
    simpler_chosen = {"graph": [5000.0, 5100.0], "split2": [4000.0, 4100.0]}  # the lead of an earlier candidate
    assert calibration.clearly_ahead(simpler_chosen, POOL)


def test_a_hopeless_candidate_is_not_timed_again():
    """Below HOPELESS (0.6) times the fastest one's speed, by the median of the per-round ratios; never the
    fastest; rounds timed before it was dropped pair with the same rounds of the others."""
    rounds = {"graph": [5900.0], "xla": [3000.0], "threads1x2": [6500.0], "split2": [8500.0]}
    assert calibration.hopeless(rounds) == {"xla"}  # 0.35x; graph 0.69x stays
    assert calibration.hopeless({"graph": [5000.0, 3000.0, 3100.0], "split2": [5000.0, 6000.0, 6000.0]}) == {"graph"}
    assert calibration.hopeless({"graph": [5000.0]}) == set() and calibration.hopeless({}) == set()
    after = {"graph": [5900.0, 6000.0, 6100.0], "xla": [3000.0], "split2": [8500.0, 8000.0, 8200.0]}
    assert calibration.speedup("xla", "split2", {}, after) == pytest.approx(3000.0 / 8500.0)  # round 1 with round 1
    assert choose(calibration.medians(after), POOL, {}, after).name == "split2"
    assert calibration.settled(after, POOL) and calibration.hopeless(after) == {"xla", "graph"}  # graph 0.69-0.74x
    # after two rounds, a candidate 15% behind the fastest in each is not timed again either; one within it stays
    behind = {"graph": [3210.0, 2368.0], "threads1x2": [3434.0, 4143.0], "split2": [3941.0, 4005.0]}
    assert calibration.hopeless(behind) == {"graph"}  # 0.81x and 0.59x of split2; threads1x2 0.87x, then 1.03x
    assert calibration.hopeless({name: values[:1] for name, values in behind.items()}) == set()  # one round
    once_close = {"graph": [3210.0, 3700.0], "split2": [3941.0, 4005.0]}  # 0.81x, then 0.92x: within 15% once
    assert calibration.hopeless(once_close) == set()


def test_the_fastest_wins_but_only_by_a_margin_over_a_simpler_one():
    assert choose(FAST_SPLIT, POOL, {}).name == "split2"
    close = {"graph": 3000.0, "xla": 3050.0, "split2": 3080.0}  # within 3% of graph: noise, keep the simpler
    assert choose(close, POOL, {}).name == "graph"
    assert choose({"graph": 3000.0, "split2": 3200.0}, POOL, {}).name == "split2"
    assert choose({}, POOL, {}) is None


def test_explicitly_set_fields_limit_the_choice():
    assert choose(FAST_SPLIT, POOL, {"jit_compile": True}).name == "xla"
    assert choose(FAST_SPLIT, POOL, {"batch_split": 1}).name == "threads1x2"
    assert choose(FAST_SPLIT, POOL, {"intra_op_threads": 0, "inter_op_threads": 0}).name == "graph"
    assert choose(FAST_SPLIT, POOL, {"batch_split": 3}) is None


def test_first_use_measures_then_the_cache_answers(calibrating):
    config, line = choose_formulation(TrainConfig())
    assert calibrating == [["graph", "xla", "threads1x2", "split2"]]
    assert formulation(config) == (False, 2, 1, 2)
    assert config.formulation_source == "calibration"
    assert line.startswith("formulation: graph (oneDNN), batch split 2, threads 1/2 (from calibration: split2;")
    assert "split2 4,500, threads1x2 3,600, graph 3,000" in line and "\n" not in line
    again, line = choose_formulation(TrainConfig())
    assert calibrating == [["graph", "xla", "threads1x2", "split2"]]  # no second measurement
    assert again == config and line.startswith("formulation: graph (oneDNN), batch split 2, threads 1/2 (from "
                                                "calibration: split2;") and "; cached in " in line
    cached = _read_cache()
    assert cached["version"] == calibration.CACHE_VERSION and len(cached["entries"]) == 1
    entry = next(iter(cached["entries"].values()))
    assert entry["images_per_s"] == FAST_SPLIT and entry["workload"]["batch_size"] == 32
    assert entry["rounds"]["split2"] == [4500.0, 4050.0, 4950.0]
    assert entry["machine"]["cores"] == 2 and entry["machine"]["tensorflow"]


def test_a_calibration_disturbed_by_load_is_provisional_until_a_quiet_run(calibrating, other_load):
    other_load["measuring"] = 0.93  # another process kept 0.93 cores busy while the candidates were timed
    config, line = choose_formulation(TrainConfig())
    assert calibrating == [["graph", "xla", "threads1x2", "split2"]] and config.batch_split == 2
    note = "provisional: other processes kept 0.93 cores busy; will measure again on a quiet run"
    assert line.endswith(note + ")") and "measured in" in line and "\n" not in line
    entry = next(iter(_read_cache()["entries"].values()))
    assert entry["provisional"] is True and entry["other_processes_cores"] == 0.93
    # still busy: the provisional figures are reused, nothing is measured again
    other_load["now"] = 1.2
    _, line = choose_formulation(TrainConfig())
    assert len(calibrating) == 1 and "cached in" in line and line.endswith(note + ")")
    # quiet: every candidate is measured again, and the result is final
    other_load["now"] = other_load["measuring"] = 0.05
    _, line = choose_formulation(TrainConfig())
    assert calibrating[1:] == [["graph", "xla", "threads1x2", "split2"]] and "provisional" not in line
    entry = next(iter(_read_cache()["entries"].values()))
    assert entry["provisional"] is False and entry["other_processes_cores"] == 0.05


def test_a_final_calibration_is_not_measured_again_whatever_the_load(calibrating, other_load):
    choose_formulation(TrainConfig())  # measured on a quiet machine: final
    other_load["now"] = 1.5
    choose_formulation(TrainConfig())
    other_load["now"] = 0.0
    _, line = choose_formulation(TrainConfig())
    assert len(calibrating) == 1 and "provisional" not in line and "cached in" in line


def test_a_cached_entry_from_before_the_provisional_field_is_judged_by_its_load(calibrating, other_load):
    choose_formulation(TrainConfig())
    path = calibration.cache_path()
    data = json.loads(pathlib.Path(path).read_text())
    for entry in data["entries"].values():
        del entry["provisional"], entry["rounds"]
        entry["other_processes_cores"] = 0.93
    pathlib.Path(path).write_text(json.dumps(data))
    other_load["now"] = 0.9  # busy: reused
    assert "provisional" in choose_formulation(TrainConfig())[1] and len(calibrating) == 1
    other_load["now"] = 0.0  # quiet: measured again
    choose_formulation(TrainConfig())
    assert len(calibrating) == 2


def test_the_cache_lives_in_the_user_cache_folder_and_is_keyed_by_machine_and_workload(calibrating, tmp_path,
                                                                                      monkeypatch):
    assert calibration.cache_path() == os.path.join(str(tmp_path), "keras_latent", layout.CALIBRATION_CACHE.name)
    choose_formulation(TrainConfig())
    choose_formulation(TrainConfig(batch_size=128))  # another workload
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")  # emulating another CPU: another machine
    choose_formulation(TrainConfig())
    assert len(calibrating) == 3
    keys = _read_cache()["entries"]
    assert len(keys) == 3


def test_explicit_flags_and_no_calibrate_never_measure(calibrating):
    every = TrainConfig(jit_compile=True, batch_split=1, intra_op_threads=2, inter_op_threads=1)
    config, line = choose_formulation(every)
    assert formulation(config) == (True, 1, 2, 1)
    assert config.formulation_source == "flags" and line.endswith("(from flags)")
    static, line = choose_formulation(TrainConfig(calibrate=False))
    assert static == dataclasses.replace(TrainConfig(calibrate=False), **STATIC_FORMULATION,
                                         formulation_source="defaults")
    assert line.endswith("(from defaults: --no-calibrate)")
    assert calibrating == []


def test_one_explicit_flag_keeps_its_value_and_the_rest_is_calibrated(calibrating):
    config, _ = choose_formulation(TrainConfig(intra_op_threads=0))
    assert (config.jit_compile, config.batch_split, config.inter_op_threads) == (False, 1, 0)  # graph beats xla
    assert calibrating == [["graph", "xla"]]  # only the candidates that agree are measured
    config, _ = choose_formulation(TrainConfig(batch_split=1))
    assert (config.jit_compile, config.batch_split, config.intra_op_threads) == (False, 1, 1)  # threads1x2
    assert calibrating[1:] == [["threads1x2"]]  # graph and xla came from the cache


def test_the_environment_switch_and_other_strategies_use_the_static_formulation(calibrating, monkeypatch):
    config, line = choose_formulation(TrainConfig(strategy="mirrored"))
    assert config.batch_split == 1 and "calibration is for one device" in line
    monkeypatch.setenv(calibration.ENV_SWITCH, "0")
    config, line = choose_formulation(TrainConfig())
    assert (config.batch_split, config.formulation_source) == (1, "defaults") and f"{calibration.ENV_SWITCH}=0" in line
    assert calibrating == []


def test_a_resumed_run_keeps_its_formulation(calibrating):
    saved = dataclasses.replace(TrainConfig(), jit_compile=True, batch_split=1, intra_op_threads=0,
                                inter_op_threads=0, formulation_source="calibration")
    config, line = choose_formulation(TrainConfig(), saved=saved)
    assert config == saved and "from resumed" in line and calibrating == []


def test_threads_that_cannot_change_limit_the_candidates(calibrating):
    config, _ = choose_formulation(TrainConfig(), running_threads=(0, 0))
    assert (config.batch_split, config.intra_op_threads, config.inter_op_threads) == (1, 0, 0)
    assert calibrating == [["graph", "xla"]]


def test_an_unreadable_or_hostile_cache_is_measured_again_and_replaced(calibrating, caplog):
    os.makedirs(os.path.dirname(calibration.cache_path()))
    hostile = {"k": {"images_per_s": {"graph": "__import__('os')"}}}
    bad_rounds = {"k": {"images_per_s": {"graph": 1.0}, "rounds": {"graph": ["1", 0]}}}
    for text in ("{not json", json.dumps({"version": calibration.CACHE_VERSION, "entries": []}),
                 json.dumps({"version": calibration.CACHE_VERSION, "entries": hostile}),
                 json.dumps({"version": calibration.CACHE_VERSION, "entries": bad_rounds})):
        with open(calibration.cache_path(), "w") as f:
            f.write(text)
        config, _ = choose_formulation(TrainConfig())
        assert config.batch_split == 2
    assert len(calibrating) == 4
    assert "unreadable" in caplog.text
    assert _read_cache()["version"] == calibration.CACHE_VERSION


def test_figures_cached_by_an_older_way_of_measuring_are_measured_again(calibrating):
    """Entries of an older version (1: children timed one after the other, so a slow spell of the machine could
    fall on one child's candidates only; 2: the batch split before its flattened image losses; 3: each
    candidate's best round) are measured again and the file rewritten."""
    choose_formulation(TrainConfig())
    cached = _read_cache()
    assert cached["version"] == calibration.CACHE_VERSION == 4
    for older in (1, 2, 3):
        with open(calibration.cache_path(), "w") as f:
            json.dump({**cached, "version": older}, f)
        choose_formulation(TrainConfig())
        assert _read_cache()["version"] == 4
    assert len(calibrating) == 4


def test_a_failed_measurement_falls_back_to_the_static_formulation(calibrating, monkeypatch):
    monkeypatch.setattr(calibration, "measure", lambda config, pool: {})
    config, line = choose_formulation(TrainConfig())
    assert config.batch_split == 1 and "no candidate could be measured" in line
    assert not os.path.exists(calibration.cache_path())


class FakeChild:
    """A measuring child (`calibration._Child`'s methods) that logs every call to a shared `events` list and
    answers rounds from `speeds` ({name: [images/s of round 0, 1, ...]}); `fail_at`: the round it fails in."""

    def __init__(self, events: list, speeds: dict, fail_at: int | None = None):
        self.names, self.events, self.speeds, self.fail_at, self.rounds = list(speeds), events, speeds, fail_at, 0

    def _log(self, what: str) -> None:
        self.events.append(f"{'+'.join(self.names)} {what}")

    def wait_ready(self, deadline):
        self._log("ready")

    def send_round(self, names):
        self._log("round" if names == self.names else f"round {'+'.join(names)}")
        self.timed = names

    def read_round(self, deadline):
        self._log("answer")
        if self.rounds == self.fail_at:
            raise ValueError("exit 1: planted failure")
        self.rounds += 1
        return {name: values[self.rounds - 1] for name, values in self.speeds.items() if name in self.timed}

    def stop(self):
        self._log("stop")


def test_children_take_turns_and_every_round_is_kept():
    """All children ready before any round; then one child at a time (its round asked and answered before the
    next child is asked), round after round; each candidate's figure of every round comes back; every child is
    stopped at the end (it writes nothing)."""
    events = []
    graph = FakeChild(events, {"graph": [10.0, 30.0, 20.0], "xla": [5.0, 4.0, 6.0]})
    split = FakeChild(events, {"threads1x2": [9.0, 9.0, 9.0], "split2": [40.0, 35.0, 12.0]})
    rounds = calibration._take_turns([graph, split], repeats=3, deadline=float("inf"))
    assert rounds == {"graph": [10.0, 30.0, 20.0], "xla": [5.0, 4.0, 6.0], "threads1x2": [9.0, 9.0, 9.0],
                      "split2": [40.0, 35.0, 12.0]}
    turns = ["graph+xla round", "graph+xla answer", "threads1x2+split2 round", "threads1x2+split2 answer"]
    assert events == ["graph+xla ready", "threads1x2+split2 ready", *turns * 3,
                      "graph+xla stop", "threads1x2+split2 stop"]


def test_turns_end_once_the_rounds_are_done():
    events = []
    graph = FakeChild(events, {"graph": [10.0, 30.0, 20.0, 5.0]})
    split = FakeChild(events, {"split2": [40.0, 35.0, 12.0, 1.0]})
    rounds = calibration._take_turns([graph, split], repeats=4, deadline=float("inf"),
                                     done=lambda rounds: len(rounds["graph"]) == 2)
    assert rounds == {"graph": [10.0, 30.0], "split2": [40.0, 35.0]}
    assert events.count("graph round") == 2 and events[-2:] == ["graph stop", "split2 stop"]


def test_candidates_dropped_after_a_round_are_not_timed_again_and_an_empty_child_stops():
    """`drop` after each round: a child asks only for its candidates still timed (their earlier rounds are kept);
    a child left with none is stopped at once and sits out the later rounds."""
    events = []
    graph = FakeChild(events, {"graph": [10.0, 30.0, 20.0], "xla": [5.0, 4.0, 6.0]})
    split = FakeChild(events, {"threads1x2": [9.0, 9.0, 9.0], "split2": [40.0, 35.0, 12.0]})
    dropped = [{"xla"}, {"xla", "graph"}]
    rounds = calibration._take_turns([graph, split], repeats=3, deadline=float("inf"),
                                     drop=lambda rounds: dropped[min(len(rounds["split2"]), 2) - 1])
    assert rounds == {"graph": [10.0, 30.0], "xla": [5.0], "threads1x2": [9.0, 9.0, 9.0], "split2": [40.0, 35.0, 12.0]}
    turns = ["threads1x2+split2 round", "threads1x2+split2 answer"]
    assert events == ["graph+xla ready", "threads1x2+split2 ready", "graph+xla round", "graph+xla answer", *turns,
                      "graph+xla round graph", "graph+xla answer", *turns, "graph+xla stop", *turns,
                      "threads1x2+split2 stop"]


def test_a_real_child_is_asked_for_its_remaining_candidates_only():
    """`_Child` on small Python children: a round of all its candidates is `round`, of some `round` and their JSON
    list; an answer naming other candidates than those asked for is refused (a child that ignores the list)."""
    def child(ignores_the_list: bool):
        script = (f"import sys, json\nprint({calibration.READY_LINE!r}, flush=True)\n"
                  "for line in sys.stdin:\n"
                  "    command, _, names = line.strip().partition(' ')\n"
                  "    if command != 'round': break\n"
                  f"    names = json.loads(names) if names and not {ignores_the_list} else ['graph', 'xla']\n"
                  f"    print({calibration.ROUND_PREFIX!r} + json.dumps({{n: 10.0 for n in names}}), flush=True)\n")
        stderr = tempfile.TemporaryFile(mode="w+")
        process = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=stderr, text=True)
        made = calibration._Child(process, stderr, ["graph", "xla"])
        made.wait_ready(time.monotonic() + 60)
        return made

    follows, ignores = child(False), child(True)
    try:
        follows.send_round(["graph", "xla"])
        assert follows.read_round(time.monotonic() + 60) == {"graph": 10.0, "xla": 10.0}
        follows.send_round(["graph"])
        assert follows.read_round(time.monotonic() + 60) == {"graph": 10.0}
        ignores.send_round(["graph"])
        with pytest.raises(ValueError, match="unexpected answer"):
            ignores.read_round(time.monotonic() + 60)
    finally:
        follows.stop()
        ignores.stop()


def test_the_timing_child_answers_rounds_of_the_candidates_asked_for(monkeypatch, capsys):
    """keras_latent.training.timing's loop (its measurement stubbed): `round` times every candidate, `round` and
    a JSON list only those; `done` ends it."""
    from keras_latent.training import timing

    asked = []

    def one_round(names=None):
        asked.append(names)
        return dict.fromkeys(names or ["graph", "xla"], 1.0)

    monkeypatch.setattr(timing, "prepare_formulations", lambda request: one_round)
    monkeypatch.setattr(sys, "stdin", iter(["round\n", 'round ["xla"]\n', "done\n", "round\n"]))
    assert timing.main(["{}"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert asked == [None, ["xla"]]
    assert lines == [calibration.READY_LINE, calibration.ROUND_PREFIX + '{"graph": 1.0, "xla": 1.0}',
                     calibration.ROUND_PREFIX + '{"xla": 1.0}']


def test_a_child_failing_mid_way_costs_only_its_own_candidates(caplog):
    events = []
    graph = FakeChild(events, {"graph": [10.0, 30.0, 20.0]})
    split = FakeChild(events, {"split2": [40.0, 35.0, 12.0]}, fail_at=1)
    rounds = calibration._take_turns([graph, split], repeats=3, deadline=float("inf"))
    assert rounds == {"graph": [10.0, 30.0, 20.0]}  # split2's first round does not count alone
    assert events.count("split2 stop") == 1 and events.count("split2 round") == 2
    assert events[-1] == "graph stop" and events.count("graph round") == 3
    assert "calibration of split2 failed (exit 1: planted failure); left out" in caplog.text


def test_a_child_that_never_gets_ready_is_left_out(caplog):
    class NeverReady(FakeChild):
        def wait_ready(self, deadline):
            raise TimeoutError("no answer within 300 s")

    events = []
    rounds = calibration._take_turns([NeverReady(events, {"xla": [1.0]}), FakeChild(events, {"graph": [2.0]})],
                                     repeats=1, deadline=0.0)
    assert rounds == {"graph": [2.0]} and "xla round" not in events and "xla stop" in events
    assert "calibration of xla failed (no answer within 300 s); left out" in caplog.text


@pytest.mark.slow
def test_a_real_measurement_in_new_child_processes(monkeypatch):
    """The child protocol end to end, on a tiny model: two thread settings, two children taking turns; the
    children new Python processes (`python -m keras_latent.training.timing`), as where a fork is not safe."""
    monkeypatch.setattr(calibration, "can_fork", lambda: False)
    config = tiny_config(model=ModelConfig(filters=(2, 4), head_units=(8,)), batch_size=8, steps_per_execution=2)
    pool = [Candidate("graph", False, 1, 0, 0), Candidate("split2", False, 2, 1, 2)]
    rounds = calibration.measure(config, pool, steps=2, executions=2, repeats=2, min_rounds=2)
    assert set(rounds) == {"graph", "split2"} and all(min(v) > 0 for v in rounds.values())
    assert sorted(len(v) for v in rounds.values()) in ([1, 2], [2, 2])  # a hopeless one is timed once


def test_a_real_child_process_that_dies_or_answers_nonsense_is_left_out(caplog):
    """`_Child` on small Python children (no TensorFlow): one exits with an error line, one answers a round with
    something else than images/s, one follows the protocol; only the last one's candidate is measured."""
    def child(names, script):
        stderr = tempfile.TemporaryFile(mode="w+")
        process = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=stderr, text=True)
        return calibration._Child(process, stderr, names)

    dies = child(["xla"], "import sys; print('boom: no such thing', file=sys.stderr); sys.exit(3)")
    nonsense = child(["threads1x2"], f"print({calibration.READY_LINE!r}, flush=True)\n"
                                     f"input(); print({calibration.ROUND_PREFIX!r} + '{{\"threads1x2\": -1}}')")
    works = child(["graph"], f"import sys\nprint({calibration.READY_LINE!r}, flush=True)\n"
                             "for n, line in enumerate(sys.stdin):\n"
                             "    if line.strip() != 'round': break\n"
                             f"    print({calibration.ROUND_PREFIX!r} + '{{\"graph\": %d}}' % (100 + n), flush=True)")
    rounds = calibration._take_turns([dies, nonsense, works], repeats=2, deadline=time.monotonic() + 60)
    assert rounds == {"graph": [100.0, 101.0]}
    assert "calibration of xla failed (exit 3: boom: no such thing); left out" in caplog.text
    assert "calibration of threads1x2 failed (unexpected answer {'threads1x2': -1}); left out" in caplog.text


def _answers_rounds(name: str):
    """A forked child's body following the protocol without TensorFlow: round n answers {name: 100 + n}."""
    def serve():
        print(calibration.READY_LINE, flush=True)
        for n, line in enumerate(sys.stdin):
            if line.strip() != "round":
                break
            print(calibration.ROUND_PREFIX + json.dumps({name: 100 + n}), flush=True)
        return 0
    return serve


def _raises():
    raise ValueError("boom: no such thing")


def _exits():
    """As a command's run_cli ends on a UsageError: its line on stderr, then SystemExit with its code."""
    print("error: no usable candidate", file=sys.stderr)
    sys.exit(2)


def test_a_forked_child_follows_the_protocol_and_a_failing_one_is_left_out(caplog):
    """`_ForkedProcess` (the child a fork of this process, as calibration makes them where `can_fork`): one
    child's body raises, one exits with a code, one follows the protocol; a failure's last line reaches the
    notice with its exit code, and the working child's rounds come back. All are stopped (killed and waited
    for) at the end."""
    forked = []

    def child(names, target):
        stderr = tempfile.TemporaryFile(mode="w+")
        forked.append(calibration._ForkedProcess(target, stderr))
        return calibration._Child(forked[-1], stderr, names)

    children = [child(["xla"], _raises), child(["split2"], _exits), child(["graph"], _answers_rounds("graph"))]
    rounds = calibration._take_turns(children, repeats=2, deadline=time.monotonic() + 60)
    assert rounds == {"graph": [100.0, 101.0]}
    assert "calibration of xla failed (exit 1: ValueError: boom: no such thing); left out" in caplog.text
    assert "calibration of split2 failed (exit 2: error: no usable candidate); left out" in caplog.text
    assert [process.returncode for process in forked] == [1, 2, -9]  # ended with its error; killed once measured


def test_children_are_forks_only_where_that_is_safe(monkeypatch):
    """A fork where TensorFlow's runtime has not started and no other Python thread runs; else a new process.
    (The suite's own threads, e.g. an earlier test's server, are set aside: only this test's thread counts.)"""
    from keras_latent.training import distribute

    count = threading.active_count
    before = count()  # this thread and any the suite left running
    monkeypatch.setattr(calibration.threading, "active_count", lambda: count() - before + 1)
    monkeypatch.setattr(distribute, "threads_settable", lambda: True)
    assert calibration.can_fork()
    monkeypatch.setattr(distribute, "threads_settable", lambda: False)  # the runtime runs: its pools cannot move
    assert not calibration.can_fork()
    monkeypatch.setattr(distribute, "threads_settable", lambda: True)
    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:
        assert not calibration.can_fork()  # a fork would copy only this thread, not the locks the other holds
    finally:
        release.set()
        other.join()


@pytest.mark.slow
def test_a_real_measurement_in_forked_children():
    """In a new process that has loaded TensorFlow but not started it (as `train` calibrates), the children are
    forks of it, each sets its own threads and measures its candidates."""
    script = """
import json
import keras_latent.training.fit
from keras_latent.config import ModelConfig
from keras_latent.training import calibration
from keras_latent.training.calibration import Candidate
from helpers import tiny_config
assert calibration.can_fork()
config = tiny_config(model=ModelConfig(filters=(2, 4), head_units=(8,)), batch_size=8, steps_per_execution=2)
pool = [Candidate("graph", False, 1, 0, 0), Candidate("split2", False, 2, 1, 2)]
print(json.dumps(calibration.measure(config, pool, steps=2, executions=2, repeats=2, min_rounds=2)))
"""
    tests = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join([tests, os.environ.get("PYTHONPATH", "")])})
    assert done.returncode == 0, done.stderr[-2000:]
    rounds = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(rounds) == {"graph", "split2"} and all(min(v) > 0 for v in rounds.values())
    assert sorted(len(v) for v in rounds.values()) in ([1, 2], [2, 2])  # a hopeless one is timed once


def test_a_measuring_call_holds_about_the_same_images_at_every_batch_size():
    steps = {batch: calibration.measured_steps(TrainConfig(batch_size=batch)) for batch in (8, 32, 128, 4096)}
    assert steps == {8: 32, 32: 16, 128: 4, 4096: 1}  # 32: the run's own steps per execution
    assert calibration.measured_steps(TrainConfig(batch_size=32, steps_per_execution=2)) == 2
