"""Technical validation (I-07) of preliminary awards signed with the market operator's key."""

from __future__ import annotations

import pytest

from dso import (
    DsoGrid,
    GridAssessment,
    OutcomeError,
    check_awards,
    validation_of,
    verified_outcome,
)
from flexledger.messages import Award, ClearingProvenance, MarketOutcome, h32
from flexledger.powerflow import Injections
from flexledger.units import Direction
from node.signing import LocalSigner, commitment_root, verify_envelope
from tests.dso.conftest import DOMAIN

SESSION = "da-2026-07-25"


def _award(
    pod: str, direction: Direction, mtu_start_s: int, power_w: int, n: int, stage: str
) -> Award:
    return Award(
        session_id=SESSION,
        offer_hash="0x" + f"{n:064x}",
        request_hash="0x" + f"{1000 + n:064x}",
        mtu_start_s=mtu_start_s,
        power_w=power_w,
        price_cents_per_mwh=12_000,
        pod=pod,
        direction=direction,
        stage=stage,  # type: ignore[arg-type]
        share_of_request=1.0,
    )


def _outcome(awards: list[Award], round_: int = 1) -> MarketOutcome:
    root = commitment_root([a.leaf() for a in awards])
    return MarketOutcome(
        session_id=SESSION,
        round=round_,
        final=False,
        awards=awards,
        awards_root=h32(root),
        total_cost_cents=0,
        provenance=ClearingProvenance(name="test", version="1", solver="none"),
    )


@pytest.fixture(scope="module")
def awards(pv_assessment: GridAssessment, pv_grid: DsoGrid) -> list[Award]:
    """At the feeder-4 need's worst MTU: the DSO award the request asks for (down at the best
    POD), a TSO award up 400 kW at a POD on the same feeder (more injection where the voltage
    is already high), and an award at a POD that is not in the grid."""
    need = next(n for n in pv_assessment.needs if n.zone == "feeder:4")
    t = need.factors_at_s
    other = next(p for p in need.factors if p != need.best_pod)
    assert need.best_pod is not None
    return [
        _award(need.best_pod, Direction.DOWN, t, round(need.volume_kw * 1000), 1, "dso"),
        _award(other, Direction.UP, t, 400_000, 2, "tso"),
        _award("IT999E99999999", Direction.UP, t, 1_000, 3, "tso"),
    ]


def test_validation_rejects_the_award_that_causes_a_violation(
    pv_grid: DsoGrid,
    pv_truth: Injections,
    pv_assessment: GridAssessment,
    awards: list[Award],
    dso_signer: LocalSigner,
    market_signer: LocalSigner,
) -> None:
    envelope = market_signer.sign(_outcome(awards))
    outcome = verified_outcome(envelope, DOMAIN, market_signer.address, round_=1)
    configs = [pv_assessment.remedies.config_of(i) for i in range(len(pv_assessment.mtu_start_s))]
    checks = check_awards(
        pv_grid, pv_truth, pv_assessment.mtu_start_s, outcome.awards, configs=configs
    )
    verdict = {c.award.offer_hash[-1]: (c.approved, c.reason) for c in checks}
    assert verdict["1"] == (True, None)  # the DSO's own award fixes what it was asked to
    assert verdict["2"][0] is False and verdict["2"][1] in ("new_violation", "worsens_violation")
    assert verdict["3"] == (False, "unknown_pod")

    validation = validation_of(outcome, checks, nonce=42)
    assert validation.awards_root == outcome.awards_root
    assert (validation.approved_count, validation.rejected_count) == (1, 2)
    signed = dso_signer.sign(validation)
    assert verify_envelope(signed, DOMAIN) == dso_signer.address  # also checks decisions_root


def test_tso_award_alone_is_rejected_for_the_new_violation(
    pv_grid: DsoGrid, pv_truth: Injections, pv_assessment: GridAssessment, awards: list[Award]
) -> None:
    """Alone, the TSO's 400 kW up on a feeder already above the band at that MTU worsens the
    violation: rejected, with the element named."""
    configs = [pv_assessment.remedies.config_of(i) for i in range(len(pv_assessment.mtu_start_s))]
    (check,) = check_awards(
        pv_grid, pv_truth, pv_assessment.mtu_start_s, [awards[1]], configs=configs
    )
    assert not check.approved and "bus:" in check.detail


def test_outcome_signed_by_someone_else_is_refused(
    awards: list[Award], dso_signer: LocalSigner, market_signer: LocalSigner
) -> None:
    forged = dso_signer.sign(_outcome(awards))
    with pytest.raises(OutcomeError, match="not the market operator"):
        verified_outcome(forged, DOMAIN, market_signer.address)
    final = market_signer.sign(_outcome(awards).model_copy(update={"final": True}))
    with pytest.raises(OutcomeError, match="final"):
        verified_outcome(final, DOMAIN, market_signer.address)
