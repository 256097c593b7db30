"""The auditor's own solve of one clearing stage, written from the clearing's rules (never from
``market.clearing``), so that a stage's reported objective can be checked against an
independent optimum ("Verifiable clearing", ARCHITECTURE.md).

The rules, as the market states them and as this module encodes them:

- an award is one offer serving one request in one MTU of the session's window, in W. Its
  offer and request have the same direction, the offer's price is within the request's cap,
  and the offer is located: a DSO request lists eligible PODs with effectiveness factors (a
  factor below ``min_factor_ppm`` does not count), a TSO request names an area (factor 1 for a
  POD in it). A key (offer, request, MTU) a DSO validation rejected is never awarded again;
- each award is 0 or within [min_w, min(max_w, what the offer has left in that MTU)]:
  divisible offers (min_w = 0), semi-continuous ones and all-or-nothing ones (min_w = max_w)
  alike; the awards of one offer in one MTU add up to at most what it has left;
- each request and MTU of the stage is covered ``volume × (1 + margin)`` in effective W
  (Σ factor × W); what is missing is slack: up to ``volume × margin`` priced at the stated
  margin penalty, the rest (up to the volume) at the stated volume penalty, both in €/MWh;
- the stage minimises Σ awarded MWh × offer price + the penalties, in €. The DSO stage clears
  on the offers' capacity, the TSO stage on what the market's DSO awards left.

The solve is ``scipy.optimize.milp`` (HiGHS): one continuous column per candidate award in kW,
one binary per candidate whose offer has a minimum (``min·y ≤ p ≤ max·y``), two slack columns
per covered request and MTU. Requests and offers interact only within an MTU and through the
offers they share, so the model is split into its connected blocks, each solved on its own
under a node and time limit; the result carries the auditor's own proven bound, so that its
gap is known too.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import coo_matrix, csr_matrix

from flexledger.messages import Offer, Request
from flexledger.time import MTU_S
from flexledger.units import PPM

__all__ = [
    "EUR_PER_W_MTU_PER_EUR_MWH",
    "Candidate",
    "RefOffer",
    "RefRequest",
    "StageObjective",
    "StageRules",
    "StageSolve",
    "candidates",
    "factor_ppm",
    "objective_of_awards",
    "rule_penalties",
    "solve_stage",
]

Key = tuple[str, str, int]  # (offer hash, request hash, MTU start)
Slot = tuple[str, int]  # (offer hash, MTU start)
Row = tuple[str, int]  # (request hash, MTU start)

#: € for 1 W held one MTU at 1 €/MWh: 1e-6 MW/W × MTU hours.
EUR_PER_W_MTU_PER_EUR_MWH = 1e-6 * MTU_S / 3600


@dataclass(frozen=True)
class RefOffer:
    """An offer as the auditor clears it (from the signed ``Offer``)."""

    hash: str
    pod: str
    direction: int
    mtu_starts: frozenset[int]
    max_w: int
    min_w: int
    price_cents_per_mwh: int

    @classmethod
    def of(cls, offer_hash: str, offer: Offer) -> RefOffer:
        return cls(
            offer_hash.lower(),
            offer.pod,
            int(offer.direction),
            frozenset(offer.mtu_starts),
            offer.max_w,
            offer.min_w,
            offer.price_cents_per_mwh,
        )

    @property
    def price_eur_per_mwh(self) -> float:
        return self.price_cents_per_mwh / 100


@dataclass(frozen=True)
class RefRequest:
    """A request as the auditor clears it: a DSO request when it lists eligible PODs."""

    hash: str
    direction: int
    mtu_starts: frozenset[int]
    volume_w: int
    max_price_cents_per_mwh: int
    eligible: Mapping[str, int] = field(default_factory=dict, hash=False)
    area: str | None = None

    @classmethod
    def of(cls, request_hash: str, request: Request) -> RefRequest:
        return cls(
            request_hash.lower(),
            int(request.direction),
            frozenset(request.mtu_starts),
            request.volume_w,
            request.max_price_cents_per_mwh,
            {e.pod: e.factor_ppm for e in request.eligible},
            request.area,
        )

    @property
    def stage(self) -> str:
        return "dso" if self.eligible else "tso"


@dataclass(frozen=True)
class StageRules:
    """What shapes one stage's objective: its margin, minimum factor and the two penalties."""

    margin: float
    min_factor_ppm: int
    penalty_margin_eur_per_mwh: float
    penalty_volume_eur_per_mwh: float


