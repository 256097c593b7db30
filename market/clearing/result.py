"""What a clearing returns: awards in economic order, stage reports, unmet volume, provenance."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flexledger.messages import Award, ClearingProvenance
from flexledger.messages.common import b32, id32
from flexledger.messages.leaves import award_leaf
from flexledger.messages.market import StageProvenance
from flexledger.units import Direction, awarded_wh, payment_cents
from market.clearing.book import AwardKey, Stage

__all__ = ["ClearedAward", "ClearingResult", "ClearingRun", "StageReport"]


@dataclass(frozen=True, slots=True)
class ClearedAward:
    """One offer serving one request in one MTU, in whole W: the fields of
    ``flexledger.messages.Award``, without pydantic's per-object validation cost (a day-ahead
    clearing makes tens of thousands). ``to_message()`` gives the protocol model."""

    session_id: str
    offer_hash: str
    request_hash: str
    mtu_start_s: int
    power_w: int
    price_cents_per_mwh: int
    pod: str
    direction: Direction
    stage: Stage
    share_of_request: float

    @property
    def key(self) -> AwardKey:
        return AwardKey(self.offer_hash, self.request_hash, self.mtu_start_s)

    @property
    def cost_cents(self) -> int:
        """round_half_even(awarded_wh(W) × price / 1e6), as settlement computes it."""
        return payment_cents(awarded_wh(self.power_w), self.price_cents_per_mwh)

    def leaf(self) -> bytes:
        """The award's Merkle leaf (kind 6), which is also its hash."""
        return award_leaf(
            id32(self.session_id),
            b32(self.offer_hash),
            b32(self.request_hash),
            self.mtu_start_s,
            self.power_w,
            self.price_cents_per_mwh,
        )

    def to_message(self) -> Award:
        return Award(
            session_id=self.session_id,
            offer_hash=self.offer_hash,
            request_hash=self.request_hash,
            mtu_start_s=self.mtu_start_s,
            power_w=self.power_w,
            price_cents_per_mwh=self.price_cents_per_mwh,
            pod=self.pod,
            direction=self.direction,
            stage=self.stage,
            share_of_request=self.share_of_request,
        )


@dataclass(frozen=True)
class StageReport:
    """How one stage was cleared: its money, its objective and how sure the solver is of it.

    ``objective_eur`` is what the optimiser minimised — awarded energy × offer price plus the
    unmet penalties, in €/MWh × MWh — and is what an auditor's own solve of the stage is
    compared with, within ``mip_gap_eur`` (absolute) or ``mip_gap`` (relative, as the solver
    reports it). ``cost_cents`` is the sum of the awards' cents at their award prices.
    """

    stage: Stage
    cost_cents: int
    objective_eur: float
    mip_gap: float
    mip_gap_eur: float
    node_count: int
    status: str
    columns: int
    rows: int
    binaries: int
    awards: int
    unmet_w: int
    penalty_margin_eur_per_mwh: float
    penalty_volume_eur_per_mwh: float
    timings_s: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ClearingRun:
    """Provenance: which clearing, which version, which solver and options, how long."""

    name: str
    version: str
    solver: str
    pricing: str
    mip_gap: float
    mip_gap_eur: float
    node_count: int
    options: dict[str, Any] = field(default_factory=dict)
    timings_s: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ClearingResult:
    """The outcome of ``Clearing.compute``.

    ``awards`` are in economic order (I-08): by award price, then offer hash, request hash and
    MTU — a total order an auditor rebuilds from the award lines alone. ``unmet_w`` has one
    entry per request and MTU of the session window (0 when covered): unmet volume is
    reported, never dropped. ``effective_w`` is the effectiveness-weighted awarded power per
    request and MTU.
    """

    session_id: str
    awards: tuple[ClearedAward, ...]
    stages: dict[Stage, StageReport]
    unmet_w: dict[tuple[str, int], int]
    effective_w: dict[tuple[str, int], float]
    provenance: ClearingRun

    @property
    def stage_costs_cents(self) -> dict[Stage, int]:
        return {s: r.cost_cents for s, r in self.stages.items()}

    @property
    def total_cost_cents(self) -> int:
        return sum(r.cost_cents for r in self.stages.values())

    @property
    def total_unmet_w(self) -> int:
        return sum(self.unmet_w.values())

    def award_messages(self) -> list[Award]:
        """The awards as protocol messages (validated), in economic order."""
        return [a.to_message() for a in self.awards]

    def to_provenance(self) -> ClearingProvenance:
        """The protocol's ``ClearingProvenance`` for the outcome (I-08); unmet W summed per
        request over its MTUs."""
        per_request: dict[str, int] = {}
        for (request_hash, _), w in self.unmet_w.items():
            if w:
                per_request[request_hash] = per_request.get(request_hash, 0) + w
        return ClearingProvenance(
            name=self.provenance.name,
            version=self.provenance.version,
            solver=self.provenance.solver,
            mip_gap=self.provenance.mip_gap,
            pricing=self.provenance.pricing,  # type: ignore[arg-type]
            stage_costs_cents={str(k): v for k, v in self.stage_costs_cents.items()},
            unmet_w=per_request,
            stages=[
                StageProvenance(
                    stage=str(s.stage),  # type: ignore[arg-type]
                    cost_cents=s.cost_cents,
                    objective_eur=s.objective_eur,
                    mip_gap=s.mip_gap if s.mip_gap == s.mip_gap else 0.0,  # NaN: greedy
                    mip_gap_eur=s.mip_gap_eur if s.mip_gap_eur == s.mip_gap_eur else 0.0,
                    penalty_margin_eur_per_mwh=s.penalty_margin_eur_per_mwh,
                    penalty_volume_eur_per_mwh=s.penalty_volume_eur_per_mwh,
                    unmet_w=s.unmet_w,
                    status=s.status,
                )
                for s in self.stages.values()
            ],
            options={
                k: v for k, v in self.provenance.options.items() if isinstance(v, int | float | str)
            },
        )
