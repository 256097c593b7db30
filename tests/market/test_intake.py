"""Every kind of bad signed write is refused with its code, and nothing is stored."""

from __future__ import annotations

from typing import Any

import pytest

from flexledger.messages import Offer, SessionAction
from tests.market.helpers import DAY, GATE, POD1, Market, env_json, signer

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _stored(m: Market) -> int:
    return len(await m.get("/offers", session="DA-1")) + len(
        await m.get("/requests", session="DA-1")
    )


def _code(r: Any) -> tuple[int, str]:
    return r.status_code, r.json()["error"]["code"]


async def test_refusals_store_nothing(market: Market) -> None:
    m = market
    await m.open("DA-1")
    good = m.offer()
    # bad signature: the signature of another message
    other = m.offer(nonce=999)
    forged = env_json(good) | {"signature": other.signature}
    assert _code(await m.post("/offers", forged)) == (401, "bad_signature")
    # a signature that is not the claimed signer's
    stolen = env_json(m.offer("aggregator:2")) | {"signer": good.signer}
    assert _code(await m.post("/offers", stolen)) == (401, "bad_signature")
    # wrong role: a DSO signing as an aggregator of its own address
    dso_offer = signer("dso", m.contracts).sign(
        good.message.model_copy(update={"aggregator": signer("dso", m.contracts).address})
    )
    assert _code(await m.post("/offers", dso_offer)) == (403, "wrong_role")
    # an aggregator signing an offer in another aggregator's name
    other_name = signer("aggregator:2", m.contracts).sign(good.message)
    assert _code(await m.post("/offers", other_name)) == (403, "wrong_role")
    # a TSO posting a DSO-shaped request; an aggregator posting a request
    tso_as_dso = signer("tso", m.contracts).sign(
        m.dso_request().message.model_copy(update={"requester": signer("tso", m.contracts).address})
    )
    assert _code(await m.post("/requests", tso_as_dso)) == (403, "wrong_role")
    agg_request = signer("aggregator:1", m.contracts).sign(
        m.dso_request().message.model_copy(
            update={"requester": signer("aggregator:1", m.contracts).address}
        )
    )
    assert _code(await m.post("/requests", agg_request)) == (403, "wrong_role")
    # expired
    assert _code(await m.post("/offers", m.offer(valid_until_s=m.clock.now_s() - 1))) == (
        422,
        "expired",
    )
    # malformed: the error names the field
    bad = env_json(good)
    bad["message"]["max_w"] = -5
    r = await m.post("/offers", bad)
    assert _code(r) == (422, "invalid")
    assert "max_w" in r.json()["error"]["message"]
    # MTUs outside the session, an unknown area, a TSO request with PODs
    r = await m.post("/offers", m.offer(start=DAY - 900))
    assert _code(r) == (422, "invalid") and r.json()["error"]["details"]["field"].endswith(
        "mtu_start_s"
    )
    assert _code(await m.post("/requests", m.tso_request(area="NOWHERE"))) == (422, "invalid")
    assert await _stored(m) == 0

    # accepted once; the same bytes again are an idempotent duplicate
    r = await m.post("/offers", good)
    assert r.status_code == 201 and r.json()["duplicate"] is False
    r = await m.post("/offers", good)
    assert r.status_code == 200 and r.json()["duplicate"] is True
    # the same nonce with other content: conflict, counted
    clash = m.offer(max_kw=31, nonce=good.message.nonce)
    assert _code(await m.post("/offers", clash)) == (409, "conflict")
    health = await m.get("/health")
    assert health["counters"]["conflict"] == 1
    assert await _stored(m) == 1

    # gate closed: on the clock, before the scheduler has even acted
    m.scheduler = False
    await m.advance_to(GATE)
    assert _code(await m.post("/offers", m.offer(pod="IT001E00000009"))) == (409, "gate_closed")
    assert _code(await m.post("/requests", m.dso_request())) == (409, "gate_closed")
    await m.wait_state("DA-1", "validating")
    assert await _stored(m) == 1


