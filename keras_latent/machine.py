"""The machine a run trains on: CPU model, vector ISA, cores, and any ISA cap set for emulation. No TensorFlow.

Speed depends on the CPU far more than on anything else (oneDNN's kernels on AVX-512 are several times
its AVX2 ones; XLA's code generator and oneDNN can each be capped to an older ISA to emulate an older
CPU). `describe_cpu` names all of it in one line, for the training calibration's cache key
(`keras_latent.training.calibration`) and for every speed figure the benchmarks print. And since a
measurement means little while other processes compete for the cores, `OtherLoad` measures how busy
they kept the machine meanwhile (Linux), and `wait_until_quiet` waits for them.
"""
from __future__ import annotations

import dataclasses
import os
import platform
import re
import sys
import time

# /proc/cpuinfo flag -> the name people use; in order of age. x86 first, then Arm.
ISA_FLAGS = (("avx", "AVX"), ("avx2", "AVX2"), ("fma", "FMA"), ("avx512f", "AVX-512"),
             ("avx512_vnni", "AVX-512 VNNI"), ("avx512_bf16", "AVX-512 BF16"), ("amx_tile", "AMX"),
             ("asimd", "NEON"), ("sve", "SVE"))
# Environment variables that cap the ISA a library uses (to emulate an older CPU), by library.
ISA_CAP_VARIABLES = ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS")
XLA_MAX_ISA = re.compile(r"--xla_cpu_max_isa=(\S+)")
# What each emulation sets: TensorFlow (oneDNN, XLA's code generator) and PyTorch (ATen, oneDNN, MKL).
EMULATIONS = {
    "avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "XLA_FLAGS": "--xla_cpu_max_isa=AVX2",
             "ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
}


@dataclasses.dataclass(frozen=True)
class Cpu:
    """What the speed of a training step depends on, as far as the machine goes."""

    model: str  # "Intel(R) Xeon(R) Processor", "AMD EPYC 7B13", or the architecture where unknown
    isa: tuple[str, ...]  # vector extensions, ISA_FLAGS names: ("AVX", "AVX2", "FMA", "AVX-512", ...)
    cores: int  # cores this process may run on
    isa_caps: tuple[tuple[str, str], ...] = ()  # (variable, value) of every ISA cap set (emulation)

    def describe(self) -> str:
        """One line: `Intel(R) Xeon(R) Processor, 2 cores, ISA AVX2 FMA AVX-512 (capped: ONEDNN_MAX_CPU_ISA=AVX2)`."""
        caps = ", ".join(f"{name}={value}" for name, value in self.isa_caps)
        return (f"{self.model}, {self.cores} core{'s' * (self.cores != 1)}, ISA {' '.join(self.isa) or 'unknown'}"
                + (f" (capped: {caps})" if caps else ""))

    @property
    def emulated(self) -> bool:
        return bool(self.isa_caps)


def _cpuinfo(path: str = "/proc/cpuinfo") -> tuple[str | None, set[str]]:
    """(model name, flags) of the first processor in /proc/cpuinfo; (None, empty) where there is none."""
    model, flags = None, set()
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model is None:
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:  # x86, Arm
                    flags = set(value.split())
    except OSError:
        pass
    return model, flags


def isa_caps(environ: dict | None = None) -> tuple[tuple[str, str], ...]:
    """The ISA caps set in `environ` (default os.environ): each variable, and XLA's --xla_cpu_max_isa."""
    environ = os.environ if environ is None else environ
    caps = [(name, environ[name]) for name in ISA_CAP_VARIABLES if environ.get(name)]
    xla = XLA_MAX_ISA.search(environ.get("XLA_FLAGS", ""))
    return tuple(caps + ([("--xla_cpu_max_isa", xla.group(1))] if xla else []))


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def describe_cpu(cpuinfo: str = "/proc/cpuinfo", environ: dict | None = None) -> Cpu:
    """This machine's CPU as far as training speed goes (Linux reads /proc/cpuinfo; elsewhere, less detail)."""
    model, flags = _cpuinfo(cpuinfo)
    isa = tuple(name for flag, name in ISA_FLAGS if flag in flags)
    return Cpu(model=model or platform.processor() or platform.machine() or "unknown CPU", isa=isa,
               cores=usable_cores(), isa_caps=isa_caps(environ))


