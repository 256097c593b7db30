"""Audit a session's settlement: every figure re-derived from the public APIs and the chain.

Sources, each checked before it is used:

- the market API: the session, its final outcome (signed by a market operator, its awards
  hashing to the root committed on chain), the activation orders (each recorded on chain by its
  issuer), each award's offer and request (who is paid, who pays) and the settlement itself;
- the SCD API: the samples of each activated POD and MTU, whose windows the auditor rebuilds and
  compares with the roots on chain (``audit.measurements``: its own trees, its own signature
  checks); the BRP's signed baseline (``GET /baselines/{day}``), whose values must hash to the
  root the BRP committed on chain before the session's gate closed; history measures when the
  session's method is not the BRP's (``audit.baselines``);
- the chain: the session (state, gate-closure block, baseline method), each award's
  ``Settlement.settlementOf`` record, and the ``AwardSettled`` and token ``Transfer`` events.

Then, with its own code: which awards orders activated and with what power; per POD and MTU the
measured energy (Σ P × 4 s / 3600 over the 225 samples, rounded half to even), the delivered
energy, its split across the awards, each award's paid energy, gross amount, penalty, amount and
claim under the terms the market published; and compares every one with the signed outcome, the
on-chain record (its struct hash too) and the token transfers, which must move exactly the
amounts, payer → aggregator, once per award. Any difference is a failed finding;
``flexledger audit settlement`` exits non-zero.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Protocol

from eth_utils import keccak, to_checksum_address

from audit.baselines import high_x_of_y, measures_by_mtu, meter_before_after, parse_method
from audit.measurements import audit_measurements, fetch_sample_rows
from flexledger.messages import (
    BrpBaseline,
    MarketOutcome,
    Order,
    SettlementOutcome,
    Signed,
    b32,
    h32,
    id32,
)
from node.contracts import FlexContracts, SessionState
from node.eip712 import SignatureError
from node.events import EventReader
from node.merkle import MerkleTree
from node.signing import message_hash, verify_envelope

__all__ = ["SettlementAudit", "audit_settlement"]

log = logging.getLogger(__name__)
MTU = 900
SAMPLES = 225
ZERO_ROOT = h32(bytes(32))
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
PPM = 1_000_000


class HttpGet(Protocol):
    """What the auditor needs of an HTTP client (``SyncSignedHttpClient`` has it)."""

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any: ...


@dataclass
class Finding:
    check: str
    ok: bool
    detail: str = ""


@dataclass
class SettlementAudit:
    """The findings of one session's settlement audit."""

    session_id: str
    findings: list[Finding] = field(default_factory=list)
    recomputed: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.findings)

    def add(self, check: str, ok: bool, detail: str = "") -> bool:
        self.findings.append(Finding(check, bool(ok), detail))
        if not ok:
            log.warning("settlement audit %s: %s — %s", self.session_id, check, detail)
        return bool(ok)

    def failures(self) -> list[Finding]:
        return [f for f in self.findings if not f.ok]


def _rhe(numerator: int, denominator: int) -> int:
    q, r = divmod(numerator, denominator)
    if 2 * r > denominator or (2 * r == denominator and q % 2):
        q += 1
    return q


@dataclass(frozen=True)
class _Award:
    award_hash: str
    offer_hash: str
    request_hash: str
    pod: str
    direction: int
    mtu_start_s: int
    power_w: int
    price: int


@dataclass
class _Expected:
    """What the auditor finds an award should have been settled with."""

    payable: bool
    baseline_wh: int
    measured_wh: int
    delivered_wh: int
    amount_cents: int
    claim_cents: int
    measurement_root: str
    baseline_root: str
    why: str = ""


