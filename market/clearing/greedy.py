"""The greedy merit order: the baseline clearing, and the MIP start of the optimal one.

Requests are served one after another in canonical order (by hash; the DSO stage before the
TSO stage), each MTU from its cheapest effective offer up — effective price = offer price /
effectiveness factor, ties by offer hash — until volume plus margin is covered. A
semi-continuous offer gives at least its minimum (over-covering if need be), an all-or-nothing
one all or nothing; an offer that cannot give its minimum in what is left of it is skipped.
Everything is in whole W, so the greedy result needs no quantisation.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from flexledger.units import PPM
from market.clearing.model import AON, SEMI, StageModel

__all__ = ["greedy_fill", "start_vector"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


def greedy_fill(model: StageModel) -> IntArray:
    """Whole W per candidate award of ``model`` by the merit order."""
    n = model.n_awards
    w = np.zeros(n, dtype=np.int64)
    if n == 0:
        return w
    index = model.index
    eff = index.o_price[model.a_off] * PPM / model.a_ppm
    # lexsort: last key first — request, then MTU, then effective price, then offer (= hash order)
    order = np.lexsort((model.a_off, eff, model.a_t, model.a_req)).tolist()
    need = model.c_target_w.astype(np.float64).tolist()
    rem = model.s_cap_w.tolist()
    row = model.a_row.tolist()
    slot = model.a_slot.tolist()
    kind = model.a_kind.tolist()
    ub = model.a_ub_w.tolist()
    mn = model.a_min_w.tolist()
    ppm = model.a_ppm.tolist()
    out = [0] * n
    for k in order:
        r = row[k]
        nd = need[r]
        if nd <= 1e-9:
            continue
        s = slot[k]
        avail = rem[s]
        if kind[k] == AON:
            if avail < ub[k]:
                continue
            amt = ub[k]
        else:
            top = min(avail, ub[k])
            want = -((-int(nd * PPM + 0.5)) // ppm[k])  # ceil(need / factor), in whole W
            amt = min(top, want)
            if kind[k] == SEMI:
                if top < mn[k]:
                    continue
                amt = max(amt, mn[k])
            if amt <= 0:
                continue
        rem[s] = avail - amt
        need[r] = nd - amt * ppm[k] / PPM
        out[k] = amt
    w[:] = out
    return w


def start_vector(model: StageModel, w: IntArray) -> FloatArray:
    """The model's column vector for awards ``w`` (W): award units, semi binaries, and the
    slacks that make every coverage row hold — a feasible point to start the MILP from."""
    lp = model.lp
    x = np.zeros(lp.n_cols)
    n_a = model.n_awards
    x[:n_a] = np.where(model.a_kind == AON, (w > 0).astype(np.float64), w / 1000.0)
    semi = np.nonzero(model.a_semi >= 0)[0]
    x[n_a + model.a_semi[semi]] = (w[semi] > 0).astype(np.float64)
    eff_w = np.zeros(len(model.c_req))
    np.add.at(eff_w, model.a_row, w * model.a_ppm / PPM)
    rows = model.cover_model_rows
    short = np.maximum(0.0, model.c_target_w[rows] - eff_w[rows])
    margin = np.minimum(short, model.c_margin_w[rows])
    m0, v0 = model.slack_cols
    x[m0 : m0 + model.n_cover] = margin / 1000.0
    x[v0 : v0 + model.n_cover] = np.minimum(
        (short - margin) / 1000.0, lp.ub[v0 : v0 + model.n_cover]
    )
    return x
