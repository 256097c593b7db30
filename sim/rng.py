"""Random streams of the world, one per purpose and subject, all from the scenario's seed.

A stream depends only on (seed, purpose, subject, day), never on the order in which the world
asks for it, so the same scenario file gives the same day bit for bit, whatever runs first.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

__all__ = ["Stream", "rng"]


class Stream(IntEnum):
    """What a random stream is for."""

    SAMPLE_P = 1
    SAMPLE_Q = 2
    SAMPLE_V = 3
    EV = 4
    HISTORY = 5
    BEHAVIOUR = 6
    SENSOR = 7
    BRP = 8
    WEATHER = 9


def rng(seed: int, stream: Stream, subject: int = 0, day_offset: int = 0) -> np.random.Generator:
    """The generator of one stream: ``subject`` is a POD, sensor or device number, ``day_offset``
    the day relative to the delivery day (0; history days are negative)."""
    # SeedSequence wants non-negative entries: fold the signed day into an unsigned one.
    day = day_offset + 1_000_000
    return np.random.Generator(
        np.random.PCG64(np.random.SeedSequence([seed & 0xFFFFFFFF, int(stream), subject, day]))
    )
