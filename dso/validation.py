"""Technical validation (I-07) of a round of preliminary awards.

The DSO fetches the round from the market (``GET /sessions/{sid}/rounds/{n}``), checks the market
operator's signature and that the awards hash to the signed root, then runs power flows of every
MTU that has awards, on its own forecast under its own remedies, with the awards applied one at a
time in the outcome's economic order (DSO stage first, as the market orders them). An award is
approved when, with it and the awards approved before it in that MTU, no element goes beyond its
limit that was inside it, and no violation grows by more than a tolerance; otherwise it is
rejected with its reason — ``new_violation``, ``worsens_violation`` — and left out of what the
next award is checked against. An award at a POD the DSO cannot place in its grid is rejected
as ``unknown_pod``.

The awards of one step are checked for all MTUs in one batched power flow (per remedy
configuration), so a round costs as many batches as its busiest MTU has awards.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from dso.model import DsoGrid
from dso.violations import EXCESS_TOL, ViolationMap, violation_map
from flexledger.messages import Award, Decision, MarketOutcome, Signed, Validation, h32
from flexledger.powerflow import GridConfig, Injections
from flexledger.units import Direction
from node.eip712 import Domain
from node.signing import SignatureError, commitment_root, verify_envelope

__all__ = [
    "AwardCheck",
    "OutcomeError",
    "check_awards",
    "validation_of",
    "verified_outcome",
]

log = logging.getLogger(__name__)

NEW_VIOLATION = "new_violation"
WORSENS_VIOLATION = "worsens_violation"
UNKNOWN_POD = "unknown_pod"
NOT_ASSESSED = "mtu_not_assessed"
NOT_CONVERGED = "not_converged"


class OutcomeError(ValueError):
    """A market outcome the DSO will not validate: bad signature, wrong signer, wrong round."""


@dataclass(frozen=True)
class AwardCheck:
    """The DSO's verdict on one award, and why (``detail`` names the element, for people)."""

    award: Award
    approved: bool
    reason: str | None = None
    detail: str = ""

    def decision(self) -> Decision:
        return Decision(
            award_hash=self.award.award_hash, approved=self.approved, reason=self.reason
        )


def verified_outcome(
    envelope: Signed[MarketOutcome],
    domain: Domain,
    market_operator: str,
    *,
    session_id: str | None = None,
    round_: int | None = None,
) -> MarketOutcome:
    """The outcome, once its signature recovers to ``market_operator`` and its awards hash to
    its signed root (both checked by ``verify_envelope``).

    Raises:
        OutcomeError: anything else.
    """
    try:
        signer = verify_envelope(envelope, domain)
    except SignatureError as exc:
        raise OutcomeError(f"market outcome: {exc}") from exc
    if signer.lower() != market_operator.lower():
        raise OutcomeError(f"market outcome signed by {signer}, not the market operator")
    outcome = envelope.message
    if session_id is not None and outcome.session_id != session_id:
        raise OutcomeError(f"outcome of session {outcome.session_id}, not {session_id}")
    if round_ is not None and outcome.round != round_:
        raise OutcomeError(f"outcome of round {outcome.round}, not {round_}")
    if outcome.final:
        raise OutcomeError("a final outcome is not validated; a preliminary round is")
    return outcome


def _excess_of(vmap: ViolationMap) -> list[tuple[str, NDArray[np.float64], str]]:
    return [
        ("voltage_high", vmap.vm_high_pu, "bus"),
        ("voltage_low", vmap.vm_low_pu, "bus"),
        ("line_overload", vmap.line_over_percent, "line"),
        ("trafo_overload", vmap.trafo_over_percent, "trafo"),
    ]


def _verdict(
    grid: DsoGrid, now: ViolationMap, ref: ViolationMap, row: int, tol_pu: float, tol_percent: float
) -> tuple[str | None, str]:
    """(reason, detail) when row ``row`` of ``now`` is worse than of ``ref``; (None, "") if not."""
    if not now.converged[row]:
        return NOT_CONVERGED, "the power flow with this award does not converge"
    index = {"bus": grid.bus_index, "line": grid.line_index, "trafo": grid.trafo_index}
    worst: tuple[str | None, str] = (None, "")
    for (kind, a, prefix), (_, b, _) in zip(_excess_of(now), _excess_of(ref), strict=True):
        tol = tol_pu if kind.startswith("voltage") else tol_percent
        created = np.flatnonzero((a[row] > EXCESS_TOL) & (b[row] <= EXCESS_TOL))
        if created.size:
            e = created[np.argmax(a[row, created])]
            return NEW_VIOLATION, f"{kind} at {prefix}:{int(index[prefix][e])} (+{a[row, e]:.4g})"
        grown = np.flatnonzero(a[row] > b[row] + tol)
        if grown.size and worst[0] is None:
            e = grown[np.argmax(a[row, grown] - b[row, grown])]
            worst = (
                WORSENS_VIOLATION,
                f"{kind} at {prefix}:{int(index[prefix][e])} {b[row, e]:.4g} → {a[row, e]:.4g}",
            )
    return worst


