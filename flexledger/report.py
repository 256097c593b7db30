"""The market day's report (floor 4): ``summary.json`` and a self-contained ``index.html``.

Every plot is a matplotlib PNG inlined as base64, so the HTML opens anywhere without its
folder: the voltage heatmap before and after the DSO's own remedies (day ahead), requests
against awards per MTU, the day-ahead merit order, delivered against awarded energy per
settled award, payments, and the audits' status. Screenshots of the operator dashboard's
views (``dashboard-*.png`` beside it, as the e2e test's browser saves them) are linked.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
from pathlib import Path
from typing import Any

__all__ = ["summary_of", "write_report"]

log = logging.getLogger(__name__)

MTU_S = 900


def summary_of(result: Any, *, total_s: float, setup_s: float) -> dict[str, Any]:
    """The day's figures as plain JSON (what ``summary.json`` holds)."""
    sessions = []
    for s in result.sessions:
        lines = (s.settlement or {}).get("lines", [])
        outs = [ln["outcome"]["message"] for ln in lines]
        sessions.append(
            {
                "session": s.session_id,
                "kind": s.kind,
                "delivery_start_s": s.delivery_start_s,
                "mtu_count": s.mtu_count,
                "offers": s.offers,
                "requests": len(s.requests),
                "dso_requests": sum(1 for r in s.requests if r.get("requester") == "dso"),
                "rounds": s.rounds,
                "awards": len(s.awards),
                "awarded_w_mtu": sum(int(a["power_w"]) for a in s.awards),
                "orders": s.orders,
                "settled_awards": len(outs),
                "paid_cents": sum(int(o["amount_cents"]) for o in outs),
                "delivered_wh": sum(int(o["delivered_wh"]) for o in outs),
                "awarded_wh": sum(int(o["awarded_wh"]) for o in outs),
                "statuses": _count(o["status"] for o in outs),
                "audit_market_ok": None if s.audit_market is None else s.audit_market["ok"],
                "audit_settlement_ok": (
                    None if s.audit_settlement is None else s.audit_settlement["ok"]
                ),
            }
        )
    a = result.assessment
    return {
        "scenario": result.scenario,
        "day_s": result.day_s,
        "pods": result.pods,
        "samples": result.samples_stored,
        "windows": result.windows,
        "violations_day_ahead": (
            None
            if a is None
            else {
                "before_remedies": a.summary().get("violations_before"),
                "after_remedies": a.summary().get("violations_after"),
                "needs": len(a.needs),
            }
        ),
        "sessions": sessions,
        "payments_cents": result.payments_cents,
        "owner_payouts_cents": result.payouts_cents,
        "audits": {
            "measurements": result.audit_measurements.get("ok"),
            "market": all(s["audit_market_ok"] in (True, None) for s in sessions),
            "settlement": all(s["audit_settlement_ok"] in (True, None) for s in sessions),
            "all_ok": result.audits_ok,
        },
        "timings_s": {**result.timings.seconds, "total_without_setup": round(total_s, 2)},
        "setup_s": round(setup_s, 2),
        "not_done": result.not_done,
    }


def _count(items: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for i in items:
        out[str(i)] = out.get(str(i), 0) + 1
    return out


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _heatmap(assessment: Any, tmp: Path) -> str | None:
    if assessment is None:
        return None
    from dso import write_heatmap

    path = write_heatmap(assessment, tmp / "heatmap.png")
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def _requests_vs_awards(result: Any) -> str:
    import matplotlib.pyplot as plt

    day = result.day_s
    req = [0.0] * 96
    awd = [0.0] * 96
    for s in result.sessions:
        for r in s.requests:
            if r.get("requester") != "dso":
                continue
            for k in range(int(r["mtu_count"])):
                m = (int(r["mtu_start_s"]) - day) // MTU_S + k
                if 0 <= m < 96:
                    req[m] += int(r["volume_w"]) / 1000
        for a in s.awards:
            m = (int(a["mtu_start_s"]) - day) // MTU_S
            if 0 <= m < 96:
                awd[m] += int(a["power_w"]) / 1000
    fig, ax = plt.subplots(figsize=(9, 3))
    hours = [m / 4 for m in range(96)]
    ax.step(hours, req, where="post", label="DSO requests (kW at the best POD)")
    ax.bar(hours, awd, width=0.25, align="edge", alpha=0.5, label="awards, DSO and TSO (kW)")
    ax.set_xlabel("hour of the delivery day (UTC)")
    ax.set_ylabel("kW")
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title("requests against awards per MTU")
    return _png(fig)


def _merit_order(offers: list[dict[str, Any]]) -> str | None:
    import matplotlib.pyplot as plt

    if not offers:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 3))
    for ax, direction in zip(axes, ("up", "down"), strict=True):
        rows = sorted(
            (o["price_eur_per_mwh"], o["max_kw"]) for o in offers if o["direction"] == direction
        )
        x = 0.0
        for price, kw in rows:
            ax.bar(x, price, width=kw, align="edge", alpha=0.7, edgecolor="k", linewidth=0.3)
            x += kw
        ax.set_title(f"day-ahead merit order, {direction}")
        ax.set_xlabel("cumulative offered kW (one MTU)")
        ax.set_ylabel("EUR/MWh")
    return _png(fig)


