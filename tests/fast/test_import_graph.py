"""The package's import graph: no cycle (counting imports under ``TYPE_CHECKING`` and inside
functions), and the parts that follow the ports import no MongoDB adapter."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "eventlab"

ADAPTERS = {
    "eventlab._mongo.event_store",
    "eventlab._mongo.log",
    "eventlab._mongo.log_ranges",
    "eventlab._mongo.tombstones",
    "eventlab._mongo.wakeups",
    "eventlab._mongo.checkpoints",
    "eventlab._mongo.snapshots",
    "eventlab._mongo.outbox",
    "eventlab._mongo.read_models",
    "eventlab._mongo.backend",
    "eventlab._mongo.connection",
    "eventlab._mongo.unit_of_work",
    "eventlab._mongo.transactions",
    "eventlab._mongo.liveness",
    "eventlab._mongo.heartbeat",
    "eventlab._mongo.process_registry",
    "eventlab._mongo.schema",
    "eventlab._mongo.writer",
    "eventlab._mongo.expectations",
    "eventlab._mongo.append_settlement",
    "eventlab._mongo.outbox_collection",
    "eventlab._mongo.outbox_saves",
    "eventlab._mongo.readers",
    "eventlab._mongo.restore",
    "eventlab._mongo.repository",
    "eventlab._mongo.write_access",
    "eventlab._mongo.dcb",
    "eventlab.embedded",
}
"""The MongoDB adapters and what they are made of."""

ON_THE_PORTS = {
    "eventlab._follow.catch_up",
    "eventlab._follow.subscriber",
    "eventlab._follow.projections",
    "eventlab._follow.projector",
    "eventlab._aggregates.store",
    "eventlab._outbox.relay",
    "eventlab.workbench._frames",
    "eventlab.workbench._replay",
    "eventlab.workbench._projection_replay",
    "eventlab.workbench._gaps",
}
"""The parts that depend on the ports only."""


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every eventlab module ``path`` imports, anywhere in the file."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("eventlab")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("eventlab"):
                found.add(target)
                found |= {f"{target}.{a.name}" for a in node.names}
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: imports_of(path) & set(modules) for name, path in modules.items()}


def test_the_import_graph_has_no_cycle() -> None:
    edges = graph()
    # Package __init__ modules re-export; an edge into one stands for its own imports.
    edges = {m: {t for t in targets if t != m} for m, targets in edges.items()}
    visiting: list[str] = []
    done: set[str] = set()

    def visit(module: str) -> None:
        if module in done:
            return
        assert module not in visiting, " -> ".join([*visiting[visiting.index(module) :], module])
        visiting.append(module)
        for target in sorted(edges.get(module, ())):
            if target in ("eventlab", "eventlab.workbench", "eventlab.samples"):
                continue  # the public re-exports sit on top of everything
            visit(target)
        visiting.pop()
        done.add(module)

    for module in sorted(edges):
        visit(module)


def test_the_read_side_depends_on_the_ports_only() -> None:
    edges = graph()
    for module in sorted(ON_THE_PORTS):
        reached = edges[module] & ADAPTERS
        assert not reached, f"{module} imports {sorted(reached)}"
        source = (PACKAGE.parent / (module.replace(".", "/") + ".py")).read_text()
        assert "pymongo" not in source, f"{module} imports the driver"


def test_the_in_memory_backend_imports_no_mongodb_adapter() -> None:
    """The model of MongoDB is built on the ports and the shared rules, never on the adapter it
    models (a shared bug would then be invisible)."""
    edges = graph()
    for path in sorted((PACKAGE / "memory").glob("*.py")):
        module = module_name(path)
        reached = edges[module] & ADAPTERS
        assert not reached, f"{module} imports {sorted(reached)}"
        assert "pymongo" not in path.read_text(), f"{module} imports the driver"
