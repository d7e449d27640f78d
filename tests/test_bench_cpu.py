"""bench/cpu.py's arithmetic: a step's CPU by part, from two snapshots (no /proc read here)."""

import importlib.util
import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("bench_cpu", REPO / "bench" / "cpu.py")
cpu = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = cpu  # dataclasses look their module up while the class is made
spec.loader.exec_module(cpu)


def test_a_process_that_ends_during_the_step_does_not_make_a_part_negative():
    # A removed container's shim (pid 1) leaves between the snapshots; pid 2 ran on, pid 3 began.
    before = cpu.CpuSnapshot({"engine": 8.0, "machine": 10.0}, {"engine": {1: 5.0, 2: 3.0}})
    after = cpu.CpuSnapshot({"engine": 5.0, "machine": 14.0}, {"engine": {2: 4.0, 3: 1.0}})
    spent = after.minus(before)
    # Summed whole, it read 5 - 8 = -3 (the negative engine figures of a bench-room run).
    assert spent["engine"] == 2.0
    assert spent["machine"] == 4.0
