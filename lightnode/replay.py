"""Meters that replay recorded readings, and the SimBench recording maker for tests and demos.

A Light Node reads its meter through ``flexledger.protocols.MeterSource``; here that source is a
recording: ``ListMeter`` over readings in memory, ``CsvMeter`` over a CSV file with the columns
``pod,t_s,p_w,q_var,v_mv`` (integers, load convention, one row per POD and 4 s instant).

``make_csv_from_simbench`` writes such a CSV for a few household PODs of a SimBench grid: the
15-minute load profiles interpolated to 4 s, with the fast fluctuations a real meter sees added
as noise. It imports simbench inside the function only: a Light Node installs without grid
libraries, and only whoever makes test data needs them.
"""

from __future__ import annotations

import bisect
import csv
import logging
import math
import random
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from flexledger.messages.measurement import MeterReading
from flexledger.time import MTU_S, SAMPLE_PERIOD_S

__all__ = [
    "CSV_COLUMNS",
    "CsvMeter",
    "ListMeter",
    "make_csv_from_simbench",
    "read_meter_csv",
    "write_meter_csv",
]

log = logging.getLogger(__name__)

CSV_COLUMNS = ("pod", "t_s", "p_w", "q_var", "v_mv")
#: 2026-01-01 17:00 UTC: the evening ramp of a winter day, where household load moves most.
DEFAULT_CSV_START_S = 1_767_286_800
DEFAULT_GRID = "1-MVLV-semiurb-5.220-2-sw"


class ListMeter:
    """A POD's meter over readings held in memory (a ``MeterSource``).

    Readings are kept sorted by time; ``read`` of an instant without a reading raises
    ``LookupError`` as the Protocol says, and ``read_range`` returns what exists in the range.
    """

    def __init__(self, pod: str, readings: Iterable[MeterReading]) -> None:
        self.pod = pod
        rows = sorted(readings, key=lambda r: r.t_s)
        for r in rows:
            if r.pod != pod:
                raise ValueError(f"a reading of {r.pod} in the meter of {pod}")
        self._readings = rows
        self._times = [r.t_s for r in rows]

    def __len__(self) -> int:
        return len(self._readings)

    @property
    def first_s(self) -> int | None:
        return self._times[0] if self._times else None

    @property
    def last_s(self) -> int | None:
        return self._times[-1] if self._times else None

    async def read(self, t_s: int) -> MeterReading:
        i = bisect.bisect_left(self._times, t_s)
        if i == len(self._times) or self._times[i] != t_s:
            raise LookupError(f"meter {self.pod} has no reading at {t_s}")
        return self._readings[i]

    async def read_range(self, start_s: int, end_s: int) -> list[MeterReading]:
        lo = bisect.bisect_left(self._times, start_s)
        hi = bisect.bisect_left(self._times, end_s)
        return self._readings[lo:hi]


def read_meter_csv(path: Path | str) -> dict[str, list[MeterReading]]:
    """Every reading of a meter CSV, by POD, in file order."""
    out: dict[str, list[MeterReading]] = {}
    with Path(path).open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = set(CSV_COLUMNS) - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        for row in reader:
            reading = MeterReading(
                pod=row["pod"],
                t_s=int(row["t_s"]),
                p_w=int(row["p_w"]),
                q_var=int(row["q_var"]),
                v_mv=int(row["v_mv"]),
            )
            out.setdefault(reading.pod, []).append(reading)
    return out


