"""The committed artifacts are what the pinned compiler makes of contracts/ today."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from node.contract_errors import ERRORS_BY_SELECTOR, ContractError
from node.contracts import decode_revert, load_artifact

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compiler() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "compile_contracts", ROOT / "scripts" / "compile_contracts.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_artifacts_are_not_stale(compiler: ModuleType) -> None:
    """Recompile with the pinned solc: every artifact and the error module must be identical."""
    artifacts = compiler.build_artifacts()
    stale = compiler.stale_files(artifacts)
    assert stale == [], f"stale artifacts {stale}: run scripts/compile_contracts.py"


def test_source_change_changes_the_sources_hash(compiler: ModuleType) -> None:
    sources = compiler.source_units()
    name = "contracts/MeasurementAnchor.sol"
    used = load_artifact("MeasurementAnchor")["sources"]
    assert compiler.sources_sha256(used, sources) == load_artifact("MeasurementAnchor")[
        "sourcesSha256"
    ]
    changed = dict(sources, **{name: sources[name] + "\n// changed\n"})
    assert compiler.sources_sha256(used, changed) != load_artifact("MeasurementAnchor")[
        "sourcesSha256"
    ]


def test_artifacts_pin_compiler_and_evm() -> None:
    for name in ("FlexRoles", "MeasurementAnchor", "BaselineRegistry", "FlexMarket",
                 "SettlementToken", "Settlement"):
        a = load_artifact(name)
        assert a["compiler"]["version"].startswith("0.8.30+commit.")
        assert a["compiler"]["evmVersion"] == "cancun"
        assert a["compiler"]["optimizer"]["enabled"] is True
        assert a["bytecode"].startswith("0x6") and len(a["deployedBytecode"]) > 100


def test_every_custom_error_decodes_to_its_class() -> None:
    assert len(ERRORS_BY_SELECTOR) > 40
    for selector, cls in ERRORS_BY_SELECTOR.items():
        assert issubclass(cls, ContractError)
        assert cls.__name__ == cls.signature.split("(")[0]
        if not cls.types:
            err = decode_revert(selector)
            assert type(err) is cls


def test_unknown_revert_data() -> None:
    err = decode_revert(b"\xde\xad\xbe\xef")
    assert type(err).__name__ == "UnknownContractError"
    assert isinstance(err, ContractError)
