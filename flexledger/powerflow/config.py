"""A switching and tap configuration of a grid: what the DSO changes with its own remedies."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["GridConfig"]


class GridConfig:
    """Overrides of the pandapower net's transformer tap positions and switch states.

    ``taps`` maps a pandapower ``trafo`` index to a tap position (the ``tap_pos`` column);
    ``switches`` maps a pandapower ``switch`` index to its state (``True`` = closed). What a
    configuration does not name keeps the value in the net. Immutable and hashable, so it can be
    a cache key; two configurations are equal when they name the same overrides.

    Parallel transformers are not moved together here: that is the caller's policy (see
    :func:`flexledger.powerflow.parallel_trafo_groups`).
    """

    __slots__ = ("_switches", "_taps")

    def __init__(
        self,
        taps: Mapping[int, int] | None = None,
        switches: Mapping[int, bool] | None = None,
    ) -> None:
        tap_items: list[tuple[int, int]] = []
        for trafo, tap in (taps or {}).items():
            if isinstance(tap, bool) or int(tap) != tap:
                raise ValueError(f"tap of trafo {trafo} must be a whole number, not {tap!r}")
            tap_items.append((int(trafo), int(tap)))
        self._taps: tuple[tuple[int, int], ...] = tuple(sorted(tap_items))
        self._switches: tuple[tuple[int, bool], ...] = tuple(
            sorted((int(sw), bool(closed)) for sw, closed in (switches or {}).items())
        )

    @property
    def taps(self) -> dict[int, int]:
        """trafo index -> tap position."""
        return dict(self._taps)

    @property
    def switches(self) -> dict[int, bool]:
        """switch index -> closed."""
        return dict(self._switches)

    def with_taps(self, taps: Mapping[int, int]) -> GridConfig:
        """A copy with these tap positions added (or replaced)."""
        return GridConfig({**self.taps, **taps}, self.switches)

    def with_switches(self, switches: Mapping[int, bool]) -> GridConfig:
        """A copy with these switch states added (or replaced)."""
        return GridConfig(self.taps, {**self.switches, **switches})

    def _key(self) -> tuple[tuple[tuple[int, int], ...], tuple[tuple[int, bool], ...]]:
        return self._taps, self._switches

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GridConfig) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"GridConfig(taps={self.taps!r}, switches={self.switches!r})"

    def __bool__(self) -> bool:
        return bool(self._taps or self._switches)
