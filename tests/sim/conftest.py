"""Fixtures of the world's tests: the shipped scenarios, fresh worlds of the small one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from flexledger.scenario import Scenario, load_scenario
from sim import World

ROOT = Path(__file__).resolve().parents[2]
SMALL = ROOT / "scenarios" / "small.toml"
DEFAULT = ROOT / "scenarios" / "default.toml"

MakeWorld = Callable[..., World]


@pytest.fixture(scope="session")
def small_scenario() -> Scenario:
    return load_scenario(SMALL)


@pytest.fixture(scope="session")
def default_scenario() -> Scenario:
    return load_scenario(DEFAULT)


@pytest.fixture
def make_world(small_scenario: Scenario) -> MakeWorld:
    """A fresh world of the small scenario (or of another scenario given), each call."""

    def make(scenario: Scenario | None = None, **kw: object) -> World:
        return World(scenario or small_scenario, **kw)  # type: ignore[arg-type]

    return make


@pytest.fixture(scope="session")
def small_world(small_scenario: Scenario) -> World:
    """One world of the small scenario shared by tests that only read it (never activate)."""
    return World(small_scenario)
