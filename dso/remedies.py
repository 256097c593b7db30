"""The DSO's own remedies (I-11): OLTC tap positions and switching the grid's open tie points.

The search space is exactly the scenario's :class:`~flexledger.scenario.RemedySpace`: each tap
changer group (its transformers moved together) takes any position in its range, each tie switch
is either left as it is or closed together with the switches it opens. With ``keep_radial`` a
switching state that meshes the grid, or leaves a bus unsupplied that was supplied, is dropped
before any power flow.

Every candidate configuration is assessed with one batched power flow over the MTUs that have a
violation (the others need no remedy). Per MTU the DSO takes the candidate that leaves the fewest
violations (then the least total excess, then the fewest operations), but only one that creates
no violation that was not there and worsens none by more than a tolerance: a remedy that removes
some violations and creates others is not taken. Exhaustive when the space is small (``≤
max_exhaustive`` configurations, each one power flow). A larger space is still searched point by
point, but *screened*: per tie state, a power flow at the base taps and one per tap group one
step away give each bus's voltage ratio per step, every tap combination is predicted from them,
and only the best ``top_k`` predicted points of each MTU are verified with full power flows
(the choice is made on the verified ones only). On the default scenario (380 points) this
finds what the exhaustive search finds, in a tenth of the time.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dso.model import DsoGrid
from dso.violations import ViolationMap, excess_map, violation_map
from flexledger.messages import GridConfiguration, Violation
from flexledger.powerflow import BatchResult, GridConfig, Injections, is_radial, unsupplied_buses
from flexledger.time import MTU_S

__all__ = ["RemedyBlock", "RemedyOption", "RemedyPlan", "remedy_options", "search_remedies"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RemedyOption:
    """One point of the remedy space.

    ``taps``: position per tap-changer group of the space (in its order); ``ties``: per tie switch
    of the space, whether it is operated (its ``close`` switch closed, its ``opens`` opened);
    ``config``: the resulting :class:`GridConfig` on top of the base; ``operations``: tap steps
    moved plus switches operated, relative to the base.
    """

    taps: tuple[int, ...]
    ties: tuple[bool, ...]
    config: GridConfig
    operations: int

    @property
    def is_base(self) -> bool:
        return self.operations == 0


@dataclass(frozen=True)
class RemedyBlock:
    """Contiguous MTUs under one remedy, and the I-11 message that reports it."""

    mtu_start_s: int
    mtu_count: int
    option: RemedyOption
    configuration: GridConfiguration


@dataclass
class RemedyPlan:
    """What the remedy search chose per MTU and what it achieved.

    ``options[0]`` is the base (no remedy); ``choice[t]`` indexes ``options`` per MTU of the
    assessment; ``vm_pu`` / ``line_loading_percent`` / ``trafo_loading_percent`` /
    ``converged`` hold the power flow of every MTU under its chosen option; ``evaluated`` counts
    the batched power flows the search ran (screening included).
    """

    options: list[RemedyOption]
    choice: NDArray[np.int64]
    mode: str
    evaluated: int
    vm_pu: NDArray[np.float64]
    line_loading_percent: NDArray[np.float64]
    trafo_loading_percent: NDArray[np.float64]
    converged: NDArray[np.bool_]
    blocks: list[RemedyBlock] = field(default_factory=list)

    def config_of(self, mtu: int) -> GridConfig:
        """The configuration of one MTU (position in the assessment)."""
        return self.options[int(self.choice[mtu])].config

    @property
    def configurations(self) -> list[GridConfiguration]:
        """The I-11 messages, one per block of MTUs under a remedy."""
        return [b.configuration for b in self.blocks]


@dataclass(frozen=True)
class _Space:
    changers: list[tuple[list[int], list[int], int]]  # trafos, positions, base position
    ties: list[tuple[int, list[int]]]  # close, opens


def _space(grid: DsoGrid, base: GridConfig) -> _Space:
    space = grid.remedy_space
    base_taps = {
        int(t): int(p)
        for t, p in zip(grid.net.trafo.index, grid.net.trafo.tap_pos.fillna(0), strict=True)
    }
    base_taps.update(base.taps)
    changers = []
    for k, spec in enumerate(space.tap_changers):
        for t in spec.trafos:
            if t not in grid.net.trafo.index:
                raise ValueError(f"remedies.tap_changers.{k}: trafo {t} is not in the grid")
        start = base_taps[spec.trafos[0]]
        positions = sorted(set(range(spec.tap_min, spec.tap_max + 1)) | {start})
        changers.append((list(spec.trafos), positions, start))
    ties = []
    for k, tie in enumerate(space.tie_switches):
        for s in [tie.close, *tie.opens]:
            if s not in grid.net.switch.index:
                raise ValueError(f"remedies.tie_switches.{k}: switch {s} is not in the grid")
        ties.append((tie.close, list(tie.opens)))
    return _Space(changers, ties)


def _option(
    space: _Space, base: GridConfig, taps: tuple[int, ...], ties: tuple[bool, ...]
) -> RemedyOption:
    tap_map: dict[int, int] = {}
    ops = 0
    for (trafos, _, start), pos in zip(space.changers, taps, strict=True):
        ops += abs(pos - start)
        if pos != start:
            tap_map.update({t: pos for t in trafos})
    sw: dict[int, bool] = {}
    for (close, opens), on in zip(space.ties, ties, strict=True):
        if on:
            sw[close] = True
            sw.update({s: False for s in opens})
            ops += 1 + len(opens)
    config = base.with_taps(tap_map).with_switches(sw) if (tap_map or sw) else base
    return RemedyOption(taps, ties, config, ops)


def remedy_options(grid: DsoGrid, base: GridConfig | None = None) -> list[RemedyOption]:
    """Every configuration of the remedy space (base first); with ``keep_radial``, only those
    whose switching keeps the grid radial and every supplied bus supplied."""
    base = base if base is not None else grid.base_config()
    space = _space(grid, base)
    tie_states = _valid_tie_states(grid, space, base)
    start = tuple(c[2] for c in space.changers)
    options = [_option(space, base, start, tuple(False for _ in space.ties))]
    for taps in itertools.product(*(c[1] for c in space.changers)):
        for ties in tie_states:
            opt = _option(space, base, tuple(taps), ties)
            if not opt.is_base:
                options.append(opt)
    return options


def _valid_tie_states(grid: DsoGrid, space: _Space, base: GridConfig) -> list[tuple[bool, ...]]:
    states = list(itertools.product((False, True), repeat=len(space.ties)))
    if not grid.remedy_space.keep_radial or not space.ties:
        return states
    base_unsupplied = unsupplied_buses(grid.net, base)
    ok = []
    for state in states:
        opt = _option(space, base, tuple(c[2] for c in space.changers), state)
        switches = {**base.switches, **opt.config.switches}
        radial = not any(state) or (
            is_radial(grid.net, switches)
            and unsupplied_buses(grid.net, switches) <= base_unsupplied
        )
        if radial:
            ok.append(state)
        else:
            log.info("tie switching %s dropped: not radial or leaves buses unsupplied", state)
    return ok


def _screen(
    grid: DsoGrid,
    run: Callable[[RemedyOption], BatchResult],
    base: ViolationMap,
    space: _Space,
    base_config: GridConfig,
    tie_states: list[tuple[bool, ...]],
    top_k: int,
) -> list[RemedyOption]:
    """Every point of a large remedy space, screened with a tap model; the best ``top_k``
    candidates per MTU returned for full power flows.

    One power flow per tap-changer group one step away from the base gives, per MTU and bus, the
    voltage ratio of one step (exact for an ideal transformer, and downstream buses only: the
    others do not move); one power flow per tie state gives its voltages at the base taps. Every
    tap combination is then predicted as the base voltages times the ratios to the power of the
    steps (branch loadings divided by the same factor at their sending end: constant-power loads
    draw more current at lower voltage), and judged by the same rule as the power flows:
    acceptable, fewest violations, least excess, fewest operations.
    """
    start = tuple(c[2] for c in space.changers)
    base_score = base.score()
    line_from = grid.pf.bus_positions(grid.net.line.from_bus.to_numpy())
    trafo_lv = grid.pf.bus_positions(grid.net.trafo.lv_bus.to_numpy())
    ranked: list[tuple[RemedyOption, NDArray[np.float64]]] = []
    # a tap step's voltage ratio hardly depends on which tie is operated: measured once, at the
    # base switching state (the tie states get one power flow each)
    no_ties = tuple(False for _ in space.ties)
    vm_base = run(_option(space, base_config, start, no_ties)).vm_pu
    ratios = []
    for k, (_, positions, st) in enumerate(space.changers):
        step = 1 if st + 1 in positions else -1
        taps = tuple(st + step if j == k else t for j, t in enumerate(start))
        moved = run(_option(space, base_config, taps, no_ties))
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.nan_to_num(moved.vm_pu / vm_base, nan=1.0, posinf=1.0, neginf=1.0)
        ratios.append(r if step == 1 else 1.0 / r)
    for ties in tie_states:
        ref = run(_option(space, base_config, start, ties))
        vm0 = ref.vm_pu
        for taps in itertools.product(*(c[1] for c in space.changers)):
            opt = _option(space, base_config, tuple(taps), ties)
            if opt.is_base:
                continue
            f = np.ones_like(vm0)
            for r, t, st in zip(ratios, taps, start, strict=True):
                if t != st:
                    f = f * r ** (t - st)
            vmap = excess_map(
                vm0 * f,
                ref.line_loading_percent / f[:, line_from],
                ref.trafo_loading_percent / f[:, trafo_lv],
                ref.converged,
                grid.limits,
                grid.monitored,
            )
            score = vmap.score()
            ok = ~vmap.new_or_worse(base) & (score < base_score)
            ranked.append((opt, np.where(ok, score, np.inf)))
    if not ranked:
        return []
    scores = np.stack([sc for _, sc in ranked])  # [option, mtu]
    ops = np.array([opt.operations for opt, _ in ranked], dtype=np.float64)
    chosen: dict[tuple[tuple[int, ...], tuple[bool, ...]], RemedyOption] = {}
    for t in range(scores.shape[1]):
        order = np.lexsort((ops, scores[:, t]))
        for i in order[:top_k]:
            if np.isfinite(scores[i, t]):
                opt = ranked[int(i)][0]
                chosen[(opt.taps, opt.ties)] = opt
    log.info("remedy screening: %d points, %d candidates to verify", len(ranked), len(chosen))
    return sorted(chosen.values(), key=lambda o: (o.operations, o.taps, o.ties))


def search_remedies(
    grid: DsoGrid,
    injections: Injections,
    base_map: ViolationMap,
    base_arrays: tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]],
    mtu_start_s: NDArray[np.int64],
    *,
    base_config: GridConfig | None = None,
    max_exhaustive: int = 64,
    top_k: int = 2,
) -> RemedyPlan:
    """Search the remedy space for the MTUs that have violations (see the module docstring).

    Args:
        grid: the DSO's grid.
        injections: the assessed scenarios (one per MTU).
        base_map: violations of every MTU without remedies.
        base_arrays: ``(vm_pu, line_loading_percent, trafo_loading_percent)`` without remedies.
        mtu_start_s: start of every MTU, seconds.
        base_config: the configuration "no remedy" stands for (default: the net's own).
        max_exhaustive: largest number of configurations verified exhaustively.
        top_k: in a screened search, candidates verified per MTU.

    Returns:
        The :class:`RemedyPlan`: choice per MTU, the resulting power flows, the I-11 blocks.
    """
    base_config = base_config if base_config is not None else grid.base_config()
    vm, line, trafo = (a.copy() for a in base_arrays)
    converged = base_map.converged.copy()
    n = base_map.n_scenarios
    need = np.flatnonzero(base_map.any())
    space = _space(grid, base_config)
    start = tuple(c[2] for c in space.changers)
    base_opt = _option(space, base_config, start, tuple(False for _ in space.ties))
    options = [base_opt]
    choice = np.zeros(n, dtype=np.int64)
    size = int(np.prod([len(c[1]) for c in space.changers])) * 2 ** len(space.ties)
    mode = "exhaustive" if size <= max_exhaustive else "screened"
    if need.size == 0 or size <= 1:
        plan = RemedyPlan(options, choice, mode, 0, vm, line, trafo, converged)
        return plan

    sub_inj = injections.select(need)
    sub_base = base_map.take(need)
    base_score = sub_base.score()
    best_score = base_score.copy()
    best_ops = np.zeros(len(need), dtype=np.int64)
    results: dict[int, tuple[Any, Any, Any, Any]] = {}
    cache: dict[tuple[tuple[int, ...], tuple[bool, ...]], NDArray[np.float64]] = {}
    flows: dict[tuple[tuple[int, ...], tuple[bool, ...]], BatchResult] = {}

    def run(opt: RemedyOption) -> BatchResult:
        """The power flow of the violated MTUs under ``opt`` (once per option)."""
        key = (opt.taps, opt.ties)
        if key not in flows:
            flows[key] = grid.pf.run(sub_inj, config=opt.config)
        return flows[key]

    def evaluate(opt: RemedyOption) -> NDArray[np.float64]:
        """Per-MTU score of ``opt`` where acceptable, the base score elsewhere."""
        key = (opt.taps, opt.ties)
        if key in cache:
            return cache[key]
        if opt.is_base:
            cache[key] = base_score
            return base_score
        res = run(opt)
        vmap = violation_map(res, grid.limits, grid.monitored)
        score = vmap.score()
        ok = ~vmap.new_or_worse(sub_base) & (score < base_score)
        eff = np.where(ok, score, base_score)
        cache[key] = eff
        better = ok & (
            (score < best_score - 1e-12)
            | ((np.abs(score - best_score) <= 1e-12) & (opt.operations < best_ops))
        )
        if better.any():
            idx = len(options)
            options.append(opt)
            results[idx] = (
                res.vm_pu,
                res.line_loading_percent,
                res.trafo_loading_percent,
                res.converged,
            )
            rows = np.flatnonzero(better)
            choice[need[rows]] = idx
            best_score[rows] = score[rows]
            best_ops[rows] = opt.operations
        return eff

    if mode == "exhaustive":
        tie_states = _valid_tie_states(grid, space, base_config)
        for taps in itertools.product(*(c[1] for c in space.changers)):
            for ties in tie_states:
                evaluate(_option(space, base_config, tuple(taps), ties))
    else:
        tie_states = _valid_tie_states(grid, space, base_config)
        for opt in _screen(grid, run, sub_base, space, base_config, tie_states, top_k):
            evaluate(opt)

    for idx, (r_vm, r_line, r_trafo, r_conv) in results.items():
        rows = np.flatnonzero(choice[need] == idx)
        if rows.size:
            vm[need[rows]] = r_vm[rows]
            line[need[rows]] = r_line[rows]
            trafo[need[rows]] = r_trafo[rows]
            converged[need[rows]] = r_conv[rows]
    log.info(
        "remedy search (%s): %d configurations, %d power flows on %d MTUs, %d MTUs improved",
        mode,
        len(cache),
        len(flows),
        len(need),
        int((choice > 0).sum()),
    )
    return RemedyPlan(options, choice, mode, len(flows), vm, line, trafo, converged)


def describe_blocks(
    plan: RemedyPlan,
    day_s: int,
    mtu_start_s: NDArray[np.int64],
    before: list[Violation],
    after: list[Violation],
) -> list[RemedyBlock]:
    """Group the MTUs under the same remedy into blocks and write their I-11 messages."""
    blocks: list[RemedyBlock] = []
    by_mtu_before: dict[int, list[Violation]] = {}
    by_mtu_after: dict[int, list[Violation]] = {}
    for v in before:
        by_mtu_before.setdefault(v.mtu_start_s, []).append(v)
    for v in after:
        by_mtu_after.setdefault(v.mtu_start_s, []).append(v)
    n = len(plan.choice)
    t = 0
    while t < n:
        idx = int(plan.choice[t])
        end = t
        while (
            end + 1 < n
            and int(plan.choice[end + 1]) == idx
            and (mtu_start_s[end + 1] == mtu_start_s[end] + MTU_S)
        ):
            end += 1
        if idx != 0:
            opt = plan.options[idx]
            starts = [int(s) for s in mtu_start_s[t : end + 1]]
            solved, remaining = [], []
            for s in starts:
                after_keys = {(v.kind, v.element) for v in by_mtu_after.get(s, [])}
                solved += [
                    v for v in by_mtu_before.get(s, []) if (v.kind, v.element) not in after_keys
                ]
                remaining += by_mtu_after.get(s, [])
            closed = sorted(s for s, c in opt.config.switches.items() if c)
            opened = sorted(s for s, c in opt.config.switches.items() if not c)
            message = GridConfiguration(
                day_s=day_s,
                taps={f"trafo:{k}": v for k, v in sorted(opt.config.taps.items())},
                closed_switches=[f"switch:{s}" for s in closed],
                opened_switches=[f"switch:{s}" for s in opened],
                solved=solved,
                remaining=remaining,
            )
            blocks.append(RemedyBlock(starts[0], len(starts), opt, message))
        t = end + 1
    return blocks
