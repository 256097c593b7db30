"""Every kind of bad measurement message is refused with its reason, counted, and changes
nothing stored."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from flexledger.messages import MeasurementBatch, Sample, id32
from flexledger.transport import MqttClient, Topics, encode_payload
from node.keys import dev_account
from node.signing import LocalSigner
from scd.db import sample_batches, samples
from scd.services.samples import ingest_stats
from tests.scd.conftest import PODS, Chain, make_service, settings_for
from tests.scd.helpers import eventually, samples_for, sign_batch, sign_each

pytestmark = pytest.mark.asyncio(loop_scope="session")
POD, POD_REVOKED, POD_OTHER = PODS[0], PODS[1], PODS[2]
UNKNOWN_POD = "IT001E99999999"


def _snapshot(service: Any) -> tuple[list[Any], list[Any]]:
    with service.engine.connect() as conn:
        return (
            [
                tuple(r)
                for r in conn.execute(select(samples).order_by(samples.c.pod, samples.c.seq))
            ],
            [tuple(r) for r in conn.execute(select(sample_batches).order_by(sample_batches.c.id))],
        )


# ingest workers need PostgreSQL: on SQLite the service ingests in its own process
# (tests/scd/test_workers.py checks that fallback), so that pair is not a case here
@pytest.mark.parametrize(
    ("db", "ingest_workers"),
    [("sqlite", 1), ("postgres", 1), ("postgres", 2)],
    indirect=["db"],
)
async def test_bad_messages_refused_counted_nothing_changes(
    chain: Chain,
    db: Any,
    tmp_path: Path,
    topics: Topics,
    window: int,
    client: MqttClient,
    broker_url: str,
    ingest_workers: int,
) -> None:
    w3 = chain.w3
    snapshot = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    settings = settings_for(db, tmp_path, topics, broker_url)
    # PostgreSQL's run verifies in a worker process, SQLite's in the service's thread; with
    # ingest workers, two processes behind the machine's Mosquitto's shared subscription
    settings.verify_workers = 1 if db[0] is not None else 0
    settings.ingest_workers = ingest_workers
    service = make_service(chain, settings)
    await service.start()
    assert service.certifier is not None
    assert (service.workers is not None) == (ingest_workers > 1)
    try:
        device = chain.device(POD)
        good = samples_for(window, range(0, 6))
        for p in sign_each(device, POD, good):
            await client.publish(topics.pod_measure(POD), p)
        # the revoked POD's device is known to the SCD before its revocation
        for p in sign_each(
            chain.device(POD_REVOKED), POD_REVOKED, samples_for(window, range(0, 1))
        ):
            await client.publish(topics.pod_measure(POD_REVOKED), p)
        await eventually(lambda: ingest_stats(service.engine)["samples_stored"] == 7)
        await asyncio.to_thread(chain.c.anchor.revoke_device, chain.deployer, id32(POD_REVOKED))
        await service.certifier.sync()
        before = _snapshot(service)

        new = samples_for(window + 100, range(50, 51))
        valid = json.loads(sign_each(device, POD, new)[0])
        forged = json.loads(json.dumps(valid))
        forged["message"]["samples"][0]["p_w"] += 1  # signature no longer covers it
        stranger = LocalSigner(dev_account("stranger"), device.domain)
        claimed = encode_payload(stranger.sign(MeasurementBatch(pod=POD, samples=new)))
        claimed_obj = json.loads(claimed)
        claimed_obj["signer"] = device.address  # signed by a stranger, claims to be the device
        conflicting = Sample(**{**good[3].model_dump(), "p_w": good[3].p_w + 5})
        wrong_fields = json.loads(json.dumps(valid))
        wrong_fields["message"]["samples"][0]["extra"] = 1
        missing_field = json.loads(json.dumps(valid))
        del missing_field["message"]["samples"][0]["v_mv"]
        wrong_type = json.loads(json.dumps(valid))
        wrong_type["message"]["samples"][0]["seq"] = "fifty"
        huge = Sample(t_s=window + 500, p_w=1, q_var=0, v_mv=1, seq=2**63)

        cases: list[tuple[str, str, bytes]] = [
            ("bad_signature", POD, json.dumps(forged).encode()),
            ("bad_signature", POD, json.dumps(claimed_obj).encode()),
            ("unregistered", POD, claimed),  # a key bound to no POD, honest about itself
            ("unregistered", UNKNOWN_POD, sign_batch(stranger, UNKNOWN_POD, new)),
            ("revoked", POD_REVOKED, sign_batch(chain.device(POD_REVOKED), POD_REVOKED, new)),
            ("wrong_pod", POD, sign_batch(chain.device(POD_OTHER), POD, new)),
            ("conflict", POD, sign_batch(device, POD, [conflicting])),
            ("malformed", POD, b"{not json"),
            ("malformed", POD, json.dumps(wrong_fields).encode()),
            ("malformed", POD, json.dumps(missing_field).encode()),
            ("malformed", POD, json.dumps(wrong_type).encode()),
            ("malformed", POD, b'{"message": {"pod": "IT001E00000001", "samples": []}}'),
            ("out_of_range", POD, sign_batch(device, POD, [huge])),
            ("topic_mismatch", POD_OTHER, json.dumps(valid).encode()),
        ]
        for _, topic_pod, payload in cases:
            await client.publish(topics.pod_measure(topic_pod), payload)
        expected: dict[str, int] = {}
        for reason, _, _ in cases:
            expected[reason] = expected.get(reason, 0) + 1
        await eventually(lambda: ingest_stats(service.engine)["rejected_total"] == len(cases))
        stats = ingest_stats(service.engine)
        assert stats["rejected"] == expected
        assert stats["accepted"] == 7
        assert _snapshot(service) == before
        # and the valid one is still welcome
        await client.publish(topics.pod_measure(POD), json.dumps(valid).encode())
        await eventually(lambda: ingest_stats(service.engine)["samples_stored"] == 8)
    finally:
        await service.stop()
        service.close()
        w3.provider.make_request("evm_revert", [snapshot])  # type: ignore[arg-type]
