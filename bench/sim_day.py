"""Benchmark: the whole default day of the world — its truth and every POD's 4 s samples.

Run: ``.venv/bin/python bench/sim_day.py [SCENARIO] [--activations N]``.

Times, separately: loading the grid (SimBench, once per process), building the ``World`` (the
delivery day's element powers, devices, noise, and the per-MTU truth: one batched power flow per
grid configuration), producing every POD's 21,600 samples as arrays (``World.samples``) and as
``MeterReading`` messages per MTU window (what Light Nodes ask for), N activations (set-points
to random PODs) with the re-run of the MTUs they changed, and the history (quarterly measures
of the days before). Goal: the day's truth and samples well inside the 3-minute demo budget.

Human-readable figures first, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flexledger.messages import SetPoint
from flexledger.scenario import load_scenario
from flexledger.time import DAY_S, MTU_S
from flexledger.units import Direction
from sim.grid import base_net
from sim.history import history_values
from sim.world import World


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    root = Path(__file__).resolve().parents[1]
    parser.add_argument("scenario", nargs="?", default=str(root / "scenarios" / "default.toml"))
    parser.add_argument("--activations", type=int, default=20)
    args = parser.parse_args()

    scenario = load_scenario(args.scenario)
    t0 = time.perf_counter()
    base_net(scenario.grid.source)
    grid_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    world = World(scenario, start_s=scenario.day_s + DAY_S)
    world_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    n = 0
    for pod in world.pod_codes:
        n += len(world.samples(pod, world.day_s, world.day_s + DAY_S))
    arrays_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    messages = 0
    for pod in world.pod_codes:
        for start in range(world.day_s, world.day_s + DAY_S, MTU_S):
            messages += len(world.samples(pod, start, start + MTU_S).readings(pod))
    messages_s = time.perf_counter() - t0

    g = np.random.default_rng(1)
    t0 = time.perf_counter()
    for i in range(args.activations):
        pod = world.pod_codes[int(g.integers(len(world.pod_codes)))]
        mtu = int(g.integers(40, 90))
        world.bms[pod].apply_now(
            SetPoint(
                order_hash="0x" + f"{i + 1:064x}",
                pod=pod,
                direction=Direction(int(g.integers(2))),
                mtu_start_s=world.day_s + mtu * MTU_S,
                mtu_count=4,
                power_w=5_000,
                seq=i + 1,
                expiry_s=world.day_s + DAY_S,
            ),
            received_s=world.day_s + (mtu - 1) * MTU_S,
        )
    rerun = world.refresh()
    activations_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    history = history_values(world)
    history_s = time.perf_counter() - t0

    figures = {
        "scenario": scenario.name,
        "pods": len(world.pods),
        "samples": n,
        "grid_load_s": round(grid_s, 3),
        "world_build_s": round(world_s, 3),
        "truth_power_flow_runs": world.truth.runs,
        "samples_arrays_s": round(arrays_s, 3),
        "meter_readings": messages,
        "meter_readings_s": round(messages_s, 3),
        "activations": args.activations,
        "activations_rerun_mtus": rerun,
        "activations_s": round(activations_s, 3),
        "history_values": len(history),
        "history_s": round(history_s, 3),
        "day_total_s": round(world_s + arrays_s, 3),
    }
    for k, v in figures.items():
        print(f"{k:>24}: {v}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