def onednn_rewrites(environ: dict | None = None) -> bool:
    """Whether TensorFlow's oneDNN graph rewrites are on, as TF_ENABLE_ONEDNN_OPTS says (keras_latent turns them on
    for x86-64 CPUs where the user did not choose); unset, TensorFlow decides by CPU, reported as off here."""
    environ = os.environ if environ is None else environ
    return environ.get("TF_ENABLE_ONEDNN_OPTS", "").strip().lower() in ("1", "true")


def onednn_import_order_notice(environ: dict | None = None) -> str:
    """A notice where importing TensorFlow before keras_latent left TensorFlow's oneDNN rewrites off; else "".

    keras_latent turns them on for x86-64 CPUs by setting TF_ENABLE_ONEDNN_OPTS when it is imported, which
    only works before TensorFlow starts. An API user who imports keras (or tensorflow) first gets TensorFlow's
    own default, off on CPUs without AVX512_VNNI, AVX512_BF16, AVX_VNNI or AMX, where this model then trains
    about half as fast (docs/performance.md#onednn-on-avx2-cpus). No notice where the user set the variable
    or where TensorFlow turned them on itself."""
    import keras_latent

    environ = os.environ if environ is None else environ
    if (not keras_latent._tensorflow_imported_first or "TF_ENABLE_ONEDNN_OPTS" in environ
            or platform.machine().lower() not in ("x86_64", "amd64") or tensorflow_onednn_on() is not False):
        return ""
    return ("TensorFlow was imported before keras_latent, so its oneDNN kernels are off on this CPU and training "
            "runs about half as fast: import keras_latent first, or set TF_ENABLE_ONEDNN_OPTS=1 before anything "
            "imports TensorFlow")


def tensorflow_onednn_on() -> bool | None:
    """Whether TensorFlow (already imported) runs its oneDNN rewrites, by its own report; None where it cannot
    say (its private `IsMklEnabled` moved or TensorFlow is not imported)."""
    if "tensorflow" not in sys.modules:
        return None
    try:
        from tensorflow.python.util._pywrap_util_port import IsMklEnabled
    except ImportError:
        return None
    return bool(IsMklEnabled())


def emulation_environment(name: str, environ: dict | None = None) -> dict[str, str]:
    """The variables that emulate CPU `name` (EMULATIONS), XLA_FLAGS merged with any already set."""
    environ = os.environ if environ is None else environ
    env = dict(EMULATIONS[name])
    existing = XLA_MAX_ISA.sub("", environ.get("XLA_FLAGS", "")).strip()
    env["XLA_FLAGS"] = f"{existing} {env['XLA_FLAGS']}".strip()
    return env


def _busy_and_total_seconds() -> tuple[float, float] | None:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat; None where there is none."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:]]
        per_second = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, AttributeError):
        return None
    idle = ticks[3] + ticks[4]  # idle, iowait
    return (sum(ticks) - idle) / per_second, sum(ticks) / per_second


def _wall_seconds() -> float:
    return time.perf_counter()


def _own_cpu_seconds() -> float:
    """CPU seconds of this process and of its finished children."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class OtherLoad:
    """Measures how many cores other processes kept busy while the `with` block ran (None where unknown):
    the machine's busy CPU time less this process's and its children's, over the wall time."""

    def __enter__(self) -> OtherLoad:
        self.cores: float | None = None
        self._start = (_wall_seconds(), _busy_and_total_seconds(), _own_cpu_seconds())
        return self

    def __exit__(self, *exc) -> None:
        wall0, stat0, own0 = self._start
        wall, stat1 = _wall_seconds() - wall0, _busy_and_total_seconds()
        if stat0 and stat1 and wall > 0:
            self.cores = round(max(0.0, (stat1[0] - stat0[0] - (_own_cpu_seconds() - own0)) / wall), 2)


def resident_mb(pid: int | str = "self") -> float | None:
    """Resident memory (VmRSS) of process `pid` now, in MB; None where /proc does not tell it."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def wait_until_quiet(max_wait_s: float, busy_below: float = 0.3) -> bool:
    """Wait (at most `max_wait_s`) until the machine's other processes use under `busy_below` cores for a
    second; True once they do (or where that cannot be told), False at the deadline."""
    deadline = time.monotonic() + max_wait_s
    while True:
        with OtherLoad() as load:
            time.sleep(1.0)
        if load.cores is None or load.cores < busy_below:
            return True
        if time.monotonic() >= deadline:
            return False
