"""The world outside the platform (floor 3 actor; imports floors 1–2 only).

The grid's true state over the delivery day, the meters, the flexible devices and their BMS, the
field sensors and topology events, the history before the day, the TSO simulator, the BRP and
the event-driven scenario clock, all from one scenario file (``scenarios/*.toml``)::

    world = World("scenarios/default.toml")          # the day's truth, built at once
    meter = world.meters["IT001E00000001"]          # flexledger.protocols.MeterSource
    bms = world.bms["IT001E00000001"]               # flexledger.protocols.Bms
    arrays = world.samples(pod, start_s, end_s)     # vectorised 4 s samples (W, var, mV)
    async with world.serve_mqtt(client, domain=d):  # meters, BMS, clock, sensors over MQTT
        await world.run(until_s)                    # drive the clock (actors finish each step)

    proof = prove_residual(world.scenario, world.grid.flow, world.true_day().injections())
    brp = Brp(world, address)                       # I-03 baseline, commit, upload
    tso = TsoSimulator(world.scenario, market, scd) # I-06 requests, I-09 orders
    await upload_history(world, scd_as_dso)         # I-01 history (MeasureHistory)

Actors talk to the world only through these Protocols and transports (MQTT, HTTP); ``sim``
never imports another actor.
"""

from sim.brp import Brp, brp_forecast_wh
from sim.devices import (
    Battery,
    Command,
    Device,
    ElectricVehicle,
    FlexibleLoad,
    PvCurtailment,
    ThermalLoad,
)
from sim.grid import ElementPowers, WorldGrid
from sim.history import history_energy_wh, history_messages, history_values, upload_history
from sim.pods import PodModel, ScenarioCheckError, build_pods
from sim.residual import MtuResidual, RemedyPoint, ResidualProof, prove_residual, remedy_points
from sim.sensors import TOPOLOGY_SENSOR_ID, FieldSensor, TopologyFeed
from sim.serve import WorldServer
from sim.tso import TsoSimulator, areas_table, group_orders
from sim.world import PodBms, PodMeter, SampleArrays, World

__all__ = [
    "TOPOLOGY_SENSOR_ID",
    "Battery",
    "Brp",
    "Command",
    "Device",
    "ElectricVehicle",
    "ElementPowers",
    "FieldSensor",
    "FlexibleLoad",
    "MtuResidual",
    "PodBms",
    "PodMeter",
    "PodModel",
    "PvCurtailment",
    "RemedyPoint",
    "ResidualProof",
    "SampleArrays",
    "ScenarioCheckError",
    "ThermalLoad",
    "TopologyFeed",
    "TsoSimulator",
    "World",
    "WorldGrid",
    "WorldServer",
    "areas_table",
    "brp_forecast_wh",
    "build_pods",
    "group_orders",
    "history_energy_wh",
    "history_messages",
    "history_values",
    "prove_residual",
    "remedy_points",
    "upload_history",
]
