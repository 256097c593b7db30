"""The DSO's test grids: the default SimBench grid loaded once, the two golden cases built on it
(``tests/data/dso_*/input.json``, see ``tests/dso/make_cases.py``), and their assessments on the
scenario's true profiles."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandapower as pp
import pytest

from dso import DsoGrid, GridAssessment, assess
from flexledger.powerflow import DEFAULT_GRID, Injections, load_grid
from flexledger.scenario import Scenario, parse_scenario
from node.eip712 import Domain
from node.keys import dev_account
from node.signing import LocalSigner

DATA = Path(__file__).resolve().parents[1] / "data"
DOMAIN = Domain(chain_id=31337, verifying_contract="0x" + "22" * 20)


def load_case(name: str) -> Scenario:
    return parse_scenario(json.loads((DATA / name / "input.json").read_text()), source=name)


def expected(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((DATA / name / "expected.json").read_text())
    return doc


@pytest.fixture(scope="session")
def base_net() -> pp.pandapowerNet:
    return load_grid(DEFAULT_GRID)


@pytest.fixture(scope="session")
def pv_case() -> Scenario:
    return load_case("dso_pv_feeder")


@pytest.fixture(scope="session")
def pv_grid(base_net: pp.pandapowerNet, pv_case: Scenario) -> DsoGrid:
    return DsoGrid.from_scenario(pv_case, net=base_net)


@pytest.fixture(scope="session")
def pv_truth(pv_grid: DsoGrid) -> Injections:
    return pv_grid.profile_injections()


@pytest.fixture(scope="session")
def pv_assessment(pv_grid: DsoGrid, pv_truth: Injections, pv_case: Scenario) -> GridAssessment:
    return assess(pv_grid, pv_truth, day_s=pv_case.day_s)


@pytest.fixture(scope="session")
def tap_case() -> Scenario:
    return load_case("dso_tap_solves")


@pytest.fixture(scope="session")
def tap_grid(base_net: pp.pandapowerNet, tap_case: Scenario) -> DsoGrid:
    return DsoGrid.from_scenario(tap_case, net=base_net)


@pytest.fixture(scope="session")
def dso_signer() -> LocalSigner:
    return LocalSigner(dev_account("dso"), DOMAIN)


@pytest.fixture(scope="session")
def market_signer() -> LocalSigner:
    return LocalSigner(dev_account("market"), DOMAIN)
