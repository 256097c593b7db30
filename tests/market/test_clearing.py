"""The clearing: awards within offers and requests, DSO before TSO, optimality against an
independent LP, unmet volume, determinism, pricing, binaries, exclusions and typed errors.

Books are small and random (seeded), so each example clears in milliseconds.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections import defaultdict

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from flexledger.messages import Award, ClearingProvenance, Eligibility, Offer, Request
from flexledger.messages.common import b32, id32
from flexledger.messages.leaves import award_leaf
from flexledger.units import PPM, Direction, awarded_wh, payment_cents
from market.clearing import (
    AwardKey,
    Clearing,
    ClearingBook,
    ClearingOffer,
    ClearingRequest,
    ClearingResult,
    DsoFirstClearing,
    GreedyMeritOrder,
    InfeasibleClearingError,
    MalformedBookError,
)
from market.clearing.base import StageOutcome, cost_cents
from market.clearing.model import StageModel
from node.keys import dev_account
from node.signing import message_hash

DAY = 1_796_083_200  # 2026-11-29 00:00 UTC
MTU = 900
SESSION = "DA-2026-11-29"
FAST = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ------------------------------------------------------------------------------------ books


def h(n: int) -> str:
    return f"0x{n:064x}"


def pod(i: int) -> str:
    return f"IT001E{i:08d}"


def mtus(first: int, count: int) -> tuple[int, ...]:
    return tuple(DAY + (first + k) * MTU for k in range(count))


def random_book(
    seed: int,
    *,
    n_offers: int = 10,
    n_dso: int = 3,
    n_tso: int = 1,
    n_mtus: int = 4,
    n_pods: int = 6,
    semi: float = 0.3,
) -> ClearingBook:
    """A small random book: mostly ``up``, two areas, eligible factors from 0.1 to 1."""
    rng = random.Random(seed)
    pods = [pod(i) for i in range(n_pods)]
    pod_area = {p: f"AREA-{i % 2}" for i, p in enumerate(pods)}

    def window() -> tuple[int, ...]:
        first = rng.randrange(n_mtus)
        return mtus(first, rng.randint(1, n_mtus - first))

    def direction() -> Direction:
        return Direction.UP if rng.random() < 0.8 else Direction.DOWN

    offers = []
    for _ in range(n_offers):
        max_w = rng.randint(1_000, 20_000)
        min_w = 0
        if rng.random() < semi:
            min_w = max_w if rng.random() < 0.5 else rng.randint(max_w // 4, max_w - 1)
        offers.append(
            ClearingOffer(
                hash=h(rng.getrandbits(256)),
                pod=rng.choice(pods),
                direction=direction(),
                mtu_starts=window(),
                max_w=max_w,
                min_w=min_w,
                price_cents_per_mwh=rng.randint(3_000, 30_000),
            )
        )
    requests = []
    for _ in range(n_dso):
        chosen = rng.sample(pods, rng.randint(1, n_pods))
        eligible = {p: rng.randint(100_000, PPM) for p in chosen}
        eligible[chosen[0]] = PPM
        requests.append(
            ClearingRequest(
                hash=h(rng.getrandbits(256)),
                stage="dso",
                direction=direction(),
                mtu_starts=window(),
                volume_w=rng.randint(1_000, 30_000),
                max_price_cents_per_mwh=rng.randint(10_000, 40_000),
                eligible=eligible,
            )
        )
    for _ in range(n_tso):
        requests.append(
            ClearingRequest(
                hash=h(rng.getrandbits(256)),
                stage="tso",
                direction=direction(),
                mtu_starts=window(),
                volume_w=rng.randint(2_000, 40_000),
                max_price_cents_per_mwh=rng.randint(10_000, 40_000),
                area=f"AREA-{rng.randrange(2)}",
            )
        )
    return ClearingBook.of(SESSION, offers, requests, pod_area)


def divisible(book: ClearingBook) -> ClearingBook:
    return dataclasses.replace(
        book, offers=tuple(dataclasses.replace(o, min_w=0) for o in book.offers)
    )


def without_tso(book: ClearingBook) -> ClearingBook:
    return dataclasses.replace(book, requests=tuple(r for r in book.requests if r.stage == "dso"))


def factor_of(book: ClearingBook, offer: ClearingOffer, request: ClearingRequest) -> float:
    if request.eligible:
        return request.eligible.get(offer.pod, 0) / PPM
    return 1.0 if book.pod_area.get(offer.pod) == request.area else 0.0


# --------------------------------------------------------------------------------- checks


def check_result(
    book: ClearingBook, result: ClearingResult, *, min_factor_ppm: int = 1_000, bid: bool = True
) -> None:
    """Every invariant an auditor checks on the published awards."""
    offers = {o.hash: o for o in book.offers}
    requests = {r.hash: r for r in book.requests}
    used: dict[tuple[str, int], int] = defaultdict(int)
    effective: dict[tuple[str, int], float] = defaultdict(float)
    for a in result.awards:
        o, r = offers[a.offer_hash], requests[a.request_hash]
        assert a.session_id == book.session_id
        assert 0 < a.power_w <= o.max_w
        if o.min_w:
            assert a.power_w >= o.min_w, "a semi-continuous award below its minimum"
        assert a.direction == o.direction == r.direction
        assert a.pod == o.pod
        assert a.mtu_start_s in o.mtu_starts and a.mtu_start_s in r.mtu_starts
        assert a.stage == r.stage
        assert o.price_cents_per_mwh <= a.price_cents_per_mwh <= r.max_price_cents_per_mwh
        if bid:
            assert a.price_cents_per_mwh == o.price_cents_per_mwh
        if r.eligible:
            assert r.eligible.get(o.pod, 0) >= min_factor_ppm, "an offer that is not located"
        else:
            assert book.pod_area.get(o.pod) == r.area, "an offer outside the request's area"
        f = factor_of(book, o, r)
        assert a.share_of_request == pytest.approx(a.power_w * f / r.volume_w)
        used[(o.hash, a.mtu_start_s)] += a.power_w
        effective[(r.hash, a.mtu_start_s)] += a.power_w * f
    for (offer_hash, _), w in used.items():
        assert w <= offers[offer_hash].max_w, "an offer awarded beyond max_w in an MTU"
    assert len({a.key for a in result.awards}) == len(result.awards)
    order = [
        (a.price_cents_per_mwh, a.offer_hash, a.request_hash, a.mtu_start_s) for a in result.awards
    ]
    assert order == sorted(order), "awards are not in economic order"
    for r in book.requests:
        for t in r.mtu_starts:
            eff = effective[(r.hash, t)]
            assert result.unmet_w[(r.hash, t)] == max(0, math.ceil(r.volume_w - eff - 1e-9))
            assert result.effective_w[(r.hash, t)] == pytest.approx(eff)
    for stage, report in result.stages.items():
        awards = [a for a in result.awards if a.stage == stage]
        assert report.cost_cents == sum(a.cost_cents for a in awards)


# ------------------------------------------------------------------------ the LP reference


def reference_stage_objective(
    book: ClearingBook,
    stage: str,
    *,
    margin: float,
    remaining_w: dict[tuple[str, int], int] | None = None,
    floor_eur_per_mwh: float = 3_000.0,
    min_factor_ppm: int = 1_000,
) -> float:
    """The stage's optimum on divisible offers, written from the rules with scipy's linprog:
    minimise Σ price × energy + penalties (€) over awards in kW and per-MTU slacks."""
    cands: list[tuple[int, int, int, float, float, float]] = []  # offer, request, t, f, ub, €/kW
    requests = [r for r in book.requests if r.stage == stage]
    for i, o in enumerate(book.offers):
        for j, r in enumerate(requests):
            if o.direction != r.direction or o.price_cents_per_mwh > r.max_price_cents_per_mwh:
                continue
            if r.eligible:
                ppm = r.eligible.get(o.pod, 0)
                if ppm < min_factor_ppm:
                    continue
                f = ppm / PPM
            elif book.pod_area.get(o.pod) == r.area:
                f = 1.0
            else:
                continue
            for t in set(o.mtu_starts) & set(r.mtu_starts):
                cap = o.max_w if remaining_w is None else remaining_w.get((o.hash, t), o.max_w)
                if cap > 0:
                    eur_per_kw = o.price_cents_per_mwh / 100 * 0.25 / 1000
                    cands.append((i, j, t, f, cap / 1000, eur_per_kw))
    pen_m = max(
        [floor_eur_per_mwh]
        + [10 * book.offers[i].price_cents_per_mwh / 100 / f for i, _, _, f, _, _ in cands]
    )
    pen_v = 10 * pen_m
    rows = [(j, t) for j, r in enumerate(requests) for t in r.mtu_starts]
    row_of = {k: n for n, k in enumerate(rows)}
    slots = sorted({(i, t) for i, _, t, _, _, _ in cands})
    slot_of = {k: n for n, k in enumerate(slots)}
    n_x, n_r = len(cands), len(rows)
    n = n_x + 2 * n_r
    c = np.zeros(n)
    bounds: list[tuple[float, float]] = []
    for k, (_, _, _, _, ub, eur) in enumerate(cands):
        c[k] = eur
        bounds.append((0.0, ub))
    volumes = [requests[j].volume_w / 1000 for j, _ in rows]
    for q in range(n_r):
        c[n_x + q] = pen_m * 0.25 / 1000
        c[n_x + n_r + q] = pen_v * 0.25 / 1000
    bounds += [(0.0, margin * v) for v in volumes] + [(0.0, v) for v in volumes]
    a_ub = np.zeros((n_r + len(slots), n))
    b_ub = np.zeros(n_r + len(slots))
    for k, (i, j, t, f, _, _) in enumerate(cands):
        a_ub[row_of[(j, t)], k] = -f
        a_ub[n_r + slot_of[(i, t)], k] = 1.0
    for q, vol in enumerate(volumes):
        a_ub[q, n_x + q] = -1.0
        a_ub[q, n_x + n_r + q] = -1.0
        b_ub[q] = -vol * (1 + margin)
    for (i, t), s in slot_of.items():
        o = book.offers[i]
        b_ub[n_r + s] = (
            o.max_w if remaining_w is None else remaining_w.get((o.hash, t), o.max_w)
        ) / 1000
    if n == 0:
        return 0.0
    res = linprog(c, A_ub=a_ub, b_ub=b_ub, bounds=bounds, method="highs")
    assert res.status == 0, res.message
    return float(res.fun)


def remaining_after(
    book: ClearingBook, result: ClearingResult, stage: str
) -> dict[tuple[str, int], int]:
    left = {(o.hash, t): o.max_w for o in book.offers for t in o.mtu_starts}
    for a in result.awards:
        if a.stage == stage:
            left[(a.offer_hash, a.mtu_start_s)] -= a.power_w
    return left


def rel(a: float, b: float) -> float:
    return abs(a - b) / max(1.0, abs(b))


# ----------------------------------------------------------------------------------- tests


@FAST
@given(seed=st.integers(0, 2**32 - 1), margin=st.sampled_from([0.0, 0.1, 0.3]))
def test_awards_stay_within_offers_and_requests(seed: int, margin: float) -> None:
    book = random_book(seed, n_offers=14, n_dso=4, n_tso=2, semi=0.4)
    result = DsoFirstClearing(reliability_margin=margin).compute(book)
    check_result(book, result)


@FAST
@given(seed=st.integers(0, 2**32 - 1), margin=st.sampled_from([0.0, 0.15]))
def test_stages_match_an_independent_lp(seed: int, margin: float) -> None:
    """On divisible offers the DSO stage is an LP: its objective is the reference optimum; the
    TSO stage's is the reference solved on what the market's DSO stage left."""
    book = divisible(random_book(seed, n_offers=12, n_dso=3, n_tso=2))
    result = DsoFirstClearing(reliability_margin=margin).compute(book)
    dso_ref = reference_stage_objective(book, "dso", margin=margin)
    assert rel(result.stages["dso"].objective_eur, dso_ref) <= 1e-6
    assert result.stages["dso"].mip_gap == 0.0 and result.stages["dso"].binaries == 0
    left = remaining_after(book, result, "dso")
    tso_ref = reference_stage_objective(book, "tso", margin=0.0, remaining_w=left)
    assert rel(result.stages["tso"].objective_eur, tso_ref) <= 1e-6


@FAST
@given(seed=st.integers(0, 2**32 - 1))
def test_dso_before_tso(seed: int) -> None:
    """TSO requests do not change the DSO stage; TSO awards only use what the DSO stage left."""
    book = random_book(seed, n_offers=12, n_dso=3, n_tso=3, semi=0.3)
    clearing = DsoFirstClearing()
    both = clearing.compute(book)
    alone = clearing.compute(without_tso(book))
    assert both.stages["dso"].cost_cents == alone.stages["dso"].cost_cents
    assert both.stages["dso"].objective_eur == pytest.approx(
        alone.stages["dso"].objective_eur, rel=1e-9
    )
    assert [a for a in both.awards if a.stage == "dso"] == list(alone.awards)
    left = remaining_after(book, both, "dso")
    for a in both.awards:
        if a.stage == "tso":
            left[(a.offer_hash, a.mtu_start_s)] -= a.power_w
    assert min(left.values()) >= 0


@FAST
@given(seed=st.integers(0, 2**32 - 1))
def test_never_worse_than_the_greedy(seed: int) -> None:
    """The greedy is the MIP start of every block: the optimum can only be better."""
    book = random_book(seed, n_offers=14, n_dso=4, n_tso=2, semi=0.5)
    optimal = DsoFirstClearing().compute(book)
    greedy = GreedyMeritOrder().compute(book)
    check_result(book, greedy)
    dso_opt, dso_greedy = optimal.stages["dso"].objective_eur, greedy.stages["dso"].objective_eur
    assert dso_opt <= dso_greedy + 1e-6 * max(1.0, dso_greedy)
    assert optimal.stages["dso"].mip_gap <= 1e-6


def test_unmet_volume_is_reported_not_dropped() -> None:
    offer = ClearingOffer(h(1), pod(1), Direction.UP, mtus(0, 2), 4_000, 0, 10_000)
    lonely = ClearingRequest(h(10), "dso", Direction.UP, mtus(0, 2), 5_000, 20_000, {pod(9): PPM})
    short = ClearingRequest(h(11), "dso", Direction.UP, mtus(0, 1), 6_000, 20_000, {pod(1): PPM})
    book = ClearingBook.of(SESSION, [offer], [lonely, short])
    result = DsoFirstClearing(reliability_margin=0.0).compute(book)
    assert result.unmet_w[(h(10), DAY)] == 5_000
    assert result.unmet_w[(h(10), DAY + MTU)] == 5_000
    assert result.unmet_w[(h(11), DAY)] == 2_000
    assert result.total_unmet_w == 12_000
    [award] = result.awards
    assert award.power_w == 4_000 and award.request_hash == h(11)
    assert result.to_provenance().unmet_w == {h(10): 10_000, h(11): 2_000}
    check_result(book, result)


def test_same_book_same_awards_whatever_the_order() -> None:
    book = random_book(7, n_offers=16, n_dso=4, n_tso=2, semi=0.4)
    first = DsoFirstClearing().compute(book)
    again = DsoFirstClearing().compute(book)
    shuffled = dataclasses.replace(
        book, offers=tuple(reversed(book.offers)), requests=tuple(reversed(book.requests))
    )
    third = DsoFirstClearing().compute(shuffled)
    assert first.awards == again.awards == third.awards
    assert [a.leaf() for a in first.awards] == [a.leaf() for a in third.awards]
    assert first.unmet_w == third.unmet_w


def test_ties_break_the_same_way() -> None:
    """Two identical offers but for their hash, one request needing one of them: the choice is
    the same on every run and in any input order."""
    offers = [
        ClearingOffer(h(n), pod(1), Direction.UP, mtus(0, 1), 5_000, 0, 10_000) for n in (2, 1)
    ]
    request = ClearingRequest(h(10), "dso", Direction.UP, mtus(0, 1), 5_000, 20_000, {pod(1): PPM})
    picks = set()
    for order in (offers, offers[::-1]):
        result = DsoFirstClearing(reliability_margin=0.0).compute(
            ClearingBook.of(SESSION, order, [request])
        )
        picks.add(tuple((a.offer_hash, a.power_w) for a in result.awards))
    assert len(picks) == 1


def test_pay_as_cleared_prices_from_the_marginal_offer() -> None:
    cheap = ClearingOffer(h(1), pod(1), Direction.UP, mtus(0, 1), 4_000, 0, 10_000)
    dear = ClearingOffer(h(2), pod(2), Direction.UP, mtus(0, 1), 10_000, 0, 15_000)
    half = ClearingOffer(h(3), pod(3), Direction.UP, mtus(0, 1), 1_000, 0, 5_000)
    request = ClearingRequest(
        h(10),
        "dso",
        Direction.UP,
        mtus(0, 1),
        7_000,
        40_000,
        {pod(1): PPM, pod(2): PPM, pod(3): PPM // 2},
    )
    book = ClearingBook.of(SESSION, [cheap, dear, half], [request])
    bid = DsoFirstClearing(reliability_margin=0.0).compute(book)
    cleared = DsoFirstClearing(reliability_margin=0.0, pricing="pay_as_cleared").compute(book)
    assert [(a.offer_hash, a.power_w) for a in sorted(bid.awards, key=lambda a: a.offer_hash)] == [
        (h(1), 4_000),
        (h(2), 2_500),
        (h(3), 1_000),
    ]
    price = {a.offer_hash: a.price_cents_per_mwh for a in cleared.awards}
    # λ = 15,000 per effective MWh: the full-factor offers get it, the half-factor one half
    assert price == {h(1): 15_000, h(2): 15_000, h(3): 7_500}
    assert cleared.total_cost_cents >= bid.total_cost_cents
    check_result(book, cleared, bid=False)


def test_pay_as_cleared_equals_pay_as_bid_for_a_single_offer() -> None:
    offer = ClearingOffer(h(1), pod(1), Direction.UP, mtus(0, 3), 20_000, 0, 12_345)
    request = ClearingRequest(
        h(10), "dso", Direction.UP, mtus(0, 3), 8_000, 40_000, {pod(1): 600_000}
    )
    book = ClearingBook.of(SESSION, [offer], [request])
    bid = DsoFirstClearing().compute(book)
    cleared = DsoFirstClearing(pricing="pay_as_cleared").compute(book)
    assert bid.awards == cleared.awards
    assert all(a.price_cents_per_mwh == 12_345 for a in cleared.awards)


@FAST
@given(seed=st.integers(0, 2**32 - 1))
def test_pay_as_cleared_stays_between_bid_and_cap(seed: int) -> None:
    book = random_book(seed, n_offers=12, n_dso=3, n_tso=2, semi=0.4)
    bid = DsoFirstClearing().compute(book)
    cleared = DsoFirstClearing(pricing="pay_as_cleared").compute(book)
    check_result(book, cleared, bid=False)
    assert [(a.key, a.power_w) for a in sorted(bid.awards, key=lambda a: a.key)] == [
        (a.key, a.power_w) for a in sorted(cleared.awards, key=lambda a: a.key)
    ]
    assert cleared.total_cost_cents >= bid.total_cost_cents


def test_semi_continuous_and_all_or_nothing_are_respected() -> None:
    block = ClearingOffer(h(1), pod(1), Direction.UP, mtus(0, 1), 10_000, 10_000, 5_000)
    flexible = ClearingOffer(h(2), pod(2), Direction.UP, mtus(0, 1), 10_000, 0, 10_000)
    eligible = {pod(1): PPM, pod(2): PPM}

    def clear(volume_w: int) -> dict[str, int]:
        req = ClearingRequest(h(10), "dso", Direction.UP, mtus(0, 1), volume_w, 40_000, eligible)
        book = ClearingBook.of(SESSION, [block, flexible], [req])
        result = DsoFirstClearing(reliability_margin=0.0).compute(book)
        check_result(book, result)
        return {a.offer_hash: a.power_w for a in result.awards}

    # 4 kW: 4 kW of the flexible offer (0.10 €/MTU·kW) beat the 10 kW block (0.125 €)
    assert clear(4_000) == {h(2): 4_000}
    # 8 kW: the whole block (0.125 €) beats 8 kW flexible (0.20 €); the block is never split
    assert clear(8_000) == {h(1): 10_000}
    # 13 kW: block + 3 kW flexible
    assert clear(13_000) == {h(1): 10_000, h(2): 3_000}

    minimum = ClearingOffer(h(3), pod(3), Direction.UP, mtus(0, 1), 10_000, 6_000, 1_000)
    req = ClearingRequest(h(11), "dso", Direction.UP, mtus(0, 1), 2_000, 40_000, {pod(3): PPM})
    result = DsoFirstClearing(reliability_margin=0.0).compute(
        ClearingBook.of(SESSION, [minimum], [req])
    )
    assert [a.power_w for a in result.awards] == [6_000]  # at least its minimum, not 2 kW


def test_an_all_or_nothing_offer_serves_one_request_per_mtu() -> None:
    block = ClearingOffer(h(1), pod(1), Direction.UP, mtus(0, 1), 6_000, 6_000, 1_000)
    r1 = ClearingRequest(h(10), "dso", Direction.UP, mtus(0, 1), 3_000, 40_000, {pod(1): PPM})
    r2 = ClearingRequest(h(11), "dso", Direction.UP, mtus(0, 1), 3_000, 40_000, {pod(1): PPM})
    book = ClearingBook.of(SESSION, [block], [r1, r2])
    result = DsoFirstClearing(reliability_margin=0.0).compute(book)
    assert len(result.awards) == 1 and result.awards[0].power_w == 6_000
    assert result.total_unmet_w == 3_000
    check_result(book, result)


def test_reliability_margin_buys_more_effective_volume() -> None:
    book = random_book(11, n_offers=20, n_dso=3, n_tso=0, semi=0.0)
    plain = DsoFirstClearing(reliability_margin=0.0).compute(book)
    margin = DsoFirstClearing(reliability_margin=0.25).compute(book)
    assert sum(margin.effective_w.values()) > sum(plain.effective_w.values())
    assert margin.total_unmet_w <= plain.total_unmet_w
    # where there is capacity to spare, the margin is covered in full
    ample = ClearingOffer(h(1), pod(1), Direction.UP, mtus(0, 2), 50_000, 0, 10_000)
    req = ClearingRequest(h(10), "dso", Direction.UP, mtus(0, 2), 10_000, 40_000, {pod(1): 500_000})
    covered = DsoFirstClearing(reliability_margin=0.2).compute(
        ClearingBook.of(SESSION, [ample], [req])
    )
    assert all(v >= 12_000 for v in covered.effective_w.values())
    assert all(a.power_w == 24_000 for a in covered.awards)


def test_only_located_offers_in_the_right_direction_and_under_the_cap_count() -> None:
    offers = [
        ClearingOffer(h(1), pod(1), Direction.UP, mtus(0, 1), 5_000, 0, 10_000),  # eligible
        ClearingOffer(h(2), pod(2), Direction.UP, mtus(0, 1), 5_000, 0, 1_000),  # not eligible
        ClearingOffer(h(3), pod(1), Direction.DOWN, mtus(0, 1), 5_000, 0, 1_000),  # direction
        ClearingOffer(h(4), pod(3), Direction.UP, mtus(0, 1), 5_000, 0, 50_000),  # above cap
        ClearingOffer(h(5), pod(4), Direction.UP, mtus(0, 1), 5_000, 0, 1_000),  # factor 0
        ClearingOffer(h(6), pod(5), Direction.UP, mtus(0, 1), 5_000, 0, 2_000),  # area B
    ]
    dso = ClearingRequest(
        h(10),
        "dso",
        Direction.UP,
        mtus(0, 1),
        20_000,
        20_000,
        {pod(1): PPM, pod(3): PPM, pod(4): 0},
    )
    tso = ClearingRequest(h(11), "tso", Direction.UP, mtus(0, 1), 20_000, 20_000, area="A")
    areas = {pod(1): "A", pod(2): "A", pod(3): "A", pod(4): "A", pod(5): "B"}
    book = ClearingBook.of(SESSION, offers, [dso, tso], areas)
    result = DsoFirstClearing().compute(book)
    served = {(a.offer_hash, a.request_hash) for a in result.awards}
    assert served == {(h(1), h(10)), (h(2), h(11)), (h(5), h(11))}
    check_result(book, result)


def test_exclusions_take_awards_and_offers_out() -> None:
    book = divisible(random_book(5, n_offers=16, n_dso=3, n_tso=1))
    clearing = DsoFirstClearing()
    first = clearing.compute(book)
    assert first.awards
    rejected = first.awards[0]
    again = clearing.compute(book, excluded={rejected.key})
    assert rejected.key not in {a.key for a in again.awards}
    assert again.stages["dso"].objective_eur >= first.stages["dso"].objective_eur - 1e-9
    check_result(book, again)
    gone = clearing.compute(book, excluded={rejected.offer_hash})
    assert rejected.offer_hash not in {a.offer_hash for a in gone.awards}
    as_tuple = clearing.compute(
        book, excluded=[(rejected.offer_hash, rejected.request_hash, rejected.mtu_start_s)]
    )
    assert as_tuple.awards == again.awards
    with pytest.raises(MalformedBookError):
        clearing.compute(book, excluded={AwardKey(h(999), rejected.request_hash, DAY)})


@pytest.mark.parametrize(
    "change",
    [
        "duplicate offer",
        "min above max",
        "max above 10 GW",
        "unaligned mtu",
        "factor above one",
        "not located",
        "bad hash",
        "no session",
    ],
)
def test_malformed_books_raise_a_typed_error(change: str) -> None:
    book = random_book(3)
    o, r = book.offers[0], book.requests[0]
    if change == "duplicate offer":
        book = dataclasses.replace(book, offers=(*book.offers, o))
    elif change == "min above max":
        book = dataclasses.replace(book, offers=(dataclasses.replace(o, min_w=o.max_w + 1),))
    elif change == "max above 10 GW":
        book = dataclasses.replace(book, offers=(dataclasses.replace(o, max_w=10**10 + 1),))
    elif change == "unaligned mtu":
        book = dataclasses.replace(book, offers=(dataclasses.replace(o, mtu_starts=(DAY + 1,)),))
    elif change == "factor above one":
        book = dataclasses.replace(
            book, requests=(dataclasses.replace(r, eligible={pod(1): PPM + 1}),)
        )
    elif change == "not located":
        book = dataclasses.replace(book, requests=(dataclasses.replace(r, eligible={}, area=None),))
    elif change == "bad hash":
        book = dataclasses.replace(book, offers=(dataclasses.replace(o, hash="0x12"),))
    else:
        book = dataclasses.replace(book, session_id="")
    with pytest.raises(MalformedBookError) as info:
        DsoFirstClearing().compute(book)
    assert isinstance(info.value, InfeasibleClearingError)


def test_an_outcome_beyond_an_offer_is_refused() -> None:
    """A clearing that breaks an offer's bounds raises, never returns a partial result."""

    class Greedier(GreedyMeritOrder):
        def _clear_stage(self, model: StageModel) -> StageOutcome:
            out = super()._clear_stage(model)
            out.power_w = out.power_w + model.a_ub_w  # everything, twice over
            return out

    with pytest.raises(InfeasibleClearingError):
        Greedier().compute(random_book(1))


