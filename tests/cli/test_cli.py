"""The CLI end to end on the embedded default: demo, then the participants' read commands."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flexledger.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    home = tmp_path_factory.mktemp("home")
    result = runner.invoke(
        app, ["--home", str(home), "demo", "--pods", "3"], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    match = re.search(r"flexledger chain anchor (\S+) (\d+)", result.output)
    assert match, result.output
    return home, result.output


def test_demo_anchors_and_proves(demo_home: tuple[Path, str]) -> None:
    home, output = demo_home
    assert output.count("225") >= 3
    assert "on chain valid" in output and "off chain valid" in output
    assert "P+1 W: rejected" in output
    assert "MeasurementAnchorWindowTaken" in output
    assert "not built yet" in output
    assert (home / "addresses.json").is_file() and (home / "chain" / "state.json").is_file()


def test_read_commands_work_on_the_state_the_demo_left(demo_home: tuple[Path, str]) -> None:
    home, output = demo_home
    pod, window = re.search(r"flexledger chain anchor (\S+) (\d+)", output).groups()  # type: ignore[union-attr]
    env = {"FLEX_RPC_URL": "", "COLUMNS": "200"}
    shown = runner.invoke(app, ["--home", str(home), "chain", "anchor", pod, window], env=env)
    assert shown.exit_code == 0, shown.output
    assert re.search(r"root 0x[0-9a-f]{64}", shown.output)
    missing = runner.invoke(
        app, ["--home", str(home), "chain", "anchor", pod, str(int(window) + 900)], env=env
    )
    assert missing.exit_code == 1 and "not anchored" in missing.output
    balance = runner.invoke(app, ["--home", str(home), "chain", "balance", "dev:dso"], env=env)
    assert balance.exit_code == 0 and "100,000.00 EUR" in balance.output


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["chain", "settlement", "0x12"], "64 hex digits"),
        (["chain", "session", "DA-nowhere"], "no session"),
        (["deploy", "--key", "not-a-key"], "--key"),
    ],
)
def test_bad_input_gets_a_clear_error(
    demo_home: tuple[Path, str], args: list[str], needle: str
) -> None:
    home, _ = demo_home
    result = runner.invoke(
        app, ["--home", str(home), *args], env={"FLEX_RPC_URL": "", "COLUMNS": "200"}
    )
    assert result.exit_code == 2
    assert needle in result.output


def test_help_lists_every_command() -> None:
    result = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    for command in ("demo", "devnet", "deploy", "chain", "keys", "version"):
        assert command in result.output