def _orders(market: HttpGet, session_id: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        params: dict[str, Any] = {"session": session_id, "limit": 10_000}
        if after:
            params["after"] = after
        page = market.get("/orders", params)
        out.extend(page)
        if len(page) < 10_000:
            return out
        after = page[-1]["hash"]


def _brp_baselines(
    rep: SettlementAudit,
    scd: HttpGet,
    contracts: FlexContracts,
    day: int,
    gate_block: int,
) -> dict[str, tuple[str, str, dict[int, int]]]:
    """POD → (BRP, root, {MTU: Wh}) of the day's baselines that hold against the chain."""
    try:
        entries = scd.get(f"/baselines/{day}")
    except Exception as exc:  # 404: none
        rep.add(f"baselines of day {day}", True, f"none served ({exc})")
        return {}
    domain = contracts.roles.domain()
    out: dict[str, tuple[str, str, dict[int, int]]] = {}
    for e in entries:
        env = Signed[BrpBaseline].model_validate(e["baseline"])
        m = env.message
        why = ""
        try:
            signer = verify_envelope(env, domain)
            if signer != m.brp or not contracts.roles.has_role("BRP", signer):
                why = f"signed by {signer}, not a BRP"
        except SignatureError as exc:
            why = f"does not hold: {exc}"
        if not why:
            c = contracts.baselines.baseline_of(m.brp, day)
            if c is None or h32(c.root) != m.root:
                why = "its root is not the one committed on chain"
            elif c.committed_block > gate_block:
                why = f"committed at block {c.committed_block}, after gate closure {gate_block}"
        # a baseline that does not hold is not a failure of the audit by itself: the awards it
        # covers must then be unpaid, which the comparison of the figures checks
        rep.add(f"baseline of {m.brp} for day {day} examined", True, why or "holds on chain")
        if why:
            continue
        for v in m.values:
            if v.pod not in out:
                out[v.pod] = (m.brp, m.root, {})
            if out[v.pod][0] == m.brp:
                out[v.pod][2][v.mtu_start_s] = v.e_wh
    return out


def _pay(
    a: _Award, activated_w: int, share: int, tolerance_ppm: int, penalty_ppm: int
) -> tuple[int, int]:
    """(amount, claim) of an award: the auditor's reading of the published rule."""
    energy = _rhe(activated_w * MTU, 3600)
    paid = min(max(share, 0), energy)
    gross = _rhe(paid * a.price, 1_000_000)
    tolerance = _rhe(energy * tolerance_ppm, PPM)
    short = max(0, energy - tolerance - max(share, 0))
    penalty = _rhe(short * a.price * penalty_ppm, PPM * 1_000_000)
    net = gross - penalty
    return max(net, 0), max(-net, 0)


def _split(total: int, weights: list[tuple[str, int]]) -> dict[str, int]:
    wsum = sum(w for _, w in weights)
    shares = {h: (total * w) // wsum if wsum else 0 for h, w in weights}
    smallest = min(h for h, _ in weights)
    shares[smallest] += total - sum(shares.values())
    return shares


def audit_settlement(
    market: HttpGet,
    scd: HttpGet,
    contracts: FlexContracts,
    session_id: str,
    *,
    from_block: int = 0,
) -> SettlementAudit:
    """Re-derive and check one session's settlement (see the module docstring). Events are
    read from ``from_block`` or the session's gate-closure block, whichever is later."""
    rep = SettlementAudit(session_id)
    sid = id32(session_id)
    chain = contracts.market.session_of(sid)
    if not rep.add(
        "session settled on chain", chain.state == SessionState.SETTLED, chain.state.name
    ):
        return rep
    # the session's windows are anchored and its awards settled after its gate closed
    from_block = max(from_block, chain.gate_closed_block)
    view = market.get(f"/sessions/{session_id}/settlement")
    rep.add("market reports the session settled", view["state"] == "settled", view["state"])
    outcome = Signed[MarketOutcome].model_validate(market.get(f"/sessions/{session_id}/outcome"))
    domain = contracts.roles.domain()
    try:
        operator = verify_envelope(outcome, domain)
        rep.add(
            "final outcome signed by a market operator",
            contracts.roles.has_role("MARKET_OPERATOR", operator),
            operator,
        )
    except SignatureError as exc:
        rep.add("final outcome signed by a market operator", False, str(exc))
    leaves = [a.leaf() for a in outcome.message.awards]
    root = MerkleTree(leaves).root if leaves else bytes(32)
    rep.add("awards hash to the committed root", root == chain.awards_root, h32(root))
    awards = {
        a.award_hash: _Award(
            a.award_hash,
            a.offer_hash,
            a.request_hash,
            a.pod,
            int(a.direction),
            a.mtu_start_s,
            a.power_w,
            a.price_cents_per_mwh,
        )
        for a in outcome.message.awards
    }
    method = view.get("baseline_method") or "brp"
    rep.add(
        "baseline method is the session's on chain",
        keccak(text=method) == chain.baseline_method,
        method,
    )

    # activation: orders recorded on chain by their issuer
    activated: dict[str, int] = defaultdict(int)
    by_key = {(a.offer_hash, a.request_hash, a.mtu_start_s): a for a in awards.values()}
    for row in _orders(market, session_id):
        order = Signed[Order].model_validate(row["order"])
        try:
            issuer = verify_envelope(order, domain)
        except SignatureError as exc:
            rep.add(f"order {row['hash']} signed", False, str(exc))
            continue
        h = h32(message_hash(order.message))
        on_chain = contracts.market.order_issuer(b32(h))
        if not rep.add(
            f"order {h} recorded on chain by its issuer", on_chain == issuer, str(on_chain)
        ):
            continue
        m = order.message
        for k in range(m.mtu_count):
            award = by_key.get((m.offer_hash, m.request_hash, m.mtu_start_s + k * MTU))
            if award is not None:
                activated[award.award_hash] += m.power_w
    act = {h: min(w, awards[h].power_w) for h, w in activated.items() if w > 0}
    rep.add(
        "not-activated awards are the ones without an order",
        set(view["not_activated"]) == set(awards) - set(act),
        f"{len(view['not_activated'])} listed, {len(set(awards) - set(act))} found",
    )
    for h in set(awards) - set(act):
        rep.add(
            f"award {h} not activated: not settled on chain",
            contracts.settlement.settlement_of(b32(h)) is None,
        )

    # evidence per POD and MTU
    keys = sorted({(awards[h].pod, awards[h].mtu_start_s) for h in act})
    kind, x, y = parse_method(method)
    day_of = {k: k[1] - k[1] % 86_400 for k in keys}
    brp = {
        d: _brp_baselines(rep, scd, contracts, d, chain.gate_closed_block)
        for d in set(day_of.values())
    }
    all_activated_mtus = _activated_mtus(market)
    evidence: dict[tuple[str, int], _Expected] = {}
    pods = sorted({p for p, _ in keys})
    window_s = contracts.anchor.window_seconds()
    # one measurement audit over every activated POD and MTU (one read of the chain's anchors
    # and of each concentrator batch), then each POD's windows from it
    first_t, last_t = min(t for _, t in keys), max(t for _, t in keys) + MTU
    audited: dict[str, dict[int, Any]] = {pod: {} for pod in pods}
    for w in audit_measurements(
        scd,
        contracts,
        pods=pods,
        from_s=first_t - first_t % window_s,
        to_s=last_t,
        from_block=from_block,
    ).windows:
        audited[w.pod][w.window_start_s] = w
    for pod in pods:
        mtus = [t for p, t in keys if p == pod]
        lo, hi = min(mtus), max(mtus) + MTU
        windows = audited[pod]
        samples, _ = fetch_sample_rows(scd, pod, {"from_s": lo, "to_s": hi})
        history: dict[int, int] = {}
        if kind != "brp":
            first = lo - lo % 86_400 - (45 if kind == "high" else 1) * 86_400
            history = measures_by_mtu(
                scd.get(
                    "/measures/quarterly",
                    {"pod": pod, "from_s": first, "to_s": hi, "limit": 10_000},
                )
            )
        for t in mtus:
            day = day_of[(pod, t)]
            starts = list(range(t - t % window_s, t + MTU, window_s))
            roots = [r for s in starts if s in windows and (r := windows[s].root_chain)]
            mroot = h32(keccak(b"".join(b32(r) for r in roots))) if roots else ZERO_ROOT
            mine = [s for s in samples if t <= s["t_s"] < t + MTU]
            why = ""
            bad = [s for s in starts if s not in windows or windows[s].status != "certified"]
            if bad:
                why = (
                    f"window {bad[0]}: {windows[bad[0]].status if bad[0] in windows else 'absent'}"
                )
            elif len(mine) != SAMPLES:
                why = f"{len(mine)} of {SAMPLES} samples"
            pb = brp[day].get(pod)
            broot = pb[1] if pb else ZERO_ROOT
            baseline: int | None = None
            if pb is None:
                why = why or "no committed BRP baseline"
            elif kind == "brp":
                baseline = pb[2].get(t)
            elif kind == "high":
                hv = high_x_of_y(
                    history, day, x, y, {m - m % 86_400 for m in all_activated_mtus.get(pod, ())}
                )
                baseline = hv[t] if hv else None
            else:
                baseline = meter_before_after(history, t, all_activated_mtus.get(pod, set()))
            if baseline is None:
                why = why or "no baseline"
            measured = _rhe(sum(int(s["p_w"]) for s in mine) * 4, 3600)
            evidence[(pod, t)] = _Expected(
                payable=not why,
                baseline_wh=baseline or 0,
                measured_wh=measured,
                delivered_wh=0,
                amount_cents=0,
                claim_cents=0,
                measurement_root=mroot,
                baseline_root=broot,
                why=why,
            )

    # figures per award, and the comparison
    tol, pen = int(view["tolerance_ppm"]), int(view["penalty_ppm"])
    expected: dict[str, _Expected] = {}
    for key in keys:
        ev = evidence[key]
        group = [awards[h] for h in act if (awards[h].pod, awards[h].mtu_start_s) == key]
        for direction in {a.direction for a in group}:
            same = [a for a in group if a.direction == direction]
            sign = 1 if direction == 0 else -1
            total = sign * (ev.baseline_wh - ev.measured_wh)
            shares = _split(total, [(a.award_hash, act[a.award_hash]) for a in same])
            for a in same:
                if ev.payable:
                    amount, claim = _pay(a, act[a.award_hash], shares[a.award_hash], tol, pen)
                    expected[a.award_hash] = _Expected(
                        True,
                        ev.baseline_wh,
                        ev.measured_wh,
                        shares[a.award_hash],
                        amount,
                        claim,
                        ev.measurement_root,
                        ev.baseline_root,
                    )
                else:
                    expected[a.award_hash] = _Expected(
                        False,
                        ev.baseline_wh,
                        0,
                        0,
                        0,
                        0,
                        ev.measurement_root,
                        ev.baseline_root,
                        ev.why,
                    )
    lines = {ln["outcome"]["message"]["award_hash"]: ln for ln in view["lines"]}
    rep.add(
        "one settlement line per activated award",
        set(lines) == set(expected),
        f"{len(lines)} lines, {len(expected)} activated",
    )
    offers: dict[str, str] = {}
    requests: dict[str, str] = {}
    for h, exp in sorted(expected.items()):
        line = lines.get(h)
        a = awards[h]
        if line is None:
            continue
        env = Signed[SettlementOutcome].model_validate(line["outcome"])
        o = env.message
        try:
            signer = verify_envelope(env, domain)
            rep.add(
                f"{h}: signed by a market operator",
                contracts.roles.has_role("MARKET_OPERATOR", signer),
                signer,
            )
        except SignatureError as exc:
            rep.add(f"{h}: signed by a market operator", False, str(exc))
        got = (o.measured_wh, o.delivered_wh, o.amount_cents, o.claim_cents, o.measurement_root)
        want = (
            exp.measured_wh,
            exp.delivered_wh,
            exp.amount_cents,
            exp.claim_cents,
            exp.measurement_root,
        )
        if exp.payable:
            want_status_ok = o.status in ("paid", "partially_paid", "not_delivered")
            rep.add(
                f"{h}: baseline",
                o.baseline_wh == exp.baseline_wh and o.baseline_root == exp.baseline_root,
                f"{o.baseline_wh} vs {exp.baseline_wh}",
            )
        else:
            want_status_ok = o.status == "unpaid_uncertified"
        rep.add(
            f"{h}: figures ({a.pod} @ {a.mtu_start_s})",
            got == want and want_status_ok,
            f"market {got} {o.status}; auditor {want} {exp.why or 'payable'}",
        )
        rep.recomputed[h] = {
            "amount_cents": exp.amount_cents,
            "claim_cents": exp.claim_cents,
            "why": exp.why,
        }
        if a.offer_hash not in offers:
            offers[a.offer_hash] = market.get(f"/offers/{a.offer_hash}")["offer"]["message"][
                "aggregator"
            ]
        if a.request_hash not in requests:
            requests[a.request_hash] = market.get(f"/requests/{a.request_hash}")["request"][
                "message"
            ]["requester"]
        info = contracts.settlement.settlement_of(b32(h))
        if not rep.add(f"{h}: settled on chain", info is not None):
            continue
        assert info is not None
        rep.add(
            f"{h}: on-chain record is the signed outcome",
            info.record_hash == message_hash(o)
            and (info.amount_cents, info.claim_cents, info.delivered_wh)
            == (o.amount_cents, o.claim_cents, o.delivered_wh)
            and h32(info.measurement_root) == o.measurement_root
            and h32(info.baseline_root) == o.baseline_root,
            "0x" + info.record_hash.hex(),
        )
        rep.add(
            f"{h}: payer is the requester, payee the offer's aggregator",
            info.payer == to_checksum_address(requests[a.request_hash])
            and info.payee == to_checksum_address(offers[a.offer_hash]),
            f"{info.payer} → {info.payee}",
        )
    _check_transfers(rep, contracts, sid, expected, from_block)
    return rep


def _activated_mtus(market: HttpGet) -> dict[str, set[int]]:
    """POD → MTUs any recorded order (any session) activated, for meter-before/after and
    high-X-of-Y's excluded days."""
    out: dict[str, set[int]] = defaultdict(set)
    after: str | None = None
    while True:
        page = market.get("/orders", {"limit": 10_000, **({"after": after} if after else {})})
        for o in page:
            for a in o.get("awards", []):
                out[a["pod"]].add(int(a["mtu_start_s"]))
        if len(page) < 10_000:
            return out
        after = page[-1]["hash"]


def _check_transfers(
    rep: SettlementAudit,
    contracts: FlexContracts,
    sid: bytes,
    expected: dict[str, _Expected],
    from_block: int,
) -> None:
    """Every ``AwardSettled`` of the session once per award, and in its transaction a token
    ``Transfer`` payer → payee of exactly the amount (none for a zero amount)."""
    reader = EventReader(
        contracts.settlement.w3, [contracts.settlement, contracts.token], from_block=from_block
    )
    settled: dict[str, list[Any]] = defaultdict(list)
    transfers: dict[bytes, list[Any]] = defaultdict(list)
    for e in reader.poll():
        if e.name == "AwardSettled" and bytes(e.args["session"]) == sid:
            settled[h32(bytes(e.args["awardHash"]))].append(e)
        elif e.name == "Transfer" and e.address == contracts.token.address:
            transfers[e.tx_hash].append(e)
    total_events = 0
    for h, exp in sorted(expected.items()):
        events = settled.get(h, [])
        if not rep.add(f"{h}: settled once", len(events) == 1, f"{len(events)} AwardSettled"):
            continue
        e = events[0]
        moved = [
            t
            for t in transfers.get(e.tx_hash, [])
            if t.args["from"] == e.args["payer"] and t.args["to"] == e.args["payee"]
        ]
        amount = sum(int(t.args["value"]) for t in moved)
        total_events += amount
        rep.add(
            f"{h}: tokens moved = amount",
            amount == exp.amount_cents == int(e.args["amountCents"])
            and len(moved) == (1 if exp.amount_cents else 0),
            f"{amount} moved, {exp.amount_cents} due",
        )
    rep.add(
        "no settlement of the session outside its activated awards",
        set(settled) <= set(expected),
        f"{len(set(settled) - set(expected))} extra",
    )
    rep.add(
        "token moved in total = Σ recomputed amounts",
        total_events == sum(e.amount_cents for e in expected.values()),
        f"{total_events} cents",
    )
