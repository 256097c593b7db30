"""The day's three audit verdicts, recorded where the auditor's service serves them
(``audit.app.AuditStore``, ``GET /audits``): what the dashboard's Settlement view shows."""

from __future__ import annotations

from typing import Any

__all__ = ["record_day_audits"]


def record_day_audits(store: Any, result: Any) -> None:
    """Record a :class:`~flexledger.stack.day.DayResult`'s measurement, market and settlement
    audits in ``store`` (an ``audit.app.AuditStore``)."""
    m = result.audit_measurements or {}
    if m:
        store.record(
            "measurements",
            bool(m.get("ok")),
            scope=f"every window of the day, {result.pods} PODs",
            figures=dict(m.get("counts", {})),
            problems=list(m.get("problems", [])),
        )
    for name, attr in (("market", "audit_market"), ("settlement", "audit_settlement")):
        done = [(s.session_id, getattr(s, attr)) for s in result.sessions]
        done = [(sid, a) for sid, a in done if a is not None]
        if not done:
            continue
        failed = [sid for sid, a in done if not a.get("ok")]
        store.record(
            name,
            not failed,
            scope="sessions " + ", ".join(sid for sid, _ in done),
            figures={"sessions": len(done), "failed": len(failed)},
            problems=[f"{sid}: {_first_problem(a)}" for sid, a in done if not a.get("ok")],
        )


def _first_problem(report: dict[str, Any]) -> str:
    for f in report.get("findings", []):
        if isinstance(f, dict) and f.get("ok") is False:
            return str(f.get("detail") or f.get("name") or f)
    return "failed"
