"""The verifier runs on the controller: tests/support (molecule_hosts.py, shared by the image
roles' verifiers) is put on the path."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[5] / "tests" / "support"))
