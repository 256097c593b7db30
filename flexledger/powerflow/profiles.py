"""SimBench time series as per-MTU load and generation scenarios."""

from __future__ import annotations

import copy
import threading
import warnings
import weakref
from collections import OrderedDict
from datetime import date
from typing import Any

import numpy as np
import pandapower as pp
import pandas as pd

from flexledger.powerflow.injections import Injections
from flexledger.time import MTUS_PER_DAY

__all__ = ["PROFILE_YEAR", "clear_profile_cache", "profile_steps", "profiles_for_day"]

PROFILE_YEAR = 2016
"""SimBench profiles are one year of quarter-hours starting 2016-01-01 00:00 (35,136 steps)."""

_CACHE_SIZE = 16
_cache: OrderedDict[tuple[int, int, int], tuple[weakref.ReferenceType[Any], Injections]] = (
    OrderedDict()
)
_lock = threading.Lock()

_FIELDS = {
    ("load", "p_mw"): "load_p_mw",
    ("load", "q_mvar"): "load_q_mvar",
    ("sgen", "p_mw"): "sgen_p_mw",
    ("sgen", "q_mvar"): "sgen_q_mvar",
    ("storage", "p_mw"): "storage_p_mw",
    ("storage", "q_mvar"): "storage_q_mvar",
}


def profile_steps(net: pp.pandapowerNet) -> int:
    """Number of quarter-hour steps in the net's SimBench profiles (0 if it has none)."""
    profiles = getattr(net, "profiles", None)
    if not isinstance(profiles, dict) or "load" not in profiles:
        return 0
    return len(profiles["load"])


def _day_index(day: int | date) -> int:
    if isinstance(day, date):
        # the same calendar day in the profile year (a leap year, so 29 February exists)
        return date(PROFILE_YEAR, day.month, day.day).timetuple().tm_yday - 1
    return int(day)


def profiles_for_day(
    net: pp.pandapowerNet,
    day: int | date = 0,
    n_steps: int = MTUS_PER_DAY,
    *,
    start_step: int | None = None,
) -> Injections:
    """Per-MTU load, sgen and storage powers of one day of a SimBench grid's profiles.

    The absolute values come from ``simbench.get_absolute_values(net,
    profiles_instead_of_study_cases=True)`` (profile × rated power of each element), computed for
    the requested steps only and cached per net and window (LRU of 16), so asking for the same
    day again is free. Elements without a profile, and quantities SimBench has no profile for
    (sgen and storage ``q_mvar``), keep the table value (``None`` in the result).

    Args:
        net: a SimBench net (with ``net.profiles``).
        day: day of the profile year, 0 = 1 January 2016; or a date, mapped to the same month and
            day of 2016 (the season matches; the weekday is 2016's, not the date's).
        n_steps: number of quarter-hours (96 = one day).
        start_step: first quarter-hour of the profile year instead of ``day``.

    Returns:
        :class:`Injections` ``[n_steps, element]`` in the tables' row order, pandapower units and
        signs (loads and storages in load convention: SimBench storages, PV plus battery, give
        negative values = injection), with ``steps`` = the quarter-hour indices in the year.

    Raises:
        ValueError: the net has no profiles, or the window runs past the end of the year.

    The cache is keyed by the net object; call :func:`clear_profile_cache` after changing a
    net's profiles or rated powers in place.
    """
    total = profile_steps(net)
    if total == 0:
        raise ValueError("the net has no SimBench profiles (net.profiles['load'] is missing)")
    start = int(start_step) if start_step is not None else _day_index(day) * MTUS_PER_DAY
    if n_steps < 1 or start < 0 or start + n_steps > total:
        raise ValueError(
            f"steps {start}..{start + n_steps - 1} are outside the profiles' 0..{total - 1}"
        )
    key = (id(net), start, n_steps)
    with _lock:
        hit = _cache.get(key)
        if hit is not None and hit[0]() is net:
            _cache.move_to_end(key)
            return hit[1]
    injections = _compute(net, start, n_steps)
    with _lock:
        _cache[key] = (weakref.ref(net), injections)
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return injections


def clear_profile_cache() -> None:
    """Forget every cached day of profiles."""
    with _lock:
        _cache.clear()


def _compute(net: pp.pandapowerNet, start: int, n_steps: int) -> Injections:
    import simbench

    window = copy.copy(net)  # shallow: only the profiles are replaced by the window's rows
    window.profiles = {
        name: table.iloc[start : start + n_steps] for name, table in net.profiles.items()
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        absolute = simbench.get_absolute_values(window, profiles_instead_of_study_cases=True)
    fields: dict[str, Any] = {}
    for (table, column), name in _FIELDS.items():
        frame = absolute.get((table, column))
        if frame is None or table not in net or len(net[table]) == 0 or frame.shape[1] == 0:
            continue
        frame = frame.reindex(columns=net[table].index)
        own = pd.to_numeric(net[table][column], errors="coerce").fillna(0.0)
        fields[name] = frame.fillna(own).to_numpy(dtype=np.float64)
    return Injections(**fields, steps=np.arange(start, start + n_steps, dtype=np.int64))
