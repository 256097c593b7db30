"""A real-time session clears only what the day-ahead awards left of the day-ahead offers."""

from __future__ import annotations

from collections import defaultdict

import pytest

from flexledger.messages import MarketOutcome, Signed
from tests.market.helpers import DAY, POD1, POD2, T40, Market

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_real_time_uses_remaining_capacity(market: Market) -> None:
    m = market
    final = await m.run_day_ahead("DA-1", reject_first=False)
    da = Signed[MarketOutcome].model_validate(await m.get("/sessions/DA-1/outcome")).message
    used: dict[tuple[str, int], int] = defaultdict(int)
    for a in da.awards:
        used[(a.offer_hash, a.mtu_start_s)] += a.power_w
    assert final["state"] == "final"

    # RT session: the 16 MTUs from 08:00, gate 5 min before; its own DSO request, no offers
    rt_start = DAY + 32 * 900
    await m.advance_to(DAY + 7 * 3600)
    await m.open("RT-1", kind="real_time", delivery_start_s=rt_start, mtu_count=16)
    r = await m.post("/offers", m.offer(session="RT-1", start=T40))
    assert r.status_code == 422  # offers go to day-ahead sessions
    big = m.dso_request(volume_kw=100, session="RT-1", eligible={POD1: 1.0, POD2: 0.8})
    assert (await m.post("/requests", big)).status_code == 201
    await m.advance_to(rt_start - 300)
    await m.wait_state("RT-1", "validating")

    book = await m.get("/sessions/RT-1/orderbook")
    assert book["based_on"] == ["DA-1"]
    offers = {o["hash"]: o for o in await m.get("/offers", session="DA-1")}
    for c in book["capacity"]:
        max_w = offers[c["offer_hash"]]["offer"]["message"]["max_w"]
        assert c["remaining_w"] == max_w - used[(c["offer_hash"], c["mtu_start_s"])]
    rt = (await m.round("RT-1", 1)).message
    assert rt.awards, "the RT request should get what the day-ahead left"
    for a in rt.awards:
        max_w = offers[a.offer_hash]["offer"]["message"]["max_w"]
        assert a.power_w <= max_w - used[(a.offer_hash, a.mtu_start_s)]
        assert a.pod == POD2  # POD1 was used up by the day-ahead awards
    r = await m.post("/sessions/RT-1/validations", m.validation(rt))
    assert r.status_code == 201, r.text
    await m.wait_state("RT-1", "final")
    # what the offers still have free now counts both sessions
    pod1 = next(h for h, o in offers.items() if o["offer"]["message"]["pod"] == POD1)
    assert used[(pod1, T40)] == 30_000
    pod2 = next(h for h, o in offers.items() if o["offer"]["message"]["pod"] == POD2)
    after = await m.get(f"/offers/{pod2}")
    rt_used = sum(a.power_w for a in rt.awards if a.mtu_start_s == T40)
    left = {x["mtu_start_s"]: x["power_w"] for x in after["remaining"]}
    assert rt_used > 0 and left[T40] == 20_000 - used[(pod2, T40)] - rt_used
