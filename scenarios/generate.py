"""Write the shipped scenarios (``default.toml``, ``small.toml``) from the design below.

    .venv/bin/python scenarios/generate.py            # both files, with their residual proof
    .venv/bin/python scenarios/generate.py --check    # only compare with the files on disk

The PODs, their resources and the grid changes are stated here; the ``expected`` entries are
computed by the exhaustive remedy search (``sim.residual``) on each scenario's true day, with the
explanations written below. The design (SimBench ``1-MVLV-semiurb-5.220-2-sw``, profile day 146 =
Thursday 26 May 2016, the third clear, warm day in a row, with little MV wind — so that the
DSO's recency-weighted forecast from the history sees the noon PV as it comes):

- **noon**: a 250 kWp rooftop PV plant is added at the end of LV feeder 1 (bus 452, the
  logistics hall) of secondary substation LV5.220; with the rooftops along it the feeder's far
  end rises above 1.05 p.u. from late morning. At the end of LV feeder 2 (bus 465) a
  supermarket's air conditioning (250 kW, cos φ 0.89) pulls its feeder down towards 0.95 p.u. as
  the afternoon warms. Both feeders hang on the same MV/LV transformer: whatever the OLTCs do
  (HV/MV ±9, MV/LV ±2, moved for both) lifts or lowers both, and the spread between them (up to
  0.13 p.u.) is wider than the 0.10 p.u. band; the MV tie switches only move the whole LV grid.
- **evening**: 16 households on LV feeder 3 charge their EVs (11 kW) from 17:00–18:30; the
  feeder's first section (line 164) is an old cable derated to 0.2 kA (stated change) and runs
  up to ~130 %. No tie point in the LV grid can relieve it; the taps change its current by a
  few percent at most.
- **MV**: the wind farm at the end of MV feeder 1 (bus 24) is limited to 70 % by its connection
  agreement (stated change), which keeps that feeder's end below 1.05 p.u. at noon.
- **real time**: at 15:00 a cable fault takes MV line 90 out (SimBench MV feeder 8, between
  buses 93 and 94); the control centre re-supplies buses 94–101 (secondary substation LV5.220
  included) from MV feeder 3 through the tie at bus 46. The real-time session re-assesses the
  evening on that topology.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from flexledger.scenario import parse_scenario  # noqa: E402
from sim.authoring import expected_entries, to_toml  # noqa: E402
from sim.residual import prove_residual  # noqa: E402
from sim.world import World  # noqa: E402

GRID = "1-MVLV-semiurb-5.220-2-sw"
PROFILE_DAY = 146
DELIVERY_DAY = date(2026, 5, 28)  # a Thursday, like the profile day
NEW_PV_BUS = 452
NEW_PV_SGEN = 137  # add_sgen takes the next free sgen index
EV_BUSES = [402, 380, 454, 425, 393, 387, 369, 436, 469, 412, 408, 371, 375, 409, 420, 395]
EV_ARRIVALS = [68, 70, 72, 74]  # 17:00 … 18:30

WHY = {
    "voltage_high": (
        "PV on LV feeder 1 of LV5.220 (the 250 kWp logistics hall at bus 452 and the rooftops "
        "along it) lifts the feeder above 1.05 p.u. around noon. Lowering it with the OLTCs "
        "(HV/MV ±9 together, MV/LV ±2) would push the supermarket's feeder (bus 465, air "
        "conditioning) below 0.95 p.u.: both hang on the same MV/LV transformer and no tie "
        "switch separates them, so no point of the remedy space removes both."
    ),
    "voltage_low": (
        "The supermarket's air conditioning at the end of LV feeder 2 (bus 465, 250 kW, cos φ "
        "0.89) pulls it below 0.95 p.u. in the afternoon heat, while PV holds LV feeder 1 above "
        "1.05 p.u.: raising the voltage with the taps would lift feeder 1 further, lowering it "
        "would deepen this; the tie switches only move the whole LV grid."
    ),
    "line:164": (
        "EV charging on LV feeder 3 (16 households at 11 kW in the default scenario, four "
        "22 kW fleet chargers in the small one) from 17:00-18:30 overloads the feeder's first "
        "section (line 164, an old cable, derated). "
        "The LV grid has no tie point to relieve it and the OLTCs change its current by a few "
        "percent at most, so every point of the remedy space keeps it overloaded."
    ),
}

GRID_CHANGES = [
    {
        "kind": "set_line_max_i",
        "elements": [164],
        "value": 0.2,
        "reason": "the first section of LV feeder 3 (line 164) is an old cable, derated",
    },
    {
        "kind": "scale_sgen",
        "elements": [116],
        "factor": 0.7,
        "reason": (
            "the 2.1 MW wind farm at the end of MV feeder 1 (bus 24) may export 70 % of its "
            "rating under its connection agreement (it held the feeder's end near 1.05 p.u.)"
        ),
    },
    {
        "kind": "add_sgen",
        "buses": [NEW_PV_BUS],
        "value": 0.25,
        "reason": (
            "a 250 kWp rooftop PV plant on the logistics hall at the end of LV feeder 1 "
            "(bus 452), connected in 2025: it becomes sgen 137"
        ),
    },
]

REMEDIES = {
    "keep_radial": True,
    "margin_vm_pu": 0.01,
    "margin_loading_percent": 5.0,
    "tap_changers": [
        {"trafos": [0, 1], "tap_min": -9, "tap_max": 9},
        {"trafos": [2], "tap_min": -2, "tap_max": 2},
    ],
    "tie_switches": [
        # the remote-controlled tie: feed secondary substation LV5.220 (bus 95) and MV feeder
        # 8's tail from MV feeder 3 (19 x 5 x 2 = 190 points: the DSO searches them all)
        {"close": 247, "opens": [181]},
    ],
}

AGGREGATORS = [
    {"name": "aggregator:1", "key": "dev:aggregator:1", "fee_percent": 12.0},
    {"name": "aggregator:2", "key": "dev:aggregator:2", "fee_percent": 10.0},
    {"name": "aggregator:3", "key": "dev:aggregator:3", "fee_percent": 8.0},
]


def _elements(net: Any, bus: int, table: str, exclude: set[int] | None = None) -> list[int]:
    df = net[table]
    return [int(i) for i in df.index[df.bus == bus] if not exclude or int(i) not in exclude]


def _load_with(net: Any, bus: int, prefix: str) -> int:
    df = net.load
    hits = df.index[(df.bus == bus) & df.profile.astype(str).str.startswith(prefix)]
    return int(hits[0])


def pod_table(net: Any, design: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Scenario PODs from the design rows: bus, aggregator, resources and options; the POD's
    grid elements are every load, sgen and storage at its bus unless the row names them."""
    pods = []
    for n, row in enumerate(design, start=1):
        bus = row["bus"]
        loads = row.get("loads", _elements(net, bus, "load"))
        sgens = row.get("sgens", _elements(net, bus, "sgen"))
        storages = row.get("storages", _elements(net, bus, "storage"))
        pod: dict[str, Any] = {
            "code": f"IT001E{n:08d}",
            "bus": bus,
            "loads": loads,
            "sgens": sgens,
            "storages": storages,
            "aggregator": row["aggregator"],
            "owner": f"dev:owner:{n}",
        }
        for key in ("ignores_signal", "response_delay_s", "response_factor"):
            if key in row:
                pod[key] = row[key]
        pod["resources"] = row["resources"]
        pods.append(pod)
    return pods


