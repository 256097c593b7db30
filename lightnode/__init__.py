"""The Light Node agent on a meter gateway, and the concentrator that batches many of them.

A Light Node reads its meter every 4 s (``flexledger.protocols.MeterSource``), signs the samples
with its device key, publishes them over MQTT to the SCD, keeps them in a durable SQLite buffer
until the SCD has certified their window, anchors each window's Merkle root on chain (directly,
or through a concentrator), and obeys DSO-signed set-points by handing them to its BMS.

Floors 1–2 only (``flexledger.messages``/``time``/``settings``/``protocols``/``transport``,
``node``): no actor, and no grid or optimisation library — ``replay.make_csv_from_simbench``
imports SimBench inside the function.

Public surface:

- ``LightNode`` (``agent``): the agent; ``LightNodeHealth`` its counters.
- ``Concentrator`` (``concentrator``): batches device-signed window roots into one anchor.
- ``SampleBuffer`` (``buffer``): the durable buffer.
- ``SetPointGate`` (``setpoints``): which set-points are obeyed.
- ``CsvMeter``, ``ListMeter``, ``read_meter_csv``, ``write_meter_csv``,
  ``make_csv_from_simbench`` (``replay``): recorded meters.
- ``LogBms`` (``bms``): a BMS that logs, for a node with nothing to drive.
- ``window_tree``, ``setpoints_hash``, ``batch_tree``, ``batch_order``,
  ``manifest_window_leaf`` (``trees``): the trees, for whoever checks them.
- ``parse_window_statuses``: the SCD's ``GET /windows`` answer as verdicts.
"""

from lightnode.agent import LightNode, WindowStatusReport, parse_window_statuses
from lightnode.bms import LogBms
from lightnode.buffer import BufferMismatchError, SampleBuffer, SampleRow, WindowRow
from lightnode.concentrator import Concentrator
from lightnode.health import ConcentratorHealth, LightNodeHealth
from lightnode.replay import (
    CsvMeter,
    ListMeter,
    make_csv_from_simbench,
    read_meter_csv,
    write_meter_csv,
)
from lightnode.setpoints import SetPointGate, SetPointRejected
from lightnode.trees import (
    batch_order,
    batch_tree,
    manifest_window_leaf,
    setpoints_hash,
    window_tree,
)

__all__ = [
    "BufferMismatchError",
    "Concentrator",
    "ConcentratorHealth",
    "CsvMeter",
    "LightNode",
    "LightNodeHealth",
    "ListMeter",
    "LogBms",
    "SampleBuffer",
    "SampleRow",
    "SetPointGate",
    "SetPointRejected",
    "WindowRow",
    "WindowStatusReport",
    "batch_order",
    "batch_tree",
    "make_csv_from_simbench",
    "manifest_window_leaf",
    "parse_window_statuses",
    "read_meter_csv",
    "setpoints_hash",
    "window_tree",
    "write_meter_csv",
]
