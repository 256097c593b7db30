"""The clearing's typed errors: a clearing never returns a silent partial result."""

from __future__ import annotations

__all__ = ["InfeasibleClearingError", "MalformedBookError", "SolverFailedError"]


class InfeasibleClearingError(RuntimeError):
    """The clearing could not produce a result that honours every offer and request.

    Unmet volume is not infeasibility (it is priced by slack variables and reported); this is
    raised when the inputs cannot be cleared at all or the solver gives no feasible point. A
    caller that catches this one class catches every clearing failure.
    """


class MalformedBookError(InfeasibleClearingError, ValueError):
    """The order book cannot be cleared as given (duplicate hashes, bad bounds, unknown stage)."""


class SolverFailedError(InfeasibleClearingError):
    """The solver returned without a feasible solution (error, infeasible, interrupted)."""
