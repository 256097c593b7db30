"""The auditor's own solve of each clearing stage (``audit.clearing_reference``) and the checks
built on it (``audit.market``):

- on random small books with semi-continuous and all-or-nothing offers, the auditor's optimum
  of each stage is the engine's reported objective within the reported gap, its penalty rule
  gives the stated penalties, and the objective recomputed from the awards is the reported one;
- a clearing that is validly signed and committed but dearer than the optimum (the engine
  swapped for one that prefers dear offers) fails the cost check; one that reports the optimum
  while awarding dear offers fails the recomputation; the honest session passes;
- real-time sessions: capacity is what every outcome committed before the gate left (day-ahead
  and earlier real-time), not later ones; hiding capacity is caught.
"""

from __future__ import annotations

import dataclasses
import random
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import update

from audit.clearing_reference import (
    EUR_PER_W_MTU_PER_EUR_MWH,
    RefOffer,
    RefRequest,
    StageRules,
    candidates,
    objective_of_awards,
    rule_penalties,
    solve_stage,
)
from audit.market import AuditReport, audit_market_session
from flexledger.messages import MarketOutcome, Signed
from flexledger.units import PPM, Direction
from market import db
from market.app import create_app
from market.clearing import (
    ClearingBook,
    ClearingOffer,
    ClearingRequest,
    ClearingResult,
    DsoFirstClearing,
    GreedyMeritOrder,
)
from market.clearing.base import StageOutcome
from market.clearing.greedy import start_vector
from market.clearing.model import StageModel
from market.service import clearing_port
from node.contracts import FlexContracts
from tests.market.helpers import AREAS, DAY, GATE, POD1, POD2, T40, Market

DAY0 = 1_796_083_200
MTU = 900
COST = "{} stage cost within the gap of the auditor's solve"
RECOMPUTED = "{} stage objective, cost and unmet volume recomputed from its awards"
RT_CAPACITY = "real-time capacity is what the outcomes committed before the gate left"
FEW = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --------------------------------------------------------------------- the reference alone


def _h(rng: random.Random) -> str:
    return f"0x{rng.getrandbits(256):064x}"


