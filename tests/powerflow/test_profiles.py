"""One day of SimBench profiles as per-MTU injections."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandapower as pp
import pytest

from flexledger.powerflow import Injections, profile_steps, profiles_for_day

from .conftest import DAY


def test_a_day_of_profiles(net: pp.pandapowerNet, day: Injections) -> None:
    assert profile_steps(net) == 35_136
    assert day.n_scenarios == 96
    assert day.load_p_mw is not None and day.load_p_mw.shape == (96, len(net.load))
    assert day.sgen_p_mw is not None and day.sgen_p_mw.shape == (96, len(net.sgen))
    assert day.storage_p_mw is not None and day.storage_p_mw.shape == (96, len(net.storage))
    assert day.sgen_q_mvar is None  # SimBench has no sgen q profile: the table value stands
    assert day.steps is not None and day.steps[0] == DAY * 96 and day.steps[-1] == DAY * 96 + 95
    # SimBench storages (PV + battery) only inject: negative in load convention
    assert (day.storage_p_mw <= 0).all() and day.storage_p_mw.min() < 0
    # cached: the same object again, and a date maps to the same day of 2016
    assert profiles_for_day(net, DAY) is day
    same = profiles_for_day(net, date(2031, 7, 25))
    assert same.load_p_mw is not None
    np.testing.assert_array_equal(same.load_p_mw, day.load_p_mw)


def test_window_outside_the_year(net: pp.pandapowerNet) -> None:
    with pytest.raises(ValueError, match="outside"):
        profiles_for_day(net, 366)
    assert profiles_for_day(net, start_step=35_136 - 4, n_steps=4).n_scenarios == 4
