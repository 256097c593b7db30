"""The floors of ARCHITECTURE.md, enforced: who may import whom.

1. flexledger.messages / units / time / settings / scenario / protocols: pure data and rules.
2. node, flexledger.transport / powerflow / storage: shared machinery, no actor logic.
3. the actors: lightnode, scd, dso, market, aggregator, audit, sim — never each other.
4. flexledger.cli / stack / report: wiring; nothing imports them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FLOOR1 = {
    "flexledger.messages",
    "flexledger.units",
    "flexledger.time",
    "flexledger.settings",
    "flexledger.scenario",
    "flexledger.protocols",
    "flexledger",
}
FLOOR2 = {"node", "flexledger.transport", "flexledger.powerflow", "flexledger.storage"}
ACTORS = {"lightnode", "scd", "dso", "market", "aggregator", "audit", "sim"}
FLOOR4 = {
    "flexledger.cli",
    "flexledger.stack",
    "flexledger.report",
    "flexledger.dashboard",
    "flexledger.__main__",
}
HEAVY = {"pandapower", "simbench", "cvxpy", "power_grid_model", "highspy", "scipy", "fastapi"}


def _module_of(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _floor(module: str) -> tuple[int, str]:
    """(floor, unit) of a project module; unit is the actor or the floor's package."""
    for prefix in sorted(FLOOR4, key=len, reverse=True):
        if module == prefix or module.startswith(prefix + "."):
            return 4, prefix
    for prefix in sorted(FLOOR2, key=len, reverse=True):
        if module == prefix or module.startswith(prefix + "."):
            return 2, prefix
    top = module.split(".")[0]
    if top in ACTORS:
        return 3, top
    if top == "flexledger":
        return 1, "flexledger"
    return 0, top


def _imports(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text("utf-8"), filename=str(path))
    found: list[tuple[str, int]] = []
    module = _module_of(path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                if path.name != "__init__.py":
                    base = base[:-1]
                base = base[: len(base) - (node.level - 1)]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            found.append((name, node.lineno))
    return found


def _sources() -> list[Path]:
    roots = ["flexledger", "node", *sorted(ACTORS)]
    return [p for r in roots if (ROOT / r).is_dir() for p in sorted((ROOT / r).rglob("*.py"))]


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_respect_the_floors(path: Path) -> None:
    here_floor, here_unit = _floor(_module_of(path))
    problems = []
    for name, line in _imports(path):
        floor, unit = _floor(name)
        if floor == 0:
            continue
        where = f"{path.relative_to(ROOT)}:{line} imports {name}"
        if floor == 4 and here_floor != 4:
            problems.append(f"{where}: nothing imports the wiring (floor 4)")
        elif here_floor in (1, 2) and floor > here_floor:
            problems.append(f"{where}: floor {here_floor} may not import floor {floor}")
        elif here_floor == 3 and floor == 3 and unit != here_unit:
            problems.append(f"{where}: an actor imports another actor; move it down a floor")
    assert not problems, "\n".join(problems)


def test_floor1_and_lightnode_stay_lean() -> None:
    """A Light Node installs without grid or optimisation libraries (top-level imports)."""
    lean = [
        p
        for p in _sources()
        if _floor(_module_of(p))[0] == 1 or _module_of(p).startswith("lightnode")
    ]
    lean += [
        ROOT / "node" / n
        for n in ("eip712.py", "merkle.py", "signing.py", "keys.py", "contracts.py")
    ]
    problems = []
    for path in lean:
        if not path.exists():
            continue
        tree = ast.parse(path.read_text("utf-8"))
        for node in tree.body:  # module level only: a lazy import inside a function is fine
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            for name in names:
                if name.split(".")[0] in HEAVY:
                    problems.append(f"{path.relative_to(ROOT)} imports {name} at module level")
    assert not problems, "\n".join(problems)
