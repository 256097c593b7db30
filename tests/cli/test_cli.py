"""The CLI end to end on the embedded default: demo, then the participants' read commands."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from flexledger.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A home with a deployed chain kept in its state file (the whole demo's day and the read
    commands on the state it leaves are in tests/e2e)."""
    home = tmp_path_factory.mktemp("home")
    result = runner.invoke(
        app, ["--home", str(home), "deploy"], env={"FLEX_RPC_URL": "", "COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    return home, result.output


def test_deploy_leaves_the_chain_and_the_address_book(demo_home: tuple[Path, str]) -> None:
    home, _ = demo_home
    assert (home / "addresses.json").is_file() and (home / "chain" / "state.json").is_file()
    env = {"FLEX_RPC_URL": "", "COLUMNS": "200"}
    status = runner.invoke(app, ["--home", str(home), "chain", "status"], env=env)
    assert status.exit_code == 0, status.output


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
