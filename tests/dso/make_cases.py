"""Writes the DSO golden cases (``tests/data/dso_*/{input,expected}.json``).

``python -m tests.dso.make_cases`` writes the inputs; ``… --expected`` also writes what the
assessment of each case on its true profiles gives today as ``expected.json`` — review the diff
before committing it: the tests compare against it with tolerances.

Both cases are the default SimBench grid (``1-MVLV-semiurb-5.220-2-sw``) on profile day 206
(25 July, its highest voltage), with PODs on the PV-rich LV grid LV5.220 and on the end of MV
feeder 4:

- ``dso_tap_solves``: the grid as it is, the HV/MV OLTC group over −4…+4: a tap change removes
  every violation, nothing goes to the market;
- ``dso_pv_feeder``: PV on LV5.220 tripled and the OLTC limited to −1…+1 (one 1.5 % step each
  way), plus a tie switch (close 243 at bus 25, open 26 between buses 22 and 23): over-voltage
  remains on the LV grid and at the end of feeder 4, and becomes located requests.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parents[1] / "data"
LV_PV = list(range(122, 137))  # the 15 PV sgens of LV5.220


def _pods(net: Any) -> list[dict[str, Any]]:
    lv = net.bus.index[net.bus.subnet.str.contains("LV5.220")]
    buses = sorted({int(b) for b in net.load.bus[net.load.bus.isin(lv)]})[::5]
    buses += [22, 23, 24, 25]
    pods = []
    for i, bus in enumerate(buses):
        loads = [int(x) for x in net.load.index[net.load.bus == bus]]
        sgens = [int(x) for x in net.sgen.index[net.sgen.bus == bus]]
        storages = [int(x) for x in net.storage.index[net.storage.bus == bus]]
        pods.append(
            {
                "code": f"IT001E{i + 1:08d}",
                "bus": bus,
                "loads": loads,
                "sgens": sgens,
                "storages": storages,
                "aggregator": "agg1",
                "owner": f"dev:owner:{i + 1}",
                "resources": [
                    {"id": f"bat{i + 1}", "kind": "battery", "p_max_kw": 50.0, "e_max_kwh": 100.0}
                ],
            }
        )
    return pods


def case(name: str, net: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": name,
        "delivery_day": "2026-07-25",
        "history_days": 21,
        "aggregators": [{"name": "agg1", "key": "dev:aggregator:1"}],
        "pods": _pods(net),
        "sensors": [
            {"id": "V25", "bus": 25, "noise_pct": 1.0},
            {"id": "V383", "bus": 383, "noise_pct": 1.0},
            {"id": "V60", "bus": 60, "noise_pct": 1.0},
            {"id": "L0", "line": 0, "noise_pct": 1.0},
            {"id": "L10", "line": 10, "noise_pct": 1.0},
            {"id": "L20", "line": 20, "noise_pct": 1.0},
        ],
    }
    if name == "dso_tap_solves":
        base["grid"] = {"source": "1-MVLV-semiurb-5.220-2-sw", "profile_day": 206}
        base["remedies"] = {"tap_changers": [{"trafos": [0, 1], "tap_min": -4, "tap_max": 4}]}
    else:
        base["grid"] = {
            "source": "1-MVLV-semiurb-5.220-2-sw",
            "profile_day": 206,
            "changes": [
                {
                    "kind": "scale_sgen",
                    "elements": LV_PV,
                    "factor": 3.0,
                    "reason": "rooftop PV on LV5.220 has tripled since the SimBench survey",
                }
            ],
        }
        base["remedies"] = {
            "tap_changers": [{"trafos": [0, 1], "tap_min": -1, "tap_max": 1}],
            "tie_switches": [{"close": 243, "opens": [26]}],
        }
    return base


def expected_of(grid: Any, assessment: Any) -> dict[str, Any]:
    """The golden figures of an assessment (what ``test_golden`` compares)."""
    day = assessment.day_s

    def elements(after: bool) -> dict[str, list[str]]:
        found = assessment.violated_elements(after_remedies=after)
        return {k: sorted(v) for k, v in sorted(found.items())}

    return {
        "violations_before": len(assessment.before),
        "violations_after": len(assessment.after),
        "elements_before": elements(False),
        "elements_after": elements(True),
        "remedy_blocks": [
            {
                "mtu": (b.mtu_start_s - day) // 900,
                "mtu_count": b.mtu_count,
                "taps": b.configuration.taps,
                "closed": b.configuration.closed_switches,
                "opened": b.configuration.opened_switches,
            }
            for b in assessment.blocks
        ],
        "needs": [
            {
                "kind": n.kind,
                "zone": n.zone,
                "direction": str(n.direction),
                "mtu": (n.mtu_start_s - day) // 900,
                "mtu_count": n.mtu_count,
                "best_pod": n.best_pod,
                "volume_kw": n.volume_kw,
                "factors": dict(list(n.factors.items())[:5]),
                "eligible": len(n.factors),
            }
            for n in assessment.needs
        ],
    }


def main() -> None:
    from dso import DsoGrid, assess
    from flexledger.powerflow import DEFAULT_GRID, load_grid
    from flexledger.scenario import parse_scenario

    net = load_grid(DEFAULT_GRID)
    for name in ("dso_tap_solves", "dso_pv_feeder"):
        path = HERE / name / "input.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        data = case(name, net)
        path.write_text(json.dumps(data, indent=1) + "\n")
        print(f"wrote {path}", file=sys.stderr)
        if "--expected" in sys.argv:
            scenario = parse_scenario(data)
            grid = DsoGrid.from_scenario(scenario, net=net)
            result = assess(grid, grid.profile_injections(), day_s=scenario.day_s)
            out = HERE / name / "expected.json"
            out.write_text(json.dumps(expected_of(grid, result), indent=1) + "\n")
            print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
