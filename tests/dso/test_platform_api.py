"""The platform end to end against fake SCD and market services (their documented routes), and
the DSO's HTTP API."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest

from dso import DsoGrid, DsoPlatform, create_app
from flexledger.messages import (
    Award,
    ClearingProvenance,
    MarketOutcome,
    QuarterlyMeasure,
    Receipt,
    Request,
    Signed,
    Validation,
    h32,
)
from flexledger.scenario import Scenario
from flexledger.time import DAY_S, MTU_S, MTUS_PER_DAY
from flexledger.transport import SignedHttpClient
from flexledger.units import Direction
from node.signing import LocalSigner, commitment_root, message_hash, verify_envelope
from tests.dso.conftest import DOMAIN

SESSION = "da-2026-07-25"


class FakeServices:
    """The SCD's ``GET /measures/quarterly`` and the market's requests, rounds, validations."""

    def __init__(self, grid: DsoGrid, case: Scenario, market: LocalSigner) -> None:
        assert grid.profile_day is not None
        days = 21
        inj = grid.profile_injections(
            start_step=(grid.profile_day - days) * MTUS_PER_DAY, n_steps=days * MTUS_PER_DAY
        )
        first = case.day_s - days * DAY_S
        self.history = {
            pod: [
                QuarterlyMeasure(pod=pod, mtu_start_s=first + k * MTU_S, e_wh=round(p / 4 * 1000),
                                 source="history")
                for k, p in enumerate(p_kw)
            ]
            for pod, p_kw in grid.pod_p_kw(inj).items()
        }  # fmt: skip
        self.market = market
        self.day_s = case.day_s
        self.requests: list[Signed[Request]] = []
        self.validations: list[Signed[Validation]] = []
        self.outcome: Signed[MarketOutcome] | None = None

    def scd(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/measures/quarterly"
        q = request.url.params
        rows = [
            m.model_dump(mode="json")
            for m in self.history[q["pod"]]
            if int(q["from_s"]) <= m.mtu_start_s < int(q["to_s"])
        ]
        return httpx.Response(200, json=rows)

    def market_api(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "POST" and path == "/requests":
            env = Signed[Request].model_validate(json.loads(request.content))
            self.requests.append(env)
            h = h32(message_hash(env.message))
            return httpx.Response(201, json=Receipt(kind="request", hash=h).model_dump(mode="json"))
        if request.method == "GET" and path == "/sessions/rt-1":
            start = self.day_s + 40 * MTU_S
            return httpx.Response(
                200,
                json={"session_id": "rt-1", "kind": "real_time", "state": "open",
                      "delivery_start_s": start, "mtu_count": 16, "gate_closure_s": start - 300},
            )  # fmt: skip
        if request.method == "GET" and path == f"/sessions/{SESSION}/rounds/1":
            assert self.outcome is not None
            return httpx.Response(200, json=self.outcome.model_dump(mode="json"))
        if request.method == "POST" and path == f"/sessions/{SESSION}/validations":
            val = Signed[Validation].model_validate(json.loads(request.content))
            self.validations.append(val)
            h = h32(message_hash(val.message))
            receipt = Receipt(kind="validation", hash=h, session_id=SESSION)
            return httpx.Response(201, json=receipt.model_dump(mode="json"))
        return httpx.Response(404, json={"error": {"code": "not_found", "message": path}})


@pytest.fixture(scope="module")
def services(pv_grid: DsoGrid, pv_case: Scenario, market_signer: LocalSigner) -> FakeServices:
    return FakeServices(pv_grid, pv_case, market_signer)


@pytest.fixture(scope="module")
def platform(
    pv_grid: DsoGrid, pv_case: Scenario, dso_signer: LocalSigner, market_signer: LocalSigner,
    services: FakeServices,
) -> DsoPlatform:  # fmt: skip
    return DsoPlatform(
        pv_grid,
        dso_signer,
        DOMAIN,
        market_operator=market_signer.address,
        scenario=pv_case,
        now_s=lambda: pv_case.day_s - 6 * 3600,
        scd=SignedHttpClient("http://scd", transport=httpx.MockTransport(services.scd)),
        market=SignedHttpClient(
            "http://market", dso_signer, transport=httpx.MockTransport(services.market_api)
        ),
    )


async def test_day_ahead_posts_signed_located_requests(
    platform: DsoPlatform, services: FakeServices, pv_case: Scenario, dso_signer: LocalSigner
) -> None:
    """History from the SCD → forecast (scored on held-out days) → assessment → requests posted
    to the market, signed by the DSO, one per located need."""
    record = await platform.day_ahead(SESSION, pv_case.day_s, pv_case.day_s - 3600)
    assert record.assessment is not None and record.forecast_score is not None
    assert record.forecast_score.beats_persistence, str(record.forecast_score)
    assert record.assessment.before, "the forecast sees the PV feeder's over-voltage"
    assert len(services.requests) == len(record.assessment.needs) == len(record.receipts) >= 1
    for env, need in zip(services.requests, record.assessment.needs, strict=True):
        assert verify_envelope(env, DOMAIN) == dso_signer.address
        assert env.message.session_id == SESSION
        assert env.message.direction == need.direction == Direction.DOWN
        assert {e.pod for e in env.message.eligible} == set(need.factors)


async def test_round_is_validated_and_posted(
    platform: DsoPlatform, services: FakeServices, pv_case: Scenario, market_signer: LocalSigner
) -> None:
    record = platform.days[pv_case.day_s]
    assert record.assessment is not None
    need = record.assessment.needs[0]
    assert need.best_pod is not None
    awards = [
        Award(
            session_id=SESSION, offer_hash="0x" + "01" * 32, request_hash="0x" + "02" * 32,
            mtu_start_s=need.factors_at_s, power_w=round(need.volume_kw * 1000),
            price_cents_per_mwh=10_000, pod=need.best_pod, direction=Direction.DOWN, stage="dso",
            share_of_request=1.0,
        ),
        Award(
            session_id=SESSION, offer_hash="0x" + "03" * 32, request_hash="0x" + "04" * 32,
            mtu_start_s=need.factors_at_s, power_w=2_000_000, price_cents_per_mwh=10_000,
            pod=need.best_pod, direction=Direction.UP, stage="tso", share_of_request=1.0,
        ),
    ]  # fmt: skip
    outcome = MarketOutcome(
        session_id=SESSION, round=1, final=False, awards=awards,
        awards_root=h32(commitment_root([a.leaf() for a in awards])), total_cost_cents=0,
        provenance=ClearingProvenance(name="fake", version="0", solver="none"),
    )  # fmt: skip
    services.outcome = market_signer.sign(outcome)
    signed = await platform.validate_round(SESSION, 1)
    assert services.validations == [signed]
    assert [d.approved for d in signed.message.decisions] == [True, False]
    assert signed.message.awards_root == outcome.awards_root


async def test_api_reads(platform: DsoPlatform, pv_case: Scenario) -> None:
    app = create_app(platform)
    day = pv_case.day_s
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://dso"
    ) as c:
        health = (await c.get("/health")).json()
        assert health["status"] == "ok" and health["service"] == "dso" and day in health["days"]
        a = (await c.get(f"/assessments/{day}")).json()
        assert a["summary"]["violations_before"] > 0 and a["needs"]
        assert a["forecast_score"]["nmae"] < a["forecast_score"]["persistence_nmae"]
        v = (await c.get("/violations", params={"day_s": day})).json()
        assert (
            v["horizon"] == "day_ahead"
            and len(v["violations"]) == a["summary"]["violations_before"]
        )
        after = (await c.get("/violations", params={"day_s": day, "after_remedies": True})).json()
        assert len(after["violations"]) == a["summary"]["violations_after"]
        remedies = (await c.get(f"/remedies/{day}")).json()
        assert all(r["configuration"]["taps"] for r in remedies)
        r = (await c.get("/requests", params={"day_s": day})).json()
        assert len(r["requests"]) == len(a["needs"]) == len(r["receipts"])
        missing = await c.get(f"/assessments/{day + DAY_S}")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
        assert (await c.get("/state")).status_code == 404


def test_realtime_assessment_follows_the_tracked_topology(
    platform: DsoPlatform, pv_case: Scenario
) -> None:
    """16 MTUs from 10:00, with a line of feeder 4 switched out by a topology event: the
    assessment runs on the tracked configuration and covers the session's four hours."""
    from flexledger.messages import TopologyEvent

    event = platform.signer.sign(TopologyEvent(element="line:18", closed=False, t_s=1, seq=1))  # type: ignore[attr-defined]
    assert platform.on_topology(event)
    now = pv_case.day_s + 10 * 3600 + 120
    record = platform.assess_realtime(now, {})
    a = record.assessment
    assert a is not None and a.horizon == "real_time" and len(a.mtu_start_s) == 16
    assert int(a.mtu_start_s[0]) == pv_case.day_s + 40 * MTU_S
    # buses beyond the opened line are not supplied: NaN, not violations
    assert np.isnan(a.vm_before_pu).any()
    platform.topology.lines_out.clear()
    platform.topology.switches.clear()


