"""Concentrator mode: windows certified from a BatchManifest, and a sample's batched proof
checked by the contract's ``verifyBatched``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from flexledger.messages import BatchManifest, b32, id32
from flexledger.messages.leaves import window_leaf_of
from flexledger.transport import MqttClient, Topics
from node.contracts import Window
from node.merkle import MerkleTree
from scd.api import create_app
from scd.db import concentrator_batches
from tests.scd.conftest import PODS, Chain, make_service, settings_for
from tests.scd.helpers import eventually, manifest, samples_for, sign_batch
from tests.scd.test_ingest import Listener

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _batch(chain: Chain, batch_id: int, windows: list[Any]) -> BatchManifest:
    leaves = [window_leaf_of(w.message) for w in windows]
    return BatchManifest(
        concentrator=chain.concentrator.address,
        concentrator_id="c1",
        batch_id=batch_id,
        root="0x" + MerkleTree(leaves).root.hex(),
        windows=windows,
    )


async def test_batch_certifies_its_windows_and_proves_a_sample(
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
    service = make_service(chain, settings_for(db, tmp_path, topics, broker_url))
    await service.start()
    try:
        signed = {}
        for i, pod in enumerate(PODS[:3]):
            batch = samples_for(window, range(10 * i, 10 * i + 12))
            await client.publish(topics.pod_measure(pod), sign_batch(chain.device(pod), pod, batch))
            # the third window is signed by another POD's device: the batch carries it, the
            # SCD refuses it
            signer = chain.device(PODS[3] if i == 2 else pod)
            signed[pod] = manifest(signer, pod, window, batch, anchor="concentrator")
        windows = [signed[p] for p in PODS[:3]]
        b1, b2 = window, window + 1  # batch ids are once per concentrator on the shared chain
        bm = _batch(chain, b1, windows)
        total = sum(w.message.sample_count for w in windows)
        await asyncio.to_thread(
            chain.c.anchor.anchor_batch, chain.concentrator, b1, b32(bm.root), 3, total
        )
        await client.publish(topics.concentrator_batch("c1"), bm)
        await eventually(lambda: all(listener.status(p, window) == "certified" for p in PODS[:2]))
        assert listener.status(PODS[2], window) is None
        with service.engine.connect() as conn:
            row = conn.execute(
                select(concentrator_batches).where(concentrator_batches.c.batch_id == b1)
            ).one()
        assert row.status == "verified" and "device wrong_pod" in row.error

        # a second batch that repeats a window: that window is refused
        bm2 = _batch(chain, b2, [signed[PODS[0]]])
        await asyncio.to_thread(
            chain.c.anchor.anchor_batch, chain.concentrator, b2, b32(bm2.root), 1, 12
        )
        await client.publish(topics.concentrator_batch("c1"), bm2)

        def batch_status(batch_id: int) -> str | None:
            with service.engine.connect() as conn:
                return conn.execute(
                    select(concentrator_batches.c.status).where(
                        concentrator_batches.c.batch_id == batch_id
                    )
                ).scalar()

        await eventually(lambda: batch_status(b2) == "invalid")

        with TestClient(create_app(service=service, run_service=False)) as api:
            proof = api.get("/proof", params={"pod": PODS[1], "t_s": window + 8}).json()
            # the bulk reads: a batch's manifest rebuilds the root on chain; columns are the
            # paged samples, field by field
            listed = api.get("/batches", params={"concentrator": chain.concentrator.address})
            assert [b["batch_id"] for b in listed.json()] == [b1, b2]
            one = api.get(f"/batches/{chain.concentrator.address}/{b1}").json()
            entries = BatchManifest.model_validate(one["manifest"]).windows
            rebuilt = MerkleTree([window_leaf_of(e.message) for e in entries]).root
            assert rebuilt == chain.c.anchor.batch_root(chain.concentrator.address, b1)
            assert api.get(f"/batches/{chain.concentrator.address}/999999").status_code == 404
            after = f"{chain.concentrator.address}@{b1}"
            assert [b["batch_id"] for b in api.get("/batches", params={"after": after}).json()] == [
                b2
            ]
            bad = api.get("/batches", params={"after": "no-cursor"})
            assert bad.status_code == 422 and "CONCENTRATOR@BATCH_ID" in bad.text
            paged = api.get("/samples", params={"pod": PODS[1]}).json()
            cols = api.get("/samples/columns", params={"pod": PODS[1], "limit": 5}).json()
            assert cols["seq"] == [s["seq"] for s in paged["samples"]][:5]
            assert cols["p_w"] == [s["p_w"] for s in paged["samples"]][:5]
            assert cols["next_after"] == cols["seq"][-1]
            assert set(cols["batches"]["id"]) == {s["batch_id"] for s in paged["samples"][:5]}
        assert proof["status"] == "certified" and proof["batch"]["batch_id"] == b1
        w = proof["batch"]["window"]
        ok = await asyncio.to_thread(
            chain.c.anchor.verify_batched,
            chain.concentrator.address,
            b1,
            Window(
                id32(w["pod"]),
                w["window_start_s"],
                b32(w["root"]),
                w["sample_count"],
                b32(w["setpoints_hash"]),
            ),
            [b32(h) for h in proof["batch"]["window_proof"]],
            b32(proof["leaf"]),
            [b32(h) for h in proof["proof"]],
        )
        assert ok
    finally:
        await service.stop()
        service.close()