def write_meter_csv(path: Path | str, readings: Iterable[MeterReading]) -> int:
    """Write readings as a meter CSV (in the order given); the number of rows."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for r in readings:
            writer.writerow((r.pod, r.t_s, r.p_w, r.q_var, r.v_mv))
            n += 1
    return n


class CsvMeter(ListMeter):
    """A POD's meter replaying a CSV recording.

    ``source_pod`` replays another POD's column of the file under this POD's code (five Light
    Nodes from a two-POD recording); ``shift_s`` moves every timestamp (replay a recorded hour as
    "now" under a wall clock). A shift should be a multiple of the window length, so that the
    recording's windows stay windows.
    """

    def __init__(
        self,
        path: Path | str,
        pod: str,
        *,
        source_pod: str | None = None,
        shift_s: int = 0,
    ) -> None:
        by_pod = read_meter_csv(path)
        source = source_pod or pod
        if source not in by_pod:
            raise LookupError(f"{path} has no readings of {source} (it has {sorted(by_pod)})")
        super().__init__(
            pod,
            (
                MeterReading(pod=pod, t_s=r.t_s + shift_s, p_w=r.p_w, q_var=r.q_var, v_mv=r.v_mv)
                for r in by_pod[source]
            ),
        )
        self.path = Path(path)


def _lv_household_loads(net: object, count: int) -> list[int]:
    """Indices of the grid's low-voltage household loads (SimBench H0 profiles) first, then
    other LV loads, in index order: a deterministic choice."""
    load = net.load  # type: ignore[attr-defined]
    bus = net.bus  # type: ignore[attr-defined]
    lv = load[bus.loc[load.bus, "vn_kv"].to_numpy() < 1.0]
    households = [int(i) for i in lv.index if str(lv.at[i, "profile"]).startswith("H0")]
    others = [int(i) for i in lv.index if int(i) not in set(households)]
    chosen = (households + others)[:count]
    if len(chosen) < count:
        raise ValueError(f"the grid has only {len(chosen)} low-voltage loads, asked {count}")
    return chosen


def make_csv_from_simbench(
    path: Path | str,
    *,
    grid: str = DEFAULT_GRID,
    pods: int | Sequence[str] = 2,
    start_s: int = DEFAULT_CSV_START_S,
    hours: float = 1.0,
    seed: int = 7,
    noise: float = 0.08,
) -> Path:
    """Write a meter CSV of a few household PODs of a SimBench grid, one row per POD and 4 s.

    P and Q come from the loads' 15-minute SimBench profiles (``p_mw × pload``, ``q_mvar ×
    qload``, the same scaling as ``simbench.get_absolute_values``) at the quarter-hour of the
    year that ``start_s`` falls in, linearly interpolated to 4 s, times ``1 + e(t)`` where
    ``e`` is a first-order autoregressive noise of standard deviation ``noise`` (appliances
    switching inside a quarter-hour; zero mean, so the quarter-hour energies stay the
    profile's). V has no power flow behind it here: 230 V, lowered by up to 2 % as the POD's own
    load rises, plus 0.3 V of noise — a plausible meter signal, not a grid result (the scenario
    world's meters will carry power-flow voltages).

    ``pods``: how many PODs (named ``IT001E00000001``, …) or their codes. Deterministic for a
    given ``seed``. Returns ``path``.
    """
    import numpy as np
    import simbench

    if isinstance(pods, int):
        pod_codes = [f"IT001E{n:08d}" for n in range(1, pods + 1)]
    else:
        pod_codes = list(pods)
    if start_s % SAMPLE_PERIOD_S:
        raise ValueError(f"start_s {start_s} is not on the {SAMPLE_PERIOD_S} s grid")
    n_samples = round(hours * 3600 / SAMPLE_PERIOD_S)
    net = simbench.get_simbench_net(grid)
    profiles = net.profiles["load"]
    n_q = len(profiles)
    # The same quarter-hour of the year in the profile year (SimBench profiles are one year).
    when = datetime.fromtimestamp(start_s, tz=UTC)
    year_start = int(datetime(when.year, 1, 1, tzinfo=UTC).timestamp())
    q_start = ((start_s - year_start) // MTU_S) % n_q
    q_needed = math.ceil(n_samples * SAMPLE_PERIOD_S / MTU_S) + 2
    rows_q = [(q_start + k) % n_q for k in range(q_needed)]
    offset_s = start_s % MTU_S  # where in its quarter-hour the first sample falls

    rng = random.Random(seed)
    sample_pos = (offset_s + SAMPLE_PERIOD_S * np.arange(n_samples)) / MTU_S
    q_axis = np.arange(q_needed, dtype=float)
    per_pod: list[list[MeterReading]] = []
    for pod, idx in zip(pod_codes, _lv_household_loads(net, len(pod_codes)), strict=True):
        profile = str(net.load.at[idx, "profile"])
        p_base = float(net.load.at[idx, "p_mw"]) * 1e6
        q_base = float(net.load.at[idx, "q_mvar"]) * 1e6
        p_q = p_base * profiles[f"{profile}_pload"].to_numpy()[rows_q]
        q_q = q_base * profiles[f"{profile}_qload"].to_numpy()[rows_q]
        p = np.interp(sample_pos, q_axis, p_q)
        q = np.interp(sample_pos, q_axis, q_q)
        # AR(1) with phi 0.95 per 4 s step (a correlation time of ~80 s), unit variance.
        phi = 0.95
        e = 0.0
        factors = np.empty(n_samples)
        for k in range(n_samples):
            e = phi * e + math.sqrt(1 - phi * phi) * rng.gauss(0.0, 1.0)
            factors[k] = max(0.0, 1.0 + noise * e)
        p = p * factors
        q = q * factors
        p_peak = max(float(np.max(np.abs(p))), 1.0)
        readings = []
        for k in range(n_samples):
            v_v = 230.0 * (1.0 + 0.01 - 0.02 * abs(p[k]) / p_peak) + rng.gauss(0.0, 0.3)
            readings.append(
                MeterReading(
                    pod=pod,
                    t_s=start_s + SAMPLE_PERIOD_S * k,
                    p_w=round(float(p[k])),
                    q_var=round(float(q[k])),
                    v_mv=round(v_v * 1000),
                )
            )
        per_pod.append(readings)
        log.info("POD %s: SimBench load %d (%s, %.0f W peak)", pod, idx, profile, p_base)
    ordered = [per_pod[j][k] for k in range(n_samples) for j in range(len(per_pod))]
    write_meter_csv(path, ordered)
    return Path(path)