def _pv(rid: str, sgen: int, kw: float, cost: float = 60.0) -> dict[str, Any]:
    return {"id": rid, "kind": "pv", "p_max_kw": kw, "sgen": sgen, "cost_eur_per_mwh": cost}


def _bat(
    rid: str,
    kw: float,
    kwh: float,
    soc: float = 0.5,
    storage: int | None = None,
    cost: float = 80.0,
) -> dict[str, Any]:
    r: dict[str, Any] = {
        "id": rid,
        "kind": "battery",
        "p_max_kw": kw,
        "e_max_kwh": kwh,
        "soc_init": soc,
        "cost_eur_per_mwh": cost,
    }
    if storage is not None:
        r["storage"] = storage
    return r


def _ev(
    rid: str, arrive: int, kw: float = 11.0, kwh: float = 60.0, soc: float = 0.5
) -> dict[str, Any]:
    return {
        "id": rid,
        "kind": "ev",
        "p_max_kw": kw,
        "e_max_kwh": kwh,
        "soc_init": soc,
        "available_from_mtu": arrive,
        "available_to_mtu": 96,
        "cost_eur_per_mwh": 120.0,
    }


def _hp(rid: str, load: int, kw: float) -> dict[str, Any]:
    return {"id": rid, "kind": "heat_pump", "p_max_kw": kw, "load": load, "comfort_band_c": 1.0,
            "cost_eur_per_mwh": 90.0}  # fmt: skip


