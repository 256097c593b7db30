"""The optimal clearing: per stage, the minimum-cost awards as a MILP (an LP when no offer needs
a binary), solved by HiGHS from the greedy merit order as MIP start.

Why this shape:
- Binaries only where an offer needs them: a semi-continuous award gets one (0 or within
  [min_w, max_w]), an all-or-nothing award *is* one; divisible offers stay continuous, so
  the MILP stays close to its LP (gap 0.06 % at the root on the benchmark book).
- A node limit (``mip_max_nodes``), one thread and a fixed seed instead of a time limit: the
  same book gives the same awards on a busy machine and an idle one. The gap the solver
  proves is reported with the result (relative, and absolute in €), which is what the auditor's
  check allows for.
- Block by block (``market.clearing.solve.solve_decomposed``): MTUs never interact and
  requests only through the offers they share, so a stage is many small independent MILPs;
  the LP relaxation is solved once and only the blocks it leaves fractional are solved as
  MILPs. The node limit applies per block.
- The greedy merit order is a feasible point of every stage model (slacks absorb what it
  leaves unmet) and is each block's MIP start, so a stage's objective (cost + penalties) is
  never worse than the greedy's on the same stage. The money alone may be higher where the
  optimum covers volume the greedy left unmet.
- Ties: the model is built in canonical order (offers and requests by hash, MTUs by time) and
  HiGHS is deterministic with these options, so equal-cost alternatives are broken the same
  way on every run and whatever order the book arrived in. No cost perturbation is added: it
  would have to exceed HiGHS's optimality tolerances to have any effect and would then move
  the stage objective away from the auditor's unperturbed solve by more than 1e-6.

Pricing: pay-as-bid by default (every award at its offer's price). Pay-as-cleared prices an
award from the dual of its request's coverage row in the stage LP re-solved with the binaries
fixed at the solution: the marginal cost λ of one effective kW for that request and MTU, times
the offer's effectiveness factor, in cents/MWh — then kept within [bid, request cap]: no offer
is paid below its bid (an offer held at its minimum by a binary may see a lower dual), and no
requester pays above its cap (a short request's dual is the unmet penalty).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, ClassVar, Literal

import numpy as np

from flexledger.units import PPM
from market.clearing.base import Clearing, StageOutcome
from market.clearing.book import MAX_PRICE_CENTS_PER_MWH
from market.clearing.greedy import greedy_fill, start_vector
from market.clearing.model import AON, EUR_PER_KW_MTU, SEMI, StageModel, quantise
from market.clearing.solve import (
    HighsOptions,
    Solution,
    highs_version,
    solve_cvxpy,
    solve_decomposed,
    solve_highs,
)

__all__ = ["DsoFirstClearing", "Pricing"]

Pricing = Literal["pay_as_bid", "pay_as_cleared"]
Backend = Literal["highs", "cvxpy"]


class DsoFirstClearing(Clearing):
    """DSO requests first at minimum cost, then TSO requests on the remaining flexibility.

    Options beyond ``Clearing``'s: ``pricing`` (``pay_as_bid`` | ``pay_as_cleared``),
    ``mip_max_nodes`` (branch-and-bound node limit per block), ``mip_rel_gap`` (stop when
    proven this close), ``random_seed``, and ``backend``: ``highs`` (highspy, with the MIP
    start) or ``cvxpy`` (the same model through CVXPY's HiGHS interface, without it).
    """

    name: ClassVar[str] = "dso-first-milp"
    version: ClassVar[str] = "1.0.0"

    def __init__(
        self,
        *,
        pricing: Pricing = "pay_as_bid",
        mip_max_nodes: int = 1000,
        mip_rel_gap: float = 1e-6,
        random_seed: int = 0,
        backend: Backend = "highs",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if pricing not in ("pay_as_bid", "pay_as_cleared"):
            raise ValueError(f"pricing must be pay_as_bid or pay_as_cleared, not {pricing!r}")
        if backend not in ("highs", "cvxpy"):
            raise ValueError(f"backend must be highs or cvxpy, not {backend!r}")
        if mip_max_nodes < 0:
            raise ValueError("mip_max_nodes must be >= 0")
        self._pricing: Pricing = pricing
        self.backend: Backend = backend
        self.highs_options = HighsOptions(
            mip_max_nodes=int(mip_max_nodes),
            mip_rel_gap=float(mip_rel_gap),
            random_seed=int(random_seed),
        )

    @property
    def pricing(self) -> str:
        return self._pricing

    @property
    def solver(self) -> str:
        via = "highspy" if self.backend == "highs" else "cvxpy"
        return f"{highs_version()} via {via}"

    def options(self) -> dict[str, Any]:
        return {**super().options(), **self.highs_options.as_dict(), "backend": self.backend}

    def _solve(self, model: StageModel, start: np.ndarray | None, duals: bool) -> Solution:
        if self.backend == "cvxpy":
            return solve_cvxpy(model.lp, self.highs_options, duals=duals)
        if duals:
            return solve_highs(model.lp, self.highs_options, duals=True)
        return solve_decomposed(
            model.lp, self.highs_options, start=start, snap=lambda x: _snap_semi(model, x)
        )

    def _clear_stage(self, model: StageModel) -> StageOutcome:
        bid = model.index.o_price[model.a_off]
        if model.lp.n_cols == 0:
            return StageOutcome(np.zeros(0, dtype=np.int64), bid, 0.0, status="empty")
        t0 = time.perf_counter()
        start = start_vector(model, greedy_fill(model))
        t1 = time.perf_counter()
        is_mip = bool(model.lp.integer.any())
        cleared = self._pricing == "pay_as_cleared"
        sol = self._solve(model, start, duals=cleared and not is_mip)
        t2 = time.perf_counter()
        power, on = _powers(model, sol.x)
        w = quantise(model, power, on)
        price = bid
        if cleared:
            price = self._cleared_prices(model, sol)
        t3 = time.perf_counter()
        gap_eur = max(0.0, sol.objective_eur - sol.mip_dual_bound_eur) if is_mip else 0.0
        return StageOutcome(
            power_w=w,
            price_cents_per_mwh=price,
            objective_eur=sol.objective_eur,
            mip_gap=sol.mip_gap,
            mip_gap_eur=gap_eur,
            node_count=sol.node_count,
            status=sol.status,
            timings_s={
                "start_s": t1 - t0,
                "solve_s": t2 - t1,
                "quantise_price_s": t3 - t2,
            },
        )

    def _cleared_prices(self, model: StageModel, sol: Solution) -> np.ndarray:
        """Award prices from the coverage duals of the LP with the binaries fixed."""
        lp = model.lp
        duals = sol.row_dual
        if duals is None:
            fixed = np.round(sol.x)
            lb = np.where(lp.integer, fixed, lp.lb)
            ub = np.where(lp.integer, fixed, lp.ub)
            relaxed = dataclasses.replace(lp, lb=lb, ub=ub, integer=np.zeros(lp.n_cols, dtype=bool))
            lp_model = dataclasses.replace(model, lp=relaxed)
            duals = self._solve(lp_model, None, duals=True).row_dual
            assert duals is not None
        lam = np.zeros(len(model.c_req))
        lam[model.cover_model_rows] = duals[: model.n_cover]
        factor = model.a_ppm / PPM
        raw = np.rint(factor * lam[model.a_row] / EUR_PER_KW_MTU)
        bid = model.index.o_price[model.a_off]
        cap = np.minimum(model.index.r_cap[model.a_req], MAX_PRICE_CENTS_PER_MWH)
        raw = np.nan_to_num(raw, nan=0.0, posinf=float(MAX_PRICE_CENTS_PER_MWH), neginf=0.0)
        raw = np.clip(raw, 0.0, float(MAX_PRICE_CENTS_PER_MWH))
        return np.clip(raw.astype(np.int64), bid, cap)


def _snap_semi(model: StageModel, x: np.ndarray) -> np.ndarray:
    """Set each semi-continuous binary to 1 where its award is at least its minimum and to 0
    where the award is 0: the LP leaves such a binary anywhere in [u/max, u/min] at no cost,
    and rounding it changes neither a row nor the objective."""
    semi = np.nonzero(model.a_kind == SEMI)[0]
    if not len(semi):
        return x
    out = x.copy()
    u_w = x[semi] * model.a_scale_w[semi]
    y = model.n_awards + model.a_semi[semi]
    out[y] = np.where(u_w >= model.a_min_w[semi] - 1e-6, 1.0, np.where(u_w <= 1e-6, 0.0, x[y]))
    return out


def _powers(model: StageModel, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each candidate's power in W and whether its binary (if any) is on."""
    n_a = model.n_awards
    u = x[:n_a]
    power = u * model.a_scale_w
    on = np.ones(n_a, dtype=bool)
    aon = model.a_kind == AON
    on[aon] = u[aon] > 0.5
    semi = np.nonzero(model.a_kind == SEMI)[0]
    on[semi] = x[n_a + model.a_semi[semi]] > 0.5
    return power, on
