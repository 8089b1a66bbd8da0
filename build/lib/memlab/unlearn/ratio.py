"""The one check of ``unlearn.ratio`` shared by neuron and weight methods and the runner."""

from __future__ import annotations

import math
from typing import Any

from memlab.errors import ConfigError


def check_ratio(ratio: Any, of: str = "") -> float:
    """``ratio`` as a float in [0, 1], or one clear line (``of`` names what it is a fraction of)."""
    try:
        value = float(ratio)
    except (TypeError, ValueError):
        value = math.nan
    if not 0.0 <= value <= 1.0:
        what = f" of {of}" if of else ""
        raise ConfigError(f"unlearn.ratio={ratio} must be a fraction{what} in [0, 1]")
    return value
