"""The benchmark modules the test suites load by their path (the reliability suite builds the tiny
image with bench/run.py's own code) import from anywhere, not only when run as scripts.

On a fresh machine, where no benchmark had built the tiny image yet, bench/run.py failed to load
(`No module named 'cpu'`) and took the reliability suite's setup with it.
"""

import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parent.parent
LOAD_BY_PATH = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("bench_run", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print(module.TINY_IMAGE)
"""


def test_bench_run_loads_by_its_path_from_another_folder(tmp_path):
    loaded = subprocess.run(
        [sys.executable, "-c", LOAD_BY_PATH, str(REPO / "bench" / "run.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip().startswith("tmpnb-bench-tiny:")
