"""The DSO Technical Platform's HTTP API (docs/API.md, DSO section): the DSO's own view of what
it assessed (I-10), what it did itself (I-11) and what it asked the market for (I-06).

All reads. ``GET /assessments/{day_s}`` (summary, needs, remedy blocks, forecast score),
``GET /violations?day_s=&after_remedies=`` (the I-10 alert), ``GET /remedies/{day_s}`` (the I-11
configurations with their MTUs), ``GET /requests?day_s=&kind=`` (the signed I-06 requests and
their receipts), ``GET /voltages/{day_s}?kind=&basis=`` (bus voltages per MTU before and after
the own remedies, forecast or measured), ``GET /setpoints`` (the signed I-09 set-points issued),
``GET /state`` (the latest state estimate), ``GET /health``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, Query, Request
from pydantic import BaseModel, Field

from dso.measured import measured_voltages
from dso.platform import DayRecord, DsoPlatform
from flexledger.messages import GridConfiguration, Receipt, SetPoint, Signed, ViolationAlert
from flexledger.messages import Request as FlexRequest
from flexledger.time import DAY_S, day_start_s
from flexledger.transport import MqttClient, Topics, unique_client_id
from flexledger.transport.api import ERROR_RESPONSES, ApiError, install_error_handlers

__all__ = ["create_app"]


class NeedPublic(BaseModel):
    """A located need (what a request is made of), kW at the best POD."""

    kind: str
    zone: str
    direction: str
    mtu_start_s: int
    mtu_count: int
    volume_kw: float
    best_pod: str | None
    factors: dict[str, float]
    elements: list[str]
    critical: str
    worst_excess: float
    factors_at_s: int
    solved_by_volume: bool
    unsolvable: list[str]


class RemedyBlockPublic(BaseModel):
    """An own remedy over contiguous MTUs, and the I-11 message that reports it."""

    mtu_start_s: int
    mtu_count: int
    operations: int
    configuration: GridConfiguration


class AssessmentPublic(BaseModel):
    day_s: int
    horizon: str
    summary: dict[str, Any]
    forecast_score: dict[str, float] | None = None
    needs: list[NeedPublic]
    remedies: list[RemedyBlockPublic]


class RequestsPublic(BaseModel):
    day_s: int
    needs: int = Field(
        default=0, description="Located needs of the assessment the requests were made of."
    )
    requests: list[Signed[FlexRequest]]
    receipts: list[Receipt] = Field(default_factory=list)


class VoltagesPublic(BaseModel):
    """Bus voltages (p.u.) per MTU of an assessment: rows are MTUs, columns buses."""

    day_s: int
    horizon: str
    mtu_start_s: list[int]
    bus_index: list[int]
    vm_min_pu: float
    vm_max_pu: float
    vm_before_pu: list[list[float | None]] = Field(description="before the own remedies")
    vm_after_pu: list[list[float | None]] = Field(description="after the own remedies")
    measured_mtus: list[int] = Field(default_factory=list, description="basis=measured only")


class StatePublic(BaseModel):
    bus_index: list[int]
    vm_pu: list[float | None]
    flagged: list[tuple[str, float]]
    max_normalised_residual: float
    n_measurements: int


def _record(platform: DsoPlatform, day_s: int) -> DayRecord:
    record = platform.days.get(day_start_s(day_s)) or platform.realtime.get(day_s)
    if record is None or record.assessment is None:
        raise ApiError(404, "not_found", f"no assessment of {day_s}")
    return record


def _platform(request: Request) -> DsoPlatform:
    platform: DsoPlatform = request.app.state.platform
    return platform


router = APIRouter(responses=ERROR_RESPONSES)


@router.get("/assessments/{day_s}", tags=["assessments"])
def get_assessment(request: Request, day_s: int) -> AssessmentPublic:
    """The day's (or a real-time window's, by its first MTU) assessment."""
    record = _record(_platform(request), day_s)
    a = record.assessment
    assert a is not None
    score = record.forecast_score
    return AssessmentPublic(
        day_s=a.day_s,
        horizon=a.horizon,
        summary=a.summary(),
        forecast_score=(
            {
                "nmae": score.nmae,
                "bias": score.bias,
                "persistence_nmae": score.persistence_nmae,
                "persistence_bias": score.persistence_bias,
            }
            if score
            else None
        ),
        needs=[NeedPublic(**{**n.__dict__, "direction": str(n.direction)}) for n in a.needs],
        remedies=[
            RemedyBlockPublic(
                mtu_start_s=b.mtu_start_s,
                mtu_count=b.mtu_count,
                operations=b.option.operations,
                configuration=b.configuration,
            )
            for b in a.blocks
        ],
    )


@router.get("/violations", tags=["violations"])
def get_violations(
    request: Request,
    day_s: int,
    after_remedies: Annotated[bool, Query(description="what the own remedies left")] = False,
) -> ViolationAlert:
    """The I-10 alert of the day: every element outside its limits per MTU, with the excess."""
    a = _record(_platform(request), day_s).assessment
    assert a is not None
    return a.alert(after_remedies=after_remedies)


@router.get("/remedies/{day_s}", tags=["remedies"])
def get_remedies(request: Request, day_s: int) -> list[RemedyBlockPublic]:
    """The own remedies (I-11) chosen for the day, per block of MTUs."""
    a = _record(_platform(request), day_s).assessment
    assert a is not None
    return [
        RemedyBlockPublic(
            mtu_start_s=b.mtu_start_s,
            mtu_count=b.mtu_count,
            operations=b.option.operations,
            configuration=b.configuration,
        )
        for b in a.blocks
    ]


@router.get("/requests", tags=["requests"])
def get_requests(
    request: Request,
    day_s: int,
    kind: Annotated[
        Literal["day_ahead", "real_time"] | None,
        Query(description="day_ahead: the day of day_s; real_time: the window starting at it."),
    ] = None,
) -> RequestsPublic:
    """The signed I-06 requests the DSO posted for the day (or a real-time window by its first
    MTU), with the market's receipts and how many needs they were made of."""
    platform = _platform(request)
    if kind is None:
        record = _record(platform, day_s)
    else:
        found = (
            platform.days.get(day_start_s(day_s))
            if kind == "day_ahead"
            else platform.realtime.get(day_s)
        )
        if found is None or found.assessment is None:
            raise ApiError(404, "not_found", f"no {kind} assessment of {day_s}")
        record = found
    assert record.assessment is not None
    return RequestsPublic(
        day_s=record.day_s,
        needs=len(record.assessment.needs),
        requests=record.requests,
        receipts=record.receipts,
    )


