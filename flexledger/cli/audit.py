"""``flexledger audit measurements`` and ``flexledger audit proof``."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated

import typer
from rich.console import Console

__all__ = ["audit_measurements_command", "audit_proof_command"]

console = Console()

ScdUrl = Annotated[str, typer.Option(envvar="FLEX_SCD_URL", help="Base URL of the SCD API.")]


def _time_s(value: str | None) -> int | None:
    """Epoch seconds, or an ISO 8601 time (UTC unless it says otherwise)."""
    if value is None:
        return None
    if value.lstrip("-").isdigit():
        return int(value)
    when = datetime.fromisoformat(value)
    if when.tzinfo is None:
        from datetime import UTC

        when = when.replace(tzinfo=UTC)
    return int(when.timestamp())


def audit_measurements_command(
    pod: Annotated[
        list[str] | None, typer.Option("--pod", help="POD code (repeat; default: every POD).")
    ] = None,
    from_: Annotated[
        str | None, typer.Option("--from", help="First window start: epoch s or ISO time.")
    ] = None,
    to: Annotated[str | None, typer.Option("--to", help="End (exclusive): epoch s or ISO.")] = None,
    scd_url: ScdUrl = "http://127.0.0.1:8001",
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per window.")] = False,
) -> None:
    """Check every window's samples (through the SCD API) against its root on chain; print
    certified / mismatch (which samples) / not anchored per window; exit 1 on any mismatch."""
    from audit.measurements import audit_measurements
    from flexledger.settings import ChainSettings, HomeSettings
    from flexledger.stack import open_chain
    from flexledger.stack.state import served_from_state
    from flexledger.transport import SyncSignedHttpClient
    from node.addressbook import AddressBook

    home = HomeSettings().home
    with (
        open_chain(home, chain=ChainSettings()) as chain,
        served_from_state(chain, home, scd=scd_url) as urls,
        SyncSignedHttpClient(urls.scd or scd_url, timeout_s=60) as scd,
    ):
        book = AddressBook.load(chain.book_path)
        report = audit_measurements(
            scd,
            chain.contracts(),
            pods=pod or None,
            from_s=_time_s(from_),
            to_s=_time_s(to),
            from_block=book.deploy_block,
        )
    for w in report.windows:
        if as_json:
            print(json.dumps(w.__dict__))
        else:
            colour = {"certified": "green", "mismatch": "red"}.get(w.status, "yellow")
            console.print(f"[{colour}]{w.line()}[/]", highlight=False)
    summary = ", ".join(f"{n} {k}" for k, n in sorted(report.counts().items())) or "no windows"
    if not as_json:
        console.print(f"{len(report.windows)} windows: {summary}")
    if not report.ok:
        raise typer.Exit(1)


def audit_proof_command(
    pod: Annotated[str, typer.Option(help="POD code.")],
    t: Annotated[str, typer.Option("--t", help="The sample's time: epoch s or ISO time.")],
    scd_url: ScdUrl = "http://127.0.0.1:8001",
) -> None:
    """Print a sample's Merkle proof from the SCD and check it locally and with the contract's
    verify / verifyBatched view; exit 1 if any check fails."""
    from audit.proof import check_proof
    from flexledger.settings import ChainSettings, HomeSettings
    from flexledger.stack import open_chain
    from flexledger.stack.state import served_from_state
    from flexledger.transport import SyncSignedHttpClient

    t_s = _time_s(t)
    assert t_s is not None
    home = HomeSettings().home
    with (
        open_chain(home, chain=ChainSettings()) as chain,
        served_from_state(chain, home, scd=scd_url) as urls,
        SyncSignedHttpClient(urls.scd or scd_url, timeout_s=30) as scd,
    ):
        result = check_proof(scd, chain.contracts(), pod, t_s)
    print(json.dumps(result.proof, indent=2))
    for name, ok in result.checks.items():
        console.print(f"{'[green]ok[/]  ' if ok else '[red]FAIL[/]'} {name}", highlight=False)
    if not result.ok:
        raise typer.Exit(1)
