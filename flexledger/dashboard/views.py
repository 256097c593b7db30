"""What each view shows, assembled from the services' public reads (:class:`Sources`).

Each ``*_view`` returns a plain dict for its template; figures that the tests compare with
``summary.json`` are named in ``figs`` (rendered as ``data-fig`` attributes).
"""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from . import svg
from .sources import NotStarted, SourceError, Sources

__all__ = [
    "activation_view",
    "grid_view",
    "ledger_view",
    "live_snapshot",
    "market_view",
    "proof_of",
    "settlement_view",
]

MTU_S = 900
DAY_S = 86_400
LIMIT = {"limit": 10_000}


def hhmm(t_s: int | None) -> str:
    if t_s is None:
        return "-"
    return datetime.fromtimestamp(int(t_s), UTC).strftime("%H:%M")


def when(t_s: int | None) -> str:
    if t_s is None:
        return "-"
    return datetime.fromtimestamp(int(t_s), UTC).strftime("%Y-%m-%d %H:%M UTC")


def direction(x: Any) -> str:
    """``up`` or ``down``, however it was serialised (the enum's int, its name)."""
    from flexledger.units import Direction

    text = str(x).strip().lower()
    if text.lstrip("-").isdigit():
        return Direction(int(text)).name.lower()
    return text.removeprefix("direction.")


def _items(body: Any) -> list[Any]:
    if isinstance(body, dict):
        return list(body.get("items", []))
    return list(body or [])


async def _sessions(src: Sources) -> list[dict[str, Any]]:
    return _items(await src.get("market", "/sessions", LIMIT))


def _day_of(sessions: list[dict[str, Any]]) -> int:
    for s in sessions:
        if s["kind"] == "day_ahead":
            return int(s["delivery_start_s"])
    if sessions:
        t = int(sessions[0]["delivery_start_s"])
        return t - t % DAY_S
    raise NotStarted("market", "no market session yet: the day has not started")


def _pick(sessions: list[dict[str, Any]], sid: str | None) -> dict[str, Any]:
    if sid:
        for s in sessions:
            if s["session_id"] == sid:
                return s
        raise SourceError("market", f"no session {sid!r}", 404)
    for s in sessions:
        if s["kind"] == "day_ahead":
            return s
    if sessions:
        return sessions[0]
    raise NotStarted("market", "no market session yet: the day has not started")


def _mtu_labels(start_s: int, n: int) -> list[str]:
    return [hhmm(start_s + k * MTU_S) for k in range(n)]


def _needs_to_requests(
    needs: list[dict[str, Any]], requests: list[dict[str, Any]]
) -> list[list[str]]:
    """Per located need, the hashes of the DSO requests made of it (same direction and MTUs)."""
    out = []
    for n in needs:
        hashes = []
        for r in requests:
            m = r["request"]["message"]
            if r.get("stage") != "dso" or direction(m["direction"]) != direction(n["direction"]):
                continue
            r0, r1 = int(m["mtu_start_s"]), int(m["mtu_start_s"]) + int(m["mtu_count"]) * MTU_S
            n0 = int(n["mtu_start_s"])
            n1 = n0 + int(n["mtu_count"]) * MTU_S
            if r0 < n1 and n0 < r1:
                hashes.append(r["hash"])
        out.append(hashes)
    return out


def _outside(vm: list[list[float | None]], lo: float, hi: float) -> set[tuple[int, int]]:
    """(MTU, row) cells outside the voltage limits."""
    return {
        (k, j)
        for k, row in enumerate(vm)
        for j, x in enumerate(row)
        if x is not None and (x < lo or x > hi)
    }


