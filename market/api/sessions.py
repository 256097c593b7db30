"""Sessions: operator commands, the order book, rounds, validations, the outcome, awards."""

from typing import Annotated

from fastapi import APIRouter, Path, Response

from flexledger.messages import MarketOutcome, Receipt, SessionCommand, Signed, Validation
from flexledger.transport.api import ERROR_RESPONSES
from market.deps import After, Ctx, HashPath, Limit, SessionPath
from market.schemas import (
    AwardProof,
    OrderBookPublic,
    SessionPublic,
    SettlementPublic,
    ValidationPublic,
)
from market.service import intake, reads, sessions, settlement

router = APIRouter(tags=["sessions"], responses=ERROR_RESPONSES)


@router.post("/sessions", status_code=201)
def open_session(ctx: Ctx, envelope: Signed[SessionCommand], response: Response) -> SessionPublic:
    """Open a session (the market operator's signed open command); 200 if already done."""
    public, created = sessions.open_session(ctx, envelope)
    if not created:
        response.status_code = 200
    return public


@router.post("/sessions/{sid}/commands")
def command(ctx: Ctx, sid: SessionPath, envelope: Signed[SessionCommand]) -> SessionPublic:
    """Close the gate, clear again, finalize or settle (the market operator's signed
    command)."""
    return sessions.apply_command(ctx, sid, envelope)


@router.get("/sessions")
def list_sessions(ctx: Ctx, limit: Limit = 1000, after: After = None) -> list[SessionPublic]:
    return reads.sessions(ctx, limit, after)


@router.get("/sessions/{sid}")
def get_session(ctx: Ctx, sid: SessionPath) -> SessionPublic:
    return reads.session(ctx, sid)


@router.get("/sessions/{sid}/orderbook")
def order_book(ctx: Ctx, sid: SessionPath) -> OrderBookPublic:
    """Every signed offer and request; after gate closure, the committed book and its root."""
    return reads.order_book(ctx, sid)


@router.get("/sessions/{sid}/rounds/{n}")
def round_outcome(
    ctx: Ctx, sid: SessionPath, n: Annotated[int, Path(ge=1, le=2**31 - 1)]
) -> Signed[MarketOutcome]:
    """Round n's preliminary awards in economic order, signed by the market operator."""
    return reads.round_outcome(ctx, sid, n)


@router.post("/sessions/{sid}/validations", status_code=201)
def post_validation(
    ctx: Ctx, sid: SessionPath, envelope: Signed[Validation], response: Response
) -> Receipt:
    """The DSO's validation of the current round (recorded on chain, then acted upon)."""
    receipt = intake.submit_validation(ctx, sid, envelope)
    if receipt.duplicate:
        response.status_code = 200
    return receipt


@router.get("/sessions/{sid}/validations")
def list_validations(ctx: Ctx, sid: SessionPath) -> list[ValidationPublic]:
    return reads.validations(ctx, sid)


@router.get("/sessions/{sid}/outcome")
def outcome(ctx: Ctx, sid: SessionPath) -> Signed[MarketOutcome]:
    """The final outcome (I-08), signed by the market operator; its root is on chain."""
    return reads.final_outcome(ctx, sid)


@router.get("/sessions/{sid}/awards/{award_hash}")
def award(ctx: Ctx, sid: SessionPath, award_hash: HashPath) -> AwardProof:
    """An award with its inclusion proof against the committed awards root."""
    return reads.award_proof(ctx, sid, award_hash)


@router.get("/sessions/{sid}/settlement")
def get_settlement(ctx: Ctx, sid: SessionPath) -> SettlementPublic:
    """The session's settlement (I-15): per activated award the market operator's signed
    outcome, payer, payee, baseline and ``settle`` transaction (I-16); the awards no order
    activated (not paid); the ``markSettled`` transaction."""
    return settlement.settlement_view(ctx, sid)
