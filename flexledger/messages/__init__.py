"""The protocol: one pydantic model per information exchange of UC-IT-1 (I-01 … I-18).

| I-number | model | signed by |
| --- | --- | --- |
| I-01 | ``QuarterlyMeasure`` | — (SCD read) |
| I-02 | ``CustomerList`` | aggregator |
| I-03 | ``BrpBaseline`` | BRP |
| I-04 | ``MeasurementBatch`` (of ``Sample``) | Light Node device |
| I-05 | ``Offer`` | aggregator |
| I-06 | ``Request`` | DSO / TSO |
| I-07 | ``Validation`` | DSO |
| I-08 | ``MarketOutcome`` (of ``Award``) | market operator |
| I-09 | ``Order``, ``SetPoint`` | DSO / TSO; DSO |
| I-10 | ``ViolationAlert`` | — (inside the DSO) |
| I-11 | ``GridConfiguration`` | — (inside the DSO) |
| I-12 | ``DerStatus`` | FR owner |
| I-13 | ``DerPlanning`` | aggregator |
| I-14 | ``ActivationSignal`` | — (inside the world) |
| I-15 | ``SettlementOutcome`` | market operator |
| I-16 | ``DsoPayment`` | on-chain transfer |
| I-17 | ``AggregatorPayment`` | on-chain transfer |
| I-18 | ``SensorReading`` | field sensor |
| —    | ``TopologyEvent``, ``WindowManifest``, ``ResendRequest``, ``MeterReading`` | |
| —    | ``Receipt``, ``SessionCommand``, ``MeasureHistory`` | |
| —    | ``SessionNotice``, ``OrderAnnouncement`` (market MQTT) | — |
"""

from flexledger.messages.common import (
    Address,
    Hash32,
    Message,
    PodCode,
    Signed,
    SignedMessage,
    b32,
    h32,
    id32,
)
from flexledger.messages.customers import (
    BaselineValue,
    BrpBaseline,
    CustomerEntry,
    CustomerList,
    DerPlanning,
    DerStatus,
    PlanItem,
    ResourceInfo,
    ResourceKind,
)
from flexledger.messages.eip712 import EIP712_TYPES, encode_type
from flexledger.messages.grid import ActivationSignal, GridConfiguration, Violation, ViolationAlert
from flexledger.messages.market import (
    Award,
    ClearingProvenance,
    Decision,
    Eligibility,
    MarketOutcome,
    Offer,
    Order,
    OrderAnnouncement,
    PricingRule,
    Receipt,
    Request,
    SessionAction,
    SessionCommand,
    SessionNotice,
    SetPoint,
    Validation,
)
from flexledger.messages.measurement import (
    BatchManifest,
    CertificationStatus,
    MeasureHistory,
    MeasurementBatch,
    MeterReading,
    QuarterlyMeasure,
    ResendRequest,
    Sample,
    SensorReading,
    TopologyEvent,
    WindowCertification,
    WindowManifest,
)
from flexledger.messages.settlement import AggregatorPayment, DsoPayment, SettlementOutcome

#: Every information exchange of the use case, by its I-number.
EXCHANGES: dict[str, tuple[type[Message], ...]] = {
    "I-01": (QuarterlyMeasure,),
    "I-02": (CustomerList,),
    "I-03": (BrpBaseline,),
    "I-04": (MeasurementBatch,),
    "I-05": (Offer,),
    "I-06": (Request,),
    "I-07": (Validation,),
    "I-08": (MarketOutcome,),
    "I-09": (Order, SetPoint),
    "I-10": (ViolationAlert,),
    "I-11": (GridConfiguration,),
    "I-12": (DerStatus,),
    "I-13": (DerPlanning,),
    "I-14": (ActivationSignal,),
    "I-15": (SettlementOutcome,),
    "I-16": (DsoPayment,),
    "I-17": (AggregatorPayment,),
    "I-18": (SensorReading,),
}

#: Every signed message type, by its EIP-712 primary type.
SIGNED_TYPES: dict[str, type[SignedMessage]] = {
    cls.eip712_type: cls
    for cls in (
        Offer,
        Request,
        Validation,
        MarketOutcome,
        Order,
        SetPoint,
        MeasurementBatch,
        WindowManifest,
        BrpBaseline,
        CustomerList,
        DerStatus,
        DerPlanning,
        SettlementOutcome,
        SensorReading,
        TopologyEvent,
        SessionCommand,
        MeasureHistory,
    )
}

__all__ = [
    "EIP712_TYPES",
    "EXCHANGES",
    "SIGNED_TYPES",
    "ActivationSignal",
    "Address",
    "AggregatorPayment",
    "Award",
    "BaselineValue",
    "BatchManifest",
    "BrpBaseline",
    "CertificationStatus",
    "ClearingProvenance",
    "CustomerEntry",
    "CustomerList",
    "Decision",
    "DerPlanning",
    "DerStatus",
    "DsoPayment",
    "Eligibility",
    "GridConfiguration",
    "Hash32",
    "MarketOutcome",
    "MeasureHistory",
    "MeasurementBatch",
    "Message",
    "MeterReading",
    "Offer",
    "Order",
    "OrderAnnouncement",
    "PlanItem",
    "PodCode",
    "PricingRule",
    "QuarterlyMeasure",
    "Receipt",
    "Request",
    "ResendRequest",
    "ResourceInfo",
    "ResourceKind",
    "Sample",
    "SensorReading",
    "SessionAction",
    "SessionCommand",
    "SessionNotice",
    "SetPoint",
    "SettlementOutcome",
    "Signed",
    "SignedMessage",
    "TopologyEvent",
    "Validation",
    "Violation",
    "ViolationAlert",
    "WindowCertification",
    "WindowManifest",
    "b32",
    "encode_type",
    "h32",
    "id32",
]