async def test_session_commands(market: Market) -> None:
    m = market
    # only the market operator opens sessions
    cmd = m.command("DA-2", SessionAction.OPEN)
    by_dso = signer("dso", m.contracts).sign(cmd.message)
    r = await m.post("/sessions", by_dso)
    assert _code(r) == (403, "wrong_role")
    # a gate already past is refused
    late = m.command("DA-2", SessionAction.OPEN, delivery_start_s=DAY - 86_400)
    assert _code(await m.post("/sessions", late)) == (422, "invalid")
    r = await m.post("/sessions", cmd)
    assert r.status_code == 201 and r.json()["gate_closure_s"] == GATE
    assert (await m.post("/sessions", cmd)).status_code == 200  # the same command again
    again = m.command("DA-2", SessionAction.OPEN)
    assert _code(await m.post("/sessions", again)) == (409, "conflict")
    # finalize before any round: wrong state
    fin = m.command("DA-2", SessionAction.FINALIZE)
    assert _code(await m.post("/sessions/DA-2/commands", fin)) == (409, "wrong_state")
    # the operator closes the gate by command (empty book: one empty round)
    close = m.command("DA-2", SessionAction.CLOSE_GATE)
    r = await m.post("/sessions/DA-2/commands", close)
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "validating" and r.json()["round"] == 1
    assert r.json()["order_book_root"] == "0x" + "00" * 32
    offer = m.offer(session="DA-2")
    assert _code(await m.post("/offers", offer)) == (409, "gate_closed")
    assert isinstance(offer.message, Offer)
    assert _code(await m.post("/offers", m.offer(pod=POD1, session="NOPE"))) == (422, "invalid")


async def test_validation_and_order_refusals(market: Market) -> None:
    m = market
    await m.open("DA-1")
    await m.populate("DA-1")
    # an order before any outcome: wrong state
    await m.advance_to(GATE)
    await m.wait_state("DA-1", "validating")
    r1 = (await m.round("DA-1", 1)).message
    assert _code(await m.post("/orders", m.order(r1.awards[0]))) == (409, "wrong_state")
    good = m.validation(r1)
    # decisions that do not hash to the signed root: 401
    forged = env_json(good)
    forged["message"]["decisions"] = forged["message"]["decisions"][1:]
    assert _code(await m.post("/sessions/DA-1/validations", forged)) == (401, "bad_signature")
    # a validation signed by the TSO: 403
    by_tso = signer("tso", m.contracts).sign(good.message)
    assert _code(await m.post("/sessions/DA-1/validations", by_tso)) == (403, "wrong_role")
    # another round's root, a missing decision
    other_root = m.validation(r1.model_copy(update={"awards_root": "0x" + "ab" * 32}))
    assert _code(await m.post("/sessions/DA-1/validations", other_root)) == (422, "invalid")
    partial = m.validation(r1.model_copy(update={"awards": r1.awards[1:]}))
    r = await m.post("/sessions/DA-1/validations", partial)
    assert _code(r) == (422, "invalid")
    assert (await m.get("/sessions/DA-1/validations")) == []
    assert (await m.post("/sessions/DA-1/validations", good)).status_code == 201
    assert (await m.post("/sessions/DA-1/validations", good)).json()["duplicate"] is True
    await m.wait_state("DA-1", "final")

    award = next(a for a in r1.awards if a.stage == "dso")
    # more power than awarded; an MTU not awarded; the TSO ordering the DSO's award; expired
    too_much = m.order(award, power_w=award.power_w + 1)
    assert _code(await m.post("/orders", too_much)) == (422, "invalid")
    late_mtu = m.order(award.model_copy(update={"mtu_start_s": award.mtu_start_s + 86_400}))
    assert _code(await m.post("/orders", late_mtu)) == (422, "invalid")
    assert _code(await m.post("/orders", m.order(award, issuer="tso"))) == (403, "wrong_role")
    expired = m.order(award, expiry_s=m.clock.now_s() - 1)
    assert _code(await m.post("/orders", expired)) == (422, "expired")
    ok = m.order(award)
    assert (await m.post("/orders", ok)).status_code == 201
    clash = m.order(award, power_w=1, nonce=ok.message.nonce)
    assert _code(await m.post("/orders", clash)) == (409, "conflict")
    assert len(await m.get("/orders", session="DA-1")) == 1
