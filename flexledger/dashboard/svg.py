"""Charts drawn on the server as inline SVG (no charting library in the browser): the voltage
heatmap, step and bar charts. Every function returns an ``<svg>`` string."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

__all__ = ["bars", "heatmap", "merit_order", "vm_colour"]

_W = 760  # drawing width in px: a laptop screen holds it beside nothing else


def vm_colour(vm: float | None, lo: float, hi: float) -> str:
    """Blue below 1 p.u., white at 1, red above; saturated at the limits."""
    if vm is None:
        return "#bbbbbb"
    if vm >= 1.0:
        x = min(1.0, (vm - 1.0) / max(hi - 1.0, 1e-6))
        g = int(255 - 200 * x)
        return f"#ff{g:02x}{g:02x}"
    x = min(1.0, (1.0 - vm) / max(1.0 - lo, 1e-6))
    g = int(255 - 200 * x)
    return f"#{g:02x}{g:02x}ff"


def heatmap(
    vm: Sequence[Sequence[float | None]],
    rows: Sequence[str],
    *,
    lo: float,
    hi: float,
    marks: set[tuple[int, int]] | None = None,
    title: str = "",
    hours0: float = 0.0,
    row_links: dict[int, str] | None = None,
) -> str:
    """``vm[mtu][row]`` as a heatmap, rows (buses) down, MTUs across; ``marks`` (mtu, row)
    cells outlined (violations). Runs of equal colour are merged into one rect."""
    n_mtu = len(vm)
    n_row = len(rows)
    if n_mtu == 0 or n_row == 0:
        return "<p class='empty'>no voltages</p>"
    left, top = 64, 18
    cw = (_W - left - 8) / n_mtu
    rh = max(4.0, min(12.0, 420 / n_row))
    h = top + rh * n_row + 22
    out = [
        f"<svg class='chart heat' viewBox='0 0 {_W} {h:.0f}' width='{_W}' height='{h:.0f}' "
        f"role='img' aria-label='{escape(title)}'>",
        f"<text x='{left}' y='12' class='t'>{escape(title)}</text>",
    ]
    for j, label in enumerate(rows):
        y = top + j * rh
        text = f"<text x='{left - 4}' y='{y + rh - 1:.1f}' class='l' text-anchor='end'>"
        text += f"{escape(label)}</text>"
        if row_links and j in row_links:
            text = f"<a href='{escape(row_links[j])}'>{text}</a>"
        if rh >= 7 or j % max(1, int(8 / rh)) == 0:
            out.append(text)
        k = 0
        while k < n_mtu:
            c = vm_colour(_q(vm[k][j]), lo, hi)
            k2 = k + 1
            while k2 < n_mtu and vm_colour(_q(vm[k2][j]), lo, hi) == c:
                k2 += 1
            out.append(
                f"<rect x='{left + k * cw:.1f}' y='{y:.1f}' width='{(k2 - k) * cw + 0.3:.1f}' "
                f"height='{rh:.1f}' fill='{c}'/>"
            )
            k = k2
    for k, j in sorted(marks or ()):
        if 0 <= k < n_mtu and 0 <= j < n_row:
            out.append(
                f"<rect class='viol' x='{left + k * cw:.1f}' y='{top + j * rh:.1f}' "
                f"width='{cw:.1f}' height='{rh:.1f}'><title>{escape(rows[j])} "
                f"MTU {k}: {vm[k][j]}</title></rect>"
            )
    for hour in range(0, 25, 3):
        x = left + (hour * 4 - hours0 * 4) * cw
        if left <= x <= _W:
            out.append(f"<text x='{x:.1f}' y='{h - 6:.0f}' class='l'>{hour:02d}h</text>")
    out.append("</svg>")
    return "".join(out)


def _q(v: float | None) -> float | None:
    """Voltages quantised to 0.0025 p.u. so that runs merge."""
    return None if v is None else round(v / 0.0025) * 0.0025


def bars(
    series: Sequence[tuple[str, str, Sequence[float], str]],
    *,
    title: str,
    unit: str,
    labels: Sequence[str] | None = None,
    height: int = 200,
) -> str:
    """Grouped series over the same x: each ``(name, colour, values, kind)`` with kind ``bar``
    or ``step``. ``labels``: x tick labels (every n-th shown)."""
    n = max((len(s[2]) for s in series), default=0)
    if n == 0:
        return "<p class='empty'>nothing to show</p>"
    vmax = max((abs(v) for s in series for v in s[2]), default=0.0) or 1.0
    vmin = min((v for s in series for v in s[2]), default=0.0)
    neg = vmin < 0
    left, top, bottom = 64, 34, 24  # the legend goes on its own line under the title
    ph = height - top - bottom
    zero = top + (ph / 2 if neg else ph)
    scale = (ph / 2 if neg else ph) / vmax
    cw = (_W - left - 8) / n
    nb = sum(1 for s in series if s[3] == "bar") or 1
    out = [
        f"<svg class='chart' viewBox='0 0 {_W} {height}' width='{_W}' height='{height}' "
        f"role='img' aria-label='{escape(title)}'>",
        f"<text x='{left}' y='12' class='t'>{escape(title)}</text>",
        f"<line x1='{left}' x2='{_W - 8}' y1='{zero:.1f}' y2='{zero:.1f}' class='ax'/>",
        f"<text x='{left - 4}' y='{top + 8}' class='l' text-anchor='end'>{_num(vmax)}</text>",
        f"<text x='{left - 4}' y='{zero:.1f}' class='l' text-anchor='end'>0 {escape(unit)}</text>",
    ]
    b = 0
    legend_x = float(left)
    for name, colour, values, kind in series:
        if kind == "bar":
            bw = cw / nb
            for i, v in enumerate(values):
                if v == 0:
                    continue
                y = zero - max(v, 0) * scale
                out.append(
                    f"<rect x='{left + i * cw + b * bw:.1f}' y='{y:.1f}' "
                    f"width='{max(bw - 0.5, 0.6):.1f}' "
                    f"height='{abs(v) * scale:.1f}' fill='{colour}'><title>{escape(name)} "
                    f"{_lab(labels, i)}: {v:.4g} {escape(unit)}</title></rect>"
                )
            b += 1
        else:
            pts = []
            for i, v in enumerate(values):
                y = zero - v * scale
                pts += [f"{left + i * cw:.1f},{y:.1f}", f"{left + (i + 1) * cw:.1f},{y:.1f}"]
            out.append(
                f"<polyline points='{' '.join(pts)}' fill='none' stroke='{colour}' "
                "stroke-width='1.6'/>"
            )
        out.append(
            f"<rect x='{legend_x:.0f}' y='17' width='10' height='10' fill='{colour}'/>"
            f"<text x='{legend_x + 13:.0f}' y='26' class='l'>{escape(name)}</text>"
        )
        legend_x += 20 + 6 * len(name)
    if labels:
        step = max(1, len(labels) // 8)
        for i in range(0, len(labels), step):
            out.append(
                f"<text x='{left + i * cw:.1f}' y='{height - 6}' class='l'>"
                f"{escape(labels[i])}</text>"
            )
    out.append("</svg>")
    return "".join(out)


def _num(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"


def _lab(labels: Sequence[str] | None, i: int) -> str:
    return labels[i] if labels and i < len(labels) else str(i)


def merit_order(
    offers: Sequence[tuple[float, float, bool]], *, title: str, height: int = 180
) -> str:
    """Offers as ``(price EUR/MWh, kW, awarded)`` sorted by price: width kW, height price;
    awarded offers dark."""
    rows = sorted(offers)
    if not rows:
        return "<p class='empty'>no offers</p>"
    total = sum(kw for _, kw, _ in rows) or 1.0
    pmax = max(p for p, _, _ in rows) or 1.0
    left, top, bottom = 56, 20, 24
    ph = height - top - bottom
    sx = (_W - left - 8) / total
    out = [
        f"<svg class='chart' viewBox='0 0 {_W} {height}' width='{_W}' height='{height}' "
        f"role='img' aria-label='{escape(title)}'>",
        f"<text x='{left}' y='12' class='t'>{escape(title)}</text>",
        f"<text x='{left - 4}' y='{top + 8}' class='l' text-anchor='end'>{pmax:.0f} €/MWh</text>",
        f"<text x='{_W - 8}' y='{height - 6}' class='l' text-anchor='end'>{total:.0f} kW</text>",
    ]
    x = float(left)
    for price, kw, awarded in rows:
        hgt = price / pmax * ph
        cls = "aw" if awarded else "of"
        out.append(
            f"<rect class='{cls}' x='{x:.1f}' y='{top + ph - hgt:.1f}' "
            f"width='{max(kw * sx, 0.8):.1f}' "
            f"height='{hgt:.1f}'><title>{price:.2f} EUR/MWh, {kw:.1f} kW"
            f"{', awarded' if awarded else ''}</title></rect>"
        )
        x += kw * sx
    out.append("</svg>")
    return "".join(out)
