"""The auditor against a real SCD (HTTP), chain and database: a clean store passes; any
change, drop, insert or reorder of stored samples — made in the database behind the SCD's
back — is flagged in exactly the windows it touched."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, delete, insert, select, update
from typer.testing import CliRunner

from audit import audit_measurements, check_proof
from flexledger.cli import app as cli
from flexledger.messages import id32
from flexledger.transport import SyncSignedHttpClient, Topics, free_port
from scd.api import create_app
from scd.db import samples as samples_table
from scd.service import ScdService
from tests.scd.conftest import (  # fixtures of the SCD tests, used here too
    PODS,
    Chain,
    chain,
    db,
    devnet,
    make_service,
    settings_for,
    window,
)
from tests.scd.helpers import manifest, samples_for, sign_each, window_root
from tests.transport.service import serve

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(120)]
__all__ = ["chain", "db", "devnet", "window"]
POD = PODS[3]
N = 12  # samples per window (a Light Node anchors what its window holds)
ANCHORED = 4


@dataclass
class Scd:
    service: ScdService
    url: str
    windows: list[int]
    from_block: int


@pytest.fixture
async def scd(chain: Chain, db: Any, tmp_path: Path, window: int) -> AsyncIterator[Scd]:
    """An SCD holding five windows of POD: four anchored, one not."""
    from_block = chain.w3.eth.block_number + 1
    # the embedded default's layout (<FLEX_HOME>/scd/scd.sqlite): the CLI test reads it offline
    home = tmp_path / "scd"
    home.mkdir()
    service = make_service(chain, settings_for(db, home, Topics("audit/flex"), None))
    await service.start()
    assert service.ingestor is not None and service.certifier is not None
    device = chain.device(POD)
    starts = [window + 900 * k for k in range(ANCHORED + 1)]
    for k, start in enumerate(starts):
        batch = samples_for(start, range(N * k, N * k + N))
        for p in sign_each(device, POD, batch):
            service.ingestor.submit(f"audit/flex/pod/{POD}/measure", p)
        if k < ANCHORED:
            m = manifest(device, POD, start, batch).model_dump_json().encode()
            await service.certifier.on_manifest(f"audit/flex/pod/{POD}/manifest", m)
            await asyncio.to_thread(
                chain.c.anchor.anchor,
                chain.devices[POD],
                id32(POD),
                start,
                window_root(POD, batch),
                N,
            )
    await service.ingestor.drain()
    await service.certifier.sync()
    await service.certifier.idle()
    with serve(create_app(service=service, run_service=False)) as url:
        yield Scd(service, url, starts, from_block)
    await service.stop()
    service.close()


def _rows(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(samples_table))]


def _restore(engine: Engine, rows: list[dict[str, Any]]) -> None:
    with engine.begin() as conn:
        conn.execute(delete(samples_table))
        conn.execute(insert(samples_table), rows)


def _audit(chain: Chain, scd: Scd) -> dict[int, Any]:
    with SyncSignedHttpClient(scd.url) as http:
        report = audit_measurements(http, chain.c, pods=[POD], from_block=scd.from_block)
    return {w.window_start_s: w for w in report.windows}


op = st.tuples(
    st.sampled_from(["change", "drop", "insert", "reorder"]),
    st.integers(0, ANCHORED - 1),  # window
    st.integers(0, N - 1),  # sample in it
    st.integers(1, 5000),  # a non-zero change, or an offset
)


def _tamper(engine: Engine, windows: list[int], ops: list[tuple[str, int, int, int]]) -> None:
    with engine.begin() as conn:
        for j, (kind, k, i, d) in enumerate(ops):
            rows = list(
                conn.execute(
                    select(samples_table)
                    .where(
                        samples_table.c.t_s >= windows[k], samples_table.c.t_s < windows[k] + 900
                    )
                    .order_by(samples_table.c.seq)
                )
            )
            if not rows:
                continue
            r = rows[i % len(rows)]
            key = (samples_table.c.pod == r.pod) & (samples_table.c.seq == r.seq)
            if kind == "change":
                conn.execute(update(samples_table).where(key).values(p_w=r.p_w + d))
            elif kind == "drop":
                conn.execute(delete(samples_table).where(key))
            elif kind == "insert":
                conn.execute(
                    insert(samples_table).values(
                        pod=r.pod,
                        seq=100_000 + j * 10_000 + d,
                        t_s=windows[k] + 4 * i + 2,
                        p_w=d,
                        q_var=0,
                        v_mv=230_000,
                        batch_id=r.batch_id,
                    )
                )
            elif len(rows) > 1:  # reorder: two samples swap their sequence numbers
                other = rows[(i + 1 + d) % len(rows)]
                if other.seq == r.seq:
                    continue
                okey = (samples_table.c.pod == other.pod) & (samples_table.c.seq == other.seq)
                conn.execute(update(samples_table).where(key).values(seq=-1))
                conn.execute(update(samples_table).where(okey).values(seq=r.seq))
                conn.execute(
                    update(samples_table)
                    .where((samples_table.c.pod == r.pod) & (samples_table.c.seq == -1))
                    .values(seq=other.seq)
                )


def _touched(
    before: list[dict[str, Any]], after: list[dict[str, Any]], windows: list[int]
) -> set[int]:
    def content(rows: list[dict[str, Any]], start: int) -> set[tuple[Any, ...]]:
        return {
            (r["seq"], r["t_s"], r["p_w"], r["q_var"], r["v_mv"])
            for r in rows
            if start <= r["t_s"] < start + 900
        }

    return {w for w in windows if content(before, w) != content(after, w)}


async def test_clean_store_passes_and_tampering_is_flagged_exactly(chain: Chain, scd: Scd) -> None:
    clean = await asyncio.to_thread(_audit, chain, scd)
    statuses = [clean[w].status for w in scd.windows]
    assert statuses == ["certified"] * ANCHORED + ["not_anchored"]
    original = _rows(scd.service.engine)

    @settings(
        max_examples=15,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(ops=st.lists(op, min_size=1, max_size=3))
    def check(ops: list[tuple[str, int, int, int]]) -> None:
        engine = scd.service.engine
        try:
            _tamper(engine, scd.windows, ops)
            touched = _touched(original, _rows(engine), scd.windows)
            report = _audit(chain, scd)
            flagged = {w for w, r in report.items() if r.status == "mismatch"}
            assert flagged == touched, (ops, {w: report[w].line() for w in flagged | touched})
            if len(ops) == 1 and touched:
                kind, k, i, _ = ops[0]
                r = report[scd.windows[k]]
                if kind == "drop":
                    assert len(r.missing) == 1 and not r.extra and not r.altered
                elif kind == "insert":
                    assert len(r.extra) == 1 and not r.missing and not r.altered
                elif kind == "change":
                    assert r.altered == [N * k + i] and not r.missing and not r.extra
                else:
                    assert len(r.altered) == 2
        finally:
            _restore(engine, original)

    await asyncio.to_thread(check)


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)  # the CLI once, on SQLite
async def test_cli_audit_and_proof(
    chain: Chain, scd: Scd, tmp_path: Path, devnet: Any, db: Any
) -> None:
    book = tmp_path / "addresses.json"
    chain.book.save(book)
    env = {
        "FLEX_RPC_URL": devnet.rpc_url,
        "FLEX_ADDRESS_BOOK": str(book),
        "FLEX_HOME": str(tmp_path),
    }
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(cli, list(args), env=env)

    result = await asyncio.to_thread(
        run,
        "audit",
        "measurements",
        "--pod",
        POD,
        "--scd-url",
        scd.url,
        "--from",
        str(scd.windows[0]),
        "--to",
        str(scd.windows[-1] + 900),
    )
    assert result.exit_code == 0, result.output
    assert result.output.count(" certified samples=") == ANCHORED
    assert "not_anchored" in result.output
    proof = await asyncio.to_thread(
        run, "audit", "proof", "--pod", POD, "--t", str(scd.windows[1] + 8), "--scd-url", scd.url
    )
    assert proof.exit_code == 0, proof.output
    assert "MeasurementAnchor.verifySample" in proof.output

    # nothing answers at --scd-url: the SCD is served from its SQLite file under FLEX_HOME
    offline = await asyncio.to_thread(
        run,
        "audit",
        "measurements",
        "--pod",
        POD,
        "--scd-url",
        f"http://127.0.0.1:{free_port()}",
        "--from",
        str(scd.windows[0]),
        "--to",
        str(scd.windows[-1] + 900),
    )
    assert offline.exit_code == 0, offline.output
    assert offline.output.count(" certified samples=") == ANCHORED
    offline_proof = await asyncio.to_thread(
        run,
        "audit",
        "proof",
        "--pod",
        POD,
        "--t",
        str(scd.windows[0] + 4),
        "--scd-url",
        f"http://127.0.0.1:{free_port()}",
    )
    assert offline_proof.exit_code == 0, offline_proof.output

    original = _rows(scd.service.engine)
    _tamper(scd.service.engine, scd.windows, [("change", 2, 3, 1)])
    try:
        result = await asyncio.to_thread(
            run, "audit", "measurements", "--pod", POD, "--scd-url", scd.url
        )
        assert result.exit_code == 1
        assert f"{POD} {scd.windows[2]} mismatch" in result.output
        with SyncSignedHttpClient(scd.url) as http:
            checked = check_proof(http, chain.c, POD, scd.windows[2] + 12)
        assert not checked.ok  # the SCD's tree no longer leads to the anchored root
    finally:
        _restore(scd.service.engine, original)
