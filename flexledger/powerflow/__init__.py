"""Batched power flow over a pandapower network (floor 2: imports only floor 1).

The pandapower net is the model of record; power-grid-model computes many load/generation
scenarios of it in one batch call and agrees with ``pandapower.runpp(net)`` within 1e-4 p.u.
Used by the DSO for its model of the grid (assessment per MTU, violation localisation, own
remedies by taps and switching, effectiveness factors) and by the simulator for the grid's true
state.

Typical use::

    net = load_grid(DEFAULT_GRID)                  # SimBench code or pandapower JSON
    grid = BatchPowerFlow(net)                     # builds the model once per configuration
    day = profiles_for_day(net, day=180)           # Injections [96 MTU, element]
    result = grid.run(day)                         # BatchResult: vm_pu [96, bus], loadings, …
    result = grid.run(day, config=GridConfig(taps={2: -1}, switches={233: True, 46: False}))
    ef = voltage_sensitivity(grid, day.select([48]), buses=[120, 466])
"""

from flexledger.powerflow.batch import MODEL_OF_RECORD, BatchPowerFlow
from flexledger.powerflow.config import GridConfig
from flexledger.powerflow.grid_io import (
    DEFAULT_GRID,
    GridFileError,
    load_grid,
    normalise_taps,
    validate_net,
)
from flexledger.powerflow.injections import Injections
from flexledger.powerflow.model import SOURCE_SK_VA, GridModelError
from flexledger.powerflow.profiles import (
    PROFILE_YEAR,
    clear_profile_cache,
    profile_steps,
    profiles_for_day,
)
from flexledger.powerflow.reference import apply_config, runpp_loop
from flexledger.powerflow.result import BatchResult, NotConvergedError
from flexledger.powerflow.sensitivity import VoltageSensitivity, voltage_sensitivity
from flexledger.powerflow.topology import (
    is_radial,
    meshes,
    parallel_trafo_groups,
    unsupplied_buses,
)

__all__ = [
    "DEFAULT_GRID",
    "MODEL_OF_RECORD",
    "PROFILE_YEAR",
    "SOURCE_SK_VA",
    "BatchPowerFlow",
    "BatchResult",
    "GridConfig",
    "GridFileError",
    "GridModelError",
    "Injections",
    "NotConvergedError",
    "VoltageSensitivity",
    "apply_config",
    "clear_profile_cache",
    "is_radial",
    "load_grid",
    "meshes",
    "normalise_taps",
    "parallel_trafo_groups",
    "profile_steps",
    "profiles_for_day",
    "runpp_loop",
    "unsupplied_buses",
    "validate_net",
    "voltage_sensitivity",
]