@dataclass(frozen=True)
class Candidate:
    """An award the stage may make: 0 or within [lo_w, hi_w] W, counted ``ppm`` per W."""

    offer: str
    request: str
    mtu_start_s: int
    ppm: int
    lo_w: int
    hi_w: int
    price_cents_per_mwh: int

    @property
    def key(self) -> Key:
        return (self.offer, self.request, self.mtu_start_s)


def factor_ppm(
    offer: RefOffer, request: RefRequest, pod_area: Mapping[str, str], min_factor_ppm: int
) -> int:
    """How much of one W of ``offer`` counts for ``request`` (ppm); 0 when it cannot serve it
    at all (direction, price cap, location; MTUs are not looked at)."""
    if offer.direction != request.direction:
        return 0
    if offer.price_cents_per_mwh > request.max_price_cents_per_mwh:
        return 0
    if request.eligible:
        f = int(request.eligible.get(offer.pod, 0))
        return f if f > 0 and f >= min_factor_ppm else 0
    if request.area is not None and pod_area.get(offer.pod) == request.area:
        return PPM
    return 0


def _rows(requests: Iterable[RefRequest], stage: str, window: Iterable[int]) -> list[Row]:
    mtus = set(window)
    return sorted(
        (r.hash, t) for r in requests if r.stage == stage for t in r.mtu_starts if t in mtus
    )


def candidates(
    offers: Iterable[RefOffer],
    requests: Iterable[RefRequest],
    stage: str,
    *,
    capacity: Mapping[Slot, float],
    window: Iterable[int],
    pod_area: Mapping[str, str],
    min_factor_ppm: int,
    excluded: Iterable[Key] = (),
) -> list[Candidate]:
    """Every award the stage may make, in a fixed order (offer, request, MTU)."""
    mtus = set(window)
    out_keys = set(excluded)
    reqs = [r for r in requests if r.stage == stage]
    out: list[Candidate] = []
    for o in sorted(offers, key=lambda o: o.hash):
        for r in sorted(reqs, key=lambda r: r.hash):
            f = factor_ppm(o, r, pod_area, min_factor_ppm)
            if f <= 0:
                continue
            for t in sorted(o.mtu_starts & r.mtu_starts):
                if t not in mtus or (o.hash, r.hash, t) in out_keys:
                    continue
                hi = min(o.max_w, int(capacity.get((o.hash, t), 0)))
                if hi <= 0 or hi < o.min_w:
                    continue
                out.append(Candidate(o.hash, r.hash, t, f, o.min_w, hi, o.price_cents_per_mwh))
    return out


def rule_penalties(cands: Sequence[Candidate], floor_eur_per_mwh: float) -> tuple[float, float]:
    """The penalties the clearing's rule gives a stage: margin = the larger of the floor and
    ten times the highest effective price (price / factor) of its candidates; volume = ten
    times the margin penalty."""
    top = max((c.price_cents_per_mwh / 100 / (c.ppm / PPM) for c in cands), default=0.0)
    margin = max(float(floor_eur_per_mwh), 10.0 * top)
    return margin, 10.0 * margin


@dataclass(frozen=True)
class StageObjective:
    """A stage's objective evaluated at given awards, and its parts."""

    cost_eur: float
    margin_penalty_eur: float
    volume_penalty_eur: float
    unmet_w: dict[Row, int]  # volume (not margin) missing per request and MTU, whole W up

    @property
    def objective_eur(self) -> float:
        return self.cost_eur + self.margin_penalty_eur + self.volume_penalty_eur


