"""Dispatch (I-09): announced orders become signed set-points on the POD's topic."""

from __future__ import annotations

from typing import Any

import pytest

from dso import Dispatcher, DispatchError
from flexledger.messages import Award, Order, OrderAnnouncement, SetPoint, Signed, h32
from flexledger.time import MTU_S
from flexledger.transport import Topics
from flexledger.units import Direction
from node.keys import dev_account
from node.signing import LocalSigner, message_hash, verify_envelope
from tests.dso.conftest import DOMAIN

POD = "IT001E00000017"
T0 = 1_784_937_600 + 44 * MTU_S


def _announcement(issuer: LocalSigner, nonce: int = 1, pod: str = POD) -> OrderAnnouncement:
    order = Order(
        session_id="da-2026-07-25",
        offer_hash="0x" + "0a" * 32,
        request_hash="0x" + "0b" * 32,
        mtu_start_s=T0,
        mtu_count=3,
        power_w=68_000,
        nonce=nonce,
        expiry_s=T0 + 3 * MTU_S,
    )
    awards = [
        Award(
            session_id=order.session_id,
            offer_hash=order.offer_hash,
            request_hash=order.request_hash,
            mtu_start_s=T0 + k * MTU_S,
            power_w=68_000,
            price_cents_per_mwh=9_000,
            pod=pod,
            direction=Direction.DOWN,
            stage="dso",
            share_of_request=1.0,
        )
        for k in range(3)
    ]
    return OrderAnnouncement(
        order=issuer.sign(order),
        order_hash=h32(message_hash(order)),
        awards=awards,
        pod=pod,
        direction=Direction.DOWN,
        aggregator=dev_account("aggregator:1").address,
    )


@pytest.fixture
def dispatcher(dso_signer: LocalSigner) -> Dispatcher:
    tso = dev_account("tso").address
    return Dispatcher(dso_signer, DOMAIN, [dso_signer.address, tso], now_s=lambda: T0 - 600)


def test_order_becomes_one_signed_setpoint(dispatcher: Dispatcher, dso_signer: LocalSigner) -> None:
    ann = _announcement(dso_signer)
    signed = dispatcher.setpoint(ann)
    assert verify_envelope(signed, DOMAIN) == dso_signer.address
    sp = signed.message
    assert (sp.pod, sp.direction, sp.power_w) == (POD, Direction.DOWN, 68_000)
    assert (sp.mtu_start_s, sp.mtu_count, sp.expiry_s) == (T0, 3, T0 + 3 * MTU_S)
    assert sp.order_hash == ann.order_hash
    assert dispatcher.setpoint(ann) == signed  # a redelivered announcement: the same set-point
    tso = LocalSigner(dev_account("tso"), DOMAIN)
    second = dispatcher.setpoint(_announcement(tso, nonce=2)).message
    assert second.seq == sp.seq + 1  # increasing per POD


def test_orders_that_do_not_hold_are_not_dispatched(
    dispatcher: Dispatcher, dso_signer: LocalSigner
) -> None:
    stranger = LocalSigner(dev_account("aggregator:1"), DOMAIN)
    with pytest.raises(DispatchError, match="neither the DSO nor the TSO"):
        dispatcher.setpoint(_announcement(stranger))
    ann = _announcement(dso_signer)
    with pytest.raises(DispatchError, match="struct hash"):
        dispatcher.setpoint(ann.model_copy(update={"order_hash": "0x" + "00" * 32}))
    with pytest.raises(DispatchError, match="another POD"):
        dispatcher.setpoint(ann.model_copy(update={"pod": "IT001E00000099"}))


async def test_platform_publishes_on_the_pods_setpoint_topic(
    pv_grid: Any, dso_signer: LocalSigner
) -> None:
    from dso import DsoPlatform

    platform = DsoPlatform(
        pv_grid, dso_signer, DOMAIN, market_operator=dev_account("market").address,
        now_s=lambda: T0 - 600,
    )  # fmt: skip

    class Broker:
        def __init__(self) -> None:
            self.sent: list[tuple[str, Any]] = []

        async def publish(self, topic: str, payload: Any) -> None:
            self.sent.append((topic, payload))

    broker, topics = Broker(), Topics("t/flex")
    await platform.on_order(broker, topics, _announcement(dso_signer))  # type: ignore[arg-type]
    ((topic, payload),) = broker.sent
    assert topic == topics.pod_setpoint(POD) == f"t/flex/pod/{POD}/setpoint"
    assert isinstance(payload, Signed) and isinstance(payload.message, SetPoint)
