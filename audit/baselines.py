"""Baselines as the auditor computes them, and how good each method is.

The auditor's own implementation of the baseline methods a session may name on chain
(docs/NOTES-settlement.md; the market's is ``market.service.baselines``, which this package
never imports):

- ``brp``: the BRP's signed baseline (I-03), its values hashing to the root the BRP committed
  on chain (``BaselineRegistry.baselineOf``), committed no later than the gate closure;
- ``high_X_of_Y``: of the Y most recent eligible days before the day (every MTU measured, no
  activation of the POD), the X with the highest whole-day consumption; per MTU the mean of
  those X days, rounded half to even;
- ``meter_before_after``: the mean of the ``before`` MTUs right before the POD's activation
  block that holds the MTU, rounded half to even.

``baseline_report`` (``flexledger baseline report``) measures each method on days without
activation, from the SCD's history: for every POD and day, high-X-of-Y predicts the day from the
days before it; meter-before/meter-after predicts each hour (4 MTUs) from the hour before it, as
if an activation had started there; the BRP's baseline is compared where the SCD holds one. Per
method: ``bias`` = Σ(predicted − measured) / Σ measured and ``CV(RMSE)`` = √mean((predicted −
measured)²) / mean(measured), both in percent, over every MTU predicted.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from flexledger.time import DAY_S, MTU_S, MTUS_PER_DAY, SAMPLES_PER_MTU

__all__ = [
    "DEFAULT_METHODS",
    "BaselineReport",
    "MethodScore",
    "baseline_report",
    "high_x_of_y",
    "measures_by_mtu",
    "meter_before_after",
    "parse_method",
]

_HIGH = re.compile(r"^high_(\d{1,2})_of_(\d{1,2})$")
#: What the report scores unless told otherwise.
DEFAULT_METHODS = ("brp", "high_4_of_5", "high_5_of_10", "meter_before_after")


class HttpGet(Protocol):
    """What the report needs of an HTTP client (``SyncSignedHttpClient`` has it)."""

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any: ...


def _rhe(numerator: int, denominator: int) -> int:
    """round(numerator / denominator), ties to even, on exact integers (the auditor's own)."""
    q, r = divmod(numerator, denominator)
    if 2 * r > denominator or (2 * r == denominator and q % 2):
        q += 1
    return q


def parse_method(name: str) -> tuple[str, int, int]:
    """('brp'|'high'|'mbma', X, Y) of a method name; ValueError for an unknown one."""
    if name == "brp":
        return "brp", 0, 0
    if name == "meter_before_after":
        return "mbma", 0, 0
    m = _HIGH.match(name)
    if m and 1 <= int(m.group(1)) <= int(m.group(2)) <= 20:
        return "high", int(m.group(1)), int(m.group(2))
    raise ValueError(f"unknown baseline method {name!r}")


def measures_by_mtu(rows: Iterable[Mapping[str, Any]]) -> dict[int, int]:
    """MTU start → Wh from the SCD's ``/measures/quarterly`` rows: a certified Light Node value
    with every sample, else the imported history."""
    lightnode: dict[int, int] = {}
    history: dict[int, int] = {}
    for r in rows:
        t, e = int(r["mtu_start_s"]), int(r["e_wh"])
        if r.get("source", "lightnode") == "history":
            history[t] = e
        elif r.get("certified") and int(r.get("sample_count", 0)) == SAMPLES_PER_MTU:
            lightnode[t] = e
    out = dict(history)
    out.update(lightnode)
    return out


def high_x_of_y(
    measures: Mapping[int, int],
    day_s: int,
    x: int,
    y: int,
    excluded_days: Collection[int] = (),
    lookback_days: int = 45,
) -> dict[int, int] | None:
    """High-X-of-Y per MTU start of ``day_s``, None with fewer than X eligible days."""
    eligible: list[tuple[int, int, list[int]]] = []
    day = day_s
    for _ in range(lookback_days):
        day -= DAY_S
        if day in excluded_days:
            continue
        row = [measures.get(day + MTU_S * i) for i in range(MTUS_PER_DAY)]
        if None in row:
            continue
        values = [int(v or 0) for v in row]
        eligible.append((sum(values), day, values))
        if len(eligible) >= y:
            break
    if len(eligible) < x:
        return None
    chosen = sorted(eligible, reverse=True)[:x]  # highest total, then the later day
    return {day_s + MTU_S * i: _rhe(sum(c[2][i] for c in chosen), x) for i in range(MTUS_PER_DAY)}


def meter_before_after(
    measures: Mapping[int, int], mtu_s: int, activated: Collection[int], before: int = 4
) -> int | None:
    """Meter-before/meter-after of ``mtu_s``: the mean of the ``before`` MTUs preceding its
    activation block; None when one of them is not measured."""
    first = mtu_s
    while (first - MTU_S) in activated:
        first -= MTU_S
    window = [measures.get(first - MTU_S * k) for k in range(1, before + 1)]
    if None in window:
        return None
    return _rhe(sum(int(v or 0) for v in window), before)


@dataclass
class MethodScore:
    """One method's errors over the MTUs it predicted."""

    method: str
    n: int = 0
    sum_error_wh: int = 0
    sum_sq_error: int = 0
    sum_actual_wh: int = 0

    def add(self, predicted: int, actual: int) -> None:
        self.n += 1
        self.sum_error_wh += predicted - actual
        self.sum_sq_error += (predicted - actual) ** 2
        self.sum_actual_wh += actual

    @property
    def bias_pct(self) -> float | None:
        if self.n == 0 or self.sum_actual_wh == 0:
            return None
        return 100.0 * self.sum_error_wh / self.sum_actual_wh

    @property
    def cv_rmse_pct(self) -> float | None:
        if self.n == 0 or self.sum_actual_wh == 0:
            return None
        return 100.0 * math.sqrt(self.sum_sq_error / self.n) / (self.sum_actual_wh / self.n)

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "mtus": self.n,
            "bias_pct": self.bias_pct,
            "cv_rmse_pct": self.cv_rmse_pct,
            "mean_error_wh": self.sum_error_wh / self.n if self.n else None,
        }


