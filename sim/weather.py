"""Outdoor temperature of a day: what drives heat pumps and air conditioning in the world."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from flexledger.scenario import WeatherSpec
from flexledger.time import DAY_S

__all__ = ["temperature_c"]


def temperature_c(
    spec: WeatherSpec, seconds_of_day: NDArray[np.float64], offset_c: float = 0.0
) -> NDArray[np.float64]:
    """Outdoor temperature, °C, at these seconds of the day (UTC).

    A cosine between ``spec.t_min_c`` and ``spec.t_max_c`` peaking at ``spec.peak_hour``, shifted
    by ``offset_c`` (a history day's deviation from the delivery day).
    """
    mean = (spec.t_max_c + spec.t_min_c) / 2
    amplitude = (spec.t_max_c - spec.t_min_c) / 2
    phase = 2 * np.pi * (np.asarray(seconds_of_day, dtype=np.float64) / DAY_S - spec.peak_hour / 24)
    return np.asarray(mean + offset_c + amplitude * np.cos(phase), dtype=np.float64)
