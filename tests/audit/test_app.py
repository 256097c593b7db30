"""The auditor's read-only service: the newest verdict of each audit, ``not_run`` until one
is recorded, replaced by the next, kept in its file across restarts."""

from __future__ import annotations

from pathlib import Path

import httpx

from audit.app import AuditStore, create_app


async def test_latest_verdicts(tmp_path: Path) -> None:
    store = AuditStore(tmp_path / "audit" / "audits.json")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(store)), base_url="http://audit"
    ) as c:
        body = (await c.get("/audits")).json()
        assert [a["audit"] for a in body["audits"]] == ["measurements", "market", "settlement"]
        assert {a["status"] for a in body["audits"]} == {"not_run"} and body["all_ok"] is None
        store.record("measurements", True, scope="day", figures={"certified": 960})
        store.record("market", True, scope="sessions DA")
        store.record("settlement", False, problems=["DA: amount differs"])
        body = (await c.get("/audits")).json()
        assert [a["status"] for a in body["audits"]] == ["pass", "pass", "fail"]
        assert body["audits"][0]["figures"] == {"certified": 960}
        assert body["audits"][2]["problems"] == ["DA: amount differs"] and not body["all_ok"]
        store.record("settlement", True)
        assert (await c.get("/audits")).json()["all_ok"] is True
        assert (await c.get("/health")).json()["service"] == "audit"
    again = AuditStore(tmp_path / "audit" / "audits.json").latest()
    assert [a.status for a in again.audits] == ["pass", "pass", "pass"]
    assert all(a.recorded_at_s for a in again.audits)
