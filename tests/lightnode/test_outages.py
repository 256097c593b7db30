"""Nothing is lost when the world around a Light Node fails: a broker restarted mid-run, the
agent itself killed and restarted on its buffer, the chain stopped and started again from its
state file. Every sample arrives (duplicates allowed, conflicts not), sequence numbers continue,
every window ends anchored with the root of what was published, and certified."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from web3 import HTTPProvider, Web3

from flexledger.messages import id32
from flexledger.time import ScenarioClock
from flexledger.transport import MosquittoProcess, MqttClient, Topics, free_port, unique_client_id
from lightnode import SampleBuffer, window_tree
from node.contracts import FlexContracts, FlexRolesClient, MeasurementAnchorClient
from node.devnet import Devnet
from tests.lightnode.certifier import Certifier
from tests.lightnode.conftest import (
    T0,
    WINDOW_S,
    Chain,
    MakeClient,
    deploy_chain,
    fast_settings,
    make_node,
)
from tests.lightnode.helpers import eventually, tick

pytestmark = pytest.mark.asyncio(loop_scope="session")

POD = "IT001E00000001"
POD2 = "IT001E00000002"


def check_chain_roots(chain: Chain, scd: Certifier, pod: str, windows: int) -> None:
    """Every window's root on chain is the root of the samples the SCD got for it."""
    pod32 = id32(pod)
    rec = scd.pod(pod)
    for w in range(windows):
        ws = T0 + w * WINDOW_S
        seqs = sorted(q for q, s in rec.samples.items() if ws <= s.t_s < ws + WINDOW_S)
        tree = window_tree([rec.samples[q].leaf(pod32) for q in seqs])
        assert tree is not None and len(seqs) == 225
        assert chain.c.anchor.window_root(pod32, ws) == tree.root


def dead_contracts(chain: Chain) -> FlexContracts:
    """The deployment's clients on an endpoint where nothing answers."""
    w3 = Web3(HTTPProvider(f"http://127.0.0.1:{free_port()}", request_kwargs={"timeout": 2}))
    a = chain.book.addresses
    return FlexContracts(
        roles=FlexRolesClient(w3, a["FlexRoles"]),
        anchor=MeasurementAnchorClient(w3, a["MeasurementAnchor"]),
        baselines=chain.c.baselines,
        market=chain.c.market,
        token=chain.c.token,
        settlement=chain.c.settlement,
    )


def _client(url: str, name: str) -> MqttClient:
    return MqttClient(url, unique_client_id(name, "test"), timeout_s=2.0, backoff_max_s=0.2)


async def test_broker_restart_mid_run_loses_nothing(chain: Chain, tmp_path: Path) -> None:
    """The broker goes down and comes back (persistent, as deployed: the SCD's durable session
    and its queued messages survive). Whatever the SCD still misses — a message it had not
    received before the broker stopped — comes back through a republished manifest and a resend
    request."""
    topics = Topics("ln/flex")
    async with MosquittoProcess(persistence=True) as broker:
        clock = ScenarioClock(T0)
        scd = Certifier(
            MqttClient(
                broker.url,
                unique_client_id("scd", "test"),
                clean_session=False,
                timeout_s=2.0,
                backoff_max_s=0.2,
            ),
            topics,
            chain.domain,
            chain.c,
        )
        ln_mqtt = _client(broker.url, "ln")
        node = make_node(
            chain,
            POD,
            clock=clock,
            mqtt=ln_mqtt,
            topics=topics,
            buffer=tmp_path / "ln.sqlite",
            settings=fast_settings(manifest_retry_s=1.0),
        )
        try:
            await scd.start()
            async with node:
                await tick(clock, 30)
                await eventually(lambda: len(scd.seqs(POD)) == 31)

                await broker.stop()
                await ln_mqtt.wait_disconnected(5)
                # The node keeps sampling, signing and closing windows while the broker is away.
                await tick(clock, 20)
                await clock.advance(WINDOW_S)
                await eventually(lambda: node.health.windows_anchored == 1, what="anchored")
                assert node.health.unpublished_messages > 0
                await broker.start()

                await clock.advance(700)  # to the end of the second window
                await eventually(
                    lambda: node.health.windows_certified == 2,
                    timeout_s=15,
                    what="both windows certified after the outage",
                )
                seqs = scd.seqs(POD)
                assert seqs == list(range(451)) and scd.conflicts == 0
                check_chain_roots(chain, scd, POD, 2)
                assert ln_mqtt.connects >= 2
        finally:
            await scd.stop()
            await scd.mqtt.close()
            await ln_mqtt.close()