def _runs(violations: list[dict[str, Any]], day_s: int) -> list[dict[str, Any]]:
    """Violations grouped per element into runs of contiguous MTUs."""
    by_el: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for v in violations:
        by_el[(str(v["kind"]), v["element"])].append(v)
    runs = []
    for (kind, el), vs in sorted(by_el.items(), key=lambda kv: kv[0][1]):
        vs.sort(key=lambda v: int(v["mtu_start_s"]))
        cur: list[dict[str, Any]] = []
        for v in vs:
            if cur and int(v["mtu_start_s"]) != int(cur[-1]["mtu_start_s"]) + MTU_S:
                runs.append(_run(kind, el, cur))
                cur = []
            cur.append(v)
        if cur:
            runs.append(_run(kind, el, cur))
    runs.sort(key=lambda r: (r["start_s"], r["element"]))
    return runs


def _run(kind: str, el: str, vs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "kind": kind,
        "element": el,
        "start_s": int(vs[0]["mtu_start_s"]),
        "end_s": int(vs[-1]["mtu_start_s"]) + MTU_S,
        "mtus": len(vs),
        "worst_excess": max(float(v["excess"]) for v in vs),
    }


# -- Grid --------------------------------------------------------------------------------------


async def grid_view(src: Sources) -> dict[str, Any]:
    sessions = await _sessions(src)
    day = _day_of(sessions)
    got = await src.gather(
        volt=src.get("dso", f"/voltages/{day}"),
        before=src.get("dso", "/violations", {"day_s": day}),
        after=src.get("dso", "/violations", {"day_s": day, "after_remedies": "true"}),
        assessment=src.get("dso", f"/assessments/{day}"),
        requests=src.get("market", "/requests", {"session": _pick(sessions, None)["session_id"]}),
    )
    volt, assessment = got["volt"], got["assessment"]
    buses = [int(b) for b in volt["bus_index"]]
    col = {f"bus:{b}": j for j, b in enumerate(buses)}
    starts = [int(t) for t in volt["mtu_start_s"]]
    idx = {t: k for k, t in enumerate(starts)}
    lo, hi = float(volt["vm_min_pu"]), float(volt["vm_max_pu"])

    def marks(alert: dict[str, Any]) -> set[tuple[int, int]]:
        return {
            (idx[int(v["mtu_start_s"])], col[v["element"]])
            for v in alert["violations"]
            if v["element"] in col and int(v["mtu_start_s"]) in idx
        }

    # the buses shown: every bus that is ever violated or within 1 % of a limit, else all
    keep = sorted(
        {j for _, j in marks(got["before"])}
        | {
            j
            for j in range(len(buses))
            if any(
                v is not None and (v < lo + 0.01 or v > hi - 0.01)
                for v in (row[j] for row in volt["vm_before_pu"])
            )
        }
    ) or list(range(len(buses)))

    def sub(vm: list[list[float | None]]) -> list[list[float | None]]:
        return [[row[j] for j in keep] for row in vm]

    pos = {j: i for i, j in enumerate(keep)}
    rows = [f"bus {buses[j]}" for j in keep]

    def sub_marks(m: set[tuple[int, int]]) -> set[tuple[int, int]]:
        return {(k, pos[j]) for k, j in m if j in pos}

    # real time: each real-time window's re-assessment on the measures so far (after remedies)
    rt_vm: list[list[float | None]] = [[None] * len(keep) for _ in starts]
    rt_windows = []
    health = await src.get("dso", "/health")
    for t0 in health.get("realtime", []):
        if not day <= int(t0) < day + DAY_S:
            continue
        rv = await src.get("dso", f"/voltages/{t0}", {"kind": "real_time"})
        rt_windows.append(hhmm(int(t0)))
        rcol = {int(b): j for j, b in enumerate(rv["bus_index"])}
        for k, t in enumerate(rv["mtu_start_s"]):
            if int(t) in idx:
                rt_vm[idx[int(t)]] = [rv["vm_after_pu"][k][rcol[buses[j]]] for j in keep]
    rt_viol = _outside(rt_vm, lo, hi)
    # measured: the DSO's power flows on the SCD's I-01 of the day, after remedies and
    # activations (the forecast fills the MTUs not measured yet)
    measured_vm: list[list[float | None]] = [[None] * len(keep) for _ in starts]
    measured_mtus: set[int] = set()
    measured_error = None
    try:
        mv = await src.get("dso", f"/voltages/{day}", {"basis": "measured"})
    except SourceError as exc:
        measured_error = str(exc)
    else:
        measured_mtus = {int(t) for t in mv["measured_mtus"]}
        measured_vm = [
            [row[j] for j in keep] if starts[k] in measured_mtus else [None] * len(keep)
            for k, row in enumerate(mv["vm_after_pu"])
        ]
    needs = assessment["needs"]
    need_reqs = _needs_to_requests(needs, _items(got["requests"]))
    runs = _runs(got["before"]["violations"], day)
    left = {
        (str(v["kind"]), v["element"], int(v["mtu_start_s"])) for v in got["after"]["violations"]
    }
    for r in runs:
        r["left_after_remedies"] = sum(
            1
            for t in range(r["start_s"], r["end_s"], MTU_S)
            if (r["kind"], r["element"], t) in left
        )
        hashes: list[str] = []
        for n, reqs in zip(needs, need_reqs, strict=True):
            n0 = int(n["mtu_start_s"])
            n1 = n0 + int(n["mtu_count"]) * MTU_S
            if r["element"] in n["elements"] and n0 < r["end_s"] and r["start_s"] < n1:
                hashes += [h for h in reqs if h not in hashes]
        r["requests"] = hashes
    return {
        "day_s": day,
        "day": when(day)[:10],
        "limits": (lo, hi),
        "heat_before": svg.heatmap(
            sub(volt["vm_before_pu"]), rows, marks=sub_marks(marks(got["before"])),
            title="day-ahead forecast, before the DSO's own remedies", lo=lo, hi=hi,
        ),
        "heat_after": svg.heatmap(
            sub(volt["vm_after_pu"]), rows, marks=sub_marks(marks(got["after"])),
            title="day-ahead forecast, after the own remedies", lo=lo, hi=hi,
        ),
        "heat_rt": svg.heatmap(
            rt_vm, rows, marks=rt_viol,
            title="real time: each 4-hour window re-assessed on the measures so far, "
            "after the own remedies", lo=lo, hi=hi,
        ),
        "heat_measured": svg.heatmap(
            measured_vm, rows, marks=_outside(measured_vm, lo, hi),
            title="measured: the day's measured POD energies (activations included), "
            "after the own remedies", lo=lo, hi=hi,
        ),
        "measured_mtus": len(measured_mtus),
        "measured_error": measured_error,
        "rt_windows": rt_windows,
        "runs": runs,
        "summary": assessment["summary"],
        "remedies": assessment["remedies"],
        "figs": {
            "violations.before": len(got["before"]["violations"]),
            "violations.after": len(got["after"]["violations"]),
            "needs": len(needs),
        },
    }  # fmt: skip


