"""`python -m orchestrator` runs the same entry point as `tmpnb-orchestrator`."""

from orchestrator.app import main

raise SystemExit(main())