async def test_agent_killed_and_restarted_continues_its_sequence(
    chain: Chain, make_client: MakeClient, topics: Topics, tmp_path: Path, devnet: Devnet
) -> None:
    buffer = tmp_path / "ln.sqlite"
    clock = ScenarioClock(T0)
    scd = Certifier(make_client("scd"), topics, chain.domain, chain.c)
    await scd.start()
    # First life: its chain endpoint is dead, so it closes windows but cannot anchor them.
    dead = dead_contracts(chain)
    first = make_node(
        chain,
        POD,
        clock=clock,
        mqtt=make_client("ln1"),
        topics=topics,
        buffer=buffer,
        contracts=dead,
    )
    await first.start()
    await clock.advance(WINDOW_S + 200)
    await eventually(lambda: first.health.windows_closed == 1 and first.health.anchor_errors > 0)
    await eventually(lambda: len(scd.seqs(POD)) == 276)
    await first.stop()  # killed: cancelled wherever it was

    # Its anchor transaction had gone out before it died: the root is on chain already.
    kept = SampleBuffer(buffer, pod=POD, device=chain.device(POD).address, window_s=WINDOW_S)
    row = kept.window(T0)
    assert row is not None and row.status == "closed" and row.root is not None
    kept.close()
    chain.c.anchor.anchor(chain.device(POD), id32(POD), T0, row.root, 225)

    await clock.advance(WINDOW_S)  # time goes on while the agent is down
    second = make_node(
        chain, POD, clock=clock, mqtt=make_client("ln2"), topics=topics, buffer=buffer
    )
    async with second:
        assert second.buffer.next_seq == 276
        await eventually(lambda: second.health.windows_certified == 2, timeout_s=15)
        assert second.health.root_conflicts == 0 and second.health.healthy
        seqs = scd.seqs(POD)
        assert seqs == list(range(len(seqs))) and len(seqs) == 2 * 225 + 51
        assert scd.conflicts == 0
        check_chain_roots(chain, scd, POD, 2)
    await scd.stop()


async def test_a_window_anchored_with_another_root_is_a_loud_conflict(
    chain: Chain,
    make_client: MakeClient,
    topics: Topics,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    chain.c.anchor.anchor(chain.device(POD2), id32(POD2), T0, b"\x01" * 32, 1)
    clock = ScenarioClock(T0)
    node = make_node(
        chain,
        POD2,
        clock=clock,
        mqtt=make_client("ln"),
        topics=topics,
        buffer=tmp_path / "ln.sqlite",
    )
    async with node:
        await clock.advance(WINDOW_S + 4)
        await eventually(lambda: node.health.root_conflicts == 1)
        assert not node.health.healthy
        assert node.buffer.window(T0).status == "conflict"  # type: ignore[union-attr]
        assert len(node.buffer.samples(T0)) == 225  # kept for forensics
        assert chain.c.anchor.window_root(id32(POD2), T0) == b"\x01" * 32
    assert any("ROOT CONFLICT" in r.message and r.levelname == "ERROR" for r in caplog.records)


@pytest.mark.timeout(45)
async def test_chain_down_and_back_anchors_late_but_anchors(
    make_client: MakeClient, topics: Topics, tmp_path: Path
) -> None:
    state = tmp_path / "chain" / "state.json"
    port = free_port()
    devnet = Devnet(state_path=state, port=port).start()
    try:
        chain = deploy_chain(devnet.web3())
        clock = ScenarioClock(T0)
        scd = Certifier(make_client("scd"), topics, chain.domain, chain.c)
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
            await clock.advance(WINDOW_S + 4)
            await eventually(lambda: node.health.windows_certified == 1)

            await asyncio.to_thread(devnet.close)  # SIGTERM: anvil writes its state file
            await clock.advance(WINDOW_S)
            await eventually(lambda: node.health.anchor_errors >= 2, what="failed anchors")
            assert node.health.windows_anchored == 1 and node.health.windows_pending == 1
            assert node.health.samples_published == 2 * 225 + 2  # samples go out regardless

            devnet = Devnet(state_path=state, port=port).start()  # same port, same chain
            await eventually(lambda: node.health.windows_certified == 2, timeout_s=15)
            check_chain_roots(chain, scd, POD, 2)
            assert node.health.healthy
        await scd.stop()
    finally:
        devnet.close()


async def test_scd_away_and_back_gets_everything_through_manifest_retries_and_resends(
    chain: Chain, make_client: MakeClient, topics: Topics, tmp_path: Path
) -> None:
    """An SCD that was down while a window was published (clean session: it missed all of it)
    gets the manifest again, asks for the samples, and certifies; nothing was freed before."""
    clock = ScenarioClock(T0)
    node = make_node(
        chain,
        POD,
        clock=clock,
        mqtt=make_client("ln"),
        topics=topics,
        buffer=tmp_path / "ln.sqlite",
        settings=fast_settings(manifest_retry_s=0.3),
    )
    async with node:
        await clock.advance(WINDOW_S + 4)  # nobody listens: samples and manifest go nowhere
        await eventually(lambda: node.health.manifests_published == 1)
        assert node.health.samples_buffered == 227 and node.health.windows_certified == 0

        scd = Certifier(make_client("scd"), topics, chain.domain, chain.c)  # back, empty-handed
        await scd.start()
        await eventually(lambda: node.health.windows_certified == 1, timeout_s=10)
        assert scd.resends_asked >= 1 and node.health.samples_resent >= 225
        assert scd.seqs(POD)[:225] == list(range(225)) and scd.conflicts == 0
        check_chain_roots(chain, scd, POD, 1)
        await scd.stop()