def _delivered(result: Any) -> str | None:
    import matplotlib.pyplot as plt

    outs = [
        ln["outcome"]["message"]
        for s in result.sessions
        for ln in (s.settlement or {}).get("lines", [])
    ]
    if not outs:
        return None
    outs.sort(key=lambda o: (o["mtu_start_s"], o["pod"]))
    fig, ax = plt.subplots(figsize=(9, 3))
    xs = range(len(outs))
    ax.bar(xs, [o["awarded_wh"] for o in outs], alpha=0.4, label="awarded Wh")
    ax.plot(xs, [o["delivered_wh"] for o in outs], "k.", label="delivered Wh (certified)")
    ax.set_xlabel("settled award (by MTU)")
    ax.set_ylabel("Wh")
    ax.legend(fontsize=8)
    ax.set_title("delivered against awarded, per award")
    return _png(fig)


def _payments(summary: dict[str, Any]) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3))
    labels, values = [], []
    for payer, cents in sorted(summary["payments_cents"].items()):
        labels.append(f"{payer.upper()} → aggregators")
        values.append(cents / 100)
    for agg, cents in sorted(summary["owner_payouts_cents"].items()):
        labels.append(f"{agg} → FR owners")
        values.append(cents / 100)
    ax.barh(labels or ["none"], values or [0])
    ax.set_xlabel("EUR")
    ax.set_title("payments (I-16, I-17)")
    return _png(fig)


def _audits(summary: dict[str, Any]) -> str:
    import matplotlib.pyplot as plt

    a = summary["audits"]
    names = ["measurements", "market", "settlement"]
    fig, ax = plt.subplots(figsize=(5, 1.6))
    colors = ["tab:green" if a[n] else "tab:red" for n in names]
    ax.barh(names, [1, 1, 1], color=colors)
    for i, n in enumerate(names):
        ax.text(0.5, i, "pass" if a[n] else "FAIL", ha="center", va="center", color="white")
    ax.set_xticks([])
    ax.set_title("audits")
    return _png(fig)


def write_report(
    result: Any, out_dir: Path, *, offers: list[dict[str, Any]], total_s: float, setup_s: float
) -> dict[str, Any]:
    """Write ``summary.json`` and ``index.html`` under ``out_dir``; the summary."""
    import matplotlib

    matplotlib.use("Agg")
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = summary_of(result, total_s=total_s, setup_s=setup_s)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2), "utf-8")
    plots = [
        ("Voltage per bus and MTU, day ahead: before and after the DSO's own remedies",
         _heatmap(result.assessment, out_dir)),
        ("Requests against awards per MTU", _requests_vs_awards(result)),
        ("Merit order of the day-ahead offers", _merit_order(offers)),
        ("Delivered against awarded energy per settled award", _delivered(result)),
        ("Payments", _payments(summary)),
        ("Audit status", _audits(summary)),
    ]  # fmt: skip
    (out_dir / "heatmap.png").unlink(missing_ok=True)
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{v:.1f} s</td></tr>"
        for k, v in summary["timings_s"].items()
    )
    sess = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(s[c]))}</td>" for c in _SESSION_COLS) + "</tr>"
        for s in summary["sessions"]
    )
    figs = "".join(
        f"<h2>{html.escape(title)}</h2><img src='{src}' alt='{html.escape(title)}'>"
        if src
        else f"<h2>{html.escape(title)}</h2><p>nothing to plot</p>"
        for title, src in plots
    )
    shots = sorted(out_dir.glob("dashboard-*.png"))
    if shots:
        figs += (
            "<h2>Operator dashboard</h2><p>"
            + "".join(
                f"<a href='{html.escape(p.name)}'><img class='shot' src='{html.escape(p.name)}' "
                f"alt='{html.escape(p.stem)}' title='{html.escape(p.stem)}'></a>"
                for p in shots
            )
            + "</p>"
        )
    page = _PAGE.format(
        scenario=html.escape(summary["scenario"]),
        pods=summary["pods"],
        ok="all audits pass" if summary["audits"]["all_ok"] else "AN AUDIT FAILED",
        timings=rows,
        head="".join(f"<th>{c}</th>" for c in _SESSION_COLS),
        sessions=sess,
        figs=figs,
        summary=html.escape(json.dumps(summary, indent=1)),
    )
    (out_dir / "index.html").write_text(page, "utf-8")
    log.info("report written to %s", out_dir / "index.html")
    return summary


_SESSION_COLS = [
    "session", "kind", "offers", "requests", "rounds", "awards", "orders", "settled_awards",
    "awarded_wh", "delivered_wh", "paid_cents", "audit_market_ok", "audit_settlement_ok",
]  # fmt: skip

_PAGE = """<!doctype html><html><head><meta charset="utf-8">
<title>flexledger market day: {scenario}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 8px}}
img{{max-width:100%}}img.shot{{width:32%;margin:2px;border:1px solid #ccc}}</style></head><body>
<h1>flexledger market day — scenario {scenario} ({pods} PODs): {ok}</h1>
<h2>Sessions</h2><table><tr>{head}</tr>{sessions}</table>
<h2>Stage timings</h2><table>{timings}</table>
{figs}
<h2>summary.json</h2><pre>{summary}</pre>
</body></html>
"""
