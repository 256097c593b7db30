"""Real Light Node agents (``lightnode``) against the real SCD, through a broker restart and an
SCD restart mid-run: every sample arrives exactly once, every window is certified, and the
nodes free their buffers on the SCD's verdicts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from flexledger.time import ScenarioClock
from flexledger.transport import MosquittoProcess, MqttClient, Topics, unique_client_id
from lightnode import CsvMeter, LightNode
from scd.db import samples, windows
from scd.service import ScdService
from scd.services.samples import ingest_stats
from tests.lightnode.conftest import CSV_PODS, METER_CSV, T0, fast_settings
from tests.lightnode.helpers import tick
from tests.scd.conftest import PODS, Chain, make_service, settings_for
from tests.scd.helpers import eventually

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(90)]
NODES = PODS[:3]
WINDOW_S = 900


def _node(
    chain: Chain, pod: str, i: int, clock: ScenarioClock, url: str, topics: Topics, home: Path
) -> LightNode:
    mqtt = MqttClient(url, unique_client_id(f"ln{i}", "test"), timeout_s=2.0, backoff_max_s=0.2)
    return LightNode(
        pod,
        account=chain.devices[pod],
        meter=CsvMeter(METER_CSV, pod, source_pod=CSV_PODS[i % len(CSV_PODS)]),
        clock=clock,
        mqtt=mqtt,
        contracts=chain.c,
        buffer=home / f"ln-{pod}.sqlite",
        domain=chain.c.roles.domain(),
        topics=topics,
        settings=fast_settings(manifest_retry_s=2.0),
        start_s=T0,
    )


def _per_pod(service: ScdService) -> dict[str, list[int]]:
    with service.engine.connect() as conn:
        rows = conn.execute(select(samples.c.pod, samples.c.seq).order_by(samples.c.seq)).all()
    out: dict[str, list[int]] = {p: [] for p in NODES}
    for pod, seq in rows:
        out[pod].append(int(seq))
    return out


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)  # the whole chain once, on SQLite
async def test_light_nodes_broker_and_scd_restarts(chain: Chain, db: Any, tmp_path: Path) -> None:
    w3 = chain.w3
    snapshot = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    topics = Topics("lnscd/flex")
    async with MosquittoProcess(persistence=True) as broker:
        settings = settings_for(db, tmp_path, topics, broker.url)
        service = make_service(chain, settings)
        await service.start()
        clock = ScenarioClock(T0)
        nodes = [
            _node(chain, pod, i, clock, broker.url, topics, tmp_path) for i, pod in enumerate(NODES)
        ]
        try:
            for node in nodes:
                await node.start()
            await tick(clock, 25)
            await eventually(lambda: all(len(v) == 26 for v in _per_pod(service).values()))

            # the broker goes away and comes back (its sessions and queues persisted)
            await broker.restart(down_s=0.3)
            await tick(clock, 25)
            await eventually(lambda: all(len(v) == 51 for v in _per_pod(service).values()), 20)

            # the SCD goes away; the nodes close and anchor the first window meanwhile
            await service.stop()
            service.close()
            await clock.advance(WINDOW_S - 4 * 50)
            await eventually(lambda: all(n.health.windows_anchored == 1 for n in nodes), 20)
            service = ScdService.from_settings(settings, contracts=chain.c, from_block=0)
            await service.start()

            await clock.advance(WINDOW_S)  # the whole second window, caught up in batches
            await eventually(lambda: all(n.health.windows_certified >= 2 for n in nodes), 40)
            per_pod = _per_pod(service)
            for seqs in per_pod.values():
                assert seqs == list(range(len(seqs))) and len(seqs) >= 2 * 225
            with service.engine.connect() as conn:
                certified = conn.execute(
                    select(func.count())
                    .select_from(windows)
                    .where(
                        windows.c.status == "certified",
                        windows.c.window_start_s.in_([T0, T0 + WINDOW_S]),
                    )
                ).scalar()
            assert certified == 2 * len(NODES)
            stats = ingest_stats(service.engine)
            assert stats["rejected_total"] == 0, stats
            assert stats["samples_stored"] == sum(len(v) for v in per_pod.values())
            for node in nodes:
                assert node.health.root_conflicts == 0 and node.health.windows_mismatch == 0
        finally:
            for node in nodes:
                await node.stop()
                await node.mqtt.close()
            await service.stop()
            service.close()
            w3.provider.make_request("evm_revert", [snapshot])  # type: ignore[arg-type]
