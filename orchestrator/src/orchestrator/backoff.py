"""The one back-off every retry uses: jittered, growing, capped."""

from __future__ import annotations

import random
from collections.abc import Iterator


def delays(first: float = 0.05, cap: float = 1.0, factor: float = 2.0) -> Iterator[float]:
    """Seconds to sleep before each next attempt: `first`, then `factor` times longer, at most
    `cap`, each scaled by a random 0.5-1.5 so that many clients retrying do not move in step."""
    delay = first
    while True:
        yield delay * random.uniform(0.5, 1.5)  # noqa: S311 (jitter, not a secret)
        delay = min(delay * factor, cap)
