"""MQTT ingestion and certification against a real chain, broker and database."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from flexledger.messages import ResendRequest, WindowCertification, id32
from flexledger.transport import MqttClient, Topics
from flexledger.units import round_half_even_div
from scd.db import samples as samples_table
from scd.service import ScdService
from scd.services.measures import quarterly_measures
from scd.services.samples import ingest_stats
from tests.scd.conftest import PODS, Chain, make_service, settings_for
from tests.scd.helpers import eventually, manifest, samples_for, sign_each, window_root

pytestmark = pytest.mark.asyncio(loop_scope="session")
POD = PODS[0]


class Listener:
    """Collects what the SCD publishes (certifications and resend requests)."""

    def __init__(self) -> None:
        self.certs: list[WindowCertification] = []
        self.resends: list[ResendRequest] = []

    async def attach(self, mqtt: MqttClient, topics: Topics) -> None:
        async def cert(_: str, c: WindowCertification) -> None:
            self.certs.append(c)

        async def resend(_: str, r: ResendRequest) -> None:
            self.resends.append(r)

        await mqtt.subscribe(topics.all_pod_certifications(), WindowCertification, cert)
        await mqtt.subscribe(topics.all_pod_resends(), ResendRequest, resend)

    def status(self, pod: str, start: int) -> str | None:
        found = [c for c in self.certs if (c.pod, c.window_start_s) == (pod, start)]
        return found[-1].status if found else None


async def _service(chain: Chain, db: Any, tmp_path: Path, topics: Topics, url: str) -> ScdService:
    service = make_service(chain, settings_for(db, tmp_path, topics, url))
    await service.start()
    return service


def _stored(service: ScdService) -> list[tuple[Any, ...]]:
    with service.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(samples_table).order_by(samples_table.c.seq))]


async def _anchor(chain: Chain, pod: str, start: int, root: bytes, count: int) -> None:
    await asyncio.to_thread(
        chain.c.anchor.anchor, chain.devices[pod], id32(pod), start, root, count
    )


@pytest.mark.parametrize(
    ("any_broker", "db"),
    [("mosquitto", "sqlite"), ("mosquitto", "postgres"), ("amqtt", "sqlite")],
    indirect=True,
)  # amqtt once, on SQLite
async def test_samples_stored_once_certified_and_measured(
    chain: Chain, db: Any, tmp_path: Path, topics: Topics, window: int, any_broker: str
) -> None:
    url = any_broker
    client = MqttClient(url, f"lnsim-{topics.root[:11]}", timeout_s=5.0)
    await client.start(wait_s=5.0)
    listener = Listener()
    await listener.attach(client, topics)
    service = await _service(chain, db, tmp_path, topics, url)
    try:
        device = chain.device(POD)
        batch = samples_for(window, range(100, 125))
        payloads = sign_each(device, POD, batch)
        for p in payloads:
            await client.publish(topics.pod_measure(POD), p)
        assert service.ingestor is not None
        await eventually(lambda: len(_stored(service)) == 25)
        await client.publish(topics.pod_manifest(POD), manifest(device, POD, window, batch))
        await _anchor(chain, POD, window, window_root(POD, batch), len(batch))
        await eventually(lambda: listener.status(POD, window) == "certified")

        # an identical redelivery of everything is idempotent
        before = _stored(service)
        for p in payloads[:10]:
            await client.publish(topics.pod_measure(POD), p)
        await eventually(lambda: ingest_stats(service.engine)["duplicate"] == 10)
        assert _stored(service) == before
        stats = ingest_stats(service.engine)
        assert stats["accepted"] == 25 and stats["samples_stored"] == 25
        assert stats["rejected_total"] == 0

        # I-01 by hand: Σ P × 4 s / 3600, rounded half to even, once
        total = sum(s.p_w for s in batch)
        (measure,) = quarterly_measures(
            service.engine, 900, pod=POD, from_s=window, to_s=window + 900, limit=10
        )
        assert measure.e_wh == round_half_even_div(total * 4, 3600)
        assert measure.sample_count == 25 and measure.certified
    finally:
        await service.stop()
        service.close()
        await client.close()


async def test_missing_sample_resend_then_certified(
    chain: Chain,
    db: Any,
    tmp_path: Path,
    topics: Topics,
    window: int,
    client: MqttClient,
    broker_url: str,
) -> None:
    listener = Listener()
    await listener.attach(client, topics)
    service = await _service(chain, db, tmp_path, topics, broker_url)
    try:
        device = chain.device(POD)
        batch = samples_for(window, range(0, 20))
        payloads = sign_each(device, POD, batch)
        for i, p in enumerate(payloads):
            if i != 7:
                await client.publish(topics.pod_measure(POD), p)
        await eventually(lambda: len(_stored(service)) == 19)
        await client.publish(topics.pod_manifest(POD), manifest(device, POD, window, batch))
        await _anchor(chain, POD, window, window_root(POD, batch), len(batch))
        await eventually(lambda: listener.resends)
        assert listener.resends[0] == ResendRequest(pod=POD, window_start_s=window, seqs=[7])
        pending = await eventually(lambda: [c for c in listener.certs if c.status == "pending"])
        assert pending[0].missing_seqs == [7]
        await client.publish(topics.pod_measure(POD), payloads[7])
        await eventually(lambda: listener.status(POD, window) == "certified")
        with service.engine.connect() as conn:
            n = conn.execute(select(func.count()).select_from(samples_table)).scalar()
        assert n == 20
    finally:
        await service.stop()
        service.close()


async def test_restart_mid_run_loses_nothing(
    chain: Chain,
    db: Any,
    tmp_path: Path,
    topics: Topics,
    window: int,
    client: MqttClient,
    broker_url: str,
) -> None:
    listener = Listener()
    await listener.attach(client, topics)
    settings = settings_for(db, tmp_path, topics, broker_url)
    service = make_service(chain, settings)
    await service.start()
    device = chain.device(POD)
    batch = samples_for(window, range(500, 540))
    payloads = sign_each(device, POD, batch)
    try:
        for p in payloads[:15]:
            await client.publish(topics.pod_measure(POD), p)
        await eventually(lambda: len(_stored(service)) == 15)
    finally:
        await service.stop()
        service.close()
    # while the SCD is down: samples (queued by the broker in its durable session) and the anchor
    for p in payloads[15:30]:
        await client.publish(topics.pod_measure(POD), p)
    await _anchor(chain, POD, window, window_root(POD, batch), len(batch))
    service = ScdService.from_settings(settings, contracts=chain.c, from_block=0)
    await service.start()
    try:
        await eventually(lambda: len(_stored(service)) == 30)
        for p in payloads[30:]:
            await client.publish(topics.pod_measure(POD), p)
        await eventually(lambda: listener.status(POD, window) == "certified", 20)
        assert len(_stored(service)) == 40
        assert ingest_stats(service.engine)["accepted"] == 40
    finally:
        await service.stop()
        service.close()
