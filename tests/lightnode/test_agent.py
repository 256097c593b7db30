"""A Light Node end to end on a real anvil and the machine's Mosquitto: samples signed and in
order, windows anchored with the root of what was published, proofs on chain, the buffer freed
only by certification, resends of exactly the asked window, and SCD polling."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from flexledger.messages import ResendRequest, id32
from flexledger.time import ScenarioClock
from flexledger.transport import SignedHttpClient, Topics
from lightnode import window_tree
from node.contracts import Sample as ChainSample
from tests.lightnode.certifier import Certifier
from tests.lightnode.conftest import T0, WINDOW_S, Chain, MakeClient, fast_settings, make_node
from tests.lightnode.helpers import all_samples, eventually, tick

pytestmark = pytest.mark.asyncio(loop_scope="session")

POD = "IT001E00000001"


async def test_samples_are_signed_in_order_anchored_provable_and_freed_on_certification(
    chain: Chain, make_client: MakeClient, topics: Topics, tmp_path: Path
) -> None:
    clock = ScenarioClock(T0)
    scd = Certifier(make_client("scd"), topics, chain.domain, chain.c, certify=False)
    await scd.start()
    node = make_node(
        chain,
        POD,
        clock=clock,
        mqtt=make_client("ln"),
        topics=topics,
        buffer=tmp_path / "ln.sqlite",
    )
    async with node:
        # Real time for a minute: one sample per message.
        await tick(clock, 15)
        await eventually(lambda: len(scd.seqs(POD)) == 16, what="16 real-time samples")
        # (a tick the node did not see before the next one is caught up in a pair)
        sizes = [len(m.message.samples) for m in scd.messages]
        assert sizes.count(1) >= 10 and max(sizes) <= 3, sizes
        # Then the clock runs ahead (an accelerated day): the node catches up in batches.
        await clock.advance(2 * WINDOW_S - 60)
        await eventually(lambda: node.health.windows_anchored == 2, what="2 windows anchored")
        await eventually(lambda: node.health.manifests_published == 2, what="2 manifests")

        seqs = scd.seqs(POD)
        assert seqs == list(range(len(seqs))) and len(seqs) == 2 * 225 + 1
        assert scd.pod(POD).signers == {chain.device(POD).address}
        assert max(len(m.message.samples) for m in scd.messages) <= 225
        assert scd.conflicts == 0
        samples = all_samples(scd.messages, POD)
        assert [samples[q][0] for q in seqs] == list(range(T0, T0 + 4 * len(seqs), 4))

        # Each anchored root is the root of the published samples of its window.
        pod32 = id32(POD)
        for w in range(2):
            ws = T0 + w * WINDOW_S
            window = [q for q in seqs if ws <= samples[q][0] < ws + WINDOW_S]
            leaves = [scd.pod(POD).samples[q].leaf(pod32) for q in window]
            tree = window_tree(leaves)
            assert tree is not None and chain.c.anchor.window_root(pod32, ws) == tree.root
        # … and any sample of it is proven on chain.
        k = 100
        s = scd.pod(POD).samples[k]
        first = window_tree([scd.pod(POD).samples[q].leaf(pod32) for q in range(225)])
        assert first is not None
        proof = first.proof(k)
        chain_sample = ChainSample(pod32, s.t_s, s.p_w, s.q_var, s.v_mv, s.seq)
        assert chain.c.anchor.verify_sample(chain_sample, proof)
        altered = ChainSample(pod32, s.t_s, s.p_w + 1, s.q_var, s.v_mv, s.seq)
        assert not chain.c.anchor.verify_sample(altered, proof)

        # Anchored and published is not enough: the samples stay until the SCD certifies.
        assert node.health.samples_buffered == len(seqs)
        assert node.health.windows_pending == 2

        # A resend request brings back exactly the asked window, as the same bytes.
        before = len(scd.messages)
        first_bytes = {m.model_dump_json() for m in scd.messages}
        await scd.mqtt.publish(
            topics.pod_resend(POD), ResendRequest(pod=POD, window_start_s=T0 + WINDOW_S)
        )
        await eventually(lambda: sum(len(m.message.samples) for m in scd.messages[before:]) == 225)
        await asyncio.sleep(0.1)
        resent = scd.messages[before:]
        assert sorted(s.seq for m in resent for s in m.message.samples) == list(range(225, 450))
        assert {m.model_dump_json() for m in resent} <= first_bytes
        assert scd.duplicates == 225 and scd.conflicts == 0
        # … and with sequence numbers, only the messages holding them.
        before = len(scd.messages)
        await scd.mqtt.publish(
            topics.pod_resend(POD), ResendRequest(pod=POD, window_start_s=T0, seqs=[3])
        )
        await eventually(lambda: len(scd.messages) > before)
        await asyncio.sleep(0.1)
        assert [s.seq for m in scd.messages[before:] for s in m.message.samples] == [3]

        # The SCD certifies: the windows' samples leave the buffer; the open window's stay.
        scd.certify = True
        await eventually(lambda: node.health.windows_certified == 2, what="2 certified")
        assert node.health.samples_buffered == 1
        assert node.buffer.window(T0).status == "certified"  # type: ignore[union-attr]
        assert node.buffer.samples(T0) == [] and node.buffer.batches_of(T0) == []
        assert node.health.healthy and node.health.setpoints_accepted == 0
    await scd.stop()


async def test_scd_poll_frees_certified_windows_and_a_mismatch_is_resent(
    chain: Chain, make_client: MakeClient, topics: Topics, tmp_path: Path
) -> None:
    """Without certification messages (missed), the node asks the SCD's ``GET /windows``."""
    clock = ScenarioClock(T0)
    answers: list[dict[str, object]] = []
    asked: list[httpx.QueryParams] = []

    def scd_api(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/windows"
        asked.append(request.url.params)
        return httpx.Response(200, json={"items": answers})

    scd_http = SignedHttpClient("http://scd.test", transport=httpx.MockTransport(scd_api))
    watcher = Certifier(make_client("watch"), topics, chain.domain, chain.c, certify=False)
    await watcher.start()
    node = make_node(
        chain,
        POD,
        clock=clock,
        mqtt=make_client("ln"),
        topics=topics,
        buffer=tmp_path / "ln.sqlite",
        scd=scd_http,
        settings=fast_settings(scd_poll_s=0.05),
    )
    async with node:
        await clock.advance(WINDOW_S + 8)
        await eventually(lambda: node.health.windows_anchored == 1)
        await eventually(lambda: asked, what="a poll")
        assert asked[-1]["pod"] == POD and int(asked[-1]["from_s"]) == T0
        root = "0x" + chain.c.anchor.window_root(id32(POD), T0).hex()  # type: ignore[union-attr]

        sent = len(watcher.messages)
        answers.append(
            {"window_start_s": T0, "status": "mismatch", "root": root, "missing_seqs": [7]}
        )
        await eventually(lambda: node.health.windows_mismatch >= 1)
        answers.clear()
        await eventually(
            lambda: sum(len(m.message.samples) for m in watcher.messages[sent:]) >= 225
        )
        assert node.health.samples_buffered == 228  # nothing freed on a mismatch

        answers.append(
            {"window_start_s": T0, "certification": {"status": "certified", "root": root}}
        )
        await eventually(lambda: node.health.windows_certified == 1)
        assert node.health.samples_buffered == 3
    await watcher.stop()
    await scd_http.aclose()
