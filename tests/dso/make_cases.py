"""Writes the DSO golden cases' inputs (``tests/data/dso_*/input.json``): run it when the case
design changes, then ``pytest tests/dso --regen`` is not a thing — re-derive ``expected.json`` by
hand from ``python -m tests.dso.make_cases --expected`` and review the diff.

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

HERE = Path(__file__).resolve().parents[1] / "data"
LV_PV = list(range(122, 137))  # the 15 PV sgens of LV5.220


def _pods(net) -> list[dict]:  # type: ignore[no-untyped-def]
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


def case(name: str, net) -> dict:  # type: ignore[no-untyped-def]
    base = {
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


def main() -> None:
    from flexledger.powerflow import DEFAULT_GRID, load_grid

    net = load_grid(DEFAULT_GRID)
    for name in ("dso_tap_solves", "dso_pv_feeder"):
        path = HERE / name / "input.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(case(name, net), indent=1) + "\n")
        print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
