"""One clearing stage as a sparse linear model, built vectorised from the book.

The book is put in a canonical order first (offers and requests sorted by hash, MTUs by
start), so the model — and with a deterministic solver, the result — does not depend on the
order the book arrived in.

Variables (one column each), units kW so that the coefficients stay near 1:
- ``u_k`` per candidate award k = (offer, request, MTU): the awarded power. Divisible and
  semi-continuous offers: kW in [0, ub]. All-or-nothing offers: a binary, 1 = ``max_w``.
- ``y_k`` per semi-continuous award: a binary, with ``min·y ≤ u ≤ ub·y`` (two rows).
- ``m_r,t`` and ``v_r,t`` per request and MTU: unmet margin and unmet volume (kW), the slack
  that keeps the problem feasible; priced ``penalty_margin`` and ``penalty_volume`` (10× more,
  so volume is covered before margin, and both before cost).

Rows: coverage per request and MTU, ``Σ f·u + m + v ≥ volume·(1 + margin)``; capacity per
offer and MTU with two or more candidates, ``Σ_r u ≤ remaining`` (one candidate: a bound);
the semi-continuous links. Objective: Σ price × energy + penalties, in €/MWh × MWh.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from flexledger.time import MTU_S
from flexledger.units import PPM
from market.clearing.book import AwardKey, ClearingBook, ClearingOffer, ClearingRequest, Stage
from market.clearing.errors import MalformedBookError

__all__ = [
    "AON",
    "DIV",
    "EUR_PER_KW_MTU",
    "SEMI",
    "BookIndex",
    "LinearModel",
    "StageModel",
    "build_stage",
    "quantise",
]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

DIV, SEMI, AON = 0, 1, 2
#: € for 1 kW held one MTU at 1 cent/MWh: 1e-2 €/MWh × 0.25 h × 1e-3 MW/kW.
EUR_PER_KW_MTU = (MTU_S / 3600) * 1e-3 * 1e-2


@dataclass
class BookIndex:
    """The book in canonical order, as arrays, restricted to the clearing's MTU window."""

    book: ClearingBook
    offers: list[ClearingOffer]
    requests: list[ClearingRequest]
    mtus: IntArray
    o_pod: IntArray
    o_dir: IntArray
    o_price: IntArray
    o_max: IntArray
    o_min: IntArray
    o_kind: IntArray
    o_mask: BoolArray  # offers × MTUs: the offer covers the MTU
    r_dir: IntArray
    r_cap: IntArray
    r_volume: IntArray
    r_dso: BoolArray
    r_mask: BoolArray  # requests × MTUs
    pod_code: dict[str, int]
    offer_row: dict[str, int]
    request_row: dict[str, int]

    @classmethod
    def build(cls, book: ClearingBook, mtus: Iterable[int] | None = None) -> BookIndex:
        offers = sorted(book.offers, key=lambda o: o.hash)
        requests = sorted(book.requests, key=lambda r: r.hash)
        if mtus is None:
            grid = sorted(
                {t for o in offers for t in o.mtu_starts}
                | {t for r in requests for t in r.mtu_starts}
            )
        else:
            grid = sorted(set(mtus))
        mtu_arr = np.asarray(grid, dtype=np.int64)
        col = {t: j for j, t in enumerate(grid)}
        pods = sorted(
            {o.pod for o in offers} | {p for r in requests for p in r.eligible} | set(book.pod_area)
        )
        pod_code = {p: j for j, p in enumerate(pods)}

        def mask(items: Sequence[ClearingOffer | ClearingRequest]) -> BoolArray:
            m = np.zeros((len(items), len(grid)), dtype=bool)
            rows: list[int] = []
            cols: list[int] = []
            for i, item in enumerate(items):
                for t in item.mtu_starts:
                    j = col.get(t)
                    if j is not None:
                        rows.append(i)
                        cols.append(j)
            m[rows, cols] = True
            return m

        o_max = np.fromiter((o.max_w for o in offers), dtype=np.int64, count=len(offers))
        o_min = np.fromiter((o.min_w for o in offers), dtype=np.int64, count=len(offers))
        o_kind = np.where(o_min == 0, DIV, np.where(o_min == o_max, AON, SEMI)).astype(np.int64)
        return cls(
            book=book,
            offers=offers,
            requests=requests,
            mtus=mtu_arr,
            o_pod=np.fromiter((pod_code[o.pod] for o in offers), dtype=np.int64, count=len(offers)),
            o_dir=np.fromiter(
                (int(o.direction) for o in offers), dtype=np.int64, count=len(offers)
            ),
            o_price=np.fromiter(
                (o.price_cents_per_mwh for o in offers), dtype=np.int64, count=len(offers)
            ),
            o_max=o_max,
            o_min=o_min,
            o_kind=o_kind,
            o_mask=mask(offers),
            r_dir=np.fromiter(
                (int(r.direction) for r in requests), dtype=np.int64, count=len(requests)
            ),
            r_cap=np.fromiter(
                (r.max_price_cents_per_mwh for r in requests), dtype=np.int64, count=len(requests)
            ),
            r_volume=np.fromiter(
                (r.volume_w for r in requests), dtype=np.int64, count=len(requests)
            ),
            r_dso=np.fromiter(
                (r.stage == "dso" for r in requests), dtype=bool, count=len(requests)
            ),
            r_mask=mask(requests),
            pod_code=pod_code,
            offer_row={o.hash: i for i, o in enumerate(offers)},
            request_row={r.hash: i for i, r in enumerate(requests)},
        )

    @property
    def n_mtus(self) -> int:
        return len(self.mtus)

    def initial_capacity(self) -> IntArray:
        """What each offer can give in each MTU before any stage: ``max_w`` where it covers."""
        return np.where(self.o_mask, self.o_max[:, None], 0).astype(np.int64)

    def exclusions(self, excluded: Collection[AwardKey | str]) -> tuple[BoolArray, IntArray]:
        """Excluded offers (mask) and excluded award keys (codes offer·R·T + request·T + MTU).

        A key or offer that is not in the book is refused: a validation round that rejects an
        award the market never made is a bug upstream, not something to ignore quietly.
        """
        off = np.zeros(len(self.offers), dtype=bool)
        codes: list[int] = []
        col = {int(t): j for j, t in enumerate(self.mtus)}
        n_r, n_t = len(self.requests), self.n_mtus
        for item in excluded:
            if isinstance(item, str):
                i = self.offer_row.get(item.lower())
                if i is None:
                    raise MalformedBookError(f"excluded offer {item} is not in the book")
                off[i] = True
                continue
            key = AwardKey(*item)
            i = self.offer_row.get(key.offer_hash.lower())
            r = self.request_row.get(key.request_hash.lower())
            j = col.get(int(key.mtu_start_s))
            if i is None or r is None or j is None:
                raise MalformedBookError(f"excluded award {tuple(key)} is not in the book's window")
            codes.append((i * n_r + r) * n_t + j)
        return off, np.asarray(sorted(set(codes)), dtype=np.int64)


