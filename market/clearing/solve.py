"""Solving a ``LinearModel``: HiGHS through highspy (the default) or through CVXPY.

Why two paths: CVXPY is the project's modelling layer, and it solves the same model with the
same HiGHS; but its HiGHS interface cannot take a MIP start from outside (its ``warm_start``
only reuses its own previous solve), and re-canonicalising an already sparse standard-form
model adds time. The clearing therefore calls highspy directly for the MILP — MIP start,
node limit, deterministic options — and keeps the CVXPY path for the LP and as a reference
(``bench/clearing.py --cvxpy`` measures both).

Why the MILP is decomposed (``solve_decomposed``): a stage's model falls apart into many
independent blocks — MTUs never interact, and requests interact only through offers they
share. HiGHS does not split a model into blocks itself, and its root-node heuristics on the
whole day (40k columns, 9k binaries) took 7–28 s on the benchmark book; the same model
solved block by block takes under 2 s with the same answer. So: the LP relaxation of the
whole stage is solved once; a block whose binaries come out integral is optimal as it is (its
LP bound is attained); every other block is solved as its own small MILP, from the greedy
solution restricted to it, with the node limit per block. The stage's bound is the sum of the
blocks' bounds, so the reported gap stays a proven one.

A HiGHS 1.16 defect shapes one option: with presolve on, a MIP start can be mapped into the
presolved space with a wrong objective, and HiGHS then returns the start itself as "optimal"
with an objective it does not have (seen on a 28-column block). The blocks are therefore solved
with presolve off (they are small), and every MILP result is checked: the objective of the
returned point must be the one HiGHS reports.

Determinism: one thread, a fixed random seed, and a node limit (``mip_max_nodes``) instead of
a time limit, so the result does not depend on the machine's load.
"""

from __future__ import annotations

import ctypes
import dataclasses
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from market.clearing.errors import SolverFailedError
from market.clearing.model import LinearModel

__all__ = [
    "HighsOptions",
    "Solution",
    "components",
    "highs_version",
    "new_highs",
    "solve_cvxpy",
    "solve_decomposed",
    "solve_highs",
]

FloatArray = npt.NDArray[np.float64]

_OK_STATUSES = {
    "kOptimal",
    "kSolutionLimit",
    "kIterationLimit",
    "kTimeLimit",
    "kInterrupt",
    "kObjectiveBound",
    "kObjectiveTarget",
}
log = logging.getLogger(__name__)
_banner_lock = threading.Lock()
_banner_done = False


@dataclass(frozen=True)
class HighsOptions:
    """The solver options that shape the result; all of them are recorded with it.

    Feasibility jump is off: on small MILPs its set-up dominated the solve (about 8 ms of
    11 ms per block) and it never found a better point than the MIP start there.
    """

    mip_max_nodes: int = 1000
    mip_rel_gap: float = 1e-6
    random_seed: int = 0
    threads: int = 1
    presolve: str = "on"
    feasibility_jump: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "mip_max_nodes": self.mip_max_nodes,
            "mip_rel_gap": self.mip_rel_gap,
            "random_seed": self.random_seed,
            "threads": self.threads,
            "presolve": self.presolve,
            "mip_heuristic_run_feasibility_jump": self.feasibility_jump,
        }


@dataclass
class Solution:
    x: FloatArray
    objective_eur: float
    status: str
    mip_gap: float
    mip_dual_bound_eur: float
    node_count: int
    row_dual: FloatArray | None
    solve_s: float


def new_highs(options: HighsOptions | None = None) -> Any:
    """A silent ``highspy.Highs``.

    HiGHS prints its banner on stdout when the first instance of the process is created,
    before any option can be set; the C-level stdout is pointed at /dev/null for that one
    construction (and C stdio flushed before it is restored).
    """
    import highspy

    global _banner_done
    with _banner_lock:
        if not _banner_done:
            sys.stdout.flush()
            saved = os.dup(1)
            devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(devnull, 1)
                h = highspy.Highs()
                _flush_c_stdout()
            finally:
                os.dup2(saved, 1)
                os.close(saved)
                os.close(devnull)
            _banner_done = True
        else:
            h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("log_to_console", False)
    if options is not None:
        for name, value in options.as_dict().items():
            h.setOptionValue(name, value)
    return h


def _flush_c_stdout() -> None:
    try:
        libc = ctypes.CDLL(None)
        libc.fflush(None)
    except (OSError, AttributeError):  # pragma: no cover - not a POSIX libc
        pass


def highs_version() -> str:
    h = new_highs()
    return f"HiGHS {h.version()}"