def test_solver_failure_raises_a_typed_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from market.clearing import solve

    def broken(*args: object, **kwargs: object) -> None:
        raise solve.SolverFailedError("HiGHS returned no feasible solution: Infeasible")

    monkeypatch.setattr(solve, "_run_highs", broken)
    with pytest.raises(InfeasibleClearingError):
        DsoFirstClearing().compute(random_book(2))


def test_a_node_limit_keeps_a_valid_result_and_reports_its_gap() -> None:
    book = random_book(9, n_offers=24, n_dso=5, n_tso=2, semi=0.8)
    stopped = DsoFirstClearing(mip_max_nodes=0).compute(book)
    full = DsoFirstClearing().compute(book)
    greedy = GreedyMeritOrder().compute(book)
    check_result(book, stopped)
    for stage in ("dso", "tso"):
        s = stopped.stages[stage]
        assert math.isfinite(s.mip_gap) and s.mip_gap >= 0 and s.mip_gap_eur >= 0
        # the proven bound holds: the optimum is no better than the stopped run's bound
        assert s.objective_eur - s.mip_gap_eur <= full.stages[stage].objective_eur + 1e-6
    dso = stopped.stages["dso"].objective_eur
    assert dso <= greedy.stages["dso"].objective_eur + 1e-6 * max(1.0, dso)