async def test_a_real_time_session_opening_gets_its_requests(
    platform: DsoPlatform, services: FakeServices, pv_case: Scenario
) -> None:
    """Scenario 2: the market announces a real-time session for 10:00–14:00; the DSO reads it,
    assesses the next 16 MTUs on its real-time forecast and posts requests inside the window."""
    before = len(services.requests)
    notice = {"session_id": "rt-1", "state": "open", "round": 0, "t_s": pv_case.day_s}
    await platform._on_session_payload("t/flex/market/rt-1", json.dumps(notice).encode())
    posted = services.requests[before:]
    assert posted, "the PV feeder's noon over-voltage is in the window"
    start = pv_case.day_s + 40 * MTU_S
    for env in posted:
        r = env.message
        assert r.session_id == "rt-1"
        assert start <= r.mtu_start_s and r.mtu_start_s + r.mtu_count * MTU_S <= start + 16 * MTU_S
    record = platform.realtime[start]
    assert record.assessment is not None and record.assessment.horizon == "real_time"
    # what a day's driver waits on: the window's own record, not the day's (which the DSO has
    # too, day ahead), with how many needs its requests were made of
    app = create_app(platform)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://dso"
    ) as c:
        rt = (await c.get("/requests", params={"day_s": start, "kind": "real_time"})).json()
        assert rt["day_s"] == start and rt["needs"] == len(record.assessment.needs) > 0
        assert [r["message"]["session_id"] for r in rt["requests"]] == ["rt-1"] * len(posted)
        later = await c.get("/requests", params={"day_s": start + MTU_S, "kind": "real_time"})
        assert later.status_code == 404


