"""DSO Technical Platform: grid model, forecast, assessment, own remedies, requests, validation,
dispatch (scenario 1 steps 3a–10a and 14a–15a, scenario 2 steps 1a–7a and 11a–12a, scenario 3
step 3a of UC-IT-1).

Entry points, one per job:

- ``DsoGrid.from_scenario(path)``: the scenario's grid (SimBench + stated changes), POD map,
  limits and remedy space;
- ``day_ahead_forecast(grid, history, day_s)`` / ``realtime_forecast(...)`` /
  ``evaluate(history, held_out_days)``: forecasts and their nMAE and bias vs persistence;
- ``assess(grid, forecast) -> GridAssessment``: power flow per MTU, localisation (I-10), own
  remedies (I-11), located needs with effectiveness factors (I-06);
- ``localise``, ``search_remedies``, ``locate_needs`` / ``build_requests``: the steps of it;
- ``StateEstimator``: WLS state estimation with bad-data detection (I-18);
- ``check_awards`` / ``validation_of``: technical validation (I-07);
- ``Dispatcher``: orders to signed set-points (I-09);
- ``DsoPlatform`` and ``create_app``: the service and its HTTP API.
"""

from dso.api import create_app
from dso.assessment import GridAssessment, assess
from dso.dispatch import Dispatcher, DispatchError
from dso.estimation import (
    Measurement,
    StateEstimate,
    StateEstimationError,
    StateEstimator,
    Topology,
    sensor_measurements,
)
from dso.forecast import (
    ForecastOptions,
    ForecastScore,
    GridForecast,
    PodHistory,
    background_forecast,
    day_ahead_forecast,
    evaluate,
    forecast_pods,
    realtime_forecast,
)
from dso.heatmap import violation_rows, write_heatmap
from dso.model import DsoGrid, Limits, PodInfo, PodMappingError
from dso.platform import DayRecord, DsoPlatform
from dso.remedies import RemedyBlock, RemedyOption, RemedyPlan, remedy_options, search_remedies
from dso.requests import FlexNeed, NeedOptions, build_requests, locate_needs, sensitivities
from dso.settings import DsoSettings
from dso.validation import AwardCheck, OutcomeError, check_awards, validation_of, verified_outcome
from dso.violations import ViolationMap, localise, violation_map

__all__ = [
    "AwardCheck",
    "DayRecord",
    "DispatchError",
    "Dispatcher",
    "DsoGrid",
    "DsoPlatform",
    "DsoSettings",
    "FlexNeed",
    "ForecastOptions",
    "ForecastScore",
    "GridAssessment",
    "GridForecast",
    "Limits",
    "Measurement",
    "NeedOptions",
    "OutcomeError",
    "PodHistory",
    "PodInfo",
    "PodMappingError",
    "RemedyBlock",
    "RemedyOption",
    "RemedyPlan",
    "StateEstimate",
    "StateEstimationError",
    "StateEstimator",
    "Topology",
    "ViolationMap",
    "assess",
    "background_forecast",
    "build_requests",
    "check_awards",
    "create_app",
    "day_ahead_forecast",
    "evaluate",
    "forecast_pods",
    "localise",
    "locate_needs",
    "realtime_forecast",
    "remedy_options",
    "search_remedies",
    "sensitivities",
    "sensor_measurements",
    "validation_of",
    "verified_outcome",
    "violation_map",
    "violation_rows",
    "write_heatmap",
]