def objective_of_awards(
    awards: Iterable[tuple[str, str, int, int]],
    offers: Mapping[str, RefOffer],
    requests: Mapping[str, RefRequest],
    stage: str,
    *,
    window: Iterable[int],
    pod_area: Mapping[str, str],
    rules: StageRules,
) -> StageObjective:
    """The stage objective of ``awards`` (offer, request, MTU, W): Σ W × MTU × offer price, plus
    each request and MTU's shortfall below ``volume × (1 + margin)`` effective W, the margin
    part at the margin penalty and the rest at the volume penalty."""
    eff_ppm: dict[Row, int] = defaultdict(int)
    cost = 0.0
    for oh, rh, t, w in awards:
        o, r = offers[oh], requests[rh]
        cost += w * o.price_eur_per_mwh * EUR_PER_W_MTU_PER_EUR_MWH
        eff_ppm[(rh, t)] += w * factor_ppm(o, r, pod_area, 1)
    pen_m = pen_v = 0.0
    unmet: dict[Row, int] = {}
    for row in _rows(requests.values(), stage, window):
        volume = requests[row[0]].volume_w
        margin_w = volume * float(rules.margin)
        short = max(0.0, volume + margin_w - eff_ppm[row] / PPM)
        m = min(short, margin_w)
        pen_m += m * rules.penalty_margin_eur_per_mwh * EUR_PER_W_MTU_PER_EUR_MWH
        pen_v += (
            min(short - m, volume) * rules.penalty_volume_eur_per_mwh * (EUR_PER_W_MTU_PER_EUR_MWH)
        )
        missing = volume * PPM - eff_ppm[row]
        unmet[row] = -(-missing // PPM) if missing > 0 else 0
    return StageObjective(cost, pen_m, pen_v, unmet)


@dataclass
class StageSolve:
    """The auditor's optimum of one stage: objective (a feasible point's), proven lower bound
    and the awards (W, unrounded) it found."""

    objective_eur: float
    bound_eur: float
    status: str
    blocks: int = 0
    columns: int = 0
    binaries: int = 0
    node_count: int = 0
    solve_s: float = 0.0
    power_w: dict[Key, float] = field(default_factory=dict)

    @property
    def gap_eur(self) -> float:
        return max(0.0, self.objective_eur - self.bound_eur)


def _blocks(cands: Sequence[Candidate]) -> list[list[int]]:
    """Candidates grouped into independent blocks: two are linked when they share an offer's
    MTU (capacity) or a request's MTU (coverage). Union-find, in candidate order."""
    parent: dict[tuple[str, str, int], tuple[str, str, int]] = {}

    def find(x: tuple[str, str, int]) -> tuple[str, str, int]:
        root = x
        while parent.setdefault(root, root) != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    for c in cands:
        a, b = find(("o", c.offer, c.mtu_start_s)), find(("r", c.request, c.mtu_start_s))
        if a != b:
            parent[max(a, b)] = min(a, b)
    groups: dict[tuple[str, str, int], list[int]] = {}
    for k, c in enumerate(cands):
        groups.setdefault(find(("r", c.request, c.mtu_start_s)), []).append(k)
    return list(groups.values())


def solve_stage(
    offers: Iterable[RefOffer],
    requests: Iterable[RefRequest],
    stage: str,
    *,
    capacity: Mapping[Slot, float],
    window: Iterable[int],
    pod_area: Mapping[str, str],
    rules: StageRules,
    excluded: Iterable[Key] = (),
    time_limit_s: float = 60.0,
    node_limit: int = 10_000,
    mip_rel_gap: float = 1e-9,
) -> StageSolve:
    """Minimise the stage objective over its candidate awards (see the module docstring)."""
    t0 = time.perf_counter()
    offers = list(offers)
    requests = list(requests)
    window = list(window)
    cands = candidates(
        offers,
        requests,
        stage,
        capacity=capacity,
        window=window,
        pod_area=pod_area,
        min_factor_ppm=rules.min_factor_ppm,
        excluded=excluded,
    )
    by_req = {r.hash: r for r in requests}
    kw_m = rules.penalty_margin_eur_per_mwh * EUR_PER_W_MTU_PER_EUR_MWH * 1000  # € per kW·MTU
    kw_v = rules.penalty_volume_eur_per_mwh * EUR_PER_W_MTU_PER_EUR_MWH * 1000
    # rows that no candidate can serve are fully short: a constant of the stage
    served = {(c.request, c.mtu_start_s) for c in cands}
    constant = 0.0
    for rh, t in _rows(requests, stage, window):
        if (rh, t) not in served:
            vol_kw = by_req[rh].volume_w / 1000
            constant += vol_kw * rules.margin * kw_m + vol_kw * kw_v
    result = StageSolve(constant, constant, "optimal")
    deadline = t0 + time_limit_s
    for block in _blocks(cands):
        part = [cands[k] for k in block]
        _solve_block(part, by_req, rules, (kw_m, kw_v), result, deadline, (node_limit, mip_rel_gap))
    result.solve_s = time.perf_counter() - t0
    return result


def _solve_block(
    cands: list[Candidate],
    requests: Mapping[str, RefRequest],
    rules: StageRules,
    penalties_kw: tuple[float, float],
    result: StageSolve,
    deadline: float,
    limits: tuple[int, float],
) -> None:
    """Solve one block and add its objective, bound and awards to ``result``."""
    kw_m, kw_v = penalties_kw
    node_limit, mip_rel_gap = limits
    n = len(cands)
    semi = [k for k, c in enumerate(cands) if c.lo_w > 0]
    rows = sorted({(c.request, c.mtu_start_s) for c in cands})
    slots = sorted({(c.offer, c.mtu_start_s) for c in cands})
    row_of = {r: i for i, r in enumerate(rows)}
    slot_of = {s: i for i, s in enumerate(slots)}
    n_b, n_r, n_s = len(semi), len(rows), len(slots)
    # columns: p (kW, n) | y (binary, n_b) | margin slack (kW, n_r) | volume slack (kW, n_r)
    y0, m0, v0 = n, n + n_b, n + n_b + n_r
    n_cols = v0 + n_r
    c = np.zeros(n_cols)
    lb = np.zeros(n_cols)
    ub = np.zeros(n_cols)
    for k, cand in enumerate(cands):
        c[k] = cand.price_cents_per_mwh / 100 * EUR_PER_W_MTU_PER_EUR_MWH * 1000
        ub[k] = cand.hi_w / 1000
    ub[y0:m0] = 1.0
    vol_kw = np.array([requests[rh].volume_w / 1000 for rh, _ in rows])
    c[m0:v0] = kw_m
    c[v0:] = kw_v
    ub[m0:v0] = vol_kw * rules.margin
    ub[v0:] = vol_kw
    ri: list[int] = []
    ci: list[int] = []
    val: list[float] = []
    lo_rows: list[float] = []
    hi_rows: list[float] = []
    # coverage: Σ f·p + m + v ≥ volume·(1 + margin)
    for k, cand in enumerate(cands):
        ri.append(row_of[(cand.request, cand.mtu_start_s)])
        ci.append(k)
        val.append(cand.ppm / PPM)
    for i in range(n_r):
        ri += [i, i]
        ci += [m0 + i, v0 + i]
        val += [1.0, 1.0]
        lo_rows.append(float(vol_kw[i] * (1 + rules.margin)))
        hi_rows.append(math.inf)
    # capacity: Σ p ≤ what the offer has left in the MTU (every candidate's hi_w)
    slot_cap: dict[int, float] = {}
    for k, cand in enumerate(cands):
        s = slot_of[(cand.offer, cand.mtu_start_s)]
        slot_cap[s] = cand.hi_w / 1000
        ri.append(n_r + s)
        ci.append(k)
        val.append(1.0)
    for s in range(n_s):
        lo_rows.append(-math.inf)
        hi_rows.append(slot_cap[s])
    # minimum: lo·y ≤ p ≤ hi·y
    base = n_r + n_s
    for b, k in enumerate(semi):
        cand = cands[k]
        ri += [base + 2 * b, base + 2 * b, base + 2 * b + 1, base + 2 * b + 1]
        ci += [k, y0 + b, k, y0 + b]
        val += [1.0, -cand.hi_w / 1000, 1.0, -cand.lo_w / 1000]
        lo_rows += [-math.inf, 0.0]
        hi_rows += [0.0, math.inf]
    n_rows = base + 2 * n_b
    a = coo_matrix((val, (ri, ci)), shape=(n_rows, n_cols)).tocsr()
    integrality = np.zeros(n_cols, dtype=np.int64)
    integrality[y0:m0] = 1
    constraints = LinearConstraint(a, np.array(lo_rows), np.array(hi_rows))
    # the LP relaxation first: its value bounds the block; where every award with a minimum
    # is 0 or at least its minimum, y = 1 for the latter (y costs nothing) is integral and
    # keeps every row, so the relaxation's optimum is the block's
    relaxed = milp(c, bounds=Bounds(lb, ub), constraints=constraints)
    lp_bound = float(relaxed.fun) if relaxed.status == 0 else -math.inf
    x: np.ndarray | None = None
    nodes = 0
    limited = relaxed.status != 0
    if relaxed.status == 0:
        snapped = np.asarray(relaxed.x, dtype=np.float64).copy()
        p = snapped[semi]
        lo = np.array([cands[k].lo_w / 1000 for k in semi])
        if np.all((p <= 1e-9) | (p >= lo - 1e-9)):
            snapped[y0:m0] = (p > 1e-9).astype(np.float64)
            if _feasible(snapped, a, lo_rows, hi_rows, lb, ub, integrality):
                x = snapped
    bound = lp_bound
    if x is None and not limited:
        res = milp(
            c,
            integrality=integrality,
            bounds=Bounds(lb, ub),
            constraints=constraints,
            options={
                "time_limit": max(0.1, deadline - time.perf_counter()),
                "node_limit": node_limit,
                "mip_rel_gap": mip_rel_gap,
                "disp": False,
            },
        )
        nodes = int(res.mip_node_count or 0)
        limited = res.status != 0
        if res.x is not None and _feasible(res.x, a, lo_rows, hi_rows, lb, ub, integrality):
            x = np.asarray(res.x, dtype=np.float64)
        if res.mip_dual_bound is not None and math.isfinite(res.mip_dual_bound):
            bound = max(bound, float(res.mip_dual_bound))
    if x is None:  # every point is as good as its objective: awarding nothing is one
        limited = True
        x = np.zeros(n_cols)
        x[m0:] = ub[m0:]
    objective = float(c @ x)
    bound = min(bound, objective)
    if limited:
        result.status = "limit"
    result.objective_eur += objective
    result.bound_eur += bound
    result.blocks += 1
    result.columns += n_cols
    result.binaries += n_b
    result.node_count += nodes
    for k, cand in enumerate(cands):
        if x[k] > 0:
            result.power_w[cand.key] = float(x[k]) * 1000


def _feasible(
    x: np.ndarray,
    a: csr_matrix,
    lo_rows: list[float],
    hi_rows: list[float],
    lb: np.ndarray,
    ub: np.ndarray,
    integrality: np.ndarray,
    tol: float = 1e-6,
) -> bool:
    """The solver's point, checked by the auditor: bounds, rows and binaries within ``tol``."""
    ax = a @ x
    ints = integrality > 0
    return bool(
        np.all(x >= lb - tol)
        and np.all(x <= ub + tol)
        and np.all(ax >= np.array(lo_rows) - tol)
        and np.all(ax <= np.array(hi_rows) + tol)
        and np.all(np.abs(x[ints] - np.round(x[ints])) <= tol)
    )