def default_design(net: Any) -> list[dict[str, Any]]:
    """The ~50 PODs of the default scenario (see the module docstring)."""
    sg = {int(b): int(i) for i, b in net.sgen.bus.items()}
    st = {int(b): int(i) for i, b in net.storage.bus.items()}

    def lv_storage(bus: int) -> tuple[int, float, float]:
        i = st[bus]
        return (
            i,
            round(float(net.storage.at[i, "sn_mva"]) * 1000, 1),
            round(float(net.storage.at[i, "max_e_mwh"]) * 1000, 1),
        )

    a1, a2, a3 = "aggregator:1", "aggregator:2", "aggregator:3"
    rows: list[dict[str, Any]] = [
        # -- aggregator 1: LV feeder 1 (PV, noon overvoltage) and LV feeder 4 ----------------
        {
            "bus": NEW_PV_BUS,
            "aggregator": a1,
            "sgens": [NEW_PV_SGEN],
            "resources": [
                _pv("hall-pv", NEW_PV_SGEN, 250.0, 45.0),
                _bat("hall-bat", 100.0, 200.0, 0.3, cost=70.0),
            ],
        },
        {"bus": 383, "aggregator": a1, "resources": [_pv("pv", sg[383], 51.2)]},
        {
            "bus": 373,
            "aggregator": a1,
            "resources": [_bat("bat", 47.0, lv_storage(373)[2], 0.4, storage=st[373])],
        },
        {
            "bus": 419,
            "aggregator": a1,
            "resources": [_bat("bat", *lv_storage(419)[1:], 0.4, storage=st[419])],
        },
        {
            "bus": 389,
            "aggregator": a1,
            "resources": [_pv("pv", sg[389], 12.0), _bat("home-bat", 5.0, 10.0, 0.3)],
        },
        {"bus": 403, "aggregator": a1, "resources": [_pv("pv", sg[403], 7.8)]},
        {
            "bus": 424,
            "aggregator": a1,
            "resources": [_pv("pv", sg[424], 10.8)],
            "response_factor": 0.6,
        },
        {
            "bus": 413,
            "aggregator": a1,
            "resources": [_pv("pv", sg[413], 6.9), _bat("home-bat", 5.0, 10.0, 0.3)],
        },
        {
            "bus": 385,
            "aggregator": a1,
            "resources": [_pv("pv", sg[385], 5.5)],
            "response_delay_s": 300,
        },
        {
            "bus": 450,
            "aggregator": a1,
            "resources": [_bat("bat", *lv_storage(450)[1:], 0.4, storage=st[450])],
        },
        {
            "bus": 392,
            "aggregator": a1,
            "resources": [_bat("bat", *lv_storage(392)[1:], 0.4, storage=st[392])],
        },
        {
            "bus": 379,
            "aggregator": a1,
            "resources": [_hp("hp", _load_with(net, 379, "Air"), 4.9), _bat("home-bat", 5.0, 10.0)],
        },
        {"bus": 433, "aggregator": a1, "resources": [_bat("home-bat", 10.0, 20.0, 0.3)]},
        {"bus": 428, "aggregator": a1, "resources": [_bat("home-bat", 5.0, 13.5, 0.3)]},
        {
            "bus": 460,
            "aggregator": a1,
            "resources": [_bat("home-bat", 5.0, 10.0, 0.3)],
            "ignores_signal": True,
        },
        {
            "bus": 472,
            "aggregator": a1,
            "resources": [
                _bat("bat", *lv_storage(472)[1:], 0.5, storage=st[472]),
                _hp("hp", _load_with(net, 472, "Air"), 3.0),
            ],
        },
        {
            "bus": 473,
            "aggregator": a1,
            "resources": [_bat("bat", *lv_storage(473)[1:], 0.5, storage=st[473])],
        },
        {"bus": 474, "aggregator": a1, "resources": [_pv("pv", sg[474], 10.9)]},
        # -- aggregator 2: LV feeder 2 (supermarket) and LV feeder 3 (EVs) --------------------
        {
            "bus": 465,
            "aggregator": a2,
            "resources": [
                {
                    "id": "hvac",
                    "kind": "hvac",
                    "p_max_kw": 250.0,
                    "available_from_mtu": 28,
                    "available_to_mtu": 84,
                    "comfort_band_c": 1.5,
                    "cost_eur_per_mwh": 70.0,
                }
            ],
        },
        {
            "bus": 449,
            "aggregator": a2,
            "resources": [
                _hp("hp", _load_with(net, 449, "Air"), 4.9),
                _bat("bat", *lv_storage(449)[1:], 0.5, storage=st[449]),
            ],
        },
        {
            "bus": 444,
            "aggregator": a2,
            "resources": [_bat("bat", *lv_storage(444)[1:], 0.5, storage=st[444])],
        },
        {
            "bus": 411,
            "aggregator": a2,
            "resources": [_bat("bat", *lv_storage(411)[1:], 0.5, storage=st[411])],
        },
        {
            "bus": 423,
            "aggregator": a2,
            "resources": [
                _bat("bat", *lv_storage(423)[1:], 0.5, storage=st[423]),
                _hp("hp", _load_with(net, 423, "Air"), 4.0),
            ],
        },
        {
            "bus": 418,
            "aggregator": a2,
            "resources": [_bat("bat", *lv_storage(418)[1:], 0.5, storage=st[418])],
        },
        {"bus": 461, "aggregator": a2, "resources": [_pv("pv", sg[461], 17.0)]},
        {"bus": 445, "aggregator": a2, "resources": [_hp("hp", _load_with(net, 445, "Air"), 4.9)]},
    ]
    for k, bus in enumerate(EV_BUSES):
        resources = [_ev("ev", EV_ARRIVALS[k % len(EV_ARRIVALS)])]
        if bus in st:
            i, kw, kwh = lv_storage(bus)
            resources.append(_bat("bat", kw, kwh, 0.6, storage=i))
        row: dict[str, Any] = {"bus": bus, "aggregator": a2, "resources": resources}
        if k == 5:
            row["ignores_signal"] = True
        if k in (3, 11):
            row["response_factor"] = 0.7
        if k == 8:
            row["response_delay_s"] = 300
        rows.append(row)
    rows.append(
        {
            "bus": 432,
            "aggregator": a2,
            "resources": [_bat("bat", *lv_storage(432)[1:], 0.5, storage=st[432])],
        }
    )
    # -- aggregator 3: MV customers (PV + battery plants, commercial and industrial) ---------
    rows += [
        {"bus": 92, "aggregator": a3, "loads": [], "sgens": [], "storages": [0],
         "resources": [_bat("bat", 1000.0, 4898.0, 0.5, storage=0, cost=60.0)]},
        {"bus": 107, "aggregator": a3, "loads": [], "sgens": [], "storages": [1],
         "resources": [_bat("bat", 1000.0, 4963.0, 0.5, storage=1, cost=60.0)]},
        {"bus": 119, "aggregator": a3, "loads": [], "sgens": [], "storages": [2],
         "resources": [_bat("bat", 2000.0, 3258.0, 0.5, storage=2, cost=55.0)]},
        {"bus": 92, "aggregator": a3, "loads": [112, 114, 117], "sgens": [], "storages": [],
         "resources": [{"id": "hvac", "kind": "hvac", "p_max_kw": 230.0, "load": 112,
                        "comfort_band_c": 1.5, "cost_eur_per_mwh": 75.0}]},
        {"bus": 107, "aggregator": a3, "loads": [110, 118, 120], "sgens": [], "storages": [],
         "resources": [{"id": "cold-store", "kind": "other_load", "p_max_kw": 206.0,
                        "load": 110, "cost_eur_per_mwh": 85.0}]},
        {"bus": 98, "aggregator": a3, "loads": [113, 116, 119], "storages": [],
         "sgens": [int(net.sgen.index[(net.sgen.bus == 98) & (net.sgen.type == "PV_MV")][0])],
         "resources": [{"id": "process", "kind": "other_load", "p_max_kw": 240.0, "load": 113,
                        "cost_eur_per_mwh": 95.0},
                       _pv("pv", int(net.sgen.index[(net.sgen.bus == 98)
                                                    & (net.sgen.type == "PV_MV")][0]), 120.0)]},
        {"bus": 69, "aggregator": a3, "loads": [111, 115], "storages": [],
         "sgens": [int(net.sgen.index[(net.sgen.bus == 69) & (net.sgen.type == "PV_MV")][0])],
         "resources": [{"id": "farm", "kind": "other_load", "p_max_kw": 83.0, "load": 111,
                        "cost_eur_per_mwh": 90.0},
                       _pv("pv", int(net.sgen.index[(net.sgen.bus == 69)
                                                    & (net.sgen.type == "PV_MV")][0]), 1420.0,
                           40.0)]},
    ]  # fmt: skip
    return rows