@dataclass
class LinearModel:
    """min c·x  s.t.  row_lo ≤ A x ≤ row_hi,  lb ≤ x ≤ ub,  x_j integer where ``integer``."""

    c: FloatArray
    lb: FloatArray
    ub: FloatArray
    a: sp.csc_matrix
    row_lo: FloatArray
    row_hi: FloatArray
    integer: BoolArray

    @property
    def n_cols(self) -> int:
        return len(self.c)

    @property
    def n_rows(self) -> int:
        return int(self.a.shape[0])


@dataclass
class StageModel:
    """One stage: its candidate awards, coverage rows, slots and the linear model over them."""

    stage: Stage
    index: BookIndex
    # candidate awards
    a_off: IntArray
    a_req: IntArray
    a_t: IntArray
    a_ppm: IntArray
    a_kind: IntArray
    a_ub_w: IntArray
    a_min_w: IntArray
    a_scale_w: FloatArray  # W per unit of the award's column
    a_row: IntArray  # coverage row
    a_slot: IntArray  # offer × MTU slot
    a_semi: IntArray  # index of the y column among semi awards, -1 if none
    # coverage rows (request × MTU of this stage, inside the window)
    c_req: IntArray
    c_t: IntArray
    c_volume_w: IntArray
    c_target_w: FloatArray
    c_margin_w: FloatArray
    c_in_model: BoolArray  # False: no candidate at all, fully unmet (kept out of the model)
    # offer × MTU slots used by candidates
    s_off: IntArray
    s_t: IntArray
    s_cap_w: IntArray
    penalty_margin_eur_per_mwh: float
    penalty_volume_eur_per_mwh: float
    lp: LinearModel
    # column layout
    n_awards: int
    n_semi: int
    n_cover: int  # coverage rows in the model
    cover_model_rows: IntArray  # model coverage row → index into c_*

    @property
    def empty_rows_objective_eur(self) -> float:
        """The penalty of coverage rows without any candidate, left out of the solve."""
        out = ~self.c_in_model
        return float(
            (
                self.c_margin_w[out].sum() * self.penalty_margin_eur_per_mwh
                + self.c_volume_w[out].sum() * self.penalty_volume_eur_per_mwh
            )
            * EUR_PER_KW_MTU
            * 100
            / 1000
        )

    @property
    def slack_cols(self) -> tuple[int, int]:
        """First column of the margin slacks and of the volume slacks."""
        first = self.n_awards + self.n_semi
        return first, first + self.n_cover

    def unit_cost_eur(self) -> FloatArray:
        """Cost of each award column per unit (€)."""
        return self.lp.c[: self.n_awards]


