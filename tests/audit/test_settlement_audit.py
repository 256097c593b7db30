"""The settlement auditor on a settled session of a real market, SCD and chain: it agrees with an
honest settlement, and finds a sample or a baseline changed in the SCD after settlement."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from audit.settlement import audit_settlement
from flexledger.transport.http import SyncSignedHttpClient
from node.contracts import FlexContracts
from scd.db import baselines as scd_baselines
from scd.db import samples as scd_samples
from tests.market.helpers import POD1, POD2, POD3, T40
from tests.market.settlement_helpers import LoopHttp, settlement_world, wait_windows

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(120)]


async def test_audit_agrees_then_finds_tampering(contracts: FlexContracts, tmp_path: Path) -> None:
    async with settlement_world(contracts, tmp_path) as w:
        await w.day_ahead()
        power = {}
        for pod in (POD1, POD2, POD3):
            awards = w.awards_of(pod, T40)
            power[pod] = sum(a.power_w for a in awards)
            for a in awards:
                await w.order(a)
        await w.nodes.window(POD1, T40, 80_000 - power[POD1])
        await w.nodes.window(POD2, T40, 80_000 - power[POD2], alter=frozenset({3}))
        await w.nodes.window(POD3, T40, 80_000 - power[POD3] // 2)
        await wait_windows(
            w.scd, {(POD1, T40): "certified", (POD2, T40): "mismatch", (POD3, T40): "certified"}
        )
        w.approve()
        assert (await w.settle()).status_code == 200
        assert w.market.http is not None
        market = LoopHttp(w.market.http, asyncio.get_running_loop())
        scd = SyncSignedHttpClient(w.scd.url)

        def audit() -> Any:
            return audit_settlement(market, scd, contracts, "DA-1")

        report = await asyncio.to_thread(audit)
        assert report.ok, [f.__dict__ for f in report.failures()]
        assert any(r["amount_cents"] > 0 for r in report.recomputed.values())
        assert any("mismatch" in r["why"] for r in report.recomputed.values())

        # a sample of POD1 changed in the SCD after settlement: its window no longer hashes
        # to the anchored root, so the paid award should not have been
        assert w.scd.service is not None
        engine = w.scd.service.engine
        with engine.begin() as conn:
            conn.execute(
                update(scd_samples)
                .where(scd_samples.c.pod == POD1, scd_samples.c.t_s == T40 + 40)
                .values(p_w=scd_samples.c.p_w - 5_000)
            )
        report = await asyncio.to_thread(audit)
        assert not report.ok
        assert any(POD1 in f.check for f in report.failures()), report.failures()
        with engine.begin() as conn:
            conn.execute(
                update(scd_samples)
                .where(scd_samples.c.pod == POD1, scd_samples.c.t_s == T40 + 40)
                .values(p_w=scd_samples.c.p_w + 5_000)
            )
        assert (await asyncio.to_thread(audit)).ok

        # the baseline changed in the SCD after its root was committed
        with engine.begin() as conn:
            row = conn.execute(scd_baselines.select()).one()
            env = json.loads(row.envelope)
            env["message"]["values"][0]["e_wh"] += 1
            conn.execute(
                update(scd_baselines)
                .where(scd_baselines.c.hash == row.hash)
                .values(envelope=json.dumps(env))
            )
        report = await asyncio.to_thread(audit)
        assert not report.ok
        scd.close()
