"""The violation table and the voltage heatmap (bus × MTU, before and after own remedies)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dso.assessment import GridAssessment
from flexledger.time import from_s

__all__ = ["ViolationRow", "violation_rows", "write_heatmap"]


@dataclass
class ViolationRow:
    """One violated element over the day: first and last MTU (HH:MM UTC), MTUs violated, worst
    value and excess (p.u. for voltages, percent and percentage points for loadings)."""

    kind: str
    element: str
    first: str
    last: str
    mtus: int
    worst_value: float
    worst_excess: float


def violation_rows(
    assessment: GridAssessment, *, after_remedies: bool = False
) -> list[ViolationRow]:
    """The violation table: one row per violated element, worst first."""
    rows: dict[tuple[str, str], ViolationRow] = {}
    for v in assessment.after if after_remedies else assessment.before:
        t = (v.mtu_start_s - assessment.day_s) // 60
        hhmm = f"{t // 60:02d}:{t % 60:02d}"
        row = rows.get((v.kind, v.element))
        if row is None:
            rows[(v.kind, v.element)] = ViolationRow(
                v.kind, v.element, hhmm, hhmm, 1, v.value, v.excess
            )
            continue
        row.last = hhmm
        row.mtus += 1
        if v.excess > row.worst_excess:
            row.worst_value, row.worst_excess = v.value, v.excess
    return sorted(rows.values(), key=lambda r: (-r.worst_excess, r.element))


def write_heatmap(assessment: GridAssessment, path: str | Path) -> Path:
    """Write a PNG: bus voltage (p.u.) per bus and MTU, before and after the own remedies, with
    the limits marked (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import TwoSlopeNorm

    lo, hi = assessment.limits["vm_min_pu"], assessment.limits["vm_max_pu"]
    before, after = assessment.vm_before_pu, assessment.vm_after_pu
    order = np.argsort(-np.nan_to_num(np.nanmax(before, axis=0), nan=0.0))
    vmin = float(min(np.nanmin(before), np.nanmin(after), lo - 0.01))
    vmax = float(max(np.nanmax(before), np.nanmax(after), hi + 0.01))
    norm = TwoSlopeNorm(vmin=vmin, vcenter=1.0, vmax=vmax) if vmin < 1.0 < vmax else None
    fig, axes = plt.subplots(1, 2, figsize=(13, 6), sharey=True, constrained_layout=True)
    hours = (assessment.mtu_start_s - assessment.mtu_start_s[0]) / 3600
    image = None
    for ax, data, title in (
        (axes[0], before, "before own remedies"),
        (axes[1], after, "after own remedies"),
    ):
        image = ax.imshow(
            data[:, order].T,
            aspect="auto",
            cmap="RdBu_r",
            norm=norm,
            extent=(float(hours[0]), float(hours[-1]) + 0.25, len(order), 0),
            interpolation="nearest",
        )
        outside = (hi < data[:, order].T) | (lo > data[:, order].T)
        ax.contour(
            np.linspace(float(hours[0]), float(hours[-1]) + 0.25, data.shape[0]),
            np.arange(len(order)) + 0.5,
            outside.astype(float),
            levels=[0.5],
            colors="k",
            linewidths=0.6,
        )
        n = int(outside.sum())
        ax.set_title(f"{title}: {n} bus-MTUs outside {lo:.2f}–{hi:.2f} p.u.")
        ax.set_xlabel("hour of the day (UTC)")
    axes[0].set_ylabel("bus (sorted by highest voltage)")
    step = max(1, len(order) // 20)
    axes[0].set_yticks(np.arange(0, len(order), step) + 0.5)
    axes[0].set_yticklabels([str(int(assessment.bus_index[i])) for i in order[::step]], fontsize=7)
    assert image is not None
    fig.colorbar(image, ax=axes, label="vm_pu", shrink=0.8)
    day = from_s(assessment.day_s).date().isoformat()
    fig.suptitle(f"Voltage per bus and MTU, {assessment.horizon.replace('_', ' ')}, {day}")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