def solve_highs(
    model: LinearModel,
    options: HighsOptions,
    *,
    start: FloatArray | None = None,
    duals: bool = False,
) -> Solution:
    """Solve with highspy. ``start`` is a feasible point handed to HiGHS as the MIP start;
    ``duals`` asks for row duals (meaningful for an LP only).

    A result whose point does not have the objective HiGHS reports (the start-mapping defect,
    module docstring) is solved again without the start; if that fails too, the solve fails.
    """
    t0 = time.perf_counter()
    if model.n_cols == 0:
        return Solution(np.zeros(0), 0.0, "kModelEmpty", 0.0, 0.0, 0, np.zeros(model.n_rows), 0.0)
    try:
        sol = _run_highs(model, options, start, duals)
    except _ObjectiveMismatch as exc:
        if start is None:
            raise SolverFailedError(str(exc)) from exc
        log.warning("%s; solving again without the MIP start", exc)
        try:
            sol = _run_highs(model, options, None, duals)
        except _ObjectiveMismatch as again:
            raise SolverFailedError(str(again)) from again
    sol.solve_s = time.perf_counter() - t0
    return sol


class _ObjectiveMismatch(Exception):
    pass


def _run_highs(
    model: LinearModel, options: HighsOptions, start: FloatArray | None, duals: bool
) -> Solution:
    import highspy

    h = new_highs(options)
    a = model.a.tocsc()
    integrality = model.integer.astype(np.int32)  # 0 continuous, 1 integer (HighsVarType)
    status = h.passModel(
        model.n_cols,
        model.n_rows,
        int(a.nnz),
        int(highspy.MatrixFormat.kColwise),
        int(highspy.ObjSense.kMinimize),
        0.0,
        np.ascontiguousarray(model.c, dtype=np.float64),
        np.ascontiguousarray(model.lb, dtype=np.float64),
        np.ascontiguousarray(model.ub, dtype=np.float64),
        np.ascontiguousarray(model.row_lo, dtype=np.float64),
        np.ascontiguousarray(model.row_hi, dtype=np.float64),
        np.ascontiguousarray(a.indptr, dtype=np.int32),
        np.ascontiguousarray(a.indices, dtype=np.int32),
        np.ascontiguousarray(a.data, dtype=np.float64),
        integrality,
    )
    if status == highspy.HighsStatus.kError:
        raise SolverFailedError("HiGHS refused the model (passModel error)")
    is_mip = bool(model.integer.any())
    if start is not None and is_mip:
        idx = np.arange(model.n_cols, dtype=np.int32)
        h.setSolution(model.n_cols, idx, np.ascontiguousarray(start, dtype=np.float64))
    h.run()
    name = h.getModelStatus().name
    info = h.getInfo()
    if name not in _OK_STATUSES or info.primal_solution_status != 2:
        raise SolverFailedError(
            f"HiGHS returned no feasible solution: {h.modelStatusToString(h.getModelStatus())}"
        )
    sol = h.getSolution()
    x = np.asarray(sol.col_value, dtype=np.float64)
    objective = float(model.c @ x)
    reported = float(info.objective_function_value)
    if abs(objective - reported) > 1e-7 * max(1.0, abs(reported)):
        raise _ObjectiveMismatch(
            f"HiGHS reports objective {reported} for a point whose objective is {objective}"
        )
    if is_mip:
        gap = float(info.mip_gap)
        bound = min(float(info.mip_dual_bound), objective)
        nodes = int(info.mip_node_count)
    else:
        gap, bound, nodes = 0.0, objective, 0
    row_dual = np.asarray(sol.row_dual, dtype=np.float64) if duals and not is_mip else None
    return Solution(x, objective, name, gap, bound, nodes, row_dual, 0.0)


