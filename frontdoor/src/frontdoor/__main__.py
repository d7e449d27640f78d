"""`python -m frontdoor` runs the same entry point as `tmpnb-frontdoor`."""

from frontdoor.app import main

raise SystemExit(main())