def _candidate_pairs(
    index: BookIndex, stage: Stage, excluded_offers: BoolArray, min_factor_ppm: int
) -> tuple[IntArray, IntArray, IntArray]:
    """(offer, request, factor ppm) for every offer that may serve a request of ``stage``:
    located (POD eligible, or in the request's area), same direction, price within the cap."""
    req_idx: list[int] = []
    pod_idx: list[int] = []
    ppm: list[int] = []
    area_pods: dict[str, list[int]] = {}
    for pod, area in index.book.pod_area.items():
        area_pods.setdefault(area, []).append(index.pod_code[pod])
    for r, req in enumerate(index.requests):
        if (req.stage == "dso") != (stage == "dso"):
            continue
        if req.eligible:
            for pod, f in req.eligible.items():
                if f >= min_factor_ppm and f > 0:
                    req_idx.append(r)
                    pod_idx.append(index.pod_code[pod])
                    ppm.append(f)
        elif req.area is not None:
            for p in area_pods.get(req.area, ()):
                req_idx.append(r)
                pod_idx.append(p)
                ppm.append(PPM)
    e_req = np.asarray(req_idx, dtype=np.int64)
    e_pod = np.asarray(pod_idx, dtype=np.int64)
    e_ppm = np.asarray(ppm, dtype=np.int64)
    by_pod = np.argsort(index.o_pod, kind="stable")
    pods_sorted = index.o_pod[by_pod]
    lo = np.searchsorted(pods_sorted, e_pod, side="left")
    hi = np.searchsorted(pods_sorted, e_pod, side="right")
    cnt = hi - lo
    total = int(cnt.sum())
    first = np.repeat(np.cumsum(cnt) - cnt, cnt)
    pos = np.arange(total, dtype=np.int64) - first + np.repeat(lo, cnt)
    p_off = by_pod[pos]
    p_req = np.repeat(e_req, cnt)
    p_ppm = np.repeat(e_ppm, cnt)
    keep = (
        (index.o_dir[p_off] == index.r_dir[p_req])
        & (index.o_price[p_off] <= index.r_cap[p_req])
        & ~excluded_offers[p_off]
    )
    return p_off[keep], p_req[keep], p_ppm[keep]


