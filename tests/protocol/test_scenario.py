"""The scenario schema: a malformed file gets an error naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from flexledger.scenario import ScenarioError, load_scenario, parse_scenario

MINIMAL = """
name = "tiny"
delivery_day = 2026-11-29
[grid]
source = "1-MVLV-semiurb-5.220-2-sw"
profile_day = 180
[[aggregators]]
name = "aggregator:1"
key = "dev:aggregator:1"
[[pods]]
code = "IT001E00000001"
bus = 12
aggregator = "aggregator:1"
owner = "dev:owner:1"
[[pods.resources]]
id = "bat-1"
kind = "battery"
p_max_kw = 5
e_max_kwh = 10
"""


def test_minimal_scenario_loads(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(MINIMAL)
    s = load_scenario(path)
    assert s.pods[0].resources[0].e_max_kwh == 10
    assert s.day_s % 86_400 == 0 and s.grid.vm_max_pu == 1.05


@pytest.mark.parametrize(
    ("old", "new", "needle"),
    [
        ("bus = 12", "bus = -1", "pods.0.bus"),
        ('kind = "battery"', 'kind = "fusion"', "pods.0.resources.0.kind"),
        (
            'aggregator = "aggregator:1"\nowner',
            'aggregator = "nobody"\nowner',
            "not in aggregators",
        ),
        ("profile_day = 180", "profile_day = 180\nsurprise = 1", "grid.surprise"),
        ('code = "IT001E00000001"', 'code = "not a pod"', "pods.0.code"),
    ],
)
def test_malformed_scenario_names_the_field(
    old: str, new: str, needle: str, tmp_path: Path
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(MINIMAL.replace(old, new, 1))
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert needle in str(info.value) and str(path) in str(info.value)


def test_not_toml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "x.toml"
    bad.write_text("name = ")
    with pytest.raises(ScenarioError, match="not valid TOML"):
        load_scenario(bad)
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "missing.toml")
    with pytest.raises(ScenarioError, match="pods"):
        parse_scenario({"name": "x"})
