"""machine.py: the CPU as /proc/cpuinfo and the ISA caps describe it, the AVX2 emulation's variables, and the
notice where TensorFlow was imported before keras_latent could turn oneDNN on."""
import os
import platform
import subprocess
import sys

import pytest
from helpers import fake_tensorflow

from keras_latent import machine

X86 = """processor\t: 0
model name\t: AMD EPYC 7B13
flags\t\t: fpu sse4_2 avx avx2 fma bmi2
processor\t: 1
model name\t: AMD EPYC 7B13
flags\t\t: fpu sse4_2 avx avx2 fma bmi2
"""
ARM = "processor\t: 0\nFeatures\t: fp asimd evtstrm sve\nCPU part\t: 0xd40\n"


def test_an_avx2_cpu_is_named_with_its_isa(tmp_path):
    (tmp_path / "cpuinfo").write_text(X86)
    cpu = machine.describe_cpu(str(tmp_path / "cpuinfo"), environ={})
    assert (cpu.model, cpu.isa, cpu.isa_caps, cpu.emulated) == ("AMD EPYC 7B13", ("AVX", "AVX2", "FMA"), (), False)
    assert cpu.describe().startswith("AMD EPYC 7B13, ") and cpu.describe().endswith("cores, ISA AVX AVX2 FMA")


def test_arm_features_and_a_missing_cpuinfo(tmp_path):
    (tmp_path / "cpuinfo").write_text(ARM)
    assert machine.describe_cpu(str(tmp_path / "cpuinfo"), environ={}).isa == ("NEON", "SVE")
    unknown = machine.describe_cpu(str(tmp_path / "missing"), environ={})
    assert unknown.isa == () and unknown.model and "ISA unknown" in unknown.describe()


def test_isa_caps_are_read_from_the_environment_and_named(tmp_path):
    (tmp_path / "cpuinfo").write_text(X86)
    env = {"ONEDNN_MAX_CPU_ISA": "AVX2", "XLA_FLAGS": "--xla_dump_to=/tmp/x --xla_cpu_max_isa=AVX2"}
    cpu = machine.describe_cpu(str(tmp_path / "cpuinfo"), environ=env)
    assert cpu.isa_caps == (("ONEDNN_MAX_CPU_ISA", "AVX2"), ("--xla_cpu_max_isa", "AVX2")) and cpu.emulated
    assert cpu.describe().endswith("(capped: ONEDNN_MAX_CPU_ISA=AVX2, --xla_cpu_max_isa=AVX2)")


def test_the_avx2_emulation_caps_every_library_and_keeps_other_xla_flags():
    env = machine.emulation_environment("avx2", environ={"XLA_FLAGS": "--xla_dump_to=/tmp/x --xla_cpu_max_isa=AMX"})
    assert env["XLA_FLAGS"] == "--xla_dump_to=/tmp/x --xla_cpu_max_isa=AVX2"
    assert (env["ONEDNN_MAX_CPU_ISA"], env["ATEN_CPU_CAPABILITY"], env["MKL_ENABLE_INSTRUCTIONS"]) == \
        ("AVX2", "avx2", "AVX2")
    assert dict(machine.isa_caps(env)) == {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2",
                                           "MKL_ENABLE_INSTRUCTIONS": "AVX2", "--xla_cpu_max_isa": "AVX2"}


def test_other_load_is_the_machines_busy_time_less_this_process_tree(monkeypatch):
    """Over 2 s the machine ran 3 busy CPU seconds, 1 of them this process's: others kept 1 core busy."""
    def measure(busy):
        clock, own = iter([10.0, 12.0]), iter([5.0, 6.0])
        monkeypatch.setattr(machine, "_wall_seconds", lambda: next(clock))
        monkeypatch.setattr(machine, "_own_cpu_seconds", lambda: next(own))
        monkeypatch.setattr(machine, "_busy_and_total_seconds", lambda: next(busy))
        with machine.OtherLoad() as load:
            pass
        return load.cores

    assert measure(iter([(100.0, 400.0), (103.0, 404.0)])) == 1.0
    assert measure(iter([None, None])) is None  # no /proc/stat


def _import_order_child(tmp_path, first: str, mkl_enabled: bool, environ: dict | None = None) -> str:
    """What `onednn_import_order_notice` says in a fresh process that imports `first` ("tensorflow" or
    "keras_latent") first, with a stand-in `tensorflow` package whose oneDNN report is `mkl_enabled`
    (no real TensorFlow: fast, and the same on every CPU). Also prints the TF_ENABLE_ONEDNN_OPTS it ends with."""
    fake = fake_tensorflow(tmp_path, modules={
        "python.util._pywrap_util_port": f"def IsMklEnabled():\n    return {mkl_enabled}\n"})
    second = "keras_latent" if first == "tensorflow" else "tensorflow"
    code = (f"import {first}, {second}, os\nfrom keras_latent import machine\n"
            "print(repr(machine.onednn_import_order_notice()), os.environ.get('TF_ENABLE_ONEDNN_OPTS'))")
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    env.update(environ or {}, PYTHONPATH=os.pathsep.join([fake, repo]))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="oneDNN's default is x86's")
def test_importing_tensorflow_first_leaving_onednn_off_gets_a_notice(tmp_path):
    said = _import_order_child(tmp_path, "tensorflow", mkl_enabled=False)
    assert "TensorFlow was imported before keras_latent" in said and "TF_ENABLE_ONEDNN_OPTS=1" in said
    assert said.endswith(" None")  # keras_latent did not set the variable: too late, and the notice says so


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="oneDNN's default is x86's")
@pytest.mark.parametrize("first, mkl_enabled, environ, variable", [
    ("keras_latent", False, {}, "1"),  # the usual order: keras_latent turns oneDNN on
    ("tensorflow", False, {"TF_ENABLE_ONEDNN_OPTS": "0"}, "0"),  # the user's own choice
    ("tensorflow", True, {}, "None"),  # TensorFlow turned them on itself (a CPU with AVX512_VNNI, ...)
])
def test_no_notice_where_onednn_is_on_or_the_users_choice(tmp_path, first, mkl_enabled, environ, variable):
    assert _import_order_child(tmp_path, first, mkl_enabled, environ) == f"'' {variable}"


def test_resident_memory_of_this_process_and_of_none():
    import numpy as np

    before = machine.resident_mb()
    block = np.ones(64 * 2**20, dtype=np.uint8)  # 64 MB, touched
    assert machine.resident_mb(os.getpid()) - before > 60 and block.sum() == 64 * 2**20
    assert machine.resident_mb(2**31 - 1) is None  # no such process