def components(model: LinearModel) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Block labels of the columns and of the rows: two columns are in one block when a chain
    of rows links them. Labels come from a breadth-first search in index order, so they are
    the same on every run."""
    from scipy.sparse import bmat
    from scipy.sparse.csgraph import connected_components

    a = model.a.tocsr()
    graph = bmat([[None, a], [a.T, None]]).tocsr()
    _, labels = connected_components(graph, directed=False)
    labels = labels.astype(np.int64)
    return labels[model.n_rows :], labels[: model.n_rows]


def solve_decomposed(
    model: LinearModel,
    options: HighsOptions,
    *,
    start: FloatArray | None = None,
    snap: Callable[[FloatArray], FloatArray] | None = None,
    int_tol: float = 1e-6,
) -> Solution:
    """Solve a MILP block by block (see the module docstring): the LP relaxation once, then a
    small MILP for every block whose binaries the LP leaves fractional.

    ``snap`` may move integer columns of the LP solution to integers where that keeps every
    row and the objective as they are (a semi-continuous award's binary is free between
    u/max and u/min in the LP; at u ≥ min it can be 1): blocks it makes integral need no MILP.
    """
    t0 = time.perf_counter()
    if not model.integer.any():
        return solve_highs(model, options)
    relaxed = solve_highs(
        dataclasses.replace(model, integer=np.zeros(model.n_cols, dtype=bool)), options
    )
    x = relaxed.x.copy()
    if snap is not None:
        x = snap(x)
        if abs(float(model.c @ x) - relaxed.objective_eur) > 1e-9 * max(1.0, relaxed.objective_eur):
            raise SolverFailedError("snapping the LP solution changed its objective (internal)")
    ints = model.integer
    fractional = ints & (np.abs(x - np.round(x)) > int_tol)
    x[ints] = np.round(x[ints])
    bound = float(model.c @ x)
    nodes = 0
    status = "kOptimal"
    if fractional.any():
        col_label, row_label = components(model)
        blocks = np.unique(col_label[fractional])
        col_order = np.argsort(col_label, kind="stable")
        row_order = np.argsort(row_label, kind="stable")
        n_labels = int(max(col_label.max(initial=0), row_label.max(initial=0))) + 2
        col_start = np.searchsorted(col_label[col_order], np.arange(n_labels))
        row_start = np.searchsorted(row_label[row_order], np.arange(n_labels))
        a = model.a.tocsr()
        block_options = dataclasses.replace(options, presolve="off")
        for b in blocks.tolist():
            cols = col_order[col_start[b] : col_start[b + 1]]
            rows = row_order[row_start[b] : row_start[b + 1]]
            sub = LinearModel(
                c=model.c[cols],
                lb=model.lb[cols],
                ub=model.ub[cols],
                a=a[rows][:, cols].tocsc(),
                row_lo=model.row_lo[rows],
                row_hi=model.row_hi[rows],
                integer=ints[cols],
            )
            part = solve_highs(sub, block_options, start=None if start is None else start[cols])
            # the block's LP value bounds it too (a block stopped at the node limit before
            # its root reports no bound of its own)
            block_bound = max(part.mip_dual_bound_eur, float(model.c[cols] @ relaxed.x[cols]))
            bound += block_bound - float(model.c[cols] @ x[cols])
            x[cols] = part.x
            x[cols[sub.integer]] = np.round(part.x[sub.integer])
            nodes += part.node_count
            if part.status != "kOptimal" and status == "kOptimal":
                status = part.status
    objective = float(model.c @ x)
    bound = min(bound, objective)
    gap = (objective - bound) / max(abs(objective), 1e-9)
    return Solution(x, objective, status, gap, bound, nodes, None, time.perf_counter() - t0)


def solve_cvxpy(model: LinearModel, options: HighsOptions, *, duals: bool = False) -> Solution:
    """Solve the same model through CVXPY (HiGHS underneath, same options, no MIP start)."""
    import cvxpy as cp

    t0 = time.perf_counter()
    new_highs()  # the banner, once, silenced
    a = model.a.tocsc()
    cont = np.nonzero(~model.integer)[0]
    ints = np.nonzero(model.integer)[0]
    parts: list[Any] = []
    expr: Any = 0
    objective: Any = 0
    xs: list[tuple[Any, npt.NDArray[np.int64]]] = []
    for cols, integer in ((cont, False), (ints, True)):
        if not len(cols):
            continue
        var = cp.Variable(len(cols), integer=integer, bounds=[model.lb[cols], model.ub[cols]])
        xs.append((var, cols))
        expr = expr + a[:, cols] @ var
        objective = objective + model.c[cols] @ var
    lo_rows = np.nonzero(np.isfinite(model.row_lo))[0]
    hi_rows = np.nonzero(np.isfinite(model.row_hi))[0]
    cons_lo = expr[lo_rows] >= model.row_lo[lo_rows] if len(lo_rows) else None
    cons_hi = expr[hi_rows] <= model.row_hi[hi_rows] if len(hi_rows) else None
    parts = [c for c in (cons_lo, cons_hi) if c is not None]
    problem = cp.Problem(cp.Minimize(objective), parts)
    problem.solve(
        solver=cp.HIGHS,
        highs_options={**options.as_dict(), "output_flag": False},
    )
    if problem.status not in ("optimal", "optimal_inaccurate"):
        raise SolverFailedError(f"CVXPY/HiGHS returned {problem.status}")
    x = np.zeros(model.n_cols)
    for var, cols in xs:
        x[cols] = np.asarray(var.value, dtype=np.float64)
    row_dual: FloatArray | None = None
    if duals and not len(ints):
        row_dual = np.zeros(model.n_rows)
        if cons_lo is not None:
            row_dual[lo_rows] += np.asarray(cons_lo.dual_value, dtype=np.float64)
        if cons_hi is not None:
            row_dual[hi_rows] -= np.asarray(cons_hi.dual_value, dtype=np.float64)
    stats = problem.solver_stats
    extra = stats.extra_stats if stats is not None else None
    gap = float(getattr(extra, "mip_gap", 0.0)) if len(ints) else 0.0
    nodes = int(getattr(extra, "mip_node_count", 0)) if len(ints) else 0
    value = float(problem.value)
    bound = float(getattr(extra, "mip_dual_bound", value)) if len(ints) else value
    return Solution(x, value, problem.status, gap, bound, nodes, row_dual, time.perf_counter() - t0)