def small_design(net: Any) -> list[dict[str, Any]]:
    """The ten PODs of the small scenario: the same grid problems, fewer customers."""
    sg = {int(b): int(i) for i, b in net.sgen.bus.items()}
    st = {int(b): int(i) for i, b in net.storage.bus.items()}
    a1, a2 = "aggregator:1", "aggregator:2"
    rows: list[dict[str, Any]] = [
        {"bus": NEW_PV_BUS, "aggregator": a1, "sgens": [NEW_PV_SGEN],
         "resources": [_pv("hall-pv", NEW_PV_SGEN, 250.0, 45.0),
                       _bat("hall-bat", 100.0, 200.0, 0.3, cost=70.0)]},
        {"bus": 383, "aggregator": a1, "resources": [_pv("pv", sg[383], 51.2)]},
        {"bus": 419, "aggregator": a1,
         "resources": [_bat("bat", 15.4, 30.8, 0.4, storage=st[419])]},
        {"bus": 433, "aggregator": a1, "resources": [_bat("home-bat", 10.0, 20.0, 0.3)],
         "response_factor": 0.6},
        {"bus": 465, "aggregator": a2,
         "resources": [{"id": "hvac", "kind": "hvac", "p_max_kw": 250.0,
                        "available_from_mtu": 28, "available_to_mtu": 84,
                        "comfort_band_c": 1.5, "cost_eur_per_mwh": 70.0}]},
        {"bus": 449, "aggregator": a2,
         "resources": [_bat("bat", 8.7, 17.4, 0.5, storage=st[449])]},
    ]  # fmt: skip
    for k, bus in enumerate((402, 393, 436, 412)):
        row: dict[str, Any] = {
            "bus": bus,
            "aggregator": a2,
            "resources": [_ev("ev", 69 + k, kw=22.0, kwh=90.0, soc=0.4)],
        }
        if k == 3:
            row["ignores_signal"] = True
        rows.append(row)
    return rows


