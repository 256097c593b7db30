"""The auditor's read-only service: the latest verdict of each of the three audits.

``GET /audits`` answers the newest recorded verdict of the measurement, market and settlement
audits (``status`` ``pass``, ``fail`` or ``not_run``), with the time it was recorded, what it
covered and its figures; ``GET /health``. Verdicts live in one JSON file (:class:`AuditStore`,
``$FLEX_HOME/audit/audits.json`` by default); whoever runs an audit (the embedded stack after
its day, an auditor's own script) records it there with :meth:`AuditStore.record`. Nothing here
writes over HTTP: an unsigned write would break the API conventions (docs/API.md).
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI
from pydantic import BaseModel, Field

from flexledger.transport.api import ERROR_RESPONSES, install_error_handlers

__all__ = ["AUDITS", "AuditStore", "AuditVerdict", "AuditsPublic", "create_app"]

AuditName = Literal["measurements", "market", "settlement"]
#: The three audits, in the order they are shown.
AUDITS: tuple[AuditName, ...] = ("measurements", "market", "settlement")


class AuditVerdict(BaseModel):
    """One audit's newest verdict."""

    audit: AuditName
    status: Literal["pass", "fail", "not_run"]
    recorded_at_s: int | None = Field(None, description="wall-clock time it was recorded (UTC s)")
    scope: str = Field("", description="what it covered: a day, sessions, PODs")
    figures: dict[str, Any] = Field(default_factory=dict, description="counts, totals")
    problems: list[str] = Field(default_factory=list, description="the first findings that fail")


class AuditsPublic(BaseModel):
    audits: list[AuditVerdict]
    all_ok: bool | None = Field(description="every audit passed (None: one has not run)")


class AuditStore:
    """The verdicts, in one JSON file (atomic replace on every record)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text("utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return {}
        return data if isinstance(data, dict) else {}

    def record(
        self,
        audit: AuditName,
        ok: bool,
        *,
        scope: str = "",
        figures: dict[str, Any] | None = None,
        problems: list[str] | None = None,
    ) -> AuditVerdict:
        """Record an audit's verdict (it replaces the previous one of that audit)."""
        verdict = AuditVerdict(
            audit=audit,
            status="pass" if ok else "fail",
            recorded_at_s=int(time.time()),
            scope=scope,
            figures=figures or {},
            problems=[str(p) for p in (problems or [])][:50],
        )
        with self._lock:
            data = self._read()
            data[audit] = verdict.model_dump(mode="json")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=1)
            os.replace(tmp, self.path)
        return verdict

    def latest(self) -> AuditsPublic:
        data = self._read()
        out = []
        for name in AUDITS:
            raw = data.get(name)
            out.append(
                AuditVerdict.model_validate(raw)
                if raw
                else AuditVerdict(audit=name, status="not_run", recorded_at_s=None, scope="")
            )
        statuses = {v.status for v in out}
        return AuditsPublic(
            audits=out, all_ok=None if "not_run" in statuses else statuses == {"pass"}
        )


def create_app(store: AuditStore) -> FastAPI:
    """The auditor's read-only API over a verdict store."""
    app = FastAPI(
        title="flexledger auditor",
        description="The latest verdict of the measurement, market and settlement audits.",
        version="1",
    )
    install_error_handlers(app)

    @app.get("/audits", tags=["audits"], responses=ERROR_RESPONSES)
    def get_audits() -> AuditsPublic:
        """The newest verdict of each of the three audits (``not_run`` until one is recorded)."""
        return store.latest()

    @app.get("/health", tags=["health"])
    def health() -> dict[str, Any]:
        return {"status": "ok", "service": "audit", "store": str(store.path)}

    return app