# -- Market ------------------------------------------------------------------------------------


def _hashed(awards: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Awards as published, with their hash (the leaf's identity: ``Award.award_hash``)."""
    from flexledger.messages import Award

    return [{**a, "award_hash": Award.model_validate(a).award_hash} for a in awards]


async def _awards(src: Sources, s: dict[str, Any]) -> tuple[list[dict[str, Any]], bool]:
    """The final awards, else the latest round's; and whether they are final."""
    sid = s["session_id"]
    if s["state"] in ("final", "settling", "settled"):
        body = await src.maybe("market", f"/sessions/{sid}/outcome")
        if body:
            return _hashed(body["message"]["awards"]), True
    if int(s.get("round") or 0) > 0:
        body = await src.maybe("market", f"/sessions/{sid}/rounds/{s['round']}")
        if body:
            return _hashed(body["message"]["awards"]), False
    return [], False


async def market_view(src: Sources, session_id: str | None) -> dict[str, Any]:
    sessions = await _sessions(src)
    s = _pick(sessions, session_id)
    sid = s["session_id"]
    start, n = int(s["delivery_start_s"]), int(s["mtu_count"])
    got = await src.gather(
        requests=src.get("market", "/requests", {"session": sid, **LIMIT}),
        validations=src.maybe("market", f"/sessions/{sid}/validations", default=[]),
        awards=_awards(src, s),
    )
    awards, final = got["awards"]
    requests = _items(got["requests"])
    # merit order: a day-ahead session's own offers; a real-time one's are the day-ahead
    # offers still free (the capacity its order book carries)
    if s["kind"] == "day_ahead":
        offers = [
            (o["hash"], o["offer"]["message"], int(o["offer"]["message"]["max_w"]))
            for o in _items(await src.get("market", "/offers", {"session": sid, **LIMIT}))
        ]
    else:
        offers = []
        for base in s.get("based_on") or []:
            for o in _items(await src.get("market", "/offers", {"session": base, **LIMIT})):
                m = o["offer"]["message"]
                offers.append((o["hash"], m, int(m["max_w"])))
        book = await src.maybe("market", f"/sessions/{sid}/orderbook", default=None)
        if book and book.get("capacity"):
            cap: dict[str, int] = defaultdict(int)
            for c in book["capacity"]:
                if start <= int(c["mtu_start_s"]) < start + n * MTU_S:
                    cap[c["offer_hash"]] = max(cap[c["offer_hash"]], int(c["remaining_w"]))
            offers = [(h, m, cap[h]) for h, m, _ in offers if cap.get(h)]
    awarded = {a["offer_hash"] for a in awards}
    merit = {
        d: svg.merit_order(
            [
                (int(m["price_cents_per_mwh"]) / 100, w / 1000, h in awarded)
                for h, m, w in offers
                if direction(m["direction"]) == d
            ],
            title=f"merit order, {d} (dark: awarded)",
        )
        for d in ("up", "down")
    }
    # requests against awards per MTU
    series: dict[str, list[float]] = {k: [0.0] * n for k in ("dso", "tso", "awards")}
    for r in requests:
        m = r["request"]["message"]
        for k in range(int(m["mtu_count"])):
            i = (int(m["mtu_start_s"]) - start) // MTU_S + k
            if 0 <= i < n:
                series[r.get("stage", "dso")][i] += int(m["volume_w"]) / 1000
    for a in awards:
        i = (int(a["mtu_start_s"]) - start) // MTU_S
        if 0 <= i < n:
            series["awards"][i] += int(a["power_w"]) / 1000
    chart = svg.bars(
        [
            ("awards kW", "#2a9d8f", series["awards"], "bar"),
            ("DSO requests kW", "#e76f51", series["dso"], "step"),
            ("TSO requests kW", "#264653", series["tso"], "step"),
        ],
        title=f"{sid}: requests against awards per MTU",
        unit="kW",
        labels=_mtu_labels(start, n),
    )
    # validation rounds, with the rejected awards and reasons
    rounds = []
    for v in sorted(got["validations"], key=lambda v: int(v["round"])):
        msg = v["validation"]["message"]
        rejected = [d for d in msg["decisions"] if not d["approved"]]
        by_hash: dict[str, Any] = {}
        if rejected:
            body = await src.maybe("market", f"/sessions/{sid}/rounds/{v['round']}")
            prelim = (body or {}).get("message", {}).get("awards", [])
            by_hash = {a["award_hash"]: a for a in _hashed(prelim)}
        rounds.append(
            {
                "round": int(v["round"]),
                "decisions": len(msg["decisions"]),
                "approved": len(msg["decisions"]) - len(rejected),
                "rejected": [{**d, "award": by_hash.get(d["award_hash"])} for d in rejected],
                "tx": v.get("tx_hash"),
            }
        )
    return {
        "sessions": sessions,
        "s": s,
        "requests": requests,
        "awards": sorted(awards, key=lambda a: (int(a["mtu_start_s"]), a["pod"])),
        "final": final,
        "chart": chart,
        "merit": merit,
        "rounds": rounds,
        "offers": len(offers),
        "figs": {
            **{f"{x['session_id']}.state": x["state"] for x in sessions},
            f"{sid}.awards": len(awards),
            f"{sid}.requests": len(requests),
            f"{sid}.dso_requests": sum(1 for r in requests if r.get("stage") == "dso"),
            f"{sid}.rounds": int(s.get("round") or 0),
            f"{sid}.awarded_w_mtu": sum(int(a["power_w"]) for a in awards),
        },
    }


# -- Activation --------------------------------------------------------------------------------


async def activation_view(src: Sources) -> dict[str, Any]:
    sessions = await _sessions(src)
    day = _day_of(sessions)
    got = await src.gather(
        orders=src.get("market", "/orders", LIMIT),
        setpoints=src.maybe("dso", "/setpoints", default=[]),
        baselines=src.maybe("scd", f"/baselines/{day}", default=[]),
    )
    orders = _items(got["orders"])
    per_session: dict[str, int] = defaultdict(int)
    awarded: dict[tuple[str, int], int] = defaultdict(int)  # (pod, MTU) -> awarded Wh
    sign: dict[tuple[str, int], int] = {}
    rows = []
    for o in orders:
        m = o["order"]["message"]
        per_session[m["session_id"]] += 1
        aw = o.get("awards") or []
        for a in aw:
            key = (a["pod"], int(a["mtu_start_s"]))
            awarded[key] += _round_half_even(int(a["power_w"]), 4)
            sign[key] = 1 if direction(a["direction"]) == "up" else -1
        rows.append(
            {
                "hash": o["hash"],
                "session": m["session_id"],
                "issuer": (aw[0]["stage"] if aw else "?").upper(),
                "pod": aw[0]["pod"] if aw else "-",
                "direction": direction(aw[0]["direction"]) if aw else "-",
                "start": hhmm(int(m["mtu_start_s"])),
                "mtus": int(m["mtu_count"]),
                "power_w": int(m["power_w"]),
                "tx": o.get("tx_hash"),
            }
        )
    rows.sort(key=lambda r: (r["start"], r["pod"]))
    base: dict[tuple[str, int], int] = {}
    for b in got["baselines"]:
        for v in b["baseline"]["message"]["values"] if "baseline" in b else []:
            base[(v["pod"], int(v["mtu_start_s"]))] = int(v["e_wh"])
    measured: dict[tuple[str, int], int] = {}
    pods = sorted({p for p, _ in awarded})
    for pod in pods:
        q = await src.get(
            "scd", "/measures/quarterly", {"pod": pod, "from_s": day, "to_s": day + DAY_S}
        )
        for m in _items(q):
            if m.get("source") == "lightnode":
                measured[(pod, int(m["mtu_start_s"]))] = int(m["e_wh"])
    deliveries: list[dict[str, Any]] = []
    for key in sorted(awarded, key=lambda k: (k[1], k[0])):
        d = None
        if key in measured and key in base:
            d = sign[key] * (base[key] - measured[key])
        deliveries.append(
            {"pod": key[0], "t_s": key[1], "awarded_wh": awarded[key], "delivered_wh": d}
        )
    chart = svg.bars(
        [
            ("awarded Wh", "#a8dadc", [x["awarded_wh"] for x in deliveries], "bar"),
            ("delivered Wh (baseline − measured)", "#1d3557",
             [x["delivered_wh"] or 0 for x in deliveries], "bar"),
        ],
        title="delivered against awarded, per activated POD and MTU (as it arrives)",
        unit="Wh",
        labels=[f"{hhmm(x['t_s'])}" for x in deliveries],
        height=220,
    )  # fmt: skip
    by_pod: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for sp in got["setpoints"]:
        m = sp["message"]
        by_pod[m["pod"]].append(
            {
                "start": hhmm(int(m["mtu_start_s"])),
                "mtus": int(m["mtu_count"]),
                "direction": direction(m["direction"]),
                "power_w": int(m["power_w"]),
                "seq": int(m["seq"]),
                "order": m["order_hash"],
            }
        )
    return {
        "orders": rows,
        "setpoints": dict(sorted(by_pod.items())),
        "deliveries": deliveries,
        "chart": chart,
        "figs": {
            "orders": len(orders),
            "setpoints": len(got["setpoints"]),
            **{f"{k}.orders": v for k, v in per_session.items()},
        },
    }


def _round_half_even(num: int, den: int) -> int:
    q, r = divmod(num, den)
    if 2 * r > den or (2 * r == den and q % 2):
        q += 1
    return q


# -- Ledger ------------------------------------------------------------------------------------

_STATUS_COLOUR = {
    "certified": "#2a9d8f",
    "pending": "#e9c46a",
    "not_anchored": "#bbbbbb",
    "mismatch": "#d62828",
}


async def ledger_view(src: Sources, pod: str | None) -> dict[str, Any]:
    sessions = await _sessions(src)
    day = _day_of(sessions)
    pods = [p["pod"] for p in _items(await src.get("scd", "/pods", LIMIT))]
    if not pods:
        raise NotStarted("scd", "no POD registered yet")
    if pod is not None and pod not in pods:
        raise SourceError("scd", f"no POD {pod!r}", 404)
    pod = pod or pods[0]
    windows = await src.gather(
        **{
            p: src.get("scd", "/windows", {"pod": p, "from_s": day, "to_s": day + DAY_S, **LIMIT})
            for p in pods
        }
    )
    counts: dict[str, int] = defaultdict(int)
    strips = []
    for p in pods:
        ws = _items(windows[p])
        cells = ["#f1f1f1"] * 96
        for w in ws:
            counts[w["status"]] += 1
            k = (int(w["window_start_s"]) - day) // MTU_S
            if 0 <= k < 96:
                cells[k] = _STATUS_COLOUR.get(w["status"], "#888")
        c: dict[str, int] = defaultdict(int)
        for w in ws:
            c[w["status"]] += 1
        strips.append({"pod": p, "cells": cells, "counts": dict(c)})
    rows = sorted(_items(windows[pod]), key=lambda w: int(w["window_start_s"]))
    return {
        "day_s": day,
        "pods": pods,
        "pod": pod,
        "strips": strips,
        "colours": _STATUS_COLOUR,
        "windows": rows,
        "counts": dict(counts),
        "figs": {f"windows.{k}": v for k, v in counts.items()},
    }


async def proof_of(
    src: Sources, pod: str, t_s: int, anchor: str | None, rpc_url: str
) -> dict[str, Any]:
    """The SCD's proof of a sample and what the browser needs to check it on chain."""
    from eth_utils import keccak

    proof = await src.get("scd", "/proof", {"pod": pod, "t_s": t_s})
    if not anchor:
        raise SourceError("chain", "the MeasurementAnchor address is not configured", 503)
    return {
        **proof,
        "pod_id": "0x" + keccak(pod.encode()).hex(),
        "contract": anchor,
        "rpc_url": rpc_url,
        "selectors": _selectors(),
    }


def _selectors() -> dict[str, str]:
    import json
    from importlib.resources import files

    from eth_utils import function_abi_to_4byte_selector

    art = json.loads((files("node") / "artifacts" / "MeasurementAnchor.json").read_text())
    return {
        f["name"]: "0x" + function_abi_to_4byte_selector(f).hex()
        for f in art["abi"]
        if f.get("type") == "function" and f["name"] in ("sampleLeaf", "verify", "verifyBatched")
    }


# -- Settlement --------------------------------------------------------------------------------


async def settlement_view(src: Sources) -> dict[str, Any]:
    sessions = await _sessions(src)
    agg_addr: dict[str, str] = {}
    for name in src.config.aggregator_urls:
        try:
            h = await src.get(f"aggregator:{name}", "/health")
            agg_addr[str(h.get("aggregator", h.get("address", ""))).lower()] = name
        except SourceError:
            continue
    out = []
    flows: dict[tuple[str, str], int] = defaultdict(int)
    figs: dict[str, Any] = {}
    for s in sessions:
        sid = s["session_id"]
        st = await src.maybe("market", f"/sessions/{sid}/settlement", default=None)
        if not st or st.get("state") == "not_settled":
            continue
        lines = []
        for ln in st.get("lines", []):
            o = ln["outcome"]["message"]
            pay = ln.get("payment") or {}
            payer = str(pay.get("payer_role") or "dso").upper()
            payee = agg_addr.get(str(ln["payee"]).lower(), ln["payee"])
            flows[(payer, payee)] += int(o["amount_cents"])
            lines.append({**o, "payer": payer, "payee": payee, "tx": ln.get("tx_hash")})
        lines.sort(key=lambda o: (int(o["mtu_start_s"]), o["pod"]))
        out.append({"s": s, "state": st["state"], "lines": lines, "error": st.get("error"),
                    "mark_tx": st.get("mark_settled_tx")})  # fmt: skip
        figs[f"{sid}.settled_awards"] = len(lines)
        figs[f"{sid}.paid_cents"] = sum(int(o["amount_cents"]) for o in lines)
        figs[f"{sid}.delivered_wh"] = sum(int(o["delivered_wh"]) for o in lines)
        figs[f"{sid}.awarded_wh"] = sum(int(o["awarded_wh"]) for o in lines)
    payouts = []
    owner_flows: dict[str, int] = {}
    for name in src.config.aggregator_urls:
        rows = _items(await src.get(f"aggregator:{name}", "/payouts", LIMIT))
        owner_flows[name] = sum(int(p["amount_cents"]) for p in rows)
        payouts += [{**p, "aggregator_name": name} for p in rows]
    payer_totals: dict[str, int] = defaultdict(int)
    for (payer, _), c in flows.items():
        payer_totals[payer.lower()] += c
    figs.update({f"payments.{k}": v for k, v in payer_totals.items()})
    figs.update({f"payouts.{k}": v for k, v in owner_flows.items()})
    audits = await _audits(src)
    for a in audits.get("audits", []):
        figs[f"audit.{a['audit']}"] = a["status"]
    return {
        "sessions": out,
        "flows": sorted(flows.items()),
        "owner_flows": owner_flows,
        "payouts": payouts,
        "audits": audits,
        "figs": figs,
    }


async def _audits(src: Sources) -> dict[str, Any]:
    try:
        body: dict[str, Any] = await src.get("audit", "/audits")
        return body
    except SourceError as exc:
        return {"audits": [], "error": str(exc)}


# -- live --------------------------------------------------------------------------------------


async def live_snapshot(src: Sources) -> dict[str, Any]:
    """The counters the pages update in place, polled by the SSE loop."""
    snap: dict[str, Any] = {"at_s": int(time.time())}
    try:
        sessions = await _sessions(src)
        snap["sessions"] = {
            s["session_id"]: f"{s['state']} r{s.get('round') or 0} {s.get('award_count') or 0}"
            for s in sessions
        }
        snap["orders"] = len(_items(await src.get("market", "/orders", LIMIT)))
    except SourceError as exc:
        snap["market_error"] = exc.message
    try:
        stats = await src.get("scd", "/stats/ingest")
        snap["samples"] = int(stats.get("samples_stored", 0))
        snap["messages"] = int(stats.get("accepted", 0))
    except SourceError as exc:
        snap["scd_error"] = exc.message
    if src.config.dso_url:
        try:
            snap["setpoints"] = len(await src.get("dso", "/setpoints"))
        except SourceError as exc:
            snap["dso_error"] = exc.message
    if src.config.audit_url:
        a = await _audits(src)
        snap["audits"] = {x["audit"]: x["status"] for x in a.get("audits", [])}
    return snap
