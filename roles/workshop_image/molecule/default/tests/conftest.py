"""The verifier runs here, on the controller: tests/support/nbtest.py (waiting, running code in a
kernel), shared by every suite, is put on the path; browser_client.py takes its text along into
the notebook container."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[5] / "tests" / "support"))
