"""Compile contracts/ with the pinned solc and write node/artifacts/<Contract>.json.

    .venv/bin/python scripts/compile_contracts.py           # (re)write the artifacts
    .venv/bin/python scripts/compile_contracts.py --check   # exit 1 when an artifact is stale

The artifacts are committed: nothing at run time needs a compiler. Each holds the ABI, the
creation and runtime bytecode, the compiler version and settings, and the sha256 of the sources
it was built from. The same run also writes `node/contract_errors.py`, one Python exception
class per Solidity custom error of the deployable contracts.

The compiler is a native `solc` on PATH when its version is the pinned one, else
`scripts/solc`, a shim over the npm `solc` package (solcjs). py-solc-x drives either; its
`compile_standard` cannot pass `--include-path`, so this script calls its `solc_wrapper` with the
same flags (`--base-path . --include-path node_modules`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import keyword
import re
import shutil
import sys
from pathlib import Path
from typing import Any

from eth_utils import keccak
from solcx.wrapper import get_solc_version, solc_wrapper

ROOT = Path(__file__).resolve().parent.parent
CONTRACTS_DIR = ROOT / "contracts"
ARTIFACTS_DIR = ROOT / "node" / "artifacts"
ERRORS_MODULE = ROOT / "node" / "contract_errors.py"
SHIM = ROOT / "scripts" / "solc"

SOLC_VERSION = "0.8.30"
EVM_VERSION = "cancun"
OPTIMIZER = {"enabled": True, "runs": 200}
DEPLOYABLE = (
    "FlexRoles",
    "MeasurementAnchor",
    "BaselineRegistry",
    "FlexMarket",
    "SettlementToken",
    "Settlement",
)


def find_solc() -> Path:
    """A native solc of the pinned version if one is on PATH, else the solcjs shim."""
    native = shutil.which("solc")
    if native:
        try:
            if str(get_solc_version(Path(native))) == SOLC_VERSION:
                return Path(native)
        except Exception:  # a solc that does not answer --version like solc is not ours
            pass
    return SHIM


def source_units() -> dict[str, str]:
    """Source unit name (relative to the repo root) -> content, sorted by name."""
    files = sorted(CONTRACTS_DIR.rglob("*.sol"))
    return {f.relative_to(ROOT).as_posix(): f.read_text(encoding="utf-8") for f in files}


def standard_input(sources: dict[str, str]) -> dict[str, Any]:
    return {
        "language": "Solidity",
        "sources": {name: {"content": text} for name, text in sources.items()},
        "settings": {
            "evmVersion": EVM_VERSION,
            "optimizer": OPTIMIZER,
            "metadata": {"bytecodeHash": "ipfs"},
            "outputSelection": {
                "*": {
                    "*": [
                        "abi",
                        "metadata",
                        "evm.bytecode.object",
                        "evm.deployedBytecode.object",
                        "evm.deployedBytecode.immutableReferences",
                    ]
                }
            },
        },
    }


def run_solc(solc: Path, input_json: dict[str, Any]) -> dict[str, Any]:
    stdout, _stderr, _command, _proc = solc_wrapper(
        solc_binary=solc,
        stdin=json.dumps(input_json),
        standard_json=True,
        base_path=ROOT,
        include_path=ROOT / "node_modules",
    )
    output: dict[str, Any] = json.loads(stdout)
    problems = [e for e in output.get("errors", []) if e["severity"] == "error"]
    if problems:
        raise SystemExit("\n".join(e["formattedMessage"] for e in problems))
    for warning in output.get("errors", []):
        print(warning["formattedMessage"], file=sys.stderr)
    return output


def read_unit(name: str, sources: dict[str, str]) -> str:
    if name in sources:
        return sources[name]
    for base in (ROOT, ROOT / "node_modules"):
        path = base / name
        if path.is_file():
            return path.read_text(encoding="utf-8")
    raise FileNotFoundError(name)


def sources_sha256(names: list[str], sources: dict[str, str]) -> str:
    """sha256 over `name NUL content NUL` of each source unit, names sorted."""
    h = hashlib.sha256()
    for name in sorted(names):
        h.update(name.encode() + b"\0" + read_unit(name, sources).encode() + b"\0")
    return h.hexdigest()


def compiler_version(solc: Path) -> str:
    # Drop the platform suffix (".Emscripten.clang", ".Linux.g++"): the bytecode does not
    # depend on it, and the artifact must not depend on which build compiled it.
    full = str(get_solc_version(solc, with_commit_hash=True))
    match = re.match(r"(\d+\.\d+\.\d+\+commit\.[0-9a-f]+)", full)
    return match.group(1) if match else full


def build_artifacts(solc: Path | None = None) -> dict[str, dict[str, Any]]:
    """Compile and return {contract name: artifact dict}; writes nothing."""
    solc = solc or find_solc()
    version = compiler_version(solc)
    if not version.startswith(SOLC_VERSION + "+"):
        raise SystemExit(f"solc {version} found, {SOLC_VERSION} pinned")
    sources = source_units()
    output = run_solc(solc, standard_input(sources))
    artifacts: dict[str, dict[str, Any]] = {}
    for unit, contracts in sorted(output["contracts"].items()):
        for name, out in contracts.items():
            if name not in DEPLOYABLE or not unit.startswith("contracts/"):
                continue
            used = sorted(json.loads(out["metadata"])["sources"])
            artifacts[name] = {
                "contractName": name,
                "sourceName": unit,
                "compiler": {
                    "name": "solc",
                    "version": version,
                    "evmVersion": EVM_VERSION,
                    "optimizer": OPTIMIZER,
                },
                "sourcesSha256": sources_sha256(used, sources),
                "sources": used,
                "abi": out["abi"],
                "bytecode": "0x" + out["evm"]["bytecode"]["object"],
                "deployedBytecode": "0x" + out["evm"]["deployedBytecode"]["object"],
                "immutableReferences": out["evm"]["deployedBytecode"].get(
                    "immutableReferences", {}
                ),
            }
    missing = set(DEPLOYABLE) - set(artifacts)
    if missing:
        raise SystemExit(f"not compiled: {sorted(missing)}")
    return artifacts


def artifact_text(artifact: dict[str, Any]) -> str:
    return json.dumps(artifact, indent=2, sort_keys=True) + "\n"


# --------------------------------------------------------------------------- error classes


def _canonical_type(param: dict[str, Any]) -> str:
    t: str = param["type"]
    if t.startswith("tuple"):
        inner = ",".join(_canonical_type(c) for c in param["components"])
        return f"({inner}){t[len('tuple'):]}"
    return t


def _py_name(name: str) -> str:
    return name + "_" if keyword.iskeyword(name) else name


def _tuple(items: list[str]) -> str:
    inner = ", ".join(f'"{x}"' for x in items)
    return f"({inner},)" if len(items) == 1 else f"({inner})"


def errors_module(artifacts: dict[str, dict[str, Any]]) -> str:
    """Python source of node/contract_errors.py: one ContractError subclass per custom error."""
    errors: dict[str, dict[str, Any]] = {}
    for name in sorted(artifacts):
        for item in artifacts[name]["abi"]:
            if item["type"] != "error":
                continue
            types = [_canonical_type(p) for p in item["inputs"]]
            signature = f"{item['name']}({','.join(types)})"
            errors[signature] = {
                "name": item["name"],
                "types": types,
                "fields": [_py_name(p["name"]) for p in item["inputs"]],
                "selector": keccak(text=signature)[:4].hex(),
                "contracts": [*errors.get(signature, {}).get("contracts", []), name],
            }
    lines = [
        '"""Solidity custom errors of the flexledger contracts as Python exceptions.',
        "",
        "Generated by scripts/compile_contracts.py from node/artifacts; do not edit.",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        "from typing import Any, ClassVar",
        "",
        "",
        "class ContractError(Exception):",
        '    """A contract call reverted. Subclasses are the Solidity custom errors, by name."""',
        "",
        '    selector: ClassVar[bytes] = b""',
        '    signature: ClassVar[str] = ""',
        "    types: ClassVar[tuple[str, ...]] = ()",
        "    fields: ClassVar[tuple[str, ...]] = ()",
        "",
        "    def __init__(self, *values: Any, data: bytes = b\"\") -> None:",
        "        self.values = values",
        "        self.data = data",
        "        super().__init__(*values)",
        "",
        "    @property",
        "    def kwargs(self) -> dict[str, Any]:",
        '        """The error\'s arguments by their Solidity names."""',
        "        return dict(zip(self.fields, self.values, strict=False))",
        "",
        "    def __str__(self) -> str:",
        "        args = \", \".join(f\"{k}={_show(v)}\" for k, v in self.kwargs.items())",
        '        return f"{type(self).__name__}({args})"',
        "",
        "",
        "def _show(value: Any) -> str:",
        "    return \"0x\" + value.hex() if isinstance(value, bytes) else repr(value)",
        "",
        "",
        "class UnknownContractError(ContractError):",
        '    """A revert whose data is no known custom error (a require string, a panic, none)."""',
        "",
    ]
    names: list[str] = []
    for signature in sorted(errors, key=lambda s: (errors[s]["name"], s)):
        e = errors[signature]
        if e["name"] in names:
            raise SystemExit(f"two custom errors named {e['name']}")
        names.append(e["name"])
        lines += [
            "",
            f"class {e['name']}(ContractError):",
            f'    """`{signature}`, from {", ".join(e["contracts"])}."""',
            "",
            f'    selector = bytes.fromhex("{e["selector"]}")',
            f'    signature = "{signature}"',
            f"    types = {_tuple(e['types'])}",
            f"    fields = {_tuple(e['fields'])}",
            "",
        ]
    lines += [
        "",
        "ERRORS_BY_SELECTOR: dict[bytes, type[ContractError]] = {",
        *[f"    {n}.selector: {n}," for n in names],
        "}",
        "",
        "__all__ = [",
        '    "ERRORS_BY_SELECTOR",',
        *[f'    "{n}",' for n in sorted([*names, "ContractError", "UnknownContractError"])],
        "]",
        "",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def expected_files(artifacts: dict[str, dict[str, Any]]) -> dict[Path, str]:
    files = {ARTIFACTS_DIR / f"{name}.json": artifact_text(a) for name, a in artifacts.items()}
    files[ERRORS_MODULE] = errors_module(artifacts)
    return files


def stale_files(artifacts: dict[str, dict[str, Any]]) -> list[Path]:
    """Files whose committed content differs from what this compile produces."""
    stale = [
        path
        for path, text in expected_files(artifacts).items()
        if not path.is_file() or path.read_text(encoding="utf-8") != text
    ]
    known = {ARTIFACTS_DIR / f"{name}.json" for name in artifacts}
    stale += [p for p in sorted(ARTIFACTS_DIR.glob("*.json")) if p not in known]
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 when an artifact is stale")
    args = parser.parse_args(argv)
    artifacts = build_artifacts()
    if args.check:
        stale = stale_files(artifacts)
        for path in stale:
            print(f"stale: {path.relative_to(ROOT)}", file=sys.stderr)
        if stale:
            print("run: .venv/bin/python scripts/compile_contracts.py", file=sys.stderr)
            return 1
        print(f"{len(artifacts)} artifacts up to date")
        return 0
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    for path, text in expected_files(artifacts).items():
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT)}")
    for name, a in sorted(artifacts.items()):
        size = (len(a["deployedBytecode"]) - 2) // 2
        print(f"  {name:<18} runtime {size:>6} bytes  sources {a['sourcesSha256'][:12]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