def document(
    name: str, description: str, design: list[dict[str, Any]], net: Any, line_164_ka: float
) -> dict[str, Any]:
    changes = [dict(c) for c in GRID_CHANGES]
    changes[0]["value"] = line_164_ka
    changes[0]["reason"] = (
        "the first section of LV feeder 3 (line 164) is an old cable, derated to "
        f"{line_164_ka:g} kA since its last inspection"
    )
    return {
        "name": name,
        "description": description,
        "delivery_day": DELIVERY_DAY,
        "seed": 20260526,
        "history_days": 28,
        "grid": {
            "source": GRID,
            "profile_day": PROFILE_DAY,
            "vm_min_pu": 0.95,
            "vm_max_pu": 1.05,
            "max_loading_percent": 100.0,
            "changes": changes,
        },
        "remedies": REMEDIES,
        "weather": {"t_min_c": 15.0, "t_max_c": 30.0, "peak_hour": 12.5, "day_sd_c": 1.5},
        "noise": {"sample_pct": 2.0, "forecast_pct": 5.0, "brp_pct": 5.0},
        "behaviour": {"response_delay_s": 60, "partial_response": 0.9},
        "aggregators": AGGREGATORS if name == "default" else AGGREGATORS[:2],
        "pods": pod_table(net, design),
        "tso": {
            "key": "dev:tso",
            "needs": [
                {
                    "area": "HV-1",
                    "direction": "up",
                    "mtu_from": 68,
                    "mtu_count": 12,
                    "volume_kw": 800.0,
                    "max_price_eur_per_mwh": 250.0,
                    "session": "day_ahead",
                },
                {
                    "area": "HV-1",
                    "direction": "down",
                    "mtu_from": 44,
                    "mtu_count": 8,
                    "volume_kw": 500.0,
                    "max_price_eur_per_mwh": 150.0,
                    "session": "day_ahead",
                },
                {
                    "area": "HV-1",
                    "direction": "up",
                    "mtu_from": 72,
                    "mtu_count": 4,
                    "volume_kw": 300.0,
                    "max_price_eur_per_mwh": 300.0,
                    "session": "real_time",
                },
            ],
        },
        "sensors": [
            {"id": "vc-95", "bus": 95, "noise_pct": 0.5, "period_s": 60},
            {"id": "vc-419", "bus": 419, "noise_pct": 0.5, "period_s": 60},
            {"id": "vc-465", "bus": 465, "noise_pct": 0.5, "period_s": 60},
            {"id": "ied-184", "line": 184, "noise_pct": 1.0, "period_s": 60},
            {"id": "ied-164", "line": 164, "noise_pct": 1.0, "period_s": 60},
        ],
        "events": [
            {
                "kind": "line_outage",
                "element": 90,
                "at_mtu": 60,
                "closed": False,
                "reason": "cable fault on MV feeder 8 between buses 93 and 94",
            },
            {
                "kind": "switch",
                "element": 247,
                "at_mtu": 60,
                "closed": True,
                "reason": "the control centre re-supplies buses 94-101 (LV5.220 included) from "
                "MV feeder 3 through the tie at bus 46",
            },
        ],
    }