def test_a_start_that_highs_mishandles_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    """HiGHS 1.16 can return a MIP start as optimal with a wrong objective; then the block is
    solved again without the start."""
    from market.clearing import solve

    real = solve._run_highs
    calls: list[bool] = []

    def flaky(model: object, options: object, start: object, duals: bool) -> object:
        calls.append(start is not None)
        if start is not None:
            raise solve._ObjectiveMismatch("reported objective differs from the point's")
        return real(model, options, start, duals)  # type: ignore[arg-type]

    monkeypatch.setattr(solve, "_run_highs", flaky)
    book = random_book(9, n_offers=24, n_dso=5, n_tso=2, semi=0.8)
    result = DsoFirstClearing().compute(book)
    check_result(book, result)
    assert True in calls and False in calls


def test_from_protocol_messages_to_award_leaves() -> None:
    agg = dev_account("aggregator:1").address
    dso = dev_account("dso").address
    offer = Offer(
        session_id=SESSION,
        aggregator=agg,
        pod=pod(1),
        direction=Direction.UP,
        mtu_start_s=DAY,
        mtu_count=4,
        max_w=12_000,
        min_w=3_000,
        price_cents_per_mwh=15_000,
        valid_until_s=DAY,
        nonce=1,
    )
    request = Request(
        session_id=SESSION,
        requester=dso,
        direction=Direction.UP,
        mtu_start_s=DAY + MTU,
        mtu_count=2,
        volume_w=5_000,
        max_price_cents_per_mwh=30_000,
        eligible=[Eligibility(pod=pod(1), factor_ppm=800_000)],
        valid_until_s=DAY,
        nonce=1,
    )
    co = ClearingOffer.from_message(offer)
    cr = ClearingRequest.from_message(request)
    assert co.hash == "0x" + message_hash(offer).hex()
    assert cr.hash == "0x" + message_hash(request).hex() and cr.stage == "dso"
    assert co.mtu_starts == mtus(0, 4) and cr.eligible == {pod(1): 800_000}
    tso = ClearingRequest.from_message(request.model_copy(update={"eligible": [], "area": "A"}))
    assert tso.stage == "tso" and tso.area == "A"
    result = DsoFirstClearing(reliability_margin=0.0, start_s=DAY, mtu_count=4).compute(
        ClearingBook.of(SESSION, [co], [cr])
    )
    messages = result.award_messages()
    assert [m.power_w for m in messages] == [6_250, 6_250]
    for cleared, message in zip(result.awards, messages, strict=True):
        assert isinstance(message, Award)
        assert (
            message.leaf()
            == cleared.leaf()
            == award_leaf(
                id32(SESSION), b32(co.hash), b32(cr.hash), cleared.mtu_start_s, 6_250, 15_000
            )
        )
    prov = result.to_provenance()
    assert isinstance(prov, ClearingProvenance)
    assert prov.name == "dso-first-milp" and prov.version and "HiGHS" in prov.solver
    assert prov.stage_costs_cents == {"dso": 2 * payment_cents(awarded_wh(6_250), 15_000), "tso": 0}
    # what the auditor needs to re-solve each stage and compare
    assert [st.stage for st in prov.stages] == ["dso", "tso"]
    dso_stage = prov.stages[0]
    assert dso_stage.cost_cents == prov.stage_costs_cents["dso"]
    assert dso_stage.objective_eur > 0 and dso_stage.penalty_volume_eur_per_mwh > 0
    assert prov.pricing == "pay_as_bid" and "reliability_margin" in prov.options


