"""Set-points: a DSO-signed one reaches the BMS and is proven on chain inside its window's tree;
forged, expired, wrong-role, wrong-POD, malformed and replayed ones never reach the BMS."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount

from flexledger.messages import SetPoint, Signed, b32, id32
from flexledger.messages.leaves import setpoint_leaf
from flexledger.time import ScenarioClock
from flexledger.transport import MqttClient, Topics
from lightnode import LogBms, setpoints_hash, window_tree
from node.signing import LocalSigner, message_hash
from tests.lightnode.certifier import Certifier
from tests.lightnode.conftest import T0, WINDOW_S, Chain, MakeClient, make_node
from tests.lightnode.helpers import eventually, setpoint

pytestmark = pytest.mark.asyncio(loop_scope="session")

POD = "IT001E00000002"


def signed(chain: Chain, key: LocalAccount, sp: SetPoint) -> Signed[SetPoint]:
    return LocalSigner(key, chain.domain).sign(sp)


async def test_only_valid_dso_setpoints_reach_the_bms_and_their_leaf_is_anchored(
    chain: Chain, make_client: MakeClient, topics: Topics, tmp_path: Path
) -> None:
    clock = ScenarioClock(T0)
    bms = LogBms(POD)
    scd = Certifier(make_client("scd"), topics, chain.domain, chain.c)
    await scd.start()
    dso_mqtt: MqttClient = make_client("dso")
    await dso_mqtt.start(wait_s=5)
    node = make_node(
        chain,
        POD,
        clock=clock,
        mqtt=make_client("ln"),
        topics=topics,
        buffer=tmp_path / "ln.sqlite",
        bms=bms,
    )
    topic = topics.pod_setpoint(POD)
    async with node:
        await clock.advance(100)
        valid = signed(chain, chain.dso, setpoint(POD, seq=1, mtu_start_s=T0, expiry_s=T0 + 3600))
        await dso_mqtt.publish(topic, valid)
        await eventually(lambda: len(bms.applied) == 1)
        assert bms.applied == [valid.message]

        # the same message again (a QoS 1 redelivery): not obeyed twice
        await dso_mqtt.publish(topic, valid)
        # forged: claims the DSO, signed by someone else
        other = signed(
            chain, chain.outsider, setpoint(POD, seq=2, mtu_start_s=T0, expiry_s=T0 + 3600)
        )
        forged = Signed[SetPoint](
            message=other.message, signer=chain.dso.address, signature=other.signature
        )
        await dso_mqtt.publish(topic, forged)
        # tampered after signing
        tampered = Signed[SetPoint](
            message=valid.message.model_copy(update={"power_w": 9_999}),
            signer=valid.signer,
            signature=valid.signature,
        )
        await dso_mqtt.publish(topic, tampered)
        # a valid signature, but not a DSO's
        await dso_mqtt.publish(topic, other)
        # expired by the scenario clock
        await dso_mqtt.publish(
            topic, signed(chain, chain.dso, setpoint(POD, seq=3, mtu_start_s=T0, expiry_s=T0 + 50))
        )
        # another POD's set-point on this POD's topic
        await dso_mqtt.publish(
            topic,
            signed(
                chain,
                chain.dso,
                setpoint("IT001E00000001", seq=4, mtu_start_s=T0, expiry_s=T0 + 3600),
            ),
        )
        # the DSO's seq 1 again, for another set-point: a conflict
        await dso_mqtt.publish(
            topic,
            signed(
                chain,
                chain.dso,
                setpoint(POD, seq=1, mtu_start_s=T0, expiry_s=T0 + 3600, power_w=7),
            ),
        )
        # not even a set-point
        await dso_mqtt.publish(topic, b'{"message": 42}')

        rejected = node.health.setpoints_rejected
        await eventually(lambda: sum(rejected.values()) == 7, what=f"7 rejections, {rejected}")
        assert rejected == {
            "bad_signature": 2,
            "wrong_role": 1,
            "expired": 1,
            "wrong_pod": 1,
            "conflict": 1,
            "malformed": 1,
        }
        assert node.health.setpoints_duplicate == 1 and node.health.setpoints_accepted == 1
        await asyncio.sleep(0.05)
        assert bms.applied == [valid.message]

        # The window closes with the set-point's leaf after its samples, and it is anchored.
        await clock.advance(WINDOW_S)
        await eventually(lambda: node.health.windows_certified == 1)
        manifest = scd.pod(POD).manifests[T0].message
        leaf = setpoint_leaf(id32(POD), message_hash(valid.message), T0 + 100)
        assert manifest.setpoint_leaves == ["0x" + leaf.hex()]
        assert b32(manifest.setpoints_hash) == setpoints_hash([leaf])
        rec = scd.pod(POD)
        tree = window_tree([rec.samples[q].leaf(id32(POD)) for q in range(225)], [leaf])
        assert tree is not None and b32(manifest.root) == tree.root
        proof = tree.proof(225)
        assert chain.c.anchor.verify(id32(POD), T0, leaf, proof)
        wrong_time = setpoint_leaf(id32(POD), message_hash(valid.message), T0 + 104)
        assert not chain.c.anchor.verify(id32(POD), T0, wrong_time, proof)
    await scd.stop()
