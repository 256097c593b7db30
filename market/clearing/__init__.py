"""The market's clearing: who serves which request, in which MTU, with how many W, at what price.

Public surface:
- inputs: ``ClearingOffer``, ``ClearingRequest``, ``ClearingBook`` (each with ``from_message``
  constructors from the protocol's ``Offer`` / ``Request``), ``AwardKey`` for exclusions;
- the pluggable ``Clearing`` base class and its two implementations: ``DsoFirstClearing``
  (MILP/LP with HiGHS, the market's clearing) and ``GreedyMeritOrder`` (the baseline);
- the result: ``ClearingResult`` with ``ClearedAward`` lines, per-stage ``StageReport`` and the
  ``ClearingRun`` provenance;
- errors: ``InfeasibleClearingError`` and its subclasses.
"""

from market.clearing.base import Clearing
from market.clearing.book import (
    AwardKey,
    ClearingBook,
    ClearingOffer,
    ClearingRequest,
    Stage,
)
from market.clearing.dso_first import DsoFirstClearing, Pricing
from market.clearing.errors import InfeasibleClearingError, MalformedBookError, SolverFailedError
from market.clearing.merit_order import GreedyMeritOrder
from market.clearing.result import ClearedAward, ClearingResult, ClearingRun, StageReport

__all__ = [
    "AwardKey",
    "ClearedAward",
    "Clearing",
    "ClearingBook",
    "ClearingOffer",
    "ClearingRequest",
    "ClearingResult",
    "ClearingRun",
    "DsoFirstClearing",
    "GreedyMeritOrder",
    "InfeasibleClearingError",
    "MalformedBookError",
    "Pricing",
    "SolverFailedError",
    "Stage",
    "StageReport",
]