def _rows(vm: Any) -> list[list[float | None]]:
    return [[None if v != v else round(float(v), 5) for v in row] for row in vm]


@router.get("/voltages/{day_s}", tags=["assessments"])
async def get_voltages(
    request: Request,
    day_s: int,
    kind: Annotated[
        Literal["day_ahead", "real_time"],
        Query(description="day_ahead: the day of day_s; real_time: the window starting at it."),
    ] = "day_ahead",
    basis: Annotated[
        Literal["forecast", "measured"],
        Query(description="forecast: the assessment's; measured: the SCD's I-01 of the day"),
    ] = "forecast",
) -> VoltagesPublic:
    """The assessment's bus voltages per MTU, before and after the own remedies (the day,
    or with ``kind=real_time`` a real-time window by its first MTU). ``basis=measured``: the
    day's power flows on the measured POD energies (activations included; the forecast where
    none yet), without and with the own remedies applied day ahead; ``measured_mtus`` lists
    the MTUs fully measured."""
    platform = _platform(request)
    found = (
        platform.days.get(day_start_s(day_s))
        if kind == "day_ahead"
        else platform.realtime.get(day_s)
    )
    if found is None or found.assessment is None:
        raise ApiError(404, "not_found", f"no {kind} assessment of {day_s}")
    record, a = found, found.assessment
    if basis == "measured":
        if record.forecast is None or platform.scd is None or a.horizon != "day_ahead":
            raise ApiError(404, "not_found", f"no measured basis for {day_s}")
        history = await platform.fetch_history(a.day_s + DAY_S, days=1)
        m = await asyncio.to_thread(
            measured_voltages, platform.grid, record.forecast, a.remedies, history, a.day_s
        )
        return VoltagesPublic(
            day_s=a.day_s,
            horizon="measured",
            mtu_start_s=[int(t) for t in m.mtu_start_s],
            bus_index=[int(b) for b in m.bus_index],
            vm_min_pu=float(a.limits["vm_min_pu"]),
            vm_max_pu=float(a.limits["vm_max_pu"]),
            vm_before_pu=_rows(m.vm_before_pu),
            vm_after_pu=_rows(m.vm_after_pu),
            measured_mtus=[int(t) for t, ok in zip(m.mtu_start_s, m.measured, strict=True) if ok],
        )
    return VoltagesPublic(
        day_s=a.day_s,
        horizon=a.horizon,
        mtu_start_s=[int(t) for t in a.mtu_start_s],
        bus_index=[int(b) for b in a.bus_index],
        vm_min_pu=float(a.limits["vm_min_pu"]),
        vm_max_pu=float(a.limits["vm_max_pu"]),
        vm_before_pu=_rows(a.vm_before_pu),
        vm_after_pu=_rows(a.vm_after_pu),
    )


