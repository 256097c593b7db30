"""Ingest worker processes behind an MQTT shared subscription (``FLEX_SCD_INGEST_WORKERS``):
a private Mosquitto, PostgreSQL, the session's chain."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from flexledger.messages import Sample, id32
from flexledger.transport import (
    EmbeddedBroker,
    MosquittoProcess,
    MqttClient,
    Topics,
    unique_client_id,
)
from scd.db import ingest_counts, sample_batches, samples, windows
from scd.service import ScdService
from scd.services.samples import ingest_stats
from tests.scd.conftest import PODS, Chain, make_service, settings_for
from tests.scd.helpers import eventually, manifest, samples_for, sign_batch, sign_each, window_root

pytestmark = pytest.mark.asyncio(loop_scope="session")
POD_A, POD_B, POD_REVOKED = PODS[0], PODS[3], PODS[1]


@pytest.fixture(scope="module")
async def mosquitto() -> AsyncIterator[MosquittoProcess]:
    async with MosquittoProcess() as broker:
        yield broker


@pytest.fixture
def pg(db: tuple[str | None, str]) -> tuple[str | None, str]:
    if db[0] is None:
        pytest.skip("ingest workers need PostgreSQL (SQLite is covered by the fallback test)")
    return db


async def _publisher(url: str) -> MqttClient:
    client = MqttClient(url, unique_client_id("lnsim", "test"), timeout_s=5.0)
    await client.start(wait_s=5.0)
    return client


def _rows(service: ScdService) -> tuple[list[Any], int, dict[str, int]]:
    with service.engine.connect() as conn:
        stored = [
            tuple(r) for r in conn.execute(select(samples).order_by(samples.c.pod, samples.c.seq))
        ]
        batches = conn.execute(select(func.count()).select_from(sample_batches)).scalar()
        shards = {
            str(name): int(count)
            for name, count in conn.execute(select(ingest_counts.c.name, ingest_counts.c.count))
            if str(name).startswith("messages.accepted#")
        }
    return stored, int(batches or 0), shards


def _status(service: ScdService, pod: str, start: int) -> str | None:
    with service.engine.connect() as conn:
        return conn.execute(
            select(windows.c.status).where(
                (windows.c.pod == pod) & (windows.c.window_start_s == start)
            )
        ).scalar()


@pytest.mark.parametrize("db", ["postgres"], indirect=True)
async def test_two_workers_store_once_count_once_and_certify(
    chain: Chain,
    pg: tuple[str | None, str],
    tmp_path: Path,
    topics: Topics,
    window: int,
    mosquitto: MosquittoProcess,
) -> None:
    w3 = chain.w3
    snapshot = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    settings = settings_for(pg, tmp_path, topics, mosquitto.url)
    settings.ingest_workers = 2
    service = make_service(chain, settings)
    client = await _publisher(mosquitto.url)
    await service.start()
    try:
        assert service.workers is not None and service.workers.count == 2
        batches = {pod: samples_for(window, range(0, 100)) for pod in (POD_A, POD_B)}
        payloads = {pod: sign_each(chain.device(pod), pod, b) for pod, b in batches.items()}
        for i in range(100):
            for pod in (POD_A, POD_B):
                await client.publish(topics.pod_measure(pod), payloads[pod][i])
        await eventually(lambda: ingest_stats(service.engine)["samples_stored"] == 200)
        stored, n_batches, shards = _rows(service)
        assert len(stored) == 200 and n_batches == 200
        assert {(r[0], r[1]) for r in stored} == {
            (pod, s) for pod in (POD_A, POD_B) for s in range(100)
        }
        # the broker shared the messages between both workers, which counted their own
        assert set(shards) == {"messages.accepted#w0", "messages.accepted#w1"}
        assert all(v > 0 for v in shards.values()) and sum(shards.values()) == 200
        # the service's totals include what the workers counted
        await eventually(lambda: service.stats.total["samples.stored"] == 200)

        # redeliveries, several copies at once (they land on both workers): duplicates
        for p in payloads[POD_A][:20] * 3:
            await client.publish(topics.pod_measure(POD_A), p)
        await eventually(lambda: ingest_stats(service.engine)["duplicate"] == 60)
        assert _rows(service)[0] == stored

        # one new sequence number (in the next window) in 10 different signed versions,
        # published at once: one is stored, nine are conflicts, whichever worker each reached
        device = chain.device(POD_A)
        versions = [
            sign_batch(device, POD_A, [Sample(t_s=window + 904, p_w=p, q_var=0, v_mv=1, seq=100)])
            for p in range(10)
        ]
        await asyncio.gather(*(client.publish(topics.pod_measure(POD_A), v) for v in versions))
        await eventually(lambda: ingest_stats(service.engine)["rejected_total"] == 9)
        after = _rows(service)[0]
        assert len(after) == 201 and sum(1 for r in after if r[1] == 100) == 1

        # a conflicting and a forged message: refused, each counted once, nothing changes
        before = _rows(service)[:2]
        good = batches[POD_A][5]
        conflicting = Sample(**{**good.model_dump(), "p_w": good.p_w + 1})
        forged = json.loads(payloads[POD_A][6])
        forged["message"]["samples"][0]["p_w"] += 1
        await client.publish(topics.pod_measure(POD_A), sign_batch(device, POD_A, [conflicting]))
        await client.publish(topics.pod_measure(POD_A), json.dumps(forged).encode())
        await eventually(lambda: ingest_stats(service.engine)["rejected_total"] == 11)
        await asyncio.sleep(0.3)  # nothing else comes
        stats = ingest_stats(service.engine)
        assert stats["rejected"] == {"conflict": 10, "bad_signature": 1}
        assert stats["accepted"] == 201 and stats["duplicate"] == 60
        assert _rows(service)[:2] == before

        # a revocation reaches every worker before Certifier.sync() returns
        assert service.certifier is not None
        revoked = sign_each(
            chain.device(POD_REVOKED), POD_REVOKED, samples_for(window, range(0, 4))
        )
        await client.publish(topics.pod_measure(POD_REVOKED), revoked[0])
        await eventually(lambda: ingest_stats(service.engine)["samples_stored"] == 202)
        await asyncio.to_thread(chain.c.anchor.revoke_device, chain.deployer, id32(POD_REVOKED))
        await service.certifier.sync()
        for p in revoked[1:]:
            await client.publish(topics.pod_measure(POD_REVOKED), p)
        await eventually(lambda: ingest_stats(service.engine)["rejected"].get("revoked") == 3)

        # certification, in the service's process, of what the workers stored
        for pod, b in batches.items():
            await client.publish(
                topics.pod_manifest(pod), manifest(chain.device(pod), pod, window, b)
            )
            await asyncio.to_thread(
                chain.c.anchor.anchor,
                chain.devices[pod],
                id32(pod),
                window,
                window_root(pod, b),
                len(b),
            )
        await eventually(
            lambda: (
                [_status(service, pod, window) for pod in (POD_A, POD_B)]
                == ["certified", "certified"]
            )
        )

        # a worker that dies is started again on its MQTT session: what the broker queued for
        # it meanwhile arrives
        workers = service.workers
        workers._procs[0].kill()
        later = sign_each(chain.device(POD_B), POD_B, samples_for(window + 900, range(100, 120)))
        for p in later:
            await client.publish(topics.pod_measure(POD_B), p)
        await eventually(lambda: workers.restarts == 1)
        await eventually(lambda: ingest_stats(service.engine)["samples_stored"] == 222, 20)
    finally:
        await service.stop()
        service.close()
        await client.close()
        w3.provider.make_request("evm_revert", [snapshot])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("db", "broker"), [("sqlite", "mosquitto"), ("postgres", "amqtt")], indirect=["db"]
)
async def test_falls_back_to_one_process(
    chain: Chain,
    db: tuple[str | None, str],
    broker: str,
    tmp_path: Path,
    topics: Topics,
    window: int,
    mosquitto: MosquittoProcess,
) -> None:
    """SQLite (one writer at a time) and amqtt (no shared subscriptions): the service says
    so and ingests in its own process."""
    async with EmbeddedBroker() as amqtt:
        url = mosquitto.url if broker == "mosquitto" else amqtt.url
        settings = settings_for(db, tmp_path, topics, url)
        settings.ingest_workers = 2
        service = make_service(chain, settings)
        client = await _publisher(url)
        await service.start()
        try:
            assert service.workers is None
            for p in sign_each(chain.device(POD_A), POD_A, samples_for(window, range(0, 10))):
                await client.publish(topics.pod_measure(POD_A), p)
            await eventually(lambda: ingest_stats(service.engine)["samples_stored"] == 10)
        finally:
            await service.stop()
            service.close()
            await client.close()


@pytest.mark.parametrize("db", ["postgres"], indirect=True)
async def test_workers_wait_for_a_broker_that_is_down_at_start(
    chain: Chain, pg: tuple[str | None, str], tmp_path: Path, topics: Topics, window: int
) -> None:
    """As the service's own client does, the workers keep connecting in the background."""
    broker = MosquittoProcess()
    settings = settings_for(pg, tmp_path, topics, broker.url)
    settings.ingest_workers = 2
    settings.mqtt_connect_wait_s = 0.2
    service = make_service(chain, settings)
    await service.start()
    client = None
    try:
        workers = service.workers
        assert workers is not None
        await broker.start()
        await eventually(lambda: len(workers._subscribed) == 2, 20)
        client = await _publisher(broker.url)
        for p in sign_each(chain.device(POD_A), POD_A, samples_for(window, range(0, 10))):
            await client.publish(topics.pod_measure(POD_A), p)
        await eventually(lambda: ingest_stats(service.engine)["samples_stored"] == 10)
    finally:
        await service.stop()
        service.close()
        if client is not None:
            await client.close()
        await broker.__aexit__(None, None, None)