@dataclass
class BaselineReport:
    """Each method's bias and CV(RMSE) over the PODs and days evaluated."""

    pods: list[str]
    days: list[int]
    scores: dict[str, MethodScore] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "pods": self.pods,
            "days": self.days,
            "methods": [s.as_dict() for s in self.scores.values()],
            "skipped_pod_days": self.skipped,
        }


def _activation_days(market: HttpGet | None) -> dict[str, set[int]]:
    """POD → days with an activation order, from the market's public orders."""
    out: dict[str, set[int]] = {}
    if market is None:
        return out
    after: str | None = None
    while True:
        page = market.get("/orders", {"limit": 10_000, **({"after": after} if after else {})})
        for o in page:
            for a in o.get("awards", []):
                t = int(a["mtu_start_s"])
                out.setdefault(a["pod"], set()).add(t - t % DAY_S)
        if len(page) < 10_000:
            return out
        after = page[-1]["hash"]


def _brp_values(scd: HttpGet, day: int) -> dict[tuple[str, int], int]:
    try:
        entries = scd.get(f"/baselines/{day}")
    except Exception:  # 404: the SCD holds no baseline of that day
        return {}
    out: dict[tuple[str, int], int] = {}
    for e in entries:
        for v in e["baseline"]["message"]["values"]:
            out.setdefault((v["pod"], int(v["mtu_start_s"])), int(v["e_wh"]))
    return out


def baseline_report(
    scd: HttpGet,
    *,
    pods: Iterable[str],
    first_day_s: int,
    days: int,
    market: HttpGet | None = None,
    methods: Iterable[str] = DEFAULT_METHODS,
    lookback_days: int = 45,
    before_mtus: int = 4,
) -> BaselineReport:
    """Score each baseline method on ``days`` days from ``first_day_s`` (UTC midnight) for
    ``pods``, on the days without activation (see the module docstring)."""
    pods = sorted(set(pods))
    day_list = [first_day_s + k * DAY_S for k in range(days)]
    parsed = {m: parse_method(m) for m in methods}
    report = BaselineReport(pods, day_list, {m: MethodScore(m) for m in parsed})
    active = _activation_days(market)
    brp = {d: _brp_values(scd, d) for d in day_list} if "brp" in parsed else {}
    for pod in pods:
        rows = scd.get(
            "/measures/quarterly",
            {
                "pod": pod,
                "from_s": first_day_s - lookback_days * DAY_S - DAY_S,
                "to_s": day_list[-1] + DAY_S,
                "limit": 10_000,
            },
        )
        measures = measures_by_mtu(rows)
        excluded = active.get(pod, set())
        for day in day_list:
            actual = [measures.get(day + MTU_S * i) for i in range(MTUS_PER_DAY)]
            if day in excluded or None in actual:
                report.skipped[pod] = report.skipped.get(pod, 0) + 1
                continue
            for name, (kind, x, y) in parsed.items():
                score = report.scores[name]
                if kind == "high":
                    pred = high_x_of_y(measures, day, x, y, excluded, lookback_days)
                    if pred is not None:
                        for i in range(MTUS_PER_DAY):
                            score.add(pred[day + MTU_S * i], int(actual[i] or 0))
                elif kind == "mbma":
                    for hour in range(0, MTUS_PER_DAY, 4):
                        block = {day + MTU_S * (hour + j) for j in range(4)}
                        for t in sorted(block):
                            p = meter_before_after(measures, t, block, before_mtus)
                            if p is not None:
                                score.add(p, measures[t])
                else:
                    for i in range(MTUS_PER_DAY):
                        b = brp.get(day, {}).get((pod, day + MTU_S * i))
                        if b is not None:
                            score.add(b, int(actual[i] or 0))
    return report
