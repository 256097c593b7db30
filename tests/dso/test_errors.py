"""Clear errors for a malformed grid file and a POD mapped to something not in the grid."""

from __future__ import annotations

from pathlib import Path

import pandapower as pp
import pytest

from dso import DsoGrid, PodInfo, PodMappingError
from flexledger.powerflow import GridFileError
from flexledger.scenario import ScenarioError, load_scenario, parse_scenario


def _small_net() -> pp.pandapowerNet:
    net = pp.create_empty_network()
    b0, b1, b2 = (pp.create_bus(net, vn_kv=20.0) for _ in range(3))
    pp.create_ext_grid(net, b0)
    pp.create_line(net, b0, b1, 1.0, "NA2XS2Y 1x95 RM/25 12/20 kV")
    pp.create_line(net, b1, b2, 1.0, "NA2XS2Y 1x95 RM/25 12/20 kV")
    pp.create_load(net, b1, p_mw=0.5)
    pp.create_load(net, b2, p_mw=0.3)
    pp.create_sgen(net, b2, p_mw=0.2)
    return net


def _scenario(source: str) -> dict[str, object]:
    return {
        "name": "broken",
        "delivery_day": "2026-07-25",
        "grid": {"source": source, "profile_day": 10},
        "aggregators": [{"name": "a", "key": "dev:aggregator:1"}],
        "pods": [{"code": "IT001E00000001", "bus": 1, "aggregator": "a", "owner": "dev:o"}],
    }


def test_malformed_grid_file(tmp_path: Path) -> None:
    bad = tmp_path / "grid.json"
    bad.write_text('{"_class": "pandapowerNet", "bus": ')
    with pytest.raises(GridFileError, match=r"grid\.json: not valid JSON"):
        DsoGrid.from_scenario(parse_scenario(_scenario(str(bad))))
    net = _small_net()
    net.line.at[1, "to_bus"] = 999
    broken = tmp_path / "broken.json"
    pp.to_json(net, str(broken))
    with pytest.raises(GridFileError, match="line 1: to_bus 999 is not a bus"):
        DsoGrid.from_scenario(parse_scenario(_scenario(str(broken))))
    with pytest.raises(GridFileError, match="no such grid file"):
        DsoGrid.from_scenario(parse_scenario(_scenario(str(tmp_path / "missing.json"))))


def test_relative_grid_file_is_read_next_to_the_scenario(tmp_path: Path) -> None:
    pp.to_json(_small_net(), str(tmp_path / "grid.json"))
    toml = tmp_path / "s.toml"
    toml.write_text(
        'name = "s"\ndelivery_day = 2026-07-25\n'
        '[grid]\nsource = "grid.json"\nprofile_day = 10\n'
        '[[aggregators]]\nname = "a"\nkey = "dev:aggregator:1"\n'
        '[[pods]]\ncode = "IT001E00000001"\nbus = 2\nloads = [1]\nsgens = [0]\n'
        'aggregator = "a"\nowner = "dev:o"\n'
    )
    grid = DsoGrid.from_scenario(toml)
    assert grid.pods["IT001E00000001"].bus == 2
    toml.write_text("name = ")
    with pytest.raises(ScenarioError, match="not valid TOML"):
        load_scenario(toml)


@pytest.mark.parametrize(
    ("pod", "message"),
    [
        (
            PodInfo("IT001E00000001", bus=99),
            r"pods\.0 \(IT001E00000001\): bus 99 is not in the grid",
        ),
        (PodInfo("IT001E00000001", bus=1, loads=(7,)), "load 7 is not in the grid"),
        (
            PodInfo("IT001E00000001", bus=1, loads=(1,)),
            "load 1 is at bus 2, not at the POD's bus 1",
        ),
    ],
)
def test_pod_mapped_to_what_is_not_there(pod: PodInfo, message: str) -> None:
    with pytest.raises(PodMappingError, match=message):
        DsoGrid.from_net(_small_net(), [pod])


def test_element_claimed_by_two_pods() -> None:
    pods = [
        PodInfo("IT001E00000001", bus=2, loads=(1,)),
        PodInfo("IT001E00000002", bus=2, loads=(1,)),
    ]
    with pytest.raises(PodMappingError, match="already belongs to POD IT001E00000001"):
        DsoGrid.from_net(_small_net(), pods)
