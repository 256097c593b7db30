"""One SimBench grid, one batched model and one day of profiles for the whole session."""

from __future__ import annotations

import numpy as np
import pandapower as pp
import pytest

from flexledger.powerflow import (
    DEFAULT_GRID,
    BatchPowerFlow,
    Injections,
    load_grid,
    profiles_for_day,
)

DAY = 206
"""25 July 2016: the highest voltage of the profile year on the default grid (PV noon peak)."""


@pytest.fixture(scope="session")
def net() -> pp.pandapowerNet:
    """The default grid; tests must not change it (``runpp_loop`` works on a copy)."""
    return load_grid(DEFAULT_GRID)


@pytest.fixture(scope="session")
def grid(net: pp.pandapowerNet) -> BatchPowerFlow:
    return BatchPowerFlow(net)


@pytest.fixture(scope="session")
def day(net: pp.pandapowerNet) -> Injections:
    return profiles_for_day(net, DAY)


@pytest.fixture(scope="session")
def mtus(day: Injections) -> Injections:
    """Eight MTUs of the day: night, morning, the PV peak, afternoon and the evening peak."""
    assert day.sgen_p_mw is not None and day.load_p_mw is not None
    noon = int(np.argmax(day.sgen_p_mw.sum(axis=1)))
    evening = 68 + int(np.argmax(day.load_p_mw[68:].sum(axis=1)))
    picks = sorted({0, 16, 32, 40, noon, 60, evening, 92})
    assert len(picks) == 8
    return day.select(picks)
