"""Benchmark: the day-ahead clearing of a generated book, against the greedy merit order.

Run: ``.venv/bin/python bench/clearing.py [--cvxpy] [--nodes N] [--seed S]``.

The book (fixed seed): 10,000 offers at 4,000 PODs in 20 substation areas, each offer over
4–16 consecutive MTUs of a 96-MTU day, 30 % of them semi-continuous (half with a minimum,
half all-or-nothing); 500 DSO requests located by up to 40 eligible PODs of one area with
effectiveness factors; 20 TSO requests located by area. Up offers and requests lean to the
evening peak, down ones to the midday PV peak, as voltage problems do.

Both stages are cleared with ``DsoFirstClearing`` (binaries included, MIP start from the
greedy, node limit) and with ``GreedyMeritOrder`` in the same run. ``--cvxpy`` also times the
same clearing through CVXPY (no MIP start). Human-readable figures first, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flexledger.time import MTU_S
from flexledger.units import PPM, Direction
from market.clearing import (
    ClearingBook,
    ClearingOffer,
    ClearingRequest,
    ClearingResult,
    DsoFirstClearing,
    GreedyMeritOrder,
)

DAY_S = 1_796_083_200  # 2026-11-29 00:00 UTC
N_MTUS = 96
N_AREAS = 20
PODS_PER_AREA = 200
N_OFFERS = 10_000
N_DSO = 500
N_TSO = 20
MAX_ELIGIBLE = 40


def _hash(rng: np.random.Generator) -> str:
    return "0x" + rng.bytes(32).hex()


def _window(
    rng: np.random.Generator, length: int, direction: Direction, anywhere: float = 0.0
) -> int:
    """A start MTU: up around the evening peak, down around midday; a share ``anywhere``."""
    if rng.random() < anywhere:
        centre = rng.integers(0, N_MTUS)
    elif direction is Direction.UP:
        centre = rng.integers(64, 88)
    else:
        centre = rng.integers(40, 64)
    return int(np.clip(centre - length // 2, 0, N_MTUS - length))


def generate_book(seed: int) -> ClearingBook:
    rng = np.random.default_rng(seed)
    pods = [f"IT001E{i:08d}" for i in range(N_AREAS * PODS_PER_AREA)]
    pod_area = {p: f"AREA-{i // PODS_PER_AREA:02d}" for i, p in enumerate(pods)}
    offers: list[ClearingOffer] = []
    for _ in range(N_OFFERS):
        direction = Direction.UP if rng.random() < 0.5 else Direction.DOWN
        length = int(rng.integers(4, 17))
        start = _window(rng, length, direction, anywhere=0.2)
        max_w = int(np.clip(rng.lognormal(np.log(20_000), 0.8), 2_000, 500_000))
        kind = rng.random()
        if kind < 0.15:
            min_w = int(max_w * rng.uniform(0.3, 0.7))
        elif kind < 0.30:
            min_w = max_w
        else:
            min_w = 0
        offers.append(
            ClearingOffer(
                hash=_hash(rng),
                pod=pods[int(rng.integers(len(pods)))],
                direction=direction,
                mtu_starts=tuple(DAY_S + (start + k) * MTU_S for k in range(length)),
                max_w=max_w,
                min_w=min_w,
                price_cents_per_mwh=int(rng.integers(4_000, 25_001)),
            )
        )
    requests: list[ClearingRequest] = []
    for _ in range(N_DSO):
        direction = Direction.UP if rng.random() < 0.6 else Direction.DOWN
        length = int(rng.integers(2, 13))
        start = _window(rng, length, direction)
        area = int(rng.integers(N_AREAS))
        n = int(rng.integers(10, MAX_ELIGIBLE + 1))
        first = int(rng.integers(0, PODS_PER_AREA - n))
        chosen = pods[area * PODS_PER_AREA + first : area * PODS_PER_AREA + first + n]
        factors = rng.uniform(0.2, 1.0, size=n)
        factors[int(rng.integers(n))] = 1.0  # normalised by the most effective POD
        requests.append(
            ClearingRequest(
                hash=_hash(rng),
                stage="dso",
                direction=direction,
                mtu_starts=tuple(DAY_S + (start + k) * MTU_S for k in range(length)),
                volume_w=int(rng.integers(5_000, 50_001)),
                max_price_cents_per_mwh=int(rng.integers(15_000, 40_001)),
                eligible={p: int(f * PPM) for p, f in zip(chosen, factors, strict=True)},
            )
        )
    for a in range(N_TSO):
        direction = Direction.UP if rng.random() < 0.5 else Direction.DOWN
        length = int(rng.integers(4, 17))
        start = _window(rng, length, direction)
        requests.append(
            ClearingRequest(
                hash=_hash(rng),
                stage="tso",
                direction=direction,
                mtu_starts=tuple(DAY_S + (start + k) * MTU_S for k in range(length)),
                volume_w=int(rng.integers(200_000, 1_000_001)),
                max_price_cents_per_mwh=int(rng.integers(15_000, 40_001)),
                area=f"AREA-{a % N_AREAS:02d}",
            )
        )
    return ClearingBook.of("DA-2026-11-29", offers, requests, pod_area)


def _figures(result: ClearingResult) -> dict[str, Any]:
    return {
        "cost_eur": result.total_cost_cents / 100,
        "unmet_kw": result.total_unmet_w / 1000,
        "objective_eur": sum(s.objective_eur for s in result.stages.values()),
        "awards": len(result.awards),
    }


def _lp_timings(book: ClearingBook) -> dict[str, float]:
    """The DSO stage's LP relaxation through highspy and through CVXPY: what CVXPY's
    canonicalisation costs on this model (after a warm-up solve of each)."""
    import dataclasses

    from market.clearing.model import BookIndex, build_stage
    from market.clearing.solve import HighsOptions, solve_cvxpy, solve_highs

    index = BookIndex.build(book, [DAY_S + k * MTU_S for k in range(N_MTUS)])
    off, codes = index.exclusions([])
    model = build_stage(
        index,
        "dso",
        index.initial_capacity(),
        margin=0.1,
        excluded_offers=off,
        excluded_codes=codes,
        penalty_floor_eur_per_mwh=3_000.0,
        min_factor_ppm=1_000,
    )
    lp = dataclasses.replace(model.lp, integer=np.zeros(model.lp.n_cols, dtype=bool))
    options = HighsOptions()
    out: dict[str, float] = {}
    for name, solve in (("highs_lp_s", solve_highs), ("cvxpy_lp_s", solve_cvxpy)):
        solve(lp, options)
        t = time.perf_counter()
        solve(lp, options)
        out[name] = time.perf_counter() - t
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=20261129)
    parser.add_argument("--nodes", type=int, default=1000, help="mip_max_nodes per stage")
    parser.add_argument("--cvxpy", action="store_true", help="also time the CVXPY path")
    args = parser.parse_args()

    t = time.perf_counter()
    book = generate_book(args.seed)
    gen_s = time.perf_counter() - t
    semi = sum(o.min_w > 0 for o in book.offers)

    greedy = GreedyMeritOrder(start_s=DAY_S, mtu_count=N_MTUS)
    t = time.perf_counter()
    g = greedy.compute(book)
    greedy_s = time.perf_counter() - t

    clearing = DsoFirstClearing(mip_max_nodes=args.nodes, start_s=DAY_S, mtu_count=N_MTUS)
    t = time.perf_counter()
    r = clearing.compute(book)
    clearing_s = time.perf_counter() - t

    cvxpy_s = None
    cvxpy_fig: dict[str, Any] | None = None
    lp_times: dict[str, float] = {}
    if args.cvxpy:
        lp_times = _lp_timings(book)
        via = DsoFirstClearing(
            mip_max_nodes=args.nodes, backend="cvxpy", start_s=DAY_S, mtu_count=N_MTUS
        )
        t = time.perf_counter()
        rc = via.compute(book)
        cvxpy_s = time.perf_counter() - t
        cvxpy_fig = _figures(rc)

    rf, gf = _figures(r), _figures(g)
    print(
        f"book: {len(book.offers)} offers ({semi} with a minimum or all-or-nothing), "
        f"{N_DSO} DSO + {N_TSO} TSO requests, {N_MTUS} MTUs (generated in {gen_s:.2f} s)"
    )
    for name, res, secs in (("greedy", g, greedy_s), ("clearing", r, clearing_s)):
        fig = _figures(res)
        print(
            f"{name:9s} {secs:6.2f} s  cost {fig['cost_eur']:11.2f} EUR  unmet "
            f"{fig['unmet_kw']:9.1f} kW  objective {fig['objective_eur']:14.2f} EUR  "
            f"awards {fig['awards']}"
        )
    for stage, s in r.stages.items():
        print(
            f"  {stage}: {s.columns} columns, {s.rows} rows, {s.binaries} binaries, "
            f"{s.awards} awards, status {s.status}, gap {s.mip_gap:.2e} "
            f"({s.mip_gap_eur:.2f} EUR), nodes {s.node_count}, cost {s.cost_cents / 100:.2f} EUR, "
            f"unmet {s.unmet_w / 1000:.1f} kW, objective {s.objective_eur:.2f} EUR; "
            + ", ".join(f"{k} {v:.2f}" for k, v in s.timings_s.items())
        )
        gs = g.stages[stage]
        print(
            f"  {stage} greedy: cost {gs.cost_cents / 100:.2f} EUR, "
            f"unmet {gs.unmet_w / 1000:.1f} kW, objective {gs.objective_eur:.2f} EUR"
        )
    if cvxpy_fig is not None:
        print(
            f"cvxpy     {cvxpy_s:6.2f} s  cost {cvxpy_fig['cost_eur']:11.2f} EUR  unmet "
            f"{cvxpy_fig['unmet_kw']:9.1f} kW  objective {cvxpy_fig['objective_eur']:14.2f} EUR"
        )
    line = {
        "bench": "clearing",
        "clearing_s": round(clearing_s, 3),
        "greedy_s": round(greedy_s, 3),
        "cost_eur": rf["cost_eur"],
        "greedy_cost_eur": gf["cost_eur"],
        "unmet_kw": rf["unmet_kw"],
        "greedy_unmet_kw": gf["unmet_kw"],
        "objective_eur": round(rf["objective_eur"], 2),
        "greedy_objective_eur": round(gf["objective_eur"], 2),
        "mip_gap": r.provenance.mip_gap,
        "mip_gap_eur": round(r.provenance.mip_gap_eur, 4),
        "node_limit": args.nodes,
        "nodes": r.provenance.node_count,
        "offers": len(book.offers),
        "semi_offers": semi,
        "dso_requests": N_DSO,
        "tso_requests": N_TSO,
        "mtus": N_MTUS,
        "columns": {s: x.columns for s, x in r.stages.items()},
        "rows": {s: x.rows for s, x in r.stages.items()},
        "binaries": {s: x.binaries for s, x in r.stages.items()},
        "awards": rf["awards"],
        "greedy_awards": gf["awards"],
        "solver": r.provenance.solver,
        "seed": args.seed,
    }
    if cvxpy_s is not None and cvxpy_fig is not None:
        print(
            f"DSO-stage LP relaxation: highspy {lp_times['highs_lp_s']:.2f} s, "
            f"CVXPY {lp_times['cvxpy_lp_s']:.2f} s (same objective)"
        )
        line.update({k: round(v, 3) for k, v in lp_times.items()})
        line["cvxpy_clearing_s"] = round(cvxpy_s, 3)
        line["cvxpy_cost_eur"] = cvxpy_fig["cost_eur"]
        line["cvxpy_unmet_kw"] = cvxpy_fig["unmet_kw"]
    print(json.dumps(line))


if __name__ == "__main__":
    main()
