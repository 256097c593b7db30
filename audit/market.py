"""Audit a market session's clearing against the chain ("Verifiable clearing", ARCHITECTURE.md).

Everything is fetched through the market's public API (never its database) and checked
against what FlexMarket committed:

- every signed offer and request verifies, by a signer with its role, and belongs to the
  session; their leaves (offers by hash, then requests by hash) rebuild the committed
  order-book root and counts; the session's window and kind are the committed ones;
- the final outcome is signed by a market operator, its awards hash to the committed awards
  root, its total cost and count are the committed ones, and the committed cents equal the
  awards' cents within one cent per award; awards are priced by the committed pricing rule;
- a real-time session's capacity is exactly what the outcomes committed on chain before its
  gate closed (day-ahead and real-time, fetched through the API and checked against their
  roots) left of each offer in each MTU;
- every award refers to a committed offer and request and stays within them: direction, MTU
  inside the window, location (eligible POD at the minimum factor, or area), bid ≤ price ≤
  cap, power 0 or within [min_w, max_w], and no offer over its capacity in any MTU;
- every validation round is committed on chain with the same hash by a DSO, no rejected award
  reappears in the final outcome, and the last round approves the final root;
- DSO requests were served before TSO requests: no TSO award takes flexibility a short DSO
  request could have taken without buying a minimum;
- per stage (``audit.clearing_reference``, the auditor's own MILP): the stated penalties are the
  clearing's rule; the stage's objective, cost and unmet volume recomputed from its awards are
  the reported ones; and the reported objective is within the reported gap of the auditor's
  own optimum — the DSO stage on the committed book without the rejected award keys, the TSO
  stage on what the market's DSO awards left.

The auditor's model is deliberately its own: its only inputs are the signed book, the
committed validations, the published areas, earlier committed outcomes and the clearing options
and stage figures the session reports.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from audit.clearing_reference import (
    EUR_PER_W_MTU_PER_EUR_MWH,
    RefOffer,
    RefRequest,
    StageRules,
    candidates,
    factor_ppm,
    objective_of_awards,
    rule_penalties,
    solve_stage,
)
from flexledger.messages import (
    Award,
    MarketOutcome,
    Offer,
    Request,
    Signed,
    Validation,
    b32,
    h32,
    id32,
)
from flexledger.messages.leaves import offer_leaf, request_leaf
from flexledger.messages.market import StageProvenance
from flexledger.time import MTU_S
from flexledger.units import PPM, awarded_wh, payment_cents
from node.contracts import FlexContracts, Session, SessionKind, SessionState
from node.eip712 import SignatureError
from node.merkle import MerkleTree
from node.signing import message_hash, verify_envelope

__all__ = ["AuditReport", "Finding", "audit_market_session", "audit_sessions"]

log = logging.getLogger(__name__)
_ZERO = h32(bytes(32))
#: Relative tolerance of an objective comparison (an LP's optimum, ARCHITECTURE.md).
REL_TOL = 1e-6
#: Coverage a solver may be short of a row within its feasibility tolerance, W.
_FEAS_W = 1e-3
#: Blocks per ``eth_getLogs`` call when reading the outcomes committed before a gate.
_LOG_PAGE = 50_000

Key = tuple[str, str, int]
Slot = tuple[str, int]


@dataclass
class Finding:
    check: str
    ok: bool
    detail: str = ""


@dataclass
class AuditReport:
    session_id: str
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.findings)

    def add(self, check: str, ok: bool, detail: str = "") -> bool:
        self.findings.append(Finding(check, bool(ok), detail))
        if not ok:
            log.warning("audit %s: %s failed: %s", self.session_id, check, detail)
        return bool(ok)

    def failures(self) -> list[Finding]:
        return [f for f in self.findings if not f.ok]

    def finding(self, check: str) -> Finding | None:
        return next((f for f in self.findings if f.check == check), None)


def _root(leaves: list[bytes]) -> str:
    return h32(MerkleTree(leaves).root) if leaves else _ZERO


def _get(http: httpx.Client, path: str, **params: Any) -> Any:
    r = http.get(path, params=params or None)
    r.raise_for_status()
    return r.json()


def _verify(envelope: Signed[Any], contracts: FlexContracts) -> str | None:
    try:
        return verify_envelope(envelope, contracts.roles.domain())
    except SignatureError:
        return None


def _eur(x: float) -> str:
    return f"{x:.6f} €"


@dataclass
class _Book:
    offers: dict[str, Offer]
    requests: dict[str, Request]
    stage: dict[str, str]
    ref_offers: dict[str, RefOffer]
    ref_requests: dict[str, RefRequest]


def audit_market_session(
    http: httpx.Client,
    contracts: FlexContracts,
    session_id: str,
    *,
    solve_time_limit_s: float = 120.0,
    node_limit: int = 10_000,
) -> AuditReport:
    """Check one session's committed clearing; the report lists every check and its result.

    ``solve_time_limit_s`` and ``node_limit`` bound the auditor's own solve of each stage
    (its remaining gap is part of what the comparison allows).
    """
    rep = AuditReport(session_id)
    sid = id32(session_id)
    chain = contracts.market.session_of(sid)
    if not rep.add(
        "outcome committed on chain",
        chain.state >= SessionState.OUTCOME_COMMITTED,
        f"on-chain state {chain.state.name}",
    ):
        return rep
    session = _get(http, f"/sessions/{session_id}")
    book_json = _get(http, f"/sessions/{session_id}/orderbook")
    vals_json = _get(http, f"/sessions/{session_id}/validations")
    outcome = Signed[MarketOutcome].model_validate(_get(http, f"/sessions/{session_id}/outcome"))
    areas = {a["pod"]: a["area"] for a in _get(http, "/areas")}
    m = outcome.message

    book = _check_book(rep, contracts, chain, session_id, book_json)
    _check_outcome(rep, contracts, chain, outcome, book)

    # -- the window, the kind and the options -------------------------------------------------
    window = [chain.delivery_start + k * MTU_S for k in range(chain.mtu_count)]
    kind = "real_time" if chain.kind == SessionKind.REAL_TIME else "day_ahead"
    options: dict[str, Any] = dict(m.provenance.options) or dict(
        (session.get("clearing") or {}).get("options") or {}
    )
    stated = [options.get(k) for k in ("start_s", "mtu_count")]
    rep.add(
        "session window and kind as committed",
        (session["delivery_start_s"], session["mtu_count"], session["kind"])
        == (chain.delivery_start, chain.mtu_count, kind)
        and stated in ([None, None], [chain.delivery_start, chain.mtu_count]),
        f"chain {kind} from {chain.delivery_start}, {chain.mtu_count} MTUs; market "
        f"{session['kind']} from {session['delivery_start_s']}, {session['mtu_count']} MTUs; "
        f"clearing options {stated}",
    )
    missing = [
        k
        for k in ("reliability_margin", "min_factor_ppm", "unmet_penalty_eur_per_mwh")
        if not isinstance(options.get(k), int | float)
    ]
    rep.add(
        "the provenance states the clearing options",
        not missing,
        f"missing: {', '.join(missing)}" if missing else "",
    )
    min_ppm = int(options.get("min_factor_ppm", 1000))
    margin = {
        "dso": float(options.get("reliability_margin", 0.0)),
        "tso": float(options.get("tso_margin", 0.0)),
    }

    # -- capacity (real time: what earlier committed outcomes left) -----------------------------
    capacity: dict[Slot, int]
    if kind == "real_time":
        capacity = _real_time_capacity(rep, http, contracts, chain, session_id, book_json, book)
    else:
        capacity = {(oh, t): o.max_w for oh, o in book.offers.items() for t in o.mtu_starts}

    rejected = _check_validations(rep, http, contracts, chain, session_id, vals_json, m)
    _check_awards(rep, m, book, areas, capacity, window, min_ppm, session_id)
    _check_dso_first(rep, m, book, areas, capacity, window, margin["dso"], min_ppm, rejected)
    _check_stages(
        rep,
        m,
        book,
        areas,
        capacity,
        window,
        options,
        margin,
        min_ppm,
        rejected,
        (solve_time_limit_s, node_limit),
    )
    return rep


# -- the order book ------------------------------------------------------------------------------


def _check_book(
    rep: AuditReport,
    contracts: FlexContracts,
    chain: Session,
    session_id: str,
    book_json: Mapping[str, Any],
) -> _Book:
    offers: dict[str, Offer] = {}
    requests: dict[str, Request] = {}
    stage: dict[str, str] = {}
    bad: list[str] = []
    for raw in book_json["offers"]:
        env = Signed[Offer].model_validate(raw)
        h = h32(message_hash(env.message))
        who = _verify(env, contracts)
        if (
            who is None
            or who != env.message.aggregator
            or not contracts.roles.has_role("AGGREGATOR", who)
        ):
            bad.append(h)
        offers[h] = env.message
    for raw in book_json["requests"]:
        renv = Signed[Request].model_validate(raw)
        h = h32(message_hash(renv.message))
        who = _verify(renv, contracts)
        role = "DSO" if renv.message.eligible else "TSO"
        if who is None or who != renv.message.requester or not contracts.roles.has_role(role, who):
            bad.append(h)
        requests[h] = renv.message
        stage[h] = role.lower()
    rep.add("every offer and request signed by its party with its role", not bad, ", ".join(bad))
    leaves = [offer_leaf(b32(h)) for h in sorted(offers)]
    leaves += [request_leaf(b32(h)) for h in sorted(requests)]
    root = _root(leaves)
    rep.add(
        "order book hashes to the committed root",
        root == h32(chain.order_book_root)
        and (len(offers), len(requests)) == (chain.offer_count, chain.request_count),
        f"rebuilt {root}, {len(offers)}+{len(requests)}; chain {h32(chain.order_book_root)}, "
        f"{chain.offer_count}+{chain.request_count}",
    )
    based_on = set(book_json.get("based_on") or [])
    elsewhere = [h for h, r in requests.items() if r.session_id != session_id]
    if chain.kind == SessionKind.REAL_TIME:
        elsewhere += [h for h, o in offers.items() if o.session_id not in based_on]
    else:
        elsewhere += [h for h, o in offers.items() if o.session_id != session_id]
    rep.add(
        "every offer and request belongs to the session (real time: to a day-ahead base)",
        not elsewhere,
        ", ".join(elsewhere[:10]),
    )
    return _Book(
        offers,
        requests,
        stage,
        {h: RefOffer.of(h, o) for h, o in offers.items()},
        {h: RefRequest.of(h, r) for h, r in requests.items()},
    )


# -- the outcome ---------------------------------------------------------------------------------


def _check_outcome(
    rep: AuditReport,
    contracts: FlexContracts,
    chain: Session,
    outcome: Signed[MarketOutcome],
    book: _Book,
) -> None:
    m = outcome.message
    signer = _verify(outcome, contracts)
    rep.add(
        "final outcome signed by a market operator, awards hash to its root",
        signer is not None and contracts.roles.has_role("MARKET_OPERATOR", signer) and m.final,
        f"signer {signer}",
    )
    rebuilt = _root([a.leaf() for a in m.awards])
    rep.add(
        "awards hash to the committed awards root",
        rebuilt == h32(chain.awards_root) == m.awards_root,
        f"rebuilt {rebuilt}, chain {h32(chain.awards_root)}",
    )
    cents = sum(payment_cents(awarded_wh(a.power_w), a.price_cents_per_mwh) for a in m.awards)
    rep.add(
        "committed cents equal the awards' cents (one cent per award)",
        abs(cents - chain.total_cost_cents) <= len(m.awards)
        and chain.award_count == len(m.awards)
        and m.total_cost_cents == chain.total_cost_cents,
        f"awards {cents}, chain {chain.total_cost_cents} for {chain.award_count} awards",
    )
    pricing = m.provenance.pricing
    off_bid = [
        a.award_hash
        for a in m.awards
        if pricing == "pay_as_bid"
        and a.offer_hash in book.offers
        and a.price_cents_per_mwh != book.offers[a.offer_hash].price_cents_per_mwh
    ]
    rep.add(
        "awards priced by the committed pricing rule",
        chain.pricing_rule == id32(pricing) and not off_bid,
        f"provenance {pricing}"
        + ("" if chain.pricing_rule == id32(pricing) else ", not the rule on chain")
        + (f"; not at their bid: {off_bid[:5]}" if off_bid else ""),
    )


# -- real-time capacity --------------------------------------------------------------------------


def _log_position(entry: Any) -> tuple[int, int]:
    return int(entry["blockNumber"]), int(entry["logIndex"])


def _list_sessions(http: httpx.Client) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        page = _get(http, "/sessions", limit=1000, **({"after": after} if after else {}))
        out += page
        if len(page) < 1000:
            return out
        after = page[-1]["session_id"]


def _real_time_capacity(
    rep: AuditReport,
    http: httpx.Client,
    contracts: FlexContracts,
    chain: Session,
    session_id: str,
    book_json: Mapping[str, Any],
    book: _Book,
) -> dict[Slot, int]:
    """What each offer had left in each MTU of the window when this session's gate closed:
    ``max_w`` less every award of the outcomes committed on chain before that (their order on
    chain decides, not the market's word), each fetched through the API and checked against
    its committed root. The market's published capacity must be exactly that."""
    sid = id32(session_id)
    start, end = chain.delivery_start, chain.delivery_start + chain.mtu_count * MTU_S
    events = contracts.market.contract.events
    problems: list[str] = []
    gate_logs = [
        e
        for e in events.SessionGateClosed().get_logs(
            argument_filters={"session": sid},
            from_block=chain.gate_closed_block,
            to_block=chain.gate_closed_block,
        )
        if bytes(e["args"]["session"]) == sid
    ]
    used: dict[Slot, int] = defaultdict(int)
    if not gate_logs:
        problems.append("no SessionGateClosed event of the session at its gate block")
    else:
        gate_at = _log_position(gate_logs[0])
        before: dict[bytes, tuple[int, int]] = {}
        for first in range(0, chain.gate_closed_block + 1, _LOG_PAGE):
            last = min(chain.gate_closed_block, first + _LOG_PAGE - 1)
            for e in events.SessionOutcomeCommitted().get_logs(from_block=first, to_block=last):
                if _log_position(e) < gate_at:
                    before[bytes(e["args"]["session"])] = _log_position(e)
        listed = {id32(s["session_id"]): s["session_id"] for s in _list_sessions(http)}
        hidden = [h32(s) for s in before if s not in listed]
        if hidden:
            problems.append(f"outcomes committed on chain the market does not list: {hidden}")
        for s_id in sorted(listed[s] for s in before if s in listed):
            other = contracts.market.session_of(id32(s_id))
            o_end = other.delivery_start + other.mtu_count * MTU_S
            if s_id == session_id or other.delivery_start >= end or o_end <= start:
                continue
            out = Signed[MarketOutcome].model_validate(_get(http, f"/sessions/{s_id}/outcome"))
            if _root([a.leaf() for a in out.message.awards]) != h32(other.awards_root):
                problems.append(f"{s_id}: published awards do not hash to its committed root")
                continue
            for a in out.message.awards:
                used[(a.offer_hash, a.mtu_start_s)] += a.power_w
        for base in book_json.get("based_on") or []:
            b = contracts.market.session_of(id32(base))
            if b.kind != SessionKind.DAY_AHEAD or id32(base) not in before:
                problems.append(f"base {base} is not a day-ahead outcome committed before the gate")
    expected = {
        (oh, t): max(0, o.max_w - used[(oh, t)])
        for oh, o in book.offers.items()
        for t in o.mtu_starts
        if start <= t < end
    }
    published: dict[Slot, int] = {
        (c["offer_hash"].lower(), int(c["mtu_start_s"])): int(c["remaining_w"])
        for c in book_json["capacity"]
    }
    for k in sorted(set(expected) | set(published)):
        if expected.get(k, 0) != published.get(k, 0):
            problems.append(f"{k}: published {published.get(k, 0)} W, left {expected.get(k, 0)} W")
    rep.add(
        "real-time capacity is what the outcomes committed before the gate left",
        not problems,
        "; ".join(problems[:10]),
    )
    return expected


# -- validations ---------------------------------------------------------------------------------


def _check_validations(
    rep: AuditReport,
    http: httpx.Client,
    contracts: FlexContracts,
    chain: Session,
    session_id: str,
    vals_json: list[Any],
    m: MarketOutcome,
) -> set[Key]:
    """Every rejected award key (offer, request, MTU) of the committed validation rounds."""
    sid = id32(session_id)
    rejected: set[Key] = set()
    vproblems: list[str] = []
    last: Validation | None = None
    for v in vals_json:
        venv = Signed[Validation].model_validate(v["validation"])
        who = _verify(venv, contracts)
        rec = contracts.market.validation_of(sid, venv.message.round)
        if who is None or not contracts.roles.has_role("DSO", who):
            vproblems.append(f"round {venv.message.round}: not signed by a DSO")
        if rec is None or rec.validation_hash != message_hash(venv.message):
            vproblems.append(f"round {venv.message.round}: not the validation committed on chain")
        round_out = (
            Signed[MarketOutcome]
            .model_validate(_get(http, f"/sessions/{session_id}/rounds/{venv.message.round}"))
            .message
        )
        if _root([a.leaf() for a in round_out.awards]) != venv.message.awards_root:
            vproblems.append(f"round {venv.message.round}: published awards are not the validated")
        by_hash = {a.award_hash: a for a in round_out.awards}
        for d in venv.message.decisions:
            if not d.approved and d.award_hash in by_hash:
                a = by_hash[d.award_hash]
                rejected.add((a.offer_hash, a.request_hash, a.mtu_start_s))
        last = venv.message
    if len(vals_json) != chain.validation_rounds:
        vproblems.append(
            f"{len(vals_json)} validations published, {chain.validation_rounds} on chain"
        )
    if last is None or last.awards_root != m.awards_root or last.rejected_count:
        vproblems.append("the last validation does not approve the final awards root")
    again = [
        a.award_hash for a in m.awards if (a.offer_hash, a.request_hash, a.mtu_start_s) in rejected
    ]
    if again:
        vproblems.append(f"rejected awards in the final outcome: {again}")
    rep.add(
        "every rejection backed by a committed DSO validation", not vproblems, "; ".join(vproblems)
    )
    return rejected


# -- awards within offers and requests ----------------------------------------------------------


def _check_awards(
    rep: AuditReport,
    m: MarketOutcome,
    book: _Book,
    areas: Mapping[str, str],
    capacity: Mapping[Slot, int],
    window: list[int],
    min_ppm: int,
    session_id: str,
) -> None:
    in_window = set(window)
    problems: list[str] = []
    per_slot: dict[Slot, int] = defaultdict(int)
    seen: set[Key] = set()
    for a in m.awards:
        oo, rr = book.offers.get(a.offer_hash), book.requests.get(a.request_hash)
        if a.session_id != session_id or oo is None or rr is None:
            problems.append(f"{a.award_hash}: not in the committed book")
            continue
        key = (a.offer_hash, a.request_hash, a.mtu_start_s)
        if key in seen:
            problems.append(f"{a.award_hash}: a second award of {key}")
        seen.add(key)
        t = a.mtu_start_s
        if t not in in_window or t not in oo.mtu_starts or t not in rr.mtu_starts:
            problems.append(f"{a.award_hash}: MTU {t} outside the window, offer or request")
        f = factor_ppm(book.ref_offers[a.offer_hash], book.ref_requests[a.request_hash], areas, 1)
        if f < min_ppm:
            problems.append(f"{a.award_hash}: offer cannot serve this request (factor {f} ppm)")
        if not oo.price_cents_per_mwh <= a.price_cents_per_mwh <= rr.max_price_cents_per_mwh:
            problems.append(f"{a.award_hash}: price outside [bid, cap]")
        if not (a.power_w <= oo.max_w and a.power_w >= (oo.min_w or 1)):
            problems.append(f"{a.award_hash}: power outside the offer's bounds")
        if a.stage != book.stage[a.request_hash]:
            problems.append(
                f"{a.award_hash}: stage {a.stage} for a {book.stage[a.request_hash]} request"
            )
        share = a.power_w * f / PPM / rr.volume_w
        if (a.pod, a.direction) != (oo.pod, oo.direction) or not math.isclose(
            a.share_of_request, share, rel_tol=1e-9, abs_tol=1e-12
        ):
            problems.append(f"{a.award_hash}: POD, direction or share not the committed ones")
        per_slot[(a.offer_hash, t)] += a.power_w
    for k, w in per_slot.items():
        if w > capacity.get(k, 0):
            problems.append(f"offer {k[0]} awarded {w} W in MTU {k[1]}, has {capacity.get(k, 0)}")
    rep.add(
        "every award within its committed offer and request", not problems, "; ".join(problems[:10])
    )


# -- DSO before TSO ------------------------------------------------------------------------------


def _check_dso_first(
    rep: AuditReport,
    m: MarketOutcome,
    book: _Book,
    areas: Mapping[str, str],
    capacity: Mapping[Slot, int],
    window: list[int],
    dso_margin: float,
    min_ppm: int,
    rejected: set[Key],
) -> None:
    """No TSO award uses flexibility that a short DSO request could have taken in the DSO
    stage without buying a minimum: a divisible offer, or one the request already had an award
    of. (Each effective W short costs the DSO stage at least ten times the offer's price.)"""
    in_window = set(window)
    eff: dict[tuple[str, int], float] = defaultdict(float)
    dso_award: dict[Key, int] = {}
    for a in m.awards:
        if a.offer_hash not in book.offers or a.request_hash not in book.requests:
            continue
        f = factor_ppm(book.ref_offers[a.offer_hash], book.ref_requests[a.request_hash], areas, 1)
        eff[(a.request_hash, a.mtu_start_s)] += a.power_w * f / PPM
        if book.stage[a.request_hash] == "dso":
            dso_award[(a.offer_hash, a.request_hash, a.mtu_start_s)] = a.power_w
    first: list[str] = []
    for a in m.awards:
        if book.stage.get(a.request_hash) != "tso" or a.offer_hash not in book.offers:
            continue
        o, t = book.ref_offers[a.offer_hash], a.mtu_start_s
        for rh, r in book.ref_requests.items():
            key = (a.offer_hash, rh, t)
            if r.stage != "dso" or t not in r.mtu_starts or t not in in_window or key in rejected:
                continue
            if factor_ppm(o, r, areas, min_ppm) <= 0:
                continue
            short = eff[(rh, t)] < r.volume_w * (1 + dso_margin) - 1
            held = dso_award.get(key, 0)
            room = held < min(o.max_w, capacity.get((a.offer_hash, t), 0))
            if short and (o.min_w == 0 or (held > 0 and room)):
                first.append(
                    f"TSO award {a.award_hash} uses flexibility short DSO request {rh} needed"
                )
    rep.add("DSO requests served before TSO requests", not first, "; ".join(first[:5]))


# -- each stage's cost against the auditor's own solve -------------------------------------------


def _check_stages(
    rep: AuditReport,
    m: MarketOutcome,
    book: _Book,
    areas: Mapping[str, str],
    capacity: Mapping[Slot, int],
    window: list[int],
    options: Mapping[str, Any],
    margin: Mapping[str, float],
    min_ppm: int,
    rejected: set[Key],
    limits: tuple[float, int],
) -> None:
    stage_cap: dict[Slot, float] = {k: float(w) for k, w in capacity.items()}
    reported: dict[str, StageProvenance] = {s.stage: s for s in m.provenance.stages}
    floor = options.get("unmet_penalty_eur_per_mwh")
    unmet_per_request: dict[str, int] = defaultdict(int)
    for st in ("dso", "tso"):
        awards = [
            a
            for a in m.awards
            if book.stage.get(a.request_hash) == st and a.offer_hash in book.offers
        ]
        sp = reported.get(st)
        if sp is None:
            rep.add(f"{st} stage cost within the gap of the auditor's solve", False, "no figures")
            _subtract(stage_cap, awards)
            continue
        rules = StageRules(
            margin[st], min_ppm, sp.penalty_margin_eur_per_mwh, sp.penalty_volume_eur_per_mwh
        )
        _check_penalties(rep, st, book, areas, stage_cap, window, rules, rejected, floor, sp)
        _check_recomputed(rep, st, m, book, areas, window, rules, awards, sp, unmet_per_request)
        _check_resolve(rep, st, book, areas, stage_cap, window, rules, rejected, sp, limits)
        _subtract(stage_cap, awards)  # the next stage clears what this one left
    mine = {k: v for k, v in unmet_per_request.items() if v}
    theirs = {k: v for k, v in m.provenance.unmet_w.items() if v}
    rep.add(
        "unmet volume per request as the provenance reports it",
        mine == theirs,
        f"auditor {mine}, provenance {theirs}" if mine != theirs else "",
    )


def _subtract(stage_cap: dict[Slot, float], awards: Iterable[Award]) -> None:
    for a in awards:
        k = (a.offer_hash, a.mtu_start_s)
        stage_cap[k] = stage_cap.get(k, 0.0) - a.power_w


def _feasibility_eur(n_rows: int, rules: StageRules) -> float:
    """What a solver's feasibility tolerance (1 mW short per row) may be worth in penalties."""
    return n_rows * _FEAS_W * rules.penalty_volume_eur_per_mwh * EUR_PER_W_MTU_PER_EUR_MWH


def _check_penalties(
    rep: AuditReport,
    st: str,
    book: _Book,
    areas: Mapping[str, str],
    stage_cap: Mapping[Slot, float],
    window: list[int],
    rules: StageRules,
    rejected: set[Key],
    floor: Any,
    sp: StageProvenance,
) -> None:
    cands = candidates(
        book.ref_offers.values(),
        book.ref_requests.values(),
        st,
        capacity=stage_cap,
        window=window,
        pod_area=areas,
        min_factor_ppm=rules.min_factor_ppm,
        excluded=rejected,
    )
    if not isinstance(floor, int | float):
        rep.add(f"{st} stage penalties follow the clearing's rule", False, "no penalty floor")
        return
    pen_m, pen_v = rule_penalties(cands, float(floor))
    rep.add(
        f"{st} stage penalties follow the clearing's rule",
        math.isclose(pen_m, sp.penalty_margin_eur_per_mwh, rel_tol=1e-9)
        and math.isclose(pen_v, sp.penalty_volume_eur_per_mwh, rel_tol=1e-9),
        f"rule {pen_m:g}/{pen_v:g} €/MWh, stated "
        f"{sp.penalty_margin_eur_per_mwh:g}/{sp.penalty_volume_eur_per_mwh:g} €/MWh",
    )


def _check_recomputed(
    rep: AuditReport,
    st: str,
    m: MarketOutcome,
    book: _Book,
    areas: Mapping[str, str],
    window: list[int],
    rules: StageRules,
    awards: list[Award],
    sp: StageProvenance,
    unmet_per_request: dict[str, int],
) -> None:
    """The stage's objective at its published awards is the reported one (within rounding the
    awards to whole W: at most 1 W per award), and so are its cents and unmet volume."""
    rec = objective_of_awards(
        [(a.offer_hash, a.request_hash, a.mtu_start_s, a.power_w) for a in awards],
        book.ref_offers,
        book.ref_requests,
        st,
        window=window,
        pod_area=areas,
        rules=rules,
    )
    for (rh, _), w in rec.unmet_w.items():
        unmet_per_request[rh] += w
    rounding = sum(
        (book.ref_offers[a.offer_hash].price_eur_per_mwh + rules.penalty_volume_eur_per_mwh)
        * EUR_PER_W_MTU_PER_EUR_MWH
        for a in awards
    )
    reported = sp.objective_eur
    tol = rounding + _feasibility_eur(len(rec.unmet_w), rules) + REL_TOL * max(1.0, abs(reported))
    cents = sum(payment_cents(awarded_wh(a.power_w), a.price_cents_per_mwh) for a in awards)
    unmet = sum(rec.unmet_w.values())
    ok_obj = math.isfinite(reported) and abs(rec.objective_eur - reported) <= tol
    stage_cents = m.provenance.stage_costs_cents.get(st, sp.cost_cents)
    rep.add(
        f"{st} stage objective, cost and unmet volume recomputed from its awards",
        ok_obj and sp.cost_cents == cents == stage_cents and sp.unmet_w == unmet,
        f"objective: awards {_eur(rec.objective_eur)} (cost {_eur(rec.cost_eur)}, penalties "
        f"{_eur(rec.margin_penalty_eur + rec.volume_penalty_eur)}), reported {_eur(reported)}, "
        f"tolerance {_eur(tol)}; cents {cents}, reported {sp.cost_cents}/{stage_cents}; "
        f"unmet {unmet} W, reported {sp.unmet_w} W",
    )


def _check_resolve(
    rep: AuditReport,
    st: str,
    book: _Book,
    areas: Mapping[str, str],
    stage_cap: Mapping[Slot, float],
    window: list[int],
    rules: StageRules,
    rejected: set[Key],
    sp: StageProvenance,
    limits: tuple[float, int],
) -> None:
    """The reported objective M against the auditor's optimum A (proven bound L, gap A − L):
    fail when M > A + the market's gap + tolerance — M is more than its gap above the optimum,
    which is at most A — or when M < L − tolerance: no clearing of the stage costs that."""
    sol = solve_stage(
        book.ref_offers.values(),
        book.ref_requests.values(),
        st,
        capacity=stage_cap,
        window=window,
        pod_area=areas,
        rules=rules,
        excluded=rejected,
        time_limit_s=limits[0],
        node_limit=limits[1],
    )
    reported = sp.objective_eur
    market_gap = max(sp.mip_gap * abs(reported), sp.mip_gap_eur)
    n_rows = sum(
        1 for r in book.ref_requests.values() if r.stage == st for t in r.mtu_starts if t in window
    )
    tol = REL_TOL * max(1.0, abs(sol.objective_eur)) + _feasibility_eur(n_rows, rules)
    figures = (
        f"market {_eur(reported)} (gap {sp.mip_gap:.2e}, {_eur(sp.mip_gap_eur)}), auditor "
        f"{_eur(sol.objective_eur)} (bound {_eur(sol.bound_eur)}, gap {_eur(sol.gap_eur)}, "
        f"{sol.status}, {sol.blocks} blocks, {sol.binaries} binaries), tolerance {_eur(tol)}"
    )
    if not math.isfinite(reported):
        ok, detail = False, f"the market reports no finite objective; {figures}"
    elif reported > sol.objective_eur + market_gap + tol:
        ok = False
        detail = (
            f"the market's {st.upper()} stage is more expensive than the auditor's optimum by "
            f"{_eur(reported - sol.objective_eur)}, beyond its reported gap "
            f"{_eur(market_gap)}: {figures}"
        )
    elif reported < sol.bound_eur - tol:
        ok = False
        detail = (
            f"the market reports a {st.upper()} objective below the auditor's proven bound by "
            f"{_eur(sol.bound_eur - reported)}: {figures}"
        )
    else:
        ok, detail = True, figures
    rep.add(f"{st} stage cost within the gap of the auditor's solve", ok, detail)


def audit_sessions(
    http: httpx.Client, contracts: FlexContracts, ids: Iterable[str]
) -> list[AuditReport]:
    return [audit_market_session(http, contracts, s) for s in ids]