def random_book(seed: int, n_offers: int = 12, n_mtus: int = 3) -> ClearingBook:
    """A small random book: half the offers with a minimum (half of those all-or-nothing),
    eligible factors 0.1..1 (one POD below a 0.2 minimum factor), two areas, mostly ``up``."""
    rng = random.Random(seed)
    pods = [f"IT001E{i:08d}" for i in range(5)]
    pod_area = {p: f"AREA-{i % 2}" for i, p in enumerate(pods)}

    def window() -> tuple[int, ...]:
        first = rng.randrange(n_mtus)
        return tuple(DAY0 + (first + k) * MTU for k in range(rng.randint(1, n_mtus - first)))

    def direction() -> Direction:
        return Direction.UP if rng.random() < 0.85 else Direction.DOWN

    offers = []
    for _ in range(n_offers):
        max_w = rng.randint(1_000, 20_000)
        min_w = 0
        if rng.random() < 0.5:
            min_w = max_w if rng.random() < 0.5 else rng.randint(max_w // 4, max_w - 1)
        offers.append(
            ClearingOffer(
                _h(rng),
                rng.choice(pods),
                direction(),
                window(),
                max_w,
                min_w,
                rng.randint(3_000, 30_000),
            )
        )
    requests = []
    for _ in range(3):
        chosen = rng.sample(pods, rng.randint(1, len(pods)))
        eligible = {p: rng.randint(100_000, PPM) for p in chosen}
        eligible[chosen[0]] = PPM
        requests.append(
            ClearingRequest(
                _h(rng),
                "dso",
                direction(),
                window(),
                rng.randint(1_000, 30_000),
                rng.randint(10_000, 40_000),
                eligible,
            )
        )
    for _ in range(2):
        requests.append(
            ClearingRequest(
                _h(rng),
                "tso",
                direction(),
                window(),
                rng.randint(2_000, 40_000),
                rng.randint(10_000, 40_000),
                area=f"AREA-{rng.randrange(2)}",
            )
        )
    return ClearingBook.of("DA-R", offers, requests, pod_area)


def _ref(
    book: ClearingBook,
) -> tuple[dict[str, RefOffer], dict[str, RefRequest]]:
    offers = {
        o.hash: RefOffer(
            o.hash,
            o.pod,
            int(o.direction),
            frozenset(o.mtu_starts),
            o.max_w,
            o.min_w,
            o.price_cents_per_mwh,
        )
        for o in book.offers
    }
    requests = {
        r.hash: RefRequest(
            r.hash,
            int(r.direction),
            frozenset(r.mtu_starts),
            r.volume_w,
            r.max_price_cents_per_mwh,
            dict(r.eligible),
            r.area,
        )
        for r in book.requests
    }
    return offers, requests


def _all_mtus(book: ClearingBook) -> list[int]:
    return sorted(
        {t for o in book.offers for t in o.mtu_starts}
        | {t for r in book.requests for t in r.mtu_starts}
    )


def _check_against_engine(
    book: ClearingBook,
    result: ClearingResult,
    *,
    margin: float,
    min_factor_ppm: int,
    window: list[int],
    excluded: set[tuple[str, str, int]],
) -> None:
    offers, requests = _ref(book)
    cap: dict[tuple[str, int], float] = {
        (o.hash, t): o.max_w for o in book.offers for t in o.mtu_starts
    }
    for stage in ("dso", "tso"):
        report = result.stages[stage]
        rules = StageRules(
            margin if stage == "dso" else 0.0,
            min_factor_ppm,
            report.penalty_margin_eur_per_mwh,
            report.penalty_volume_eur_per_mwh,
        )
        common: dict[str, Any] = {"capacity": cap, "window": window, "pod_area": book.pod_area}
        cands = candidates(
            offers.values(),
            requests.values(),
            stage,
            min_factor_ppm=min_factor_ppm,
            excluded=excluded,
            **common,
        )
        assert rule_penalties(cands, 3_000.0) == (
            report.penalty_margin_eur_per_mwh,
            report.penalty_volume_eur_per_mwh,
        )
        mine = solve_stage(
            offers.values(), requests.values(), stage, rules=rules, excluded=excluded, **common
        )
        assert mine.status == "optimal" and mine.gap_eur <= 1e-9 * max(1.0, mine.objective_eur)
        market = report.objective_eur
        allowed = max(report.mip_gap * abs(market), report.mip_gap_eur)
        tol = 1e-6 * max(1.0, abs(mine.objective_eur))
        assert mine.bound_eur - tol <= market <= mine.objective_eur + allowed + tol, stage
        awards = [a for a in result.awards if a.stage == stage]
        assert not {a.key for a in awards} & excluded
        again = objective_of_awards(
            [(a.offer_hash, a.request_hash, a.mtu_start_s, a.power_w) for a in awards],
            offers,
            requests,
            stage,
            window=window,
            pod_area=book.pod_area,
            rules=rules,
        )
        rounding = sum(
            (offers[a.offer_hash].price_eur_per_mwh + rules.penalty_volume_eur_per_mwh)
            * EUR_PER_W_MTU_PER_EUR_MWH
            for a in awards
        )
        assert abs(again.objective_eur - market) <= rounding + tol
        assert again.unmet_w == {
            k: w for k, w in result.unmet_w.items() if requests[k[0]].stage == stage
        }
        assert report.unmet_w == sum(again.unmet_w.values())
        for a in awards:  # the TSO stage: on what the engine's DSO awards left
            cap[(a.offer_hash, a.mtu_start_s)] -= a.power_w


@FEW
@given(
    seed=st.integers(0, 2**32 - 1),
    margin=st.sampled_from([0.0, 0.1, 0.3]),
    min_factor_ppm=st.sampled_from([1_000, 200_000]),
    exclude=st.booleans(),
)
def test_the_auditors_solve_matches_the_engine(
    seed: int, margin: float, min_factor_ppm: int, exclude: bool
) -> None:
    book = random_book(seed)
    engine = DsoFirstClearing(reliability_margin=margin, min_factor_ppm=min_factor_ppm)
    result = engine.compute(book)
    excluded: set[tuple[str, str, int]] = set()
    if exclude and result.awards:  # as after a validation round that rejected one award
        a = result.awards[0]
        excluded = {(a.offer_hash, a.request_hash, a.mtu_start_s)}
        result = engine.compute(book, excluded=excluded)
    window = _all_mtus(book)
    _check_against_engine(
        book,
        result,
        margin=margin,
        min_factor_ppm=min_factor_ppm,
        window=window,
        excluded=excluded,
    )


def test_the_session_window_and_the_greedy_bound() -> None:
    """Only the window's MTUs count; a greedy clearing is never below the auditor's bound."""
    book = random_book(5, n_offers=14, n_mtus=4)
    window = [DAY0 + MTU, DAY0 + 2 * MTU]
    result = DsoFirstClearing(start_s=window[0], mtu_count=2).compute(book)
    _check_against_engine(
        book, result, margin=0.1, min_factor_ppm=1_000, window=window, excluded=set()
    )
    greedy = GreedyMeritOrder().compute(book)
    offers, requests = _ref(book)
    report = greedy.stages["dso"]
    rules = StageRules(
        0.1, 1_000, report.penalty_margin_eur_per_mwh, report.penalty_volume_eur_per_mwh
    )
    cap = {(o.hash, t): o.max_w for o in book.offers for t in o.mtu_starts}
    every = _all_mtus(book)
    mine = solve_stage(
        offers.values(),
        requests.values(),
        "dso",
        capacity=cap,
        window=every,
        pod_area=book.pod_area,
        rules=rules,
    )
    assert report.objective_eur >= mine.bound_eur - 1e-6 * max(1.0, mine.bound_eur)


def test_the_reference_follows_the_rules_by_hand() -> None:
    """A 10 kW all-or-nothing block at 50 €/MWh, a divisible 10 kW at 100 €/MWh and a
    semi-continuous one (6..10 kW) at 10 €/MWh at a POD with factor 0.5."""
    block = RefOffer("0xb", "P1", 1, frozenset({0}), 10_000, 10_000, 5_000)
    flexible = RefOffer("0xf", "P2", 1, frozenset({0}), 10_000, 0, 10_000)
    semi = RefOffer("0xs", "P3", 1, frozenset({0}), 10_000, 6_000, 1_000)
    rules = StageRules(0.0, 1_000, 3_000.0, 30_000.0)

    def solve(volume_w: int, *offers: RefOffer) -> dict[str, float]:
        eligible = {"P1": PPM, "P2": PPM, "P3": 500_000}
        request = RefRequest("0xr", 1, frozenset({0}), volume_w, 40_000, eligible)
        cap = {(o.hash, 0): o.max_w for o in offers}
        sol = solve_stage(
            offers, [request], "dso", capacity=cap, window=[0], pod_area={}, rules=rules
        )
        got: dict[str, float] = defaultdict(float)
        for (o, _, _), w in sol.power_w.items():
            got[o] += round(w, 3)
        assert sol.gap_eur <= 1e-9
        return {k: v for k, v in got.items() if v}

    kw_mtu = EUR_PER_W_MTU_PER_EUR_MWH * 1000
    assert solve(4_000, block, flexible) == {"0xf": 4_000}  # 0.10 € beat the 0.125 € block
    assert solve(8_000, block, flexible) == {"0xb": 10_000}  # the block, never split
    assert solve(13_000, block, flexible) == {"0xb": 10_000, "0xf": 3_000}
    # the semi-continuous offer counts half: 1 kW effective needs its 6 kW minimum (0.015 €),
    # cheaper than 1 kW flexible (0.025 €)
    assert solve(1_000, semi, flexible) == {"0xs": 6_000}
    # unmet volume when nothing can serve: volume × 30,000 €/MWh, no margin here
    request = RefRequest("0xr", 1, frozenset({0}), 2_000, 40_000, {"P9": PPM})
    sol = solve_stage([block], [request], "dso", capacity={}, window=[0], pod_area={}, rules=rules)
    assert sol.objective_eur == pytest.approx(2 * 30_000 * kw_mtu)


# ------------------------------------------------------------- a market that clears dearer


class Dearer(DsoFirstClearing):
    """Clears each stage as if the offers' price ranking were reversed (dearest first), then
    reports the objective of what it awarded at the real prices and a zero gap — or, with
    ``lie``, the honest optimum's objective. The market signs and commits it as usual."""

    lie: ClassVar[bool] = False

    def _clear_stage(self, model: StageModel) -> StageOutcome:
        n = model.n_awards
        if not n:
            return super()._clear_stage(model)
        c = model.lp.c.copy()
        c[:n] = c[:n].max() + c[:n].min() - c[:n]
        reversed_prices = dataclasses.replace(model, lp=dataclasses.replace(model.lp, c=c))
        out = super()._clear_stage(reversed_prices)
        if self.lie:
            out.objective_eur = super()._clear_stage(model).objective_eur
        else:
            out.objective_eur = float(model.lp.c @ start_vector(model, out.power_w))
        out.mip_gap = out.mip_gap_eur = 0.0
        return out


class DearerLying(Dearer):
    lie = True


async def _day_ahead(m: Market, session: str, *, reject_first: bool) -> None:
    """``Market.run_day_ahead`` with one more offer: a dear one at POD1 (90 €/MWh)."""
    await m.open(session)
    await m.populate(session)
    dear = m.offer("aggregator:2", POD1, 30, 90, session)
    assert (await m.post("/offers", dear)).status_code == 201
    await m.advance_to(GATE)
    await m.wait_state(session, "validating")
    r1 = (await m.round(session, 1)).message
    reject = {r1.awards[0].award_hash} if reject_first else set()
    r = await m.post(f"/sessions/{session}/validations", m.validation(r1, reject))
    assert r.status_code == 201, r.text
    if reject:
        r2 = (await m.round(session, 2)).message
        r = await m.post(f"/sessions/{session}/validations", m.validation(r2))
        assert r.status_code == 201, r.text
    await m.wait_state(session, "final")


class Auditor:
    """Audits sessions of a stopped market through a fresh app on its database (the API only;
    the app's engine is there for the tests that tamper with the database)."""

    def __init__(self, contracts: FlexContracts) -> None:
        self.contracts = contracts
        self.apps: list[FastAPI] = []

    def app(self, m: Market) -> FastAPI:
        app = create_app(
            m.settings(), contracts=self.contracts, clock=m.clock, areas=AREAS, scheduler=False
        )
        self.apps.append(app)
        return app

    def __call__(self, m: Market, session: str) -> AuditReport:
        with TestClient(self.app(m)) as http:
            return audit_market_session(http, self.contracts, session)

    def close(self) -> None:
        for app in self.apps:
            app.state.ctx.engine.dispose()


@pytest.fixture()
def auditor(contracts: FlexContracts) -> Iterator[Auditor]:
    a = Auditor(contracts)
    yield a
    a.close()


def _failed(report: AuditReport) -> dict[str, str]:
    return {f.check: f.detail for f in report.failures()}


@pytest.mark.asyncio(loop_scope="session")
async def test_a_dearer_clearing_fails_the_cost_check(
    contracts: FlexContracts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, auditor: Auditor
) -> None:
    honest = Market(contracts, tmp_path / "honest")
    async with honest.running():
        await _day_ahead(honest, "DA-HONEST", reject_first=True)
    report = auditor(honest, "DA-HONEST")
    assert report.ok, report.failures()
    for stage in ("dso", "tso"):
        found = report.finding(COST.format(stage))
        assert found is not None and "optimal" in found.detail

    monkeypatch.setattr(clearing_port, "DsoFirstClearing", Dearer)
    dear = Market(contracts, tmp_path / "dear")
    async with dear.running():
        await _day_ahead(dear, "DA-DEAR", reject_first=False)
    failed = _failed(auditor(dear, "DA-DEAR"))
    # validly signed and committed, every award within its offer: only the cost is wrong
    assert set(failed) == {COST.format("dso"), COST.format("tso")}, failed
    for stage in ("dso", "tso"):
        assert "more expensive than the auditor's optimum" in failed[COST.format(stage)]
        assert "beyond its reported gap 0.000000 €" in failed[COST.format(stage)]

    monkeypatch.setattr(clearing_port, "DsoFirstClearing", DearerLying)
    liar = Market(contracts, tmp_path / "liar")
    async with liar.running():
        await _day_ahead(liar, "DA-LIAR", reject_first=False)
    failed = _failed(auditor(liar, "DA-LIAR"))
    # it reports the optimum's objective, which its awards do not have
    assert set(failed) == {RECOMPUTED.format("dso"), RECOMPUTED.format("tso")}, failed


# ----------------------------------------------------------------------------- real time


@pytest.mark.asyncio(loop_scope="session")
async def test_real_time_capacity_counts_earlier_outcomes_only(
    contracts: FlexContracts, tmp_path: Path, auditor: Auditor
) -> None:
    """DA-1, then RT-1 and RT-2, both covering 10:00–11:00 where the offers are. RT-2's
    capacity is what DA-1 and RT-1 left; RT-1's, audited after RT-2 was committed, is what
    DA-1 alone left."""
    m = Market(contracts, tmp_path)
    t41 = T40 + MTU
    async with m.running():
        await m.run_day_ahead("DA-1", reject_first=True)
        await m.advance_to(DAY + 7 * 3600)
        await m.open("RT-1", kind="real_time", delivery_start_s=DAY + 32 * MTU, mtu_count=16)
        await m.open("RT-2", kind="real_time", delivery_start_s=DAY + 36 * MTU, mtu_count=16)
        for env in (
            m.dso_request(volume_kw=4, session="RT-1", start=T40, eligible={POD2: 1.0}),
            m.dso_request(volume_kw=5, session="RT-2", start=T40, eligible={POD2: 1.0}),
            m.tso_request(volume_kw=5, session="RT-2", start=T40, area="AREA-A"),
        ):
            assert (await m.post("/requests", env)).status_code == 201
        for session, start in (("RT-1", DAY + 32 * MTU), ("RT-2", DAY + 36 * MTU)):
            await m.advance_to(start - 300)
            await m.wait_state(session, "validating")
            rt = (await m.round(session, 1)).message
            assert any(a.mtu_start_s == t41 for a in rt.awards), rt.awards
            r = await m.post(f"/sessions/{session}/validations", m.validation(rt))
            assert r.status_code == 201, r.text
            await m.wait_state(session, "final")
        rt1 = Signed[MarketOutcome].model_validate(await m.get("/sessions/RT-1/outcome"))
        rt2 = Signed[MarketOutcome].model_validate(await m.get("/sessions/RT-2/outcome"))
        book2 = await m.get("/sessions/RT-2/orderbook")
    # RT-1 and RT-2 both took POD2's flexibility at 10:15: RT-2's capacity counts RT-1's
    pod2 = {a.offer_hash for a in rt1.message.awards if a.pod == POD2 and a.mtu_start_s == t41}
    assert pod2 and pod2 & {a.offer_hash for a in rt2.message.awards if a.mtu_start_s == t41}
    left = {(c["offer_hash"], c["mtu_start_s"]): c["remaining_w"] for c in book2["capacity"]}
    rt1_w = sum(a.power_w for a in rt1.message.awards if a.pod == POD2 and a.mtu_start_s == t41)
    assert left[(next(iter(pod2)), t41)] == 20_000 - rt1_w  # DA-1 left POD2 free at 10:15

    for s in ("DA-1", "RT-1", "RT-2"):
        report = auditor(m, s)
        assert report.ok, (s, report.failures())
        assert (report.finding(RT_CAPACITY) is not None) == s.startswith("RT")

    # the market hides 100 W of every offer at 10:15 in RT-2's published book: caught
    app = auditor.app(m)
    c = db.book_capacity.c
    with app.state.ctx.engine.begin() as conn:
        conn.execute(
            update(db.book_capacity)
            .where(c.session_id == "RT-2", c.mtu_start_s == t41)
            .values(remaining_w=c.remaining_w - 100)
        )
    failed = _failed(auditor(m, "RT-2"))
    assert set(failed) == {RT_CAPACITY}, failed
    assert "published" in failed[RT_CAPACITY]