async def test_voltages_and_setpoints(platform: DsoPlatform, pv_case: Scenario) -> None:
    """What the dashboard's grid view reads: the assessment's voltages per MTU and bus, whose
    cells outside the limits are exactly the bus violations of the I-10 alert."""
    app = create_app(platform)
    day = pv_case.day_s
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://dso"
    ) as c:
        v = (await c.get(f"/voltages/{day}")).json()
        alert = (await c.get("/violations", params={"day_s": day})).json()
        assert len(v["vm_before_pu"]) == len(v["mtu_start_s"]) == 96
        assert all(len(row) == len(v["bus_index"]) for row in v["vm_after_pu"])
        lo, hi = v["vm_min_pu"], v["vm_max_pu"]
        monitored = {int(x["element"].split(":")[1]) for x in alert["violations"]}
        outside = {
            (t, f"bus:{b}")
            for t, row in zip(v["mtu_start_s"], v["vm_before_pu"], strict=True)
            for b, x in zip(v["bus_index"], row, strict=True)
            if x is not None and (x < lo - 1e-5 or x > hi + 1e-5) and b in monitored
        }
        buses = {
            (x["mtu_start_s"], x["element"])
            for x in alert["violations"]
            if x["element"].startswith("bus:") and x["excess"] > 1e-5
        }
        assert outside == buses and buses
        rt = await c.get(f"/voltages/{day}", params={"kind": "real_time"})
        assert rt.status_code == 404 and rt.json()["error"]["code"] == "not_found"
        assert (await c.get("/setpoints")).json() == []