def build_stage(
    index: BookIndex,
    stage: Stage,
    capacity_w: IntArray,
    *,
    margin: float,
    excluded_offers: BoolArray,
    excluded_codes: IntArray,
    penalty_floor_eur_per_mwh: float,
    min_factor_ppm: int,
) -> StageModel:
    """The stage's model on ``capacity_w`` (offers × MTUs: what is left of each offer)."""
    n_t = index.n_mtus
    n_r = len(index.requests)
    p_off, p_req, p_ppm = _candidate_pairs(index, stage, excluded_offers, min_factor_ppm)
    both = index.o_mask[p_off] & index.r_mask[p_req]
    pair, a_t = np.nonzero(both)
    a_off, a_req, a_ppm = p_off[pair], p_req[pair], p_ppm[pair]
    a_t = a_t.astype(np.int64)
    if len(excluded_codes):
        code = (a_off * n_r + a_req) * n_t + a_t
        keep = ~np.isin(code, excluded_codes)
        a_off, a_req, a_ppm, a_t = a_off[keep], a_req[keep], a_ppm[keep], a_t[keep]
    a_kind = index.o_kind[a_off]
    cap = capacity_w[a_off, a_t]
    a_max = index.o_max[a_off]
    a_min = index.o_min[a_off]
    fits = np.where(a_kind == DIV, cap > 0, np.where(a_kind == SEMI, cap >= a_min, cap >= a_max))
    a_off, a_req, a_ppm, a_t, a_kind, cap, a_max, a_min = (
        v[fits] for v in (a_off, a_req, a_ppm, a_t, a_kind, cap, a_max, a_min)
    )
    a_ub = np.minimum(cap, a_max)
    a_scale = np.where(a_kind == AON, a_max, 1000).astype(np.float64)

    # coverage rows: every request × MTU of the stage inside the window
    stage_req = index.r_dso if stage == "dso" else ~index.r_dso
    c_req, c_t = np.nonzero(index.r_mask & stage_req[:, None])
    c_req, c_t = c_req.astype(np.int64), c_t.astype(np.int64)
    c_code = c_req * n_t + c_t
    c_volume = index.r_volume[c_req]
    c_margin = (c_volume * float(margin)).astype(np.float64)
    c_target = c_volume + c_margin
    a_crow = np.searchsorted(c_code, a_req * n_t + a_t)
    c_in_model = np.zeros(len(c_code), dtype=bool)
    c_in_model[a_crow] = True
    model_row_of = np.full(len(c_code), -1, dtype=np.int64)
    cover_rows = np.nonzero(c_in_model)[0]
    model_row_of[cover_rows] = np.arange(len(cover_rows))
    n_cover = len(cover_rows)

    # slots: offer × MTU
    s_code_all = a_off * n_t + a_t
    s_code, a_slot = np.unique(s_code_all, return_inverse=True)
    a_slot = a_slot.astype(np.int64)
    s_off, s_t = s_code // n_t, s_code % n_t
    s_cap = capacity_w[s_off, s_t]
    s_count = np.bincount(a_slot, minlength=len(s_code))
    shared = np.nonzero(s_count >= 2)[0]
    shared_row = np.full(len(s_code), -1, dtype=np.int64)
    shared_row[shared] = np.arange(len(shared))

    n_a = len(a_off)
    semi = np.nonzero(a_kind == SEMI)[0]
    n_semi = len(semi)
    a_semi = np.full(n_a, -1, dtype=np.int64)
    a_semi[semi] = np.arange(n_semi)

    # penalties: above every effective price a candidate of this stage has, never below the floor
    factor = a_ppm / PPM
    eff_price_eur = index.o_price[a_off] / 100 / factor if n_a else np.zeros(0)
    pen_m = max(float(penalty_floor_eur_per_mwh), 10.0 * float(eff_price_eur.max(initial=0.0)))
    pen_v = 10.0 * pen_m

    # columns: [u (n_a) | y (n_semi) | m (n_cover) | v (n_cover)]
    n_cols = n_a + n_semi + 2 * n_cover
    c = np.empty(n_cols)
    c[:n_a] = index.o_price[a_off] * EUR_PER_KW_MTU * a_scale / 1000
    c[n_a : n_a + n_semi] = 0.0
    c[n_a + n_semi : n_a + n_semi + n_cover] = pen_m * 100 * EUR_PER_KW_MTU
    c[n_a + n_semi + n_cover :] = pen_v * 100 * EUR_PER_KW_MTU
    lb = np.zeros(n_cols)
    ub = np.empty(n_cols)
    ub[:n_a] = np.where(a_kind == AON, 1.0, a_ub / 1000)
    ub[n_a : n_a + n_semi] = 1.0
    ub[n_a + n_semi : n_a + n_semi + n_cover] = c_margin[cover_rows] / 1000
    ub[n_a + n_semi + n_cover :] = c_volume[cover_rows] / 1000
    integer = np.zeros(n_cols, dtype=bool)
    integer[:n_a] = a_kind == AON
    integer[n_a : n_a + n_semi] = True

    # rows: [coverage (n_cover) | capacity (shared slots) | semi upper | semi lower]
    r0_cap = n_cover
    r0_su = r0_cap + len(shared)
    r0_sl = r0_su + n_semi
    n_rows = r0_sl + n_semi
    cols_u = np.arange(n_a, dtype=np.int64)
    a_mrow = model_row_of[a_crow]
    ents_r = [a_mrow]
    ents_c = [cols_u]
    ents_v = [factor * a_scale / 1000]
    m_cols = n_a + n_semi + np.arange(n_cover)
    ents_r += [np.arange(n_cover), np.arange(n_cover)]
    ents_c += [m_cols, m_cols + n_cover]
    ents_v += [np.ones(n_cover), np.ones(n_cover)]
    in_shared = shared_row[a_slot] >= 0
    ents_r.append(r0_cap + shared_row[a_slot][in_shared])
    ents_c.append(cols_u[in_shared])
    ents_v.append(a_scale[in_shared] / 1000)
    y_cols = n_a + np.arange(n_semi)
    for r0, coef in ((r0_su, a_ub[semi]), (r0_sl, a_min[semi])):
        ents_r += [r0 + np.arange(n_semi), r0 + np.arange(n_semi)]
        ents_c += [semi, y_cols]
        ents_v += [np.ones(n_semi), -coef / 1000]
    a = sp.csc_matrix(
        (np.concatenate(ents_v), (np.concatenate(ents_r), np.concatenate(ents_c))),
        shape=(n_rows, n_cols),
    )
    row_lo = np.full(n_rows, -np.inf)
    row_hi = np.full(n_rows, np.inf)
    row_lo[:n_cover] = c_target[cover_rows] / 1000
    row_hi[r0_cap:r0_su] = s_cap[shared] / 1000
    row_hi[r0_su:r0_sl] = 0.0
    row_lo[r0_sl:] = 0.0

    return StageModel(
        stage=stage,
        index=index,
        a_off=a_off,
        a_req=a_req,
        a_t=a_t,
        a_ppm=a_ppm,
        a_kind=a_kind,
        a_ub_w=a_ub,
        a_min_w=a_min,
        a_scale_w=a_scale,
        a_row=a_crow,
        a_slot=a_slot,
        a_semi=a_semi,
        c_req=c_req,
        c_t=c_t,
        c_volume_w=c_volume,
        c_target_w=c_target,
        c_margin_w=c_margin,
        c_in_model=c_in_model,
        s_off=s_off,
        s_t=s_t,
        s_cap_w=s_cap,
        penalty_margin_eur_per_mwh=pen_m,
        penalty_volume_eur_per_mwh=pen_v,
        lp=LinearModel(c, lb, ub, a, row_lo, row_hi, integer),
        n_awards=n_a,
        n_semi=n_semi,
        n_cover=n_cover,
        cover_model_rows=cover_rows,
    )


