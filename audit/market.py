"""Audit a market session's clearing against the chain ("Verifiable clearing", ARCHITECTURE.md).

Everything is fetched through the market's public API (never its database) and checked
against what FlexMarket committed:

- every signed offer and request verifies, by a signer with its role; their leaves (offers by
  hash, then requests by hash) rebuild the committed order-book root and counts;
- the final outcome is signed by a market operator, its awards hash to the committed awards
  root, its total cost and count are the committed ones, and the committed cents equal the
  awards' cents within one cent per award;
- every award refers to a committed offer and request and stays within them: direction, MTU,
  location (eligible POD or area), bid ≤ price ≤ cap, power within the offer's bounds, and no
  offer over its capacity in any MTU (a real-time session: no more than the day-ahead left);
- every validation round is committed on chain with the same hash by a DSO, no rejected award
  reappears in the final outcome, and the last round approves the final root;
- DSO requests were served before TSO requests: no TSO award takes flexibility from an offer
  that a short DSO request in that MTU could have used;
- each stage's cost is within the reported gap of the auditor's own solve of that stage
  (``scipy.optimize.linprog`` on HiGHS, written here): the cheapest awards that cover every
  request at least as much as the market's did, the TSO stage on what the market's DSO stage
  left; and no stage left coverable volume unmet.

The auditor's model is deliberately its own: its only inputs are the signed book, the
committed validations, the published areas and the clearing options the session reports.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
from scipy.optimize import linprog
from scipy.sparse import coo_matrix

from flexledger.messages import (
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
from flexledger.time import MTU_S
from flexledger.units import PPM, awarded_wh, payment_cents
from node.contracts import FlexContracts, SessionState
from node.eip712 import SignatureError
from node.merkle import MerkleTree
from node.signing import message_hash, verify_envelope

__all__ = ["AuditReport", "Finding", "audit_market_session"]

log = logging.getLogger(__name__)
_ZERO = h32(bytes(32))


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


def _root(leaves: list[bytes]) -> str:
    return h32(MerkleTree(leaves).root) if leaves else _ZERO


def _get(http: httpx.Client, path: str) -> Any:
    r = http.get(path)
    r.raise_for_status()
    return r.json()


def _cost_cents(power_w: float, price: int) -> float:
    """Cents of ``power_w`` held one MTU at ``price`` cents/MWh, unrounded."""
    return power_w * (MTU_S / 3600) * price / 1e6


@dataclass
class _Book:
    offers: dict[str, Offer]
    requests: dict[str, Request]
    stage: dict[str, str]
    pod_area: dict[str, str]
    capacity: dict[tuple[str, int], int]


def _eligible(book: _Book, oh: str, rh: str, t: int, min_ppm: int) -> float:
    """Effectiveness of offer ``oh`` for request ``rh`` in MTU ``t`` (0: cannot serve)."""
    o, r = book.offers.get(oh), book.requests.get(rh)
    if o is None or r is None:  # not in the committed book (reported elsewhere)
        return 0.0
    if o.direction != r.direction or t not in o.mtu_starts or t not in r.mtu_starts:
        return 0.0
    if o.price_cents_per_mwh > r.max_price_cents_per_mwh:
        return 0.0
    if r.eligible:
        f = {e.pod: e.factor_ppm for e in r.eligible}.get(o.pod, 0)
        return f / PPM if f >= min_ppm else 0.0
    return 1.0 if book.pod_area.get(o.pod) == r.area else 0.0


def _stage_lp(
    book: _Book,
    stage: str,
    capacity: dict[tuple[str, int], float],
    excluded: set[tuple[str, str, int]],
    min_ppm: int,
    cover: dict[tuple[str, int], float] | None,
    targets: dict[tuple[str, int], float],
) -> float | None:
    """The auditor's own solve of one stage.

    With ``cover``: the minimum bid cost (cents) of awards covering each (request, MTU) at
    least as much as ``cover`` says. Without: the most effective W the stage could cover,
    each (request, MTU) counted up to its target. None when infeasible.
    """
    reqs = [h for h, s in book.stage.items() if s == stage]
    cols: list[tuple[str, str, int, float]] = []
    for rh in reqs:
        for t in book.requests[rh].mtu_starts:
            for oh in book.offers:
                if (oh, rh, t) in excluded or capacity.get((oh, t), 0) <= 0:
                    continue
                f = _eligible(book, oh, rh, t, min_ppm)
                if f > 0:
                    cols.append((oh, rh, t, f))
    rows_cap = sorted({(oh, t) for oh, _, t, _ in cols})
    rows_cov = sorted({(rh, t) for _, rh, t, _ in cols} | set(targets))
    n = len(cols)
    semi = [j for j, (oh, *_rest) in enumerate(cols) if book.offers[oh].min_w > 0]
    n_bin = len(semi)
    n_cov_var = 0 if cover is not None else len(rows_cov)
    n_var = n + n_bin + n_cov_var
    if n_var == 0:
        return 0.0
    r_i: list[int] = []
    c_j: list[int] = []
    vals: list[float] = []
    ub_rhs: list[float] = []
    row = 0
    cap_idx = {k: i for i, k in enumerate(rows_cap)}
    for k in rows_cap:
        ub_rhs.append(float(capacity.get(k, 0)))
    for j, (oh, _, t, _) in enumerate(cols):
        r_i.append(cap_idx[(oh, t)])
        c_j.append(j)
        vals.append(1.0)
    row = len(rows_cap)
    cov_idx = {k: i for i, k in enumerate(rows_cov)}
    for j, (_, rh, t, f) in enumerate(cols):  # -Σ f·u (+ c) ≤ -cover  /  c - Σ f·u ≤ 0
        r_i.append(row + cov_idx[(rh, t)])
        c_j.append(j)
        vals.append(-f)
    for k in rows_cov:
        if cover is not None:
            ub_rhs.append(-max(0.0, cover.get(k, 0.0) - 0.5))
        else:
            r_i.append(row + cov_idx[k])
            c_j.append(n + n_bin + cov_idx[k])
            vals.append(1.0)
            ub_rhs.append(0.0)
    row += len(rows_cov)
    for b, j in enumerate(semi):  # min·y ≤ u ≤ max·y
        o = book.offers[cols[j][0]]
        for sign, bound in ((1.0, -float(o.max_w)), (-1.0, float(o.min_w))):
            r_i += [row, row]
            c_j += [j, n + b]
            vals += [sign, bound]
            ub_rhs.append(0.0)
            row += 1
    a_ub = coo_matrix((vals, (r_i, c_j)), shape=(row, n_var)).tocsc()
    lb = np.zeros(n_var)
    ub = np.concatenate(
        [
            np.array([float(book.offers[oh].max_w) for oh, *_ in cols]),
            np.ones(n_bin),
            np.array([targets.get(k, 0.0) for k in rows_cov]) if n_cov_var else np.zeros(0),
        ]
    )
    if cover is not None:
        c = np.concatenate(
            [
                np.array(
                    [_cost_cents(1.0, book.offers[oh].price_cents_per_mwh) for oh, *_ in cols]
                ),
                np.zeros(n_bin),
            ]
        )
    else:
        c = np.concatenate([np.zeros(n + n_bin), -np.ones(n_cov_var)])
    integrality = np.concatenate([np.zeros(n), np.ones(n_bin), np.zeros(n_cov_var)])
    res = linprog(
        c,
        A_ub=a_ub,
        b_ub=np.array(ub_rhs),
        bounds=np.column_stack([lb, ub]),
        integrality=integrality if n_bin else None,
        method="highs",
        options={"mip_rel_gap": 1e-9} if n_bin else None,
    )
    if res.status != 0:
        return None
    return float(res.fun) if cover is not None else float(-res.fun)


def _verify(envelope: Signed[Any], contracts: FlexContracts) -> str | None:
    try:
        return verify_envelope(envelope, contracts.roles.domain())
    except SignatureError:
        return None


def audit_market_session(
    http: httpx.Client, contracts: FlexContracts, session_id: str
) -> AuditReport:
    """Check one session's committed clearing; the report lists every check and its result."""
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

    # -- the order book -----------------------------------------------------------------------
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

    # -- the outcome ----------------------------------------------------------------------------
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

    # -- capacity (real time: what the day-ahead left) -----------------------------------------
    capacity: dict[tuple[str, int], int] = {}
    for oh, o in offers.items():
        for t in o.mtu_starts:
            capacity[(oh, t)] = o.max_w
    if session["kind"] == "real_time":
        used: dict[tuple[str, int], int] = defaultdict(int)
        for base in book_json["based_on"]:
            base_out = Signed[MarketOutcome].model_validate(_get(http, f"/sessions/{base}/outcome"))
            base_root = h32(contracts.market.session_of(id32(base)).awards_root)
            if not rep.add(
                f"day-ahead outcome {base} matches its committed root",
                _root([a.leaf() for a in base_out.message.awards]) == base_root,
            ):
                continue
            for a in base_out.message.awards:
                used[(a.offer_hash, a.mtu_start_s)] += a.power_w
        capacity = {}
        over = []
        for c in book_json["capacity"]:
            k = (c["offer_hash"], c["mtu_start_s"])
            left = offers[k[0]].max_w - used[k] if k[0] in offers else 0
            if c["remaining_w"] > left:
                over.append(f"{k}: {c['remaining_w']} > {left}")
            capacity[k] = min(c["remaining_w"], left)
        rep.add("real-time capacity within what the day-ahead left", not over, "; ".join(over))
    book = _Book(offers, requests, stage, areas, capacity)

    # -- every award within its offer and request --------------------------------------------
    clearing = session.get("clearing") or {}
    options = clearing.get("options") or m.provenance.options or {}
    min_ppm = int(options.get("min_factor_ppm", 1000))
    problems: list[str] = []
    per_slot: dict[tuple[str, int], int] = defaultdict(int)
    for a in m.awards:
        oo, rr = offers.get(a.offer_hash), requests.get(a.request_hash)
        if a.session_id != session_id or oo is None or rr is None:
            problems.append(f"{a.award_hash}: not in the committed book")
            continue
        if _eligible(book, a.offer_hash, a.request_hash, a.mtu_start_s, 1) <= 0:
            problems.append(f"{a.award_hash}: offer cannot serve this request in this MTU")
        if not oo.price_cents_per_mwh <= a.price_cents_per_mwh <= rr.max_price_cents_per_mwh:
            problems.append(f"{a.award_hash}: price outside [bid, cap]")
        if not (a.power_w <= oo.max_w and a.power_w >= (oo.min_w or 1)):
            problems.append(f"{a.award_hash}: power outside the offer's bounds")
        if a.stage != stage[a.request_hash]:
            problems.append(
                f"{a.award_hash}: stage {a.stage} for a {stage[a.request_hash]} request"
            )
        per_slot[(a.offer_hash, a.mtu_start_s)] += a.power_w
    for k, w in per_slot.items():
        if w > capacity.get(k, 0):
            problems.append(f"offer {k[0]} awarded {w} W in MTU {k[1]}, has {capacity.get(k, 0)}")
    rep.add(
        "every award within its committed offer and request", not problems, "; ".join(problems[:10])
    )

    # -- validations ------------------------------------------------------------------------------
    rejected: set[tuple[str, str, int]] = set()
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

    # -- DSO before TSO ---------------------------------------------------------------------------
    cov: dict[tuple[str, int], float] = defaultdict(float)
    for a in m.awards:
        f = _eligible(book, a.offer_hash, a.request_hash, a.mtu_start_s, 1)
        cov[(a.request_hash, a.mtu_start_s)] += f * a.power_w
    margin = {
        "dso": float(options.get("reliability_margin", 0.0)),
        "tso": float(options.get("tso_margin", 0.0)),
    }
    first: list[str] = []
    for a in m.awards:
        if stage.get(a.request_hash) != "tso":
            continue
        for rh, st in stage.items():
            if st != "dso" or (a.offer_hash, rh, a.mtu_start_s) in rejected:
                continue
            short = cov[(rh, a.mtu_start_s)] < requests[rh].volume_w * (1 + margin["dso"]) - 1
            if short and _eligible(book, a.offer_hash, rh, a.mtu_start_s, min_ppm) > 0:
                first.append(
                    f"TSO award {a.award_hash} uses flexibility short DSO request {rh} needed"
                )
    rep.add("DSO requests served before TSO requests", not first, "; ".join(first[:5]))

    # -- each stage's cost against the auditor's own solve ---------------------------------------
    gap = max(float(m.provenance.mip_gap or 0.0), 1e-6)
    stage_cap: dict[tuple[str, int], float] = {k: float(w) for k, w in capacity.items()}
    for st in ("dso", "tso"):
        awards = [a for a in m.awards if stage.get(a.request_hash) == st and a.offer_hash in offers]
        market_cost = sum(
            _cost_cents(a.power_w, offers[a.offer_hash].price_cents_per_mwh) for a in awards
        )
        st_cover = {k: v for k, v in cov.items() if stage.get(k[0]) == st}
        targets = {
            (rh, t): requests[rh].volume_w * (1 + margin[st])
            for rh in requests
            if stage[rh] == st
            for t in requests[rh].mtu_starts
            if session["delivery_start_s"]
            <= t
            < session["delivery_start_s"] + session["mtu_count"] * MTU_S
        }
        best = _stage_lp(book, st, stage_cap, rejected, min_ppm, st_cover, targets)
        tol = gap * max(market_cost, 1.0) + 0.01 * len(awards) + 1e-6
        rep.add(
            f"{st} stage cost within the gap of the auditor's solve",
            best is not None and market_cost <= best + tol,
            f"market {market_cost:.4f} c, auditor {best if best is None else round(best, 4)} c",
        )
        most = _stage_lp(book, st, stage_cap, rejected, min_ppm, None, targets)
        covered = sum(min(st_cover.get(k, 0.0), v) for k, v in targets.items())
        rep.add(
            f"{st} stage left no coverable volume unmet",
            most is not None and most <= covered + 1.0 + 1e-6 * covered,
            f"market covers {covered:.0f} W, auditor could {most}",
        )
        for a in awards:  # the next stage clears what this one left
            k = (a.offer_hash, a.mtu_start_s)
            stage_cap[k] = stage_cap.get(k, 0.0) - a.power_w
    return rep


def audit_sessions(
    http: httpx.Client, contracts: FlexContracts, ids: Iterable[str]
) -> list[AuditReport]:
    return [audit_market_session(http, contracts, s) for s in ids]
