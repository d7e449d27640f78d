"""The verifier runs here, on the controller: tests/support/nbtest.py (waiting, running code in a
kernel), shared by every suite, is put on the path."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests" / "support"))
