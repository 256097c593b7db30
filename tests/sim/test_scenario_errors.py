"""A scenario that does not fit its grid gets an error naming the field; the CLI says so."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from flexledger.cli import app
from flexledger.powerflow import GridFileError
from flexledger.scenario import ScenarioError, load_scenario
from sim import ScenarioCheckError, World
from tests.sim.conftest import SMALL

TEXT = SMALL.read_text("utf-8")


def _write(tmp_path: Path, old: str, new: str) -> Path:
    assert old in TEXT, old
    path = tmp_path / "bad.toml"
    path.write_text(TEXT.replace(old, new, 1), "utf-8")
    return path


@pytest.mark.parametrize(
    ("old", "new", "error", "needle"),
    [
        ('kind = "hvac"', 'kind = "jacuzzi"', ScenarioError, "pods.4.resources.0.kind"),
        ("p_max_kw = 250.0", "p_max_kw = -250.0", ScenarioError, "pods.0.resources.0.p_max_kw"),
        ("bus = 452", "bus = 9999", ScenarioCheckError, "pods.0.bus"),
        ("loads = [178]", "loads = [201]", ScenarioCheckError, "pods.0.loads.0"),
        ("sgen = 137", "sgen = 128", ScenarioCheckError, "pods.0.resources.0.sgen"),
        ('id = "vc-95"\nbus = 95', 'id = "vc-95"\nbus = 9999', ScenarioCheckError,
         "sensors.0.bus"),
        ("element = 90", "element = 124", ScenarioCheckError, "events.0.element"),
        ("elements = [164]", "elements = [9999]", GridFileError, "grid.changes.0"),
    ],
)  # fmt: skip
def test_a_malformed_scenario_is_refused_naming_the_field(
    tmp_path: Path, old: str, new: str, error: type[Exception], needle: str
) -> None:
    path = _write(tmp_path, old, new)
    with pytest.raises(error) as info:
        world = World(path)
        _ = world.sensors
    assert needle in str(info.value)
    if error is ScenarioError:
        assert str(path) in str(info.value)


def test_the_cli_checks_a_scenario(tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["scenario", "check", str(SMALL)])
    assert ok.exit_code == 0, ok.output
    assert "ok" in ok.output and "10" in ok.output
    bad = runner.invoke(
        app, ["scenario", "check", str(_write(tmp_path, "bus = 452", "bus = 9999"))]
    )
    assert bad.exit_code == 2 and "pods.0.bus" in bad.output


def test_the_cli_residual_proof_says_what_differs(tmp_path: Path) -> None:
    """With a narrower remedy space than the file was proven on (OLTC at -1, 0, +1 only, no
    MV/LV taps, no ties), the DSO solves less: the proof finds more remaining than expected
    and the command says so (exit 1); the JSON carries the per-MTU proof."""
    import json
    import re

    text = TEXT.replace("tap_min = -9\ntap_max = 9", "tap_min = -1\ntap_max = 1", 1)
    body = r"(?:[a-z_][^\n]*\n)*"  # the table's key = value lines
    text = re.sub(r"\n\[\[remedies\.tap_changers\]\]\ntrafos = \[2\]\n" + body, "\n", text)
    text = re.sub(r"\n\[\[remedies\.tie_switches\]\]\n" + body, "\n", text)
    path = tmp_path / "narrow.toml"
    path.write_text(text, "utf-8")
    assert len(load_scenario(path).remedies.tie_switches) == 0
    result = CliRunner().invoke(app, ["scenario", "residual", str(path), "--json"])
    assert result.exit_code == 1, result.output
    proof = json.loads(result.output[: result.output.rindex("}") + 1])
    assert proof["points"] == 3
    assert any(p.startswith("remains but not expected") for p in proof["problems"])
    assert {m["mtu"] for m in proof["mtus"]} >= set(proof["residual_mtus"])
