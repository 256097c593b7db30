"""History: weeks of quarterly measures per POD before the delivery day (I-01, bulk import).

Each history day replays the SimBench profiles of the day as many days before ``profile_day``
(with the scenario's grid changes), plus the devices' own behaviour that day (EVs arrive at
other times, the weather differs: :func:`sim.pods.own_baselines_mtu_w`), with the day-to-day
variation of a real meter reading (``noise.sample_pct`` percent per MTU, seeded). No
activation ever happened on those days. The DSO's and the aggregators' forecasts learn from
them; the BRP builds its baseline from them.

The DSO (as meter operator) uploads them to the SCD as signed ``MeasureHistory`` messages
(``POST /measures/history``): :func:`history_messages`, :func:`upload_history`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from flexledger.messages import MeasureHistory, QuarterlyMeasure
from flexledger.time import DAY_S, MTU_S, MTUS_PER_DAY, SAMPLES_PER_MTU
from sim.pods import element_power_w, own_baselines_mtu_w
from sim.rng import Stream, rng

if TYPE_CHECKING:
    from flexledger.transport import SignedHttpClient
    from sim.world import World

__all__ = ["history_energy_wh", "history_messages", "history_values", "upload_history"]

log = logging.getLogger(__name__)


def history_energy_wh(world: World) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """``(mtu_start_s [day·96], e_wh [pod, day·96])``: every POD's energy per MTU over the
    ``history_days`` before the delivery day, oldest first (Wh, load convention)."""
    scenario = world.scenario
    days = scenario.history_days
    if days == 0:
        return np.zeros(0, dtype=np.int64), np.zeros((len(world.pods), 0), dtype=np.int64)
    powers = world.grid.powers(-days, n_days=days)
    pct = scenario.noise.sample_pct / 100
    energy = np.zeros((len(world.pods), days * MTUS_PER_DAY))
    for d in range(days):
        offset = d - days
        rows = slice(d * MTUS_PER_DAY, (d + 1) * MTUS_PER_DAY)
        own = own_baselines_mtu_w(scenario, world.pods, offset)
        day_powers = powers.select(rows)
        for p, pod in enumerate(world.pods):
            watts = element_power_w(day_powers, pod.elements) + own[p]
            noise = rng(scenario.seed, Stream.HISTORY, pod.index, offset).normal(
                0.0, pct, MTUS_PER_DAY
            )
            energy[p, rows] = watts * (1.0 + noise) * MTU_S / 3600
    starts = world.day_s - days * DAY_S + np.arange(days * MTUS_PER_DAY, dtype=np.int64) * MTU_S
    return starts, np.rint(energy).astype(np.int64)


def history_values(world: World) -> list[QuarterlyMeasure]:
    """The history as I-01 quarterly measures (``source = "history"``, not certified: no Light
    Node measured them), by POD then MTU."""
    starts, energy = history_energy_wh(world)
    out = []
    start_list = starts.tolist()
    for p, pod in enumerate(world.pods):
        for t, e in zip(start_list, energy[p].tolist(), strict=True):
            out.append(
                QuarterlyMeasure.model_construct(
                    pod=pod.code,
                    mtu_start_s=t,
                    e_wh=e,
                    sample_count=SAMPLES_PER_MTU,
                    certified=False,
                    source="history",
                )
            )
    return out


def history_messages(
    world: World, uploader: str, *, nonce: int = 1, chunk: int = 50_000
) -> list[MeasureHistory]:
    """The history as ``MeasureHistory`` messages of at most ``chunk`` values (unsigned; the
    uploader signs), nonces ``nonce``, ``nonce + 1``, …"""
    values = history_values(world)
    return [
        MeasureHistory(uploader=uploader, values=values[i : i + chunk], nonce=nonce + k)
        for k, i in enumerate(range(0, len(values), chunk))
    ]


async def upload_history(
    world: World, scd: SignedHttpClient, *, nonce: int = 1, chunk: int = 50_000
) -> list[Any]:
    """Sign (with ``scd``'s signer, the DSO) and ``POST /measures/history`` every chunk; the
    SCD's receipts."""
    if scd.signer is None:
        raise ValueError("the SCD client needs the uploader's signer (the DSO)")
    receipts = []
    for message in history_messages(world, scd.signer.address, nonce=nonce, chunk=chunk):
        receipts.append(await scd.post_signed("/measures/history", message))
        log.info("history: %d values uploaded (nonce %d)", len(message.values), message.nonce)
    return receipts
