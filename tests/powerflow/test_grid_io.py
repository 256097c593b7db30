"""Loading grids: SimBench codes, pandapower JSON files, and clear errors for broken ones."""

from __future__ import annotations

import json
from pathlib import Path

import pandapower as pp
import pytest

from flexledger.powerflow import GridFileError, load_grid, normalise_taps


def small_net() -> pp.pandapowerNet:
    net = pp.create_empty_network()
    hv = pp.create_bus(net, 20.0)
    lv = pp.create_bus(net, 0.4)
    far = pp.create_bus(net, 0.4)
    pp.create_ext_grid(net, hv, vm_pu=1.02)
    pp.create_transformer(net, hv, lv, "0.4 MVA 20/0.4 kV")
    pp.create_line(net, lv, far, 0.2, "NAYY 4x150 SE")
    pp.create_load(net, far, p_mw=0.1, q_mvar=0.02)
    return net


def test_json_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "grid.json"
    pp.to_json(small_net(), str(path))
    net = load_grid(path)
    assert len(net.bus) == 3 and net.trafo.at[0, "tap_changer_type"] == "Ratio"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"_class": "pandapowerNet", ', r"not valid JSON \(.* line 1, column"),
        ("[1, 2, 3]", "not a pandapower net .* JSON list"),
        ('{"a": 1}', "not a pandapower net"),
    ],
)
def test_unreadable_files_say_why(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "grid.json"
    path.write_text(content)
    with pytest.raises(GridFileError, match=message):
        load_grid(path)


def test_broken_tables_are_named(tmp_path: Path) -> None:
    net = small_net()
    net.line.at[0, "to_bus"] = 999
    net.bus.at[1, "vn_kv"] = -0.4
    net.ext_grid.at[0, "in_service"] = False
    path = tmp_path / "broken.json"
    pp.to_json(net, str(path))
    with pytest.raises(GridFileError) as err:
        load_grid(path)
    text = str(err.value)
    assert str(path) in text
    assert "line 0: to_bus 999 is not a bus" in text
    assert "bus 1: vn_kv -0.4 is not a positive number" in text
    assert "no in-service external grid" in text


def test_missing_file_and_unknown_code(tmp_path: Path) -> None:
    with pytest.raises(GridFileError, match="no such grid file"):
        load_grid(tmp_path / "nowhere.json")
    with pytest.raises(GridFileError, match="known SimBench code"):
        load_grid("1-MVLV-semiurb-5.220-9-sw")


def test_untyped_tap_changers_get_ratio() -> None:
    net = small_net()
    net.trafo["tap_changer_type"] = None
    assert normalise_taps(net) == [0]
    assert net.trafo.at[0, "tap_changer_type"] == "Ratio"
    assert normalise_taps(net) == []


def test_json_of_another_class_is_refused(tmp_path: Path) -> None:
    # a pandapower JSON is an object tagged as a net; anything else is refused before parsing
    path = tmp_path / "fake.json"
    path.write_text(json.dumps({"_class": "DataFrame"}))
    with pytest.raises(GridFileError, match="'DataFrame'"):
        load_grid(path)