def test_the_session_window_limits_what_is_cleared() -> None:
    offer = ClearingOffer(h(1), pod(1), Direction.UP, mtus(0, 8), 10_000, 0, 10_000)
    req = ClearingRequest(h(10), "dso", Direction.UP, mtus(0, 8), 5_000, 40_000, {pod(1): PPM})
    result = DsoFirstClearing(start_s=DAY + 2 * MTU, mtu_count=3).compute(
        ClearingBook.of(SESSION, [offer], [req])
    )
    assert sorted(a.mtu_start_s for a in result.awards) == list(mtus(2, 3))
    assert sorted(t for _, t in result.unmet_w) == list(mtus(2, 3))
    run = result.provenance
    assert run.options["start_s"] == DAY + 2 * MTU and run.options["mtu_count"] == 3
    with pytest.raises(ValueError):
        DsoFirstClearing(start_s=DAY + 1, mtu_count=3)


def test_cvxpy_path_solves_the_same_model() -> None:
    book = random_book(21, n_offers=12, n_dso=3, n_tso=2, semi=0.3)
    highs = DsoFirstClearing().compute(book)
    via = DsoFirstClearing(backend="cvxpy").compute(book)
    for stage in ("dso", "tso"):
        assert rel(via.stages[stage].objective_eur, highs.stages[stage].objective_eur) <= 1e-6
    assert "cvxpy" in via.provenance.solver
    lp_book = divisible(book)
    cleared = DsoFirstClearing(backend="cvxpy", pricing="pay_as_cleared").compute(lp_book)
    direct = DsoFirstClearing(pricing="pay_as_cleared").compute(lp_book)
    assert rel(cleared.stages["dso"].objective_eur, direct.stages["dso"].objective_eur) <= 1e-6
    check_result(lp_book, cleared, bid=False)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10**9), st.integers(0, 10**7))
def test_vectorised_cost_is_the_settlement_rule(power_w: int, price: int) -> None:
    got = cost_cents(np.array([power_w]), np.array([price]))
    assert int(got[0]) == payment_cents(awarded_wh(power_w), price)


def test_provenance_records_class_version_solver_and_options() -> None:
    result = DsoFirstClearing(mip_max_nodes=50, random_seed=3).compute(random_book(4, semi=0.5))
    run = result.provenance
    assert (run.name, run.version) == (DsoFirstClearing.name, DsoFirstClearing.version)
    assert run.options["mip_max_nodes"] == 50 and run.options["random_seed"] == 3
    assert run.options["threads"] == 1 and run.pricing == "pay_as_bid"
    assert run.timings_s["total_s"] > 0 and set(result.stages) == {"dso", "tso"}
    assert run.mip_gap >= 0 and run.node_count >= 0
    greedy = GreedyMeritOrder().compute(random_book(4, semi=0.5))
    assert greedy.provenance.name == "greedy-merit-order" and math.isnan(greedy.provenance.mip_gap)


def test_clearing_is_abstract() -> None:
    with pytest.raises(TypeError):
        Clearing()  # type: ignore[abstract]