@router.get("/setpoints", tags=["dispatch"])
def get_setpoints(
    request: Request, pod: Annotated[str | None, Query(max_length=64)] = None
) -> list[Signed[SetPoint]]:
    """The signed set-points (I-09) the DSO TP issued to the Light Nodes, by MTU and POD."""
    issued = _platform(request).dispatcher.issued.values()
    out = [s for s in issued if pod is None or s.message.pod == pod]
    return sorted(out, key=lambda s: (s.message.mtu_start_s, s.message.pod, s.message.seq))


@router.get("/state", tags=["state"])
def get_state(request: Request) -> StatePublic:
    """The latest real-time state estimate (I-18 sensors and pseudo-measurements)."""
    est = _platform(request).estimate
    if est is None:
        raise ApiError(404, "not_found", "no state estimate yet")
    return StatePublic(
        bus_index=[int(b) for b in est.bus_index],
        vm_pu=[None if v != v else round(float(v), 6) for v in est.vm_pu],
        flagged=est.flagged,
        max_normalised_residual=est.max_normalised_residual,
        n_measurements=est.n_measurements,
    )


def create_app(
    platform: DsoPlatform, *, mqtt_url: str | None = None, topics: Topics | None = None
) -> FastAPI:
    """The DSO API over a :class:`DsoPlatform`.

    With ``mqtt_url``, the app's lifespan also connects to the broker and subscribes the
    platform (orders → set-points, sensor readings, topology events, rounds to validate).
    """

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if mqtt_url is None:
            yield
            return
        async with MqttClient(mqtt_url, unique_client_id("dso")) as mqtt:
            await platform.subscribe(mqtt, topics or Topics())
            yield

    app = FastAPI(
        title="flexledger DSO Technical Platform",
        description="Assessments (I-10), own remedies (I-11), requests (I-06), state estimate.",
        version="1",
        lifespan=lifespan,
    )
    app.state.platform = platform
    install_error_handlers(app)
    app.include_router(router)

    @app.get("/health", tags=["health"])
    def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "service": "dso",
            "chain_id": platform.domain.chain_id,
            "pods": len(platform.grid.pods),
            "days": sorted(platform.days),
            "realtime": sorted(platform.realtime),
        }

    return app
