"""tmpnb-frontdoor: the front door's sidecar (roles/front_door). It tells HAProxy how full each
notebook server is and serves the whole site's /api/stats. A package of its own, apart from the
orchestrator: the front door needs none of Docker's SDK or the orchestrator's pool."""

__version__ = "0.1.0"
