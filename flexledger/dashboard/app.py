"""The operator dashboard's FastAPI app: server-rendered pages (Jinja2), a small script layer,
SVG charts drawn on the server, live counters over server-sent events.

Routes: ``/grid``, ``/market?session=``, ``/activation``, ``/ledger?pod=``, ``/settlement``
(HTML; with the header ``X-Partial: 1`` only the page's live part), ``/api/proof?pod=&t_s=``
(the SCD's proof of a sample and what the browser needs to check it on chain), ``/events``
(SSE), ``/health``. With :class:`DashboardAuth`, every route but ``/health`` and the static
files needs a bearer token (``Authorization: Bearer …``, or ``?token=`` once, kept in a
cookie) and shows only the views of its role.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.responses import StreamingResponse

from . import views as v
from .config import VIEWS, DashboardAuth, DashboardConfig, Principal
from .live import Live
from .sources import NotStarted, SourceError, Sources

__all__ = ["COOKIE", "create_app"]

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
COOKIE = "flex_dashboard_token"


class _Unauthorized(Exception):
    pass


class _Forbidden(Exception):
    def __init__(self, view: str) -> None:
        self.view = view


def principal(request: Request, token: Annotated[str | None, Query()] = None) -> Principal:
    """Who asks: the role of the bearer token (header, ``?token=``, or the cookie that a
    ``?token=`` visit set); everything visible without auth."""
    auth: DashboardAuth | None = request.app.state.auth
    if auth is None:
        return Principal("operator", "anonymous")
    header = request.headers.get("authorization", "")
    given = token or (header[7:].strip() if header.lower().startswith("bearer ") else None)
    given = given or request.cookies.get(COOKIE)
    who = auth.principal(given)
    if who is None:
        raise _Unauthorized()
    request.state.set_cookie = given if token else None
    return who


Who = Annotated[Principal, Depends(principal)]


def create_app(
    config: DashboardConfig, *, auth: DashboardAuth | None = None, live: bool = True
) -> FastAPI:
    """The dashboard over the services and chain in ``config``.

    Args:
        config: where the services, the chain and the MeasurementAnchor are.
        auth: bearer tokens with roles (``None``: no login, everything visible — the embedded
            default); :meth:`DashboardAuth.from_env` reads ``FLEX_DASHBOARD_AUTH``.
        live: run the polling loop behind ``/events``.
    """
    src = Sources(config)
    feed = Live(src, config.poll_s)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if live:
            feed.start()
        try:
            yield
        finally:
            await feed.stop()
            await src.aclose()

    app = FastAPI(
        title="flexledger dashboard",
        description="Grid, market, activation, ledger and settlement of the market day.",
        version="1",
        lifespan=lifespan,
    )
    app.state.live = feed
    app.state.sources = src
    app.state.auth = auth
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.globals.update(hhmm=v.hhmm, when=v.when, short=_short, direction=v.direction)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    @app.exception_handler(_Unauthorized)
    async def _401(request: Request, exc: _Unauthorized) -> Response:
        body = _error("unauthorized", "a valid bearer token is needed (FLEX_DASHBOARD_AUTH)")
        return JSONResponse(body, 401, headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(_Forbidden)
    async def _403(request: Request, exc: _Forbidden) -> Response:
        msg = f"your role may not see the {exc.view} view"
        if _wants_json(request):
            return JSONResponse(_error("forbidden", msg), 403)
        return _page_error(request, 403, "forbidden", msg)

    @app.exception_handler(NotStarted)
    async def _waiting(request: Request, exc: NotStarted) -> Response:
        if _wants_json(request):
            return JSONResponse(_error("not_started", exc.message), 404)
        who = getattr(request.state, "who", None) or Principal("operator")
        view = request.url.path.strip("/")
        return templates.TemplateResponse(
            request,
            "waiting.html",
            {"message": exc.message, "service": exc.service, **_nav(who, view),
             "partial": request.headers.get("x-partial") == "1"},
        )  # fmt: skip

    @app.exception_handler(SourceError)
    async def _source(request: Request, exc: SourceError) -> Response:
        if _wants_json(request):
            return JSONResponse(_error(exc.service, exc.message), exc.status)
        return _page_error(request, exc.status, exc.service, exc.message)

    def _page_error(request: Request, status: int, code: str, message: str) -> Response:
        who = getattr(request.state, "who", None) or Principal("operator")
        return templates.TemplateResponse(
            request,
            "error.html",
            {"code": code, "message": message, "status": status, **_nav(who, "")},
            status_code=status,
        )

    def render(request: Request, who: Principal, view: str, ctx: dict[str, Any]) -> Response:
        partial = request.headers.get("x-partial") == "1"
        resp = templates.TemplateResponse(
            request, f"{view}.html", {**ctx, **_nav(who, view), "partial": partial}
        )
        token = getattr(request.state, "set_cookie", None)
        if token:
            resp.set_cookie(COOKIE, token, httponly=True, samesite="strict")
        return resp

    def allow(request: Request, who: Principal, view: str) -> None:
        request.state.who = who
        if not who.may(view):
            raise _Forbidden(view)

    @app.get("/health", include_in_schema=True)
    def health() -> dict[str, Any]:
        return {"status": "ok", "service": "dashboard", "auth": auth is not None}

    @app.get("/", response_class=HTMLResponse)
    def index(request: Request, who: Who) -> Response:
        first = next(p for p, _ in VIEWS if who.may(p))
        resp = RedirectResponse(f"/{first}", 303)
        token = getattr(request.state, "set_cookie", None)
        if token:
            resp.set_cookie(COOKIE, token, httponly=True, samesite="strict")
        return resp

    @app.get("/grid", response_class=HTMLResponse)
    async def grid(request: Request, who: Who) -> Response:
        allow(request, who, "grid")
        return render(request, who, "grid", await v.grid_view(src))

    @app.get("/market", response_class=HTMLResponse)
    async def market(
        request: Request, who: Who, session: Annotated[str | None, Query(max_length=64)] = None
    ) -> Response:
        allow(request, who, "market")
        return render(request, who, "market", await v.market_view(src, session))

    @app.get("/activation", response_class=HTMLResponse)
    async def activation(request: Request, who: Who) -> Response:
        allow(request, who, "activation")
        return render(request, who, "activation", await v.activation_view(src))

    @app.get("/ledger", response_class=HTMLResponse)
    async def ledger(
        request: Request, who: Who, pod: Annotated[str | None, Query(max_length=64)] = None
    ) -> Response:
        allow(request, who, "ledger")
        return render(request, who, "ledger", await v.ledger_view(src, pod))

    @app.get("/settlement", response_class=HTMLResponse)
    async def settlement(request: Request, who: Who) -> Response:
        allow(request, who, "settlement")
        return render(request, who, "settlement", await v.settlement_view(src))

    @app.get("/api/proof")
    async def proof(
        request: Request,
        who: Who,
        pod: Annotated[str, Query(max_length=64)],
        t_s: Annotated[int, Query(ge=0)],
    ) -> dict[str, Any]:
        """The SCD's proof of the sample at ``t_s`` with the contract, its selectors and the
        JSON-RPC URL the browser calls ``sampleLeaf`` and ``verify``/``verifyBatched`` on."""
        allow(request, who, "ledger")
        rpc = config.browser_rpc_url or config.rpc_url
        return await v.proof_of(src, pod, t_s, config.anchor_address, rpc)

    @app.get("/events")
    async def events(request: Request, who: Who) -> StreamingResponse:
        """Server-sent events: ``snapshot`` then ``update`` whenever a counter changes."""
        return StreamingResponse(
            feed.stream(who.views, request.is_disconnected),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    return app


def _nav(who: Principal, current: str) -> dict[str, Any]:
    return {
        "nav": [(p, t) for p, t in VIEWS if who.may(p)],
        "current": current,
        "who": who,
    }


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or request.url.path == "/events"


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def _short(h: str | None, n: int = 10) -> str:
    if not h:
        return "-"
    return h if len(h) <= n + 2 else h[: n + 2] + "…"
