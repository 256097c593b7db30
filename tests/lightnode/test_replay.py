"""Recorded meters: the committed SimBench CSV replays as a MeterSource, and the maker that wrote
it writes it again, byte for byte."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from flexledger.protocols import MeterSource
from lightnode import CsvMeter, ListMeter, make_csv_from_simbench, read_meter_csv
from tests.lightnode.conftest import CSV_PODS, METER_CSV, T0


@pytest.mark.asyncio(loop_scope="session")
async def test_csv_meter_reads_instants_and_ranges() -> None:
    meter = CsvMeter(METER_CSV, CSV_PODS[0])
    assert isinstance(meter, MeterSource)
    assert len(meter) == 900 and meter.first_s == T0 and meter.last_s == T0 + 3596
    r = await meter.read(T0 + 8)
    assert r.pod == CSV_PODS[0] and r.t_s == T0 + 8 and r.v_mv > 200_000
    chunk = await meter.read_range(T0 + 6, T0 + 900)
    assert [x.t_s for x in chunk] == list(range(T0 + 8, T0 + 900, 4))
    with pytest.raises(LookupError):
        await meter.read(T0 + 2)
    with pytest.raises(LookupError):
        await meter.read(T0 + 3600)
    assert await meter.read_range(T0 + 3600, T0 + 7200) == []


@pytest.mark.asyncio(loop_scope="session")
async def test_csv_meter_replays_another_pod_shifted() -> None:
    source = CsvMeter(METER_CSV, CSV_PODS[1])
    moved = CsvMeter(METER_CSV, "IT001E00000005", source_pod=CSV_PODS[1], shift_s=-900)
    a, b = await source.read(T0 + 900), await moved.read(T0)
    assert b.pod == "IT001E00000005" and (a.p_w, a.q_var, a.v_mv) == (b.p_w, b.q_var, b.v_mv)
    with pytest.raises(LookupError, match="no readings"):
        CsvMeter(METER_CSV, "IT001E00000009")
    with pytest.raises(ValueError, match="reading of"):
        ListMeter("IT001E00000009", [a])


def test_the_recording_is_plausible_household_load() -> None:
    by_pod = read_meter_csv(METER_CSV)
    assert sorted(by_pod) == list(CSV_PODS)
    for readings in by_pod.values():
        p = [r.p_w for r in readings]
        v = [r.v_mv for r in readings]
        assert min(p) >= 0 and max(p) < 20_000  # W of a household
        assert min(v) > 220_000 and max(v) < 240_000  # mV around 230 V
        assert len(set(p)) > 50  # 4 s noise, not a staircase of quarter-hours


@pytest.mark.skipif(importlib.util.find_spec("simbench") is None, reason="needs simbench")
@pytest.mark.slow
@pytest.mark.timeout(60)
def test_simbench_maker_reproduces_the_committed_csv(tmp_path: Path) -> None:
    out = make_csv_from_simbench(tmp_path / "m.csv", pods=2, start_s=T0, hours=1.0, seed=7)
    assert out.read_bytes() == METER_CSV.read_bytes()