DESCRIPTIONS = {
    "default": (
        "A clear, warm Thursday on SimBench 1-MVLV-semiurb-5.220-2-sw (high DER; its PV + battery "
        "storages are loads in load convention that only inject). About 50 flexible PODs behind "
        "three aggregators. At noon PV lifts LV feeder 1 of LV5.220 above 1.05 p.u. while a "
        "supermarket's air conditioning pulls LV feeder 2 towards 0.95 p.u.; in the evening EV "
        "charging overloads the derated first section of LV feeder 3. The DSO's taps and tie "
        "switches cannot remove either; flexibility on those feeders can. At 15:00 an MV cable "
        "fault moves LV5.220 onto MV feeder 3 before the evening's real-time session."
    ),
    "small": (
        "The default scenario's grid and day with ten PODs (for the end-to-end test): the same "
        "noon over- and undervoltage on LV5.220 and an evening overload on LV feeder 3, caused "
        "here by four 22 kW fleet chargers (its first section derated to 0.1 kA)."
    ),
}


def build(name: str) -> tuple[str, Any]:
    from sim.grid import base_net

    net = base_net(GRID)
    from flexledger.powerflow.scenario_grid import apply_grid_changes
    from flexledger.scenario import GridChange

    apply_grid_changes(net, [GridChange(**c) for c in GRID_CHANGES])
    if name == "default":
        doc = document(name, DESCRIPTIONS[name], default_design(net), net, 0.2)
    else:
        doc = document(name, DESCRIPTIONS[name], small_design(net), net, 0.1)
    scenario = parse_scenario(doc, source=name)
    world = World(scenario)
    proof = prove_residual(scenario, world.grid.flow, world.true_day().injections())
    doc["expected"] = expected_entries(proof, WHY)
    header = (
        f"flexledger scenario '{name}': written by scenarios/generate.py (edit the design there).\n"
        f"Residual proof: {proof.evaluated} points of the remedy space searched "
        f"('flexledger scenario residual');\nresidual MTUs {proof.residual_mtus};\n"
        f"every point keeps a violation >= the margin in MTUs {proof.margin_mtus()}."
    )
    return to_toml(doc, header), proof


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="compare with the files on disk")
    parser.add_argument("names", nargs="*", default=["default", "small"])
    args = parser.parse_args()
    status = 0
    for name in args.names:
        text, proof = build(name)
        path = HERE / f"{name}.toml"
        if args.check:
            same = path.is_file() and path.read_text("utf-8") == text
            print(f"{path}: {'up to date' if same else 'DIFFERS'}")
            status |= 0 if same else 1
        else:
            path.write_text(text, "utf-8")
            print(f"{path}: {len(text.splitlines())} lines, residual MTUs {proof.residual_mtus}")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
