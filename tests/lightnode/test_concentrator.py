"""Concentrator mode: five Light Nodes' signed window roots in one ``anchorBatch``; a sample
proven down to its device with ``verifyBatched``; forged or unbound windows refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from flexledger.messages import BatchManifest, Signed, WindowManifest, b32, id32
from flexledger.settings import ConcentratorSettings
from flexledger.time import ScenarioClock
from flexledger.transport import Topics
from lightnode import Concentrator, batch_order, batch_tree, window_tree
from node.contracts import Sample as ChainSample
from node.contracts import Window
from node.keys import dev_account
from node.signing import LocalSigner
from tests.lightnode.conftest import (
    PODS,
    T0,
    UNBOUND_POD,
    WINDOW_S,
    Chain,
    MakeClient,
    fast_settings,
    make_node,
)
from tests.lightnode.helpers import eventually

pytestmark = pytest.mark.asyncio(loop_scope="session")


def manifest(pod: str, ws: int, root: bytes) -> WindowManifest:
    return WindowManifest(
        pod=pod,
        window_start_s=ws,
        root="0x" + root.hex(),
        sample_count=225,
        first_seq=0,
        last_seq=224,
        setpoints_hash="0x" + "00" * 32,
        anchor="concentrator",
        setpoint_leaves=[],
    )


async def test_five_nodes_one_batch_proven_to_the_device_and_bad_windows_refused(
    chain: Chain, make_client: MakeClient, topics: Topics, tmp_path: Path
) -> None:
    clock = ScenarioClock(T0)
    seen: list[BatchManifest] = []
    watcher = make_client("watch")

    async def on_batch(_topic: str, batch: BatchManifest) -> None:
        seen.append(batch)

    await watcher.subscribe(topics.all_concentrator_batches(), BatchManifest, on_batch)
    await watcher.start(wait_s=5)
    conc = Concentrator(
        "c1",
        account=chain.concentrator,
        contracts=chain.c,
        mqtt=make_client("conc"),
        db=tmp_path / "conc.sqlite",
        topics=topics,
        domain=chain.domain,
        settings=ConcentratorSettings(concentrator_id="c1", batch_interval_s=3600),
    )
    pods = PODS[:5]
    nodes = [
        make_node(
            chain,
            pod,
            clock=clock,
            mqtt=make_client(f"ln{i}"),
            topics=topics,
            buffer=tmp_path / f"ln{i}.sqlite",
            settings=fast_settings(anchor="concentrator"),
        )
        for i, pod in enumerate(pods)
    ]
    async with conc:
        for node in nodes:
            await node.start()
        await clock.advance(WINDOW_S + 4)
        await eventually(
            lambda: conc.health.windows_accepted == 5, what="5 windows at the concentrator"
        )
        assert all(n.health.windows_anchored == 0 for n in nodes)  # nobody anchored alone

        block = chain.w3.eth.block_number
        published = await conc.flush()
        assert chain.w3.eth.block_number == block + 1  # one transaction for all five
        assert len(published) == 1
        batch = published[0]
        assert batch.batch_id == 1 and len(batch.windows) == 5
        assert [w.message.pod for w in batch.windows] == sorted(pods)
        assert chain.c.anchor.batch_root(chain.concentrator.address, 1) == b32(batch.root)
        await eventually(lambda: seen and all(n.health.windows_anchored == 1 for n in nodes))
        assert seen[0] == batch

        # A sample of the third node, proven down to its device's window root on chain.
        node = nodes[2]
        pod32 = id32(node.pod)
        samples = node.buffer.samples(T0)
        tree = window_tree([s.leaf for s in samples])
        assert tree is not None
        k = 42
        s = samples[k]
        assert s.leaf == chain.c.anchor.sample_leaf(
            ChainSample(pod32, s.t_s, s.p_w, s.q_var, s.v_mv, s.seq)
        )
        messages = [w.message for w in batch.windows]
        assert batch_order(messages) == list(range(5))
        index = [m.pod for m in messages].index(node.pod)
        mine = messages[index]
        assert batch.windows[index].signer == chain.device(node.pod).address
        window = Window(pod32, T0, b32(mine.root), mine.sample_count, b32(mine.setpoints_hash))
        window_proof = batch_tree(messages).proof(index)
        c = chain.concentrator.address
        assert chain.c.anchor.verify_batched(c, 1, window, window_proof, s.leaf, tree.proof(k))
        assert not chain.c.anchor.verify_batched(
            c, 1, window, window_proof, samples[k + 1].leaf, tree.proof(k)
        )

        # Refused: a root changed after signing, a key bound to no POD, a device signing for
        # another POD; the same window again is a harmless duplicate.
        genuine: Signed[WindowManifest] = batch.windows[0]
        forged = Signed[WindowManifest](
            message=genuine.message.model_copy(
                update={"root": "0x" + "11" * 32, "window_start_s": T0 + WINDOW_S}
            ),
            signer=genuine.signer,
            signature=genuine.signature,
        )
        stranger = LocalSigner(dev_account(f"ln:{UNBOUND_POD}"), chain.domain)
        other_device = LocalSigner(chain.device(pods[1]), chain.domain)
        await watcher.publish(topics.pod_manifest(genuine.message.pod), forged)
        await watcher.publish(
            topics.pod_manifest(UNBOUND_POD), stranger.sign(manifest(UNBOUND_POD, T0, b"\x22" * 32))
        )
        await watcher.publish(
            topics.pod_manifest(pods[0]),
            other_device.sign(manifest(pods[0], T0 + WINDOW_S, b"\x33" * 32)),
        )
        await watcher.publish(topics.pod_manifest(genuine.message.pod), genuine)
        await eventually(
            lambda: sum(conc.health.refused.values()) == 3 and conc.health.windows_duplicate == 1,
            what=f"{conc.health}",
        )
        assert conc.health.refused == {"bad_signature": 1, "unbound_device": 2}
        assert conc.health.windows_accepted == 5

        # The next window goes in the next batch.
        await clock.advance(WINDOW_S)
        await eventually(lambda: conc.health.windows_accepted == 10)
        (second,) = await conc.flush()
        assert second.batch_id == 2 and {w.message.window_start_s for w in second.windows} == {
            T0 + WINDOW_S
        }
        assert conc.health.batches_anchored == 2 and conc.health.healthy
        for node in nodes:
            await node.stop()
