"""``GreedyMeritOrder``: the baseline clearing, no solver (see ``market.clearing.greedy``)."""

from __future__ import annotations

import math
import time
from typing import ClassVar

import numpy as np

from market.clearing.base import Clearing, StageOutcome
from market.clearing.greedy import greedy_fill, start_vector
from market.clearing.model import StageModel

__all__ = ["GreedyMeritOrder"]


class GreedyMeritOrder(Clearing):
    """DSO requests then TSO requests, each from its cheapest effective offers up, pay-as-bid.

    The benchmark of the optimal clearing, and what an operator can fall back to. Its
    ``objective_eur`` is the optimal clearing's objective evaluated at the greedy awards, so
    the two compare directly; it proves no bound, so its gap is NaN.
    """

    name: ClassVar[str] = "greedy-merit-order"
    version: ClassVar[str] = "1.0.0"

    @property
    def solver(self) -> str:
        return "greedy"

    def _clear_stage(self, model: StageModel) -> StageOutcome:
        t0 = time.perf_counter()
        w = greedy_fill(model)
        price = model.index.o_price[model.a_off]
        objective = _objective(model, w)
        return StageOutcome(
            power_w=w,
            price_cents_per_mwh=price,
            objective_eur=objective,
            mip_gap=math.nan,
            mip_gap_eur=math.nan,
            status="heuristic",
            timings_s={"greedy_s": time.perf_counter() - t0},
        )


def _objective(model: StageModel, w: np.ndarray) -> float:
    """Cost plus unmet penalties of awards ``w``, as the optimal clearing's objective counts it
    (rows without candidates excluded: ``StageReport`` adds them for both)."""
    if model.lp.n_cols == 0:
        return 0.0
    x = start_vector(model, w)
    return float(model.lp.c @ x)