def check_awards(
    grid: DsoGrid,
    injections: Injections,
    mtu_start_s: Sequence[int] | NDArray[np.int64],
    awards: Sequence[Award],
    *,
    configs: Sequence[GridConfig] | None = None,
    tol_pu: float = 1e-4,
    tol_percent: float = 0.1,
) -> list[AwardCheck]:
    """Approve or reject every award (see the module docstring).

    Args:
        grid: the DSO's grid.
        injections: the DSO's forecast, one scenario per MTU of ``mtu_start_s``.
        mtu_start_s: the MTUs the forecast covers.
        awards: the round's awards, in the outcome's (economic) order.
        configs: remedy configuration per MTU (default: the net's own).
        tol_pu: growth of a voltage violation tolerated, p.u.
        tol_percent: growth of an overload tolerated, percentage points.

    Returns:
        One :class:`AwardCheck` per award, in the same order.
    """
    starts = [int(s) for s in mtu_start_s]
    row_of = {s: i for i, s in enumerate(starts)}
    cfgs = list(configs) if configs is not None else [GridConfig()] * len(starts)
    verdicts: list[AwardCheck | None] = [None] * len(awards)
    queue: dict[int, list[int]] = {}
    for k, award in enumerate(awards):
        if award.pod not in grid.pods:
            verdicts[k] = AwardCheck(
                award, False, UNKNOWN_POD, f"POD {award.pod} is not in the grid"
            )
        elif award.mtu_start_s not in row_of:
            verdicts[k] = AwardCheck(award, False, NOT_ASSESSED, "no forecast for this MTU")
        else:
            queue.setdefault(row_of[award.mtu_start_s], []).append(k)
    if not queue:
        return [v for v in verdicts if v is not None]

    rows = np.array(sorted(queue), dtype=np.int64)
    base_inj = injections.select(rows)
    values = {k: np.array(v) for k, v in base_inj.resolved(grid.net).items()}
    probe_col = {p: grid.net.sgen.index.get_loc(info.probe) for p, info in grid.pods.items()}

    def run(vals: dict[str, NDArray[np.float64]], which: NDArray[np.int64]) -> ViolationMap:
        """Power flow of the MTUs at positions ``which`` (of ``rows``), each under its config."""
        out: ViolationMap | None = None
        parts: dict[GridConfig, list[int]] = {}
        for i in which:
            parts.setdefault(cfgs[rows[i]], []).append(int(i))
        maps: dict[int, tuple[ViolationMap, int]] = {}
        for cfg, pos in parts.items():
            inj = Injections(**{k: v[pos] for k, v in vals.items()})  # type: ignore[arg-type]
            vmap = violation_map(grid.pf.run(inj, config=cfg), grid.limits, grid.monitored)
            for j, i in enumerate(pos):
                maps[i] = (vmap, j)
        order = list(which)
        out = ViolationMap(
            np.stack([maps[i][0].vm_high_pu[maps[i][1]] for i in order]),
            np.stack([maps[i][0].vm_low_pu[maps[i][1]] for i in order]),
            np.stack([maps[i][0].line_over_percent[maps[i][1]] for i in order]),
            np.stack([maps[i][0].trafo_over_percent[maps[i][1]] for i in order]),
            np.array([maps[i][0].converged[maps[i][1]] for i in order]),
        )
        return out

    all_pos = np.arange(len(rows))
    reference = run(values, all_pos)  # what each MTU looks like with the awards approved so far
    depth = max(len(v) for v in queue.values())
    for step in range(depth):
        pos = np.array([i for i, t in enumerate(rows) if len(queue[int(t)]) > step], dtype=np.int64)
        trial = {k: v.copy() for k, v in values.items()}
        for i in pos:
            award = awards[queue[int(rows[i])][step]]
            sign = Direction(award.direction).sign
            # up = less consumption = more injection at the probe (generator convention)
            trial["sgen_p_mw"][i, probe_col[award.pod]] += sign * award.power_w / 1e6
        now = run(trial, pos)
        ref = reference.take(pos)
        for j, i in enumerate(pos):
            k = queue[int(rows[i])][step]
            reason, detail = _verdict(grid, now, ref, j, tol_pu, tol_percent)
            if reason is None:
                verdicts[k] = AwardCheck(awards[k], True)
                for name in values:
                    values[name][i] = trial[name][i]
                for arr_now, arr_ref in zip(
                    (now.vm_high_pu, now.vm_low_pu, now.line_over_percent, now.trafo_over_percent),
                    (
                        reference.vm_high_pu,
                        reference.vm_low_pu,
                        reference.line_over_percent,
                        reference.trafo_over_percent,
                    ),
                    strict=True,
                ):
                    arr_ref[i] = arr_now[j]
            else:
                verdicts[k] = AwardCheck(awards[k], False, reason, detail)
                log.info("award %s rejected: %s (%s)", awards[k].award_hash[:10], reason, detail)
    return [v for v in verdicts if v is not None]


def validation_of(outcome: MarketOutcome, checks: Sequence[AwardCheck], nonce: int) -> Validation:
    """The I-07 message: one decision per award in the outcome's order, the round's awards root,
    and the commitment root of the decision leaves.

    Raises:
        ValueError: the checks do not cover exactly the outcome's awards, in order.
    """
    if [c.award.award_hash for c in checks] != [a.award_hash for a in outcome.awards]:
        raise ValueError("the checks do not follow the outcome's awards one for one")
    decisions = [c.decision() for c in checks]
    root = commitment_root([d.leaf() for d in decisions])
    return Validation(
        session_id=outcome.session_id,
        round=outcome.round,
        awards_root=outcome.awards_root,
        decisions=decisions,
        decisions_root=h32(root),
        nonce=nonce,
    )
