"""The DSO Technical Platform: the day ahead, real time, validation and dispatch, wired to the
SCD and the market over HTTP and to the grid and the market over MQTT.

:class:`DsoPlatform` holds the DSO's state (its grid, forecasts, assessments, posted requests,
validations, tracked topology, latest sensor readings) and does the work; its methods that talk
to other actors are ``async`` and go through :class:`~flexledger.transport.SignedHttpClient`
(SCD, market) and :class:`~flexledger.transport.MqttClient`; the grid computations run in a
worker thread so the event loop keeps serving.

Time mapping: the delivery day replays the scenario's SimBench ``profile_day``; any other day
``d`` replays ``profile_day + (d − delivery day)`` (the history and the non-participating load
forecast both use it).
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dso.assessment import GridAssessment, assess
from dso.dispatch import Dispatcher, DispatchError
from dso.estimation import (
    StateEstimate,
    StateEstimator,
    Topology,
    sensor_measurements,
)
from dso.forecast import (
    ForecastOptions,
    ForecastScore,
    GridForecast,
    PodHistory,
    background_forecast,
    day_ahead_forecast,
    evaluate,
    realtime_forecast,
)
from dso.model import DsoGrid
from dso.requests import NeedOptions, build_requests
from dso.settings import DsoSettings
from dso.validation import AwardCheck, check_awards, validation_of, verified_outcome
from flexledger.messages import (
    MarketOutcome,
    OrderAnnouncement,
    QuarterlyMeasure,
    Receipt,
    Request,
    SensorReading,
    Signed,
    TopologyEvent,
    Validation,
)
from flexledger.powerflow import GridConfig
from flexledger.protocols import Signer
from flexledger.scenario import Scenario, SensorSpec
from flexledger.time import (
    DAY_S,
    MTU_S,
    MTUS_PER_DAY,
    RT_SESSION_MTUS,
    SAMPLES_PER_MTU,
    day_start_s,
    mtu_start_s,
)
from flexledger.transport import MqttClient, SignedHttpClient, Topics
from flexledger.units import cents_per_mwh
from node.eip712 import Domain
from node.signing import SignatureError, sign_message, verify_envelope

__all__ = ["TOPOLOGY_SENSOR_ID", "DayRecord", "DsoPlatform"]

log = logging.getLogger(__name__)

TOPOLOGY_SENSOR_ID = "scada"
"""The sensor id whose key signs topology events (the grid's SCADA, as the world publishes them)."""


@dataclass
class DayRecord:
    """What the DSO did for one day (or one real-time window): its forecast, assessment, the
    requests it signed and their receipts, and its validations."""

    day_s: int
    forecast: GridForecast | None = None
    assessment: GridAssessment | None = None
    forecast_score: ForecastScore | None = None
    requests: list[Signed[Request]] = field(default_factory=list)
    receipts: list[Receipt] = field(default_factory=list)
    validations: list[Signed[Validation]] = field(default_factory=list)
    checks: dict[str, list[AwardCheck]] = field(default_factory=dict)


class DsoPlatform:
    """The DSO Technical Platform (see the module docstring).

    Args:
        grid: the DSO's grid model.
        signer: the DSO's key.
        domain: the EIP-712 domain (chain id, FlexRoles).
        market_operator: the address whose signature a market outcome must carry.
        issuers: addresses allowed to issue orders (DSO, TSO).
        scenario: the scenario (delivery day, sensors); optional.
        settings: prices, margins, URLs.
        now_s: the clock.
        scd / market: HTTP clients (``None``: offline, data is passed in).
        sensor_keys: sensor id → address its readings must be signed by (``None``: any valid
            signature; the chain's ``FlexRoles.sensorOf`` in a deployment).
    """

    def __init__(
        self,
        grid: DsoGrid,
        signer: Signer,
        domain: Domain,
        *,
        market_operator: str,
        issuers: Iterable[str] = (),
        scenario: Scenario | None = None,
        settings: DsoSettings | None = None,
        now_s: Callable[[], int] | None = None,
        scd: SignedHttpClient | None = None,
        market: SignedHttpClient | None = None,
        sensor_keys: Callable[[str], str | None] | None = None,
    ) -> None:
        import time

        self.grid = grid
        self.signer = signer
        self.domain = domain
        self.market_operator = market_operator
        self.scenario = scenario
        self.settings = settings or DsoSettings()
        self.now_s = now_s or (lambda: int(time.time()))
        self.scd = scd
        self.market = market
        self.sensor_keys = sensor_keys
        self.dispatcher = Dispatcher(signer, domain, [*issuers, signer.address], self.now_s)
        self.days: dict[int, DayRecord] = {}
        self.realtime: dict[int, DayRecord] = {}
        self.topology = Topology()
        self.readings: dict[str, SensorReading] = {}
        self.sensors: dict[str, SensorSpec] = {
            s.id: s for s in (scenario.sensors if scenario else [])
        }
        self.estimate: StateEstimate | None = None
        self._nonce = int(self.now_s()) * 1000
        self._lock = asyncio.Lock()

    # -- time -----------------------------------------------------------------------------------

    @property
    def delivery_day_s(self) -> int | None:
        return self.scenario.day_s if self.scenario else None

    def profile_day_of(self, day_s: int) -> int:
        """The SimBench profile day a calendar day replays."""
        if self.grid.profile_day is None:
            raise ValueError("the grid has no profile day")
        if self.delivery_day_s is None:
            return self.grid.profile_day
        return self.grid.profile_day + (day_start_s(day_s) - self.delivery_day_s) // DAY_S

    def _next_nonce(self, n: int = 1) -> int:
        first = max(self._nonce + 1, int(self.now_s()) * 1000)
        self._nonce = first + n - 1
        return first

    # -- day ahead ------------------------------------------------------------------------------

    async def fetch_history(self, day_s: int, days: int | None = None) -> PodHistory:
        """The quarterly history (I-01) of every POD for the ``days`` days before ``day_s``."""
        if self.scd is None:
            raise RuntimeError("no SCD client: pass the history in")
        days = days or self.settings.history_days
        start, end = day_start_s(day_s) - days * DAY_S, day_start_s(day_s)
        measures: list[QuarterlyMeasure] = []
        for pod in sorted(self.grid.pods):
            rows = await self.scd.get(
                "/measures/quarterly",
                {"pod": pod, "from_s": start, "to_s": end, "limit": 10_000},
            )
            items = rows.get("items", []) if isinstance(rows, dict) else rows
            measures += [QuarterlyMeasure.model_validate(r) for r in items]
        return PodHistory.from_measures(measures)

    async def fetch_latest_q(self, now_s: int) -> dict[str, tuple[float, float]]:
        """Each POD's mean active and reactive power (kW, kvar, load convention) over its last
        MTU of 4 s samples at the SCD (I-04) in the 4 hours before ``now_s`` (the measurements
        reach the SCD some time after they are taken); PODs with none are left out."""
        if self.scd is None:
            return {}
        end = mtu_start_s(now_s)
        out: dict[str, tuple[float, float]] = {}
        for pod in sorted(self.grid.pods):
            try:
                page = await self.scd.get(
                    "/samples/columns",
                    {"pod": pod, "from_s": end - RT_SESSION_MTUS * MTU_S, "to_s": end},
                )
            except Exception as exc:  # the assessment goes on with the profiles' Q
                log.warning("reactive power of %s: %s", pod, exc)
                continue
            p = (page.get("p_w") or [])[-SAMPLES_PER_MTU:]
            q = (page.get("q_var") or [])[-SAMPLES_PER_MTU:]
            if q and len(p) == len(q):
                out[pod] = (float(np.mean(p)) / 1000, float(np.mean(q)) / 1000)
        log.info("real time from %d: reactive power measured at %d PODs", end, len(out))
        return out

    def forecast_day(
        self, history: PodHistory, day_s: int, *, held_out_days: int = 7
    ) -> tuple[GridForecast, ForecastScore | None]:
        """The day-ahead forecast of ``day_s`` and its score on the last ``held_out_days`` days
        of the history (``None`` when the history is too short to score)."""
        day_s = day_start_s(day_s)
        fc = day_ahead_forecast(
            self.grid,
            history,
            day_s,
            profile_day=self.profile_day_of(day_s),
            options=ForecastOptions(max_days=self.settings.history_days),
        )
        score = None
        held = [day_s - k * DAY_S for k in range(held_out_days, 0, -1)]
        try:
            score = evaluate(history, held, sorted(self.grid.pods))
            log.info("day-ahead forecast, held-out days: %s", score)
        except ValueError:
            log.info("not enough history to score the forecast")
        return fc, score

    def assess_day(self, forecast: GridForecast, score: ForecastScore | None = None) -> DayRecord:
        """Assess a day on its forecast (power flow, I-10, own remedies I-11, needs)."""
        assessment = assess(self.grid, forecast, need_options=self._need_options())
        day = int(assessment.day_s)
        record = self.days.setdefault(day, DayRecord(day))
        record.forecast, record.assessment, record.forecast_score = forecast, assessment, score
        log.info("assessment of %d: %s", day, assessment.summary())
        return record

    def _need_options(self) -> NeedOptions:
        s = self.settings
        return NeedOptions(
            margin_pu=s.margin_pu, margin_percent=s.margin_percent, min_factor=s.min_factor
        )

    def sign_requests(
        self,
        assessment: GridAssessment,
        session_id: str,
        valid_until_s: int,
        window: tuple[int, int] | None = None,
    ) -> list[Signed[Request]]:
        """The assessment's needs as signed I-06 requests for a session."""
        needs = assessment.needs
        nonce = self._next_nonce(max(1, len(needs)))
        requests = build_requests(
            needs,
            session_id=session_id,
            requester=self.signer.address,
            nonce_start=nonce,
            valid_until_s=valid_until_s,
            max_price_cents_per_mwh=cents_per_mwh(self.settings.max_price_eur_per_mwh),
            mtu_window=window,
        )
        self._nonce = max(self._nonce, nonce + len(requests))
        return [sign_message(self.signer, r) for r in requests]

    async def day_ahead(
        self, session_id: str, day_s: int, valid_until_s: int, history: PodHistory | None = None
    ) -> DayRecord:
        """Scenario 1 steps 3a–10a: history → forecast → assessment → remedies → requests,
        posted to the market (``POST /requests``)."""
        history = history if history is not None else await self.fetch_history(day_s)
        fc, score = await asyncio.to_thread(self.forecast_day, history, day_s)
        record = await asyncio.to_thread(self.assess_day, fc, score)
        assert record.assessment is not None
        record.requests = self.sign_requests(record.assessment, session_id, valid_until_s)
        record.receipts = await self._post_requests(record.requests)
        return record

    async def _post_requests(self, requests: list[Signed[Request]]) -> list[Receipt]:
        if self.market is None or not requests:
            return []
        out = []
        for env in requests:
            out.append(Receipt.model_validate(await self.market.post_envelope("/requests", env)))
        log.info("%d request(s) posted", len(out))
        return out

    # -- validation -----------------------------------------------------------------------------

    def validate(
        self, envelope: Signed[MarketOutcome], *, round_: int | None = None
    ) -> Signed[Validation]:
        """Scenario 1 steps 14a–15a: check a round's awards on the grid, sign the I-07."""
        outcome = verified_outcome(envelope, self.domain, self.market_operator, round_=round_)
        starts = sorted({a.mtu_start_s for a in outcome.awards})
        day = day_start_s(starts[0]) if starts else day_start_s(self.now_s())
        record = self.days.setdefault(day, DayRecord(day))
        if outcome.awards:
            forecast = record.forecast
            if forecast is None or not set(starts) <= set(int(s) for s in forecast.mtu_start_s):
                forecast = self._fallback_forecast(day)
                record.forecast = forecast
            configs = self._configs(record, forecast)
            checks = check_awards(
                self.grid,
                forecast.injections(self.grid),
                forecast.mtu_start_s,
                outcome.awards,
                configs=configs,
            )
        else:
            checks = []
        record.checks[f"{outcome.session_id}#{outcome.round}"] = checks
        validation = validation_of(outcome, checks, self._next_nonce())
        signed = sign_message(self.signer, validation)
        record.validations.append(signed)
        log.info(
            "round %d of %s: %d approved, %d rejected",
            outcome.round,
            outcome.session_id,
            validation.approved_count,
            validation.rejected_count,
        )
        return signed

    def _configs(self, record: DayRecord, forecast: GridForecast) -> list[GridConfig]:
        """The remedy configuration of each forecast MTU (the day's plan where it has one)."""
        base = self.topology.config(self.grid)
        out = [base] * len(forecast.mtu_start_s)
        a = record.assessment
        if a is not None:
            plan_of = {int(s): a.remedies.config_of(i) for i, s in enumerate(a.mtu_start_s)}
            out = [plan_of.get(int(s), base) for s in forecast.mtu_start_s]
        return out

    def _fallback_forecast(self, day_s: int) -> GridForecast:
        """Without a forecast of the day: the grid's own profiles of the days before it."""
        bg = background_forecast(self.grid, self.profile_day_of(day_s))
        starts = np.arange(day_s, day_s + DAY_S, MTU_S, dtype=np.int64)
        pods = self.grid.pod_p_kw(bg)
        return GridForecast(starts, pods, bg, "day_ahead")

    async def validate_round(self, session_id: str, round_: int) -> Signed[Validation]:
        """Fetch round ``round_`` of a session, validate it, post the signed I-07."""
        if self.market is None:
            raise RuntimeError("no market client")
        raw = await self.market.get(f"/sessions/{session_id}/rounds/{round_}")
        envelope = Signed[MarketOutcome].model_validate(raw)
        signed = await asyncio.to_thread(self.validate, envelope, round_=round_)
        await self.market.post_envelope(f"/sessions/{session_id}/validations", signed)
        return signed

    # -- real time ------------------------------------------------------------------------------

    def on_reading(self, envelope: Signed[SensorReading]) -> bool:
        """Keep a sensor's latest reading (signature checked); ``False`` if refused."""
        r = envelope.message
        try:
            signer = verify_envelope(envelope, self.domain)
        except SignatureError as exc:
            log.warning("sensor reading refused: %s", exc)
            return False
        if self.sensor_keys is not None:
            expected = self.sensor_keys(r.sensor_id)
            if expected is None or expected.lower() != signer.lower():
                log.warning("reading of %s signed by %s, not its key", r.sensor_id, signer)
                return False
        last = self.readings.get(r.sensor_id)
        if last is None or r.seq > last.seq:
            self.readings[r.sensor_id] = r
        return True

    def on_topology(self, envelope: Signed[TopologyEvent]) -> bool:
        """Track a topology event, signed by the SCADA's sensor key (``TOPOLOGY_SENSOR_ID``)."""
        try:
            signer = verify_envelope(envelope, self.domain)
        except SignatureError as exc:
            log.warning("topology event refused: %s", exc)
            return False
        if self.sensor_keys is not None:
            expected = self.sensor_keys(TOPOLOGY_SENSOR_ID)
            if expected is None or expected.lower() != signer.lower():
                log.warning("topology event signed by %s, not the SCADA's key", signer)
                return False
        return self.topology.apply(envelope.message)

    def tracked_grid(self) -> tuple[DsoGrid, GridConfig]:
        """The grid as the tracked topology has it: outaged lines without a switch rebuilt out
        of the model, switch events and outaged lines' own switches in the configuration."""
        grid = self.grid
        missing = self.topology.unswitched_outages(grid)
        if missing:
            net = copy.deepcopy(grid.base_net)
            net.line.loc[sorted(missing), "in_service"] = False
            grid = DsoGrid(
                base_net=net,
                pods=dict(grid.pods),
                limits=grid.limits,
                remedy_space=grid.remedy_space,
                profile_day=grid.profile_day,
            )
        return grid, self.topology.config(grid)

    def realtime_forecast(
        self,
        now_s: int,
        latest: dict[str, dict[int, float]],
        horizon: int = RT_SESSION_MTUS,
        latest_q: dict[str, tuple[float, float]] | None = None,
    ) -> GridForecast:
        """The next ``horizon`` MTUs from the MTU of ``now_s``: PODs from their day-ahead
        forecast corrected by ``latest`` (POD → MTU start → kW), the rest from the profiles.
        ``latest_q``: a POD's last measured MTU (kW, kvar): a consuming POD keeps that MTU's
        tan φ over the forecast P, any other its Q — the quarterly history carries no reactive
        energy, so without it a POD's Q is its elements' profile Q (a supermarket's air
        conditioning at cos φ 0.89 is then missing)."""
        now = mtu_start_s(now_s)
        day = day_start_s(now)
        record = self.days.get(day)
        da = record.forecast if record and record.forecast else self._fallback_forecast(day)
        first_step = self.profile_day_of(day) * MTUS_PER_DAY + (now - day) // MTU_S
        bg = background_forecast(
            self.grid, self.profile_day_of(day), horizon, first_step=first_step
        )
        pods = {}
        for pod in self.grid.pods:
            pods[pod] = realtime_forecast(
                da.pod_p_kw[pod],
                int(da.mtu_start_s[0]),
                now,
                latest.get(pod, {}),
                horizon=horizon,
            )
        starts = np.arange(now, now + horizon * MTU_S, MTU_S, dtype=np.int64)
        q: dict[str, NDArray[np.float64]] = {}
        for pod, (p_kw, q_kvar) in (latest_q or {}).items():
            if pod not in pods:
                continue
            if p_kw > 1.0:  # a consuming POD: its reactive power follows its load
                q[pod] = np.where(pods[pod] > 0, pods[pod] * (q_kvar / p_kw), q_kvar)
            else:
                q[pod] = np.full(horizon, q_kvar)
        return GridForecast(starts, pods, bg, "real_time", q)

    def estimate_state(self, forecast: GridForecast) -> StateEstimate:
        """WLS state estimate of the first MTU of ``forecast`` from the latest sensor readings,
        on the tracked topology (pseudo-measurements: the forecast)."""
        grid, config = self.tracked_grid()
        estimator = StateEstimator(grid, config, pseudo_pct=self.settings.pseudo_pct)
        pseudo = forecast.injections(grid).select([0])
        ms = sensor_measurements(grid, self.readings.values(), self.sensors)
        ms += estimator.pseudo_measurements(pseudo)
        self.estimate = estimator.estimate(ms, start=pseudo)
        return self.estimate

    def assess_realtime(
        self,
        now_s: int,
        latest: dict[str, dict[int, float]] | None = None,
        latest_q: dict[str, tuple[float, float]] | None = None,
    ) -> DayRecord:
        """Scenario 2 steps 1a–5a: real-time forecast of the next 16 MTUs, state estimation
        when there are readings, assessment on the tracked topology."""
        fc = self.realtime_forecast(now_s, latest or {}, latest_q=latest_q)
        if self.readings:
            try:
                self.estimate_state(fc)
            except Exception as exc:  # the assessment goes on without the estimate
                log.warning("state estimation failed: %s", exc)
        grid, config = self.tracked_grid()
        assessment = assess(
            grid, fc, base_config=config, horizon="real_time", need_options=self._need_options()
        )
        start = int(fc.mtu_start_s[0])
        record = DayRecord(start, forecast=fc, assessment=assessment)
        self.realtime[start] = record
        return record

    async def real_time(self, session_id: str, now_s: int, valid_until_s: int) -> DayRecord:
        """Scenario 2 steps 1a–7a: latest measures from the SCD, real-time assessment, requests
        for the session's MTUs posted."""
        latest: dict[str, dict[int, float]] = {}
        latest_q: dict[str, tuple[float, float]] = {}
        if self.scd is not None:
            hist = await self.fetch_history(mtu_start_s(now_s) + DAY_S, days=1)
            for pod in self.grid.pods:
                days = hist.days(pod, day_start_s(now_s), 1)[0]
                latest[pod] = {
                    day_start_s(now_s) + k * MTU_S: float(v)
                    for k, v in enumerate(days)
                    if np.isfinite(v) and day_start_s(now_s) + k * MTU_S < mtu_start_s(now_s)
                }
            latest_q = await self.fetch_latest_q(now_s)
        record = await asyncio.to_thread(self.assess_realtime, now_s, latest, latest_q)
        assert record.assessment is not None
        start = int(record.assessment.mtu_start_s[0])
        window = (start, start + RT_SESSION_MTUS * MTU_S)
        record.requests = self.sign_requests(record.assessment, session_id, valid_until_s, window)
        record.receipts = await self._post_requests(record.requests)
        return record

    # -- dispatch -------------------------------------------------------------------------------

    async def on_order(self, mqtt: MqttClient, topics: Topics, ann: OrderAnnouncement) -> None:
        """Scenario 3 step 3a: an announced order → signed set-point on its POD's topic."""
        try:
            signed = self.dispatcher.setpoint(ann)
        except DispatchError as exc:
            log.warning("order %s not dispatched: %s", ann.order_hash[:10], exc)
            return
        await mqtt.publish(topics.pod_setpoint(ann.pod), signed)

    async def subscribe(self, mqtt: MqttClient, topics: Topics) -> None:
        """Orders, sensor readings, topology events, and session notices (a round published →
        validated) over MQTT."""

        async def orders(_: str, ann: OrderAnnouncement) -> None:
            await self.on_order(mqtt, topics, ann)

        async def readings(_: str, env: Signed[SensorReading]) -> None:
            self.on_reading(env)

        async def topology(_: str, env: Signed[TopologyEvent]) -> None:
            self.on_topology(env)

        async def sessions(topic: str, payload: bytes) -> None:
            await self._on_session_payload(topic, payload)

        await mqtt.subscribe(topics.market_orders(), OrderAnnouncement, orders)
        await mqtt.subscribe(topics.all_grid_measures(), Signed[SensorReading], readings)
        await mqtt.subscribe(topics.grid_topology(), Signed[TopologyEvent], topology)
        await mqtt.subscribe_raw(topics.all_market_sessions(), sessions)

    async def on_session_opened(self, session_id: str) -> DayRecord | None:
        """A session opened: read it from the market (kind, delivery start, gate closure) and
        run the day ahead (scenario 1) or the real time (scenario 2) for it, requests posted."""
        if self.market is None:
            return None
        session = await self.market.get(f"/sessions/{session_id}")
        start, gate = int(session["delivery_start_s"]), int(session["gate_closure_s"])
        if session.get("kind") == "real_time":
            return await self.real_time(session_id, start, gate)
        return await self.day_ahead(session_id, start, gate)

    async def _on_session_payload(self, topic: str, payload: bytes) -> None:
        try:
            doc: Any = json.loads(payload)
        except ValueError:
            return
        if isinstance(doc, dict) and doc.get("state") == "open" and "session_id" in doc:
            try:
                await self.on_session_opened(str(doc["session_id"]))
            except Exception:
                log.exception("requests for session %s failed", doc["session_id"])
            return
        if not isinstance(doc, dict) or "message" not in doc:
            return  # another notice or an order: nothing to do here
        try:
            envelope = Signed[MarketOutcome].model_validate(doc)
        except ValueError:
            return
        m = envelope.message
        if m.final:
            return
        key = f"{m.session_id}#{m.round}"
        if any(key in r.checks for r in self.days.values()):
            return
        try:
            signed = await asyncio.to_thread(self.validate, envelope)
            if self.market is not None:
                await self.market.post_envelope(f"/sessions/{m.session_id}/validations", signed)
        except Exception:
            log.exception("validation of %s failed", key)