def quantise(model: StageModel, power_w: FloatArray, on: BoolArray) -> IntArray:
    """Whole W per candidate award, within every bound, from the optimiser's kW.

    A divisible award is rounded up to whole W (the optimiser's value within 1 mW is never
    cut, so coverage is not lost to rounding); a semi-continuous one is 0 when its binary is
    off, else clipped to [min_w, ub]; an all-or-nothing one is ``max_w`` or 0. Where rounding
    up pushes an offer's MTU over its capacity, 1 W at a time is taken back, from divisible
    awards first, largest first, then canonical order.
    """
    kind = model.a_kind
    up = np.ceil(power_w - 1e-3)
    w = np.where(
        kind == AON,
        np.where(on, model.a_ub_w, 0),
        np.where(
            kind == SEMI,
            np.where(on, np.clip(up, model.a_min_w, model.a_ub_w), 0),
            np.clip(up, 0, model.a_ub_w),
        ),
    ).astype(np.int64)
    used = np.bincount(model.a_slot, weights=w, minlength=len(model.s_cap_w))
    over = np.nonzero(used > model.s_cap_w + 0.5)[0]
    if len(over):
        by_slot: dict[int, list[int]] = {}
        for k in np.nonzero(np.isin(model.a_slot, over))[0].tolist():
            by_slot.setdefault(int(model.a_slot[k]), []).append(k)
        for s, ks in by_slot.items():
            excess = round(float(used[s])) - int(model.s_cap_w[s])
            order = sorted(ks, key=lambda k: (kind[k] != DIV, -w[k], k))
            while excess > 0:
                progressed = False
                for k in order:
                    floor = model.a_min_w[k] if kind[k] == SEMI else 0
                    if kind[k] != AON and w[k] > floor and excess > 0:
                        take = min(excess, int(w[k] - floor))
                        w[k] -= take
                        excess -= take
                        progressed = True
                if not progressed:
                    raise MalformedBookError(
                        f"offer slot {s} cannot be brought within its capacity (internal error)"
                    )
    return w


def coverage_ppm(model: StageModel, w: IntArray) -> IntArray:
    """Effectiveness-weighted awarded power per coverage row, in W × ppm (exact integers)."""
    out = np.zeros(len(model.c_req), dtype=np.int64)
    np.add.at(out, model.a_row, w * model.a_ppm)
    return out


def unmet_w(model: StageModel, eff_ppm: IntArray) -> IntArray:
    """Unmet volume per coverage row in whole W (rounded up): volume − effective, at least 0."""
    short = model.c_volume_w * PPM - eff_ppm
    return np.where(short > 0, -((-short) // PPM), 0).astype(np.int64)
