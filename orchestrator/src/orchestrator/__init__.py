"""tmpnb-compatible orchestrator: a warm pool of temporary notebooks that heals itself."""

__version__ = "0.1.0"
