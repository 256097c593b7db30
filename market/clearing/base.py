"""The pluggable clearing: a base class that runs the two stages, subclasses that clear one.

Like FlexMeasures' ``Scheduler``: a clearing is configured with its timing (the session's
delivery window) and its options, ``compute(book)`` returns a ``ClearingResult`` that records
the class's ``name`` and ``version``, and a problem that cannot be cleared raises
``InfeasibleClearingError`` instead of returning a partial result.

The two stages, in this order, are the same for every clearing: DSO requests first, then TSO
requests on exactly what the DSO stage left of each offer in each MTU (the DSO stage's awards
in whole W, subtracted from the offers' ``max_w``). A subclass decides how one stage's
candidate awards get their power and price (``_clear_stage``).
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from flexledger.time import MTU_S
from flexledger.units import PPM, Direction
from market.clearing.book import AwardKey, ClearingBook, Stage
from market.clearing.errors import InfeasibleClearingError
from market.clearing.model import (
    BookIndex,
    StageModel,
    build_stage,
    coverage_ppm,
    unmet_w,
)
from market.clearing.result import (
    ClearedAward,
    ClearingResult,
    ClearingRun,
    StageReport,
)

__all__ = ["STAGES", "Clearing", "StageOutcome", "cost_cents"]

IntArray = npt.NDArray[np.int64]
STAGES: tuple[Stage, Stage] = ("dso", "tso")


@dataclass
class StageOutcome:
    """What a subclass returns for one stage: whole W and price per candidate award."""

    power_w: IntArray
    price_cents_per_mwh: IntArray
    objective_eur: float
    mip_gap: float = 0.0
    mip_gap_eur: float = 0.0
    node_count: int = 0
    status: str = "optimal"
    timings_s: dict[str, float] = field(default_factory=dict)


def _rhe_div(num: IntArray, den: int) -> IntArray:
    """``flexledger.units.round_half_even_div`` on arrays (exact integers)."""
    q, r = np.divmod(num, den)
    twice = 2 * r
    return q + ((twice > den) | ((twice == den) & (q % 2 == 1))).astype(np.int64)


def cost_cents(power_w: IntArray, price_cents_per_mwh: IntArray) -> IntArray:
    """Per award: round_half_even(awarded_wh(W) × price / 1e6), awarded_wh = round_half_even(W/4)
    — ``flexledger.units.payment_cents(awarded_wh(W), price)``, vectorised."""
    wh = _rhe_div(power_w.astype(np.int64) * MTU_S, 3600)
    return _rhe_div(wh * price_cents_per_mwh.astype(np.int64), 1_000_000)


class Clearing(ABC):
    """A clearing of a flexibility market session.

    Timing: ``start_s`` and ``mtu_count`` fix the session's delivery window (MTUs of
    ``resolution_s`` = 900 s); offers' and requests' MTUs outside it are not cleared. Left
    ``None``, the window is every MTU that appears in the book.

    Coverage: every request and MTU is covered ``volume × (1 + margin)`` in effectiveness-
    weighted W (an eligible POD's factor, or 1 for a POD in a TSO request's area), the margin
    being ``reliability_margin`` for DSO requests and ``tso_margin`` for TSO ones — the
    "additional offers beyond the requests" the DSO buys for reliability. What cannot be covered
    is slack, never dropped: the margin part priced ``penalty_margin`` = the larger of
    ``unmet_penalty_eur_per_mwh`` and 10× the highest effective price (price / factor) of any
    candidate of the stage, the volume part 10× that. So volume is covered before margin and
    both before cost; slack is preferred only where covering would mean buying a minimum or an
    all-or-nothing block more than ten times the shortfall. ``unmet_w`` reports what is missing
    of the volume (not of the margin), per request and MTU. An eligible POD with a factor below
    ``min_factor_ppm`` does not count: it would need over 1/factor kW per effective kW, and
    would blow the penalties (and the numerics) up.

    Offers: each award — one offer, one request, one MTU — is 0 or within [min_w, max_w] on its
    own, so that each can be ordered (I-09) independently; the awards of one offer in one MTU
    add up to at most max_w. An all-or-nothing offer therefore serves one request per MTU.
    """

    name: ClassVar[str] = "clearing"
    version: ClassVar[str] = "0"

    def __init__(
        self,
        *,
        start_s: int | None = None,
        mtu_count: int | None = None,
        resolution_s: int = MTU_S,
        reliability_margin: float = 0.1,
        tso_margin: float = 0.0,
        unmet_penalty_eur_per_mwh: float = 3_000.0,
        min_factor_ppm: int = 1_000,
    ) -> None:
        if resolution_s != MTU_S:
            raise ValueError(f"the market clears {MTU_S} s MTUs, not {resolution_s} s")
        if (start_s is None) != (mtu_count is None):
            raise ValueError("give both start_s and mtu_count, or neither")
        if start_s is not None and (start_s % MTU_S or not mtu_count or mtu_count < 1):
            raise ValueError("start_s must be MTU-aligned and mtu_count positive")
        if reliability_margin < 0 or tso_margin < 0:
            raise ValueError("a reliability margin is a non-negative fraction of the volume")
        if not 1 <= min_factor_ppm <= PPM:
            raise ValueError("min_factor_ppm must be within 1..1,000,000")
        self.start_s: int | None = start_s
        self.mtu_count: int | None = mtu_count
        self.resolution_s: int = resolution_s
        self.reliability_margin: float = float(reliability_margin)
        self.tso_margin: float = float(tso_margin)
        self.unmet_penalty_eur_per_mwh: float = float(unmet_penalty_eur_per_mwh)
        self.min_factor_ppm: int = int(min_factor_ppm)

    @property
    def end_s(self) -> int | None:
        if self.start_s is None or self.mtu_count is None:
            return None
        return self.start_s + self.mtu_count * self.resolution_s

    @property
    def solver(self) -> str:
        return "none"

    @property
    def pricing(self) -> str:
        return "pay_as_bid"

    def options(self) -> dict[str, Any]:
        """Every option that shapes the result, recorded in the provenance."""
        return {
            "start_s": self.start_s,
            "mtu_count": self.mtu_count,
            "reliability_margin": self.reliability_margin,
            "tso_margin": self.tso_margin,
            "unmet_penalty_eur_per_mwh": self.unmet_penalty_eur_per_mwh,
            "min_factor_ppm": self.min_factor_ppm,
        }

    def compute(
        self,
        book: ClearingBook,
        *,
        excluded: Collection[AwardKey | tuple[str, str, int] | str] = (),
    ) -> ClearingResult:
        """Clear ``book``: DSO stage, then TSO stage on what is left.

        ``excluded`` holds award keys (offer hash, request hash, MTU start) that must not be
        awarded again — the awards a DSO validation round rejected — and offer hashes that must
        not be awarded at all.
        """
        t0 = time.perf_counter()
        book.check()
        grid = None
        if self.start_s is not None and self.mtu_count is not None:
            grid = [self.start_s + k * MTU_S for k in range(self.mtu_count)]
        index = BookIndex.build(book, grid)
        excluded_offers, excluded_codes = index.exclusions(
            [e if isinstance(e, str) else AwardKey(*e) for e in excluded]
        )
        capacity = index.initial_capacity()
        timings: dict[str, float] = {"index_s": time.perf_counter() - t0}
        awards: list[ClearedAward] = []
        award_sort: list[tuple[int, int, int, int]] = []
        reports: dict[Stage, StageReport] = {}
        unmet: dict[tuple[str, int], int] = {}
        effective: dict[tuple[str, int], float] = {}
        for stage in STAGES:
            ts = time.perf_counter()
            model = build_stage(
                index,
                stage,
                capacity,
                margin=self.reliability_margin if stage == "dso" else self.tso_margin,
                excluded_offers=excluded_offers,
                excluded_codes=excluded_codes,
                penalty_floor_eur_per_mwh=self.unmet_penalty_eur_per_mwh,
                min_factor_ppm=self.min_factor_ppm,
            )
            build_s = time.perf_counter() - ts
            out = self._clear_stage(model)
            self._check(model, out)
            np.subtract.at(capacity, (model.a_off, model.a_t), out.power_w)
            if (capacity < 0).any():
                raise InfeasibleClearingError(f"{stage} stage awarded more than an offer has")
            report = self._collect(model, out, build_s, awards, award_sort, unmet, effective)
            reports[stage] = report
            timings[f"{stage}_s"] = time.perf_counter() - ts
        order = sorted(range(len(awards)), key=award_sort.__getitem__)
        timings["total_s"] = time.perf_counter() - t0
        gaps = [r.mip_gap for r in reports.values() if not math.isnan(r.mip_gap)]
        gaps_eur = [r.mip_gap_eur for r in reports.values() if not math.isnan(r.mip_gap_eur)]
        run = ClearingRun(
            name=self.name,
            version=self.version,
            solver=self.solver,
            pricing=self.pricing,
            mip_gap=max(gaps, default=math.nan),
            mip_gap_eur=sum(gaps_eur) if gaps_eur else math.nan,
            node_count=sum(r.node_count for r in reports.values()),
            options=self.options(),
            timings_s=timings,
        )
        return ClearingResult(
            session_id=book.session_id,
            awards=tuple(awards[i] for i in order),
            stages=reports,
            unmet_w=unmet,
            effective_w=effective,
            provenance=run,
        )

    @abstractmethod
    def _clear_stage(self, model: StageModel) -> StageOutcome:
        """Power (whole W) and price for every candidate award of one stage."""

    @staticmethod
    def _check(model: StageModel, out: StageOutcome) -> None:
        """Refuse an outcome that breaks an offer's bounds: better no result than a wrong one."""
        w = out.power_w
        if len(w) != model.n_awards or len(out.price_cents_per_mwh) != model.n_awards:
            raise InfeasibleClearingError("a stage outcome does not match its candidates")
        on = w > 0
        if (w < 0).any() or (w > model.a_ub_w).any():
            raise InfeasibleClearingError("an award is outside its offer's bounds")
        if (on & (w < model.a_min_w)).any():
            raise InfeasibleClearingError("an award is below its offer's minimum")
        used = np.bincount(model.a_slot, weights=w, minlength=len(model.s_cap_w))
        if (used > model.s_cap_w + 0.5).any():
            raise InfeasibleClearingError("an offer is awarded more than it has in an MTU")
        index = model.index
        price = out.price_cents_per_mwh
        bid = index.o_price[model.a_off]
        cap = index.r_cap[model.a_req]
        if (on & ((price < bid) | (price > cap))).any():
            raise InfeasibleClearingError("an award price is below its bid or above its cap")

    def _collect(
        self,
        model: StageModel,
        out: StageOutcome,
        build_s: float,
        awards: list[ClearedAward],
        award_sort: list[tuple[int, int, int, int]],
        unmet: dict[tuple[str, int], int],
        effective: dict[tuple[str, int], float],
    ) -> StageReport:
        index = model.index
        w = out.power_w
        eff = coverage_ppm(model, w)
        short = unmet_w(model, eff)
        mtus = index.mtus.tolist()
        for r, t, e, u in zip(
            model.c_req.tolist(), model.c_t.tolist(), eff.tolist(), short.tolist(), strict=True
        ):
            key = (index.requests[r].hash, mtus[t])
            unmet[key] = u
            effective[key] = e / PPM
        ks = np.nonzero(w > 0)[0]
        cents = cost_cents(w[ks], out.price_cents_per_mwh[ks])
        share = w[ks] * model.a_ppm[ks] / PPM / index.r_volume[model.a_req[ks]]
        offers, requests = index.offers, index.requests
        session = index.book.session_id
        stage = model.stage
        for k, p, s, o, r, t in zip(
            w[ks].tolist(),
            out.price_cents_per_mwh[ks].tolist(),
            share.tolist(),
            model.a_off[ks].tolist(),
            model.a_req[ks].tolist(),
            model.a_t[ks].tolist(),
            strict=True,
        ):
            offer = offers[o]
            awards.append(
                ClearedAward(
                    session_id=session,
                    offer_hash=offer.hash,
                    request_hash=requests[r].hash,
                    mtu_start_s=mtus[t],
                    power_w=k,
                    price_cents_per_mwh=p,
                    pod=offer.pod,
                    direction=Direction(offer.direction),
                    stage=stage,
                    share_of_request=s,
                )
            )
            award_sort.append((p, o, r, t))
        timings = {"build_s": build_s, **out.timings_s}
        return StageReport(
            stage=stage,
            cost_cents=int(cents.sum()),
            objective_eur=out.objective_eur + model.empty_rows_objective_eur,
            mip_gap=out.mip_gap,
            mip_gap_eur=out.mip_gap_eur,
            node_count=out.node_count,
            status=out.status,
            columns=model.lp.n_cols,
            rows=model.lp.n_rows,
            binaries=int(model.lp.integer.sum()),
            awards=len(ks),
            unmet_w=int(short.sum()),
            penalty_margin_eur_per_mwh=model.penalty_margin_eur_per_mwh,
            penalty_volume_eur_per_mwh=model.penalty_volume_eur_per_mwh,
            timings_s=timings,
        )
