"""The house's import layering holds: protos <- core <- components <- apps <- cli, and no
component imports another (what two share lives in core)."""

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "modelmesh"
CORE = {"config", "kv", "storage", "observability", "modelspec", "lifecycle", "__init__"}
COMPONENTS = {"mesh", "adapters", "proxy", "controller"}


def _layer(module: str) -> str:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    if top == "protos":
        return "protos"
    if top in CORE:
        return "core"
    if top in COMPONENTS:
        return top
    return top  # apps, cli


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("modelmesh")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("modelmesh"):
            found.add(node.module)
    return found


def test_imports_go_one_way():
    allowed = {"protos": {"protos"}, "core": {"protos", "core"}}
    for component in COMPONENTS:
        allowed[component] = {"protos", "core", component}
    allowed["apps"] = {"protos", "core", "apps", *COMPONENTS}
    allowed["cli"] = {"protos", "core", "apps", "cli", *COMPONENTS}
    violations = []
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG.parent).with_suffix("")
        module = ".".join(rel.parts)
        own = _layer(module if module != "modelmesh.__init__" else "modelmesh")
        for imported in _imports(path):
            if _layer(imported) not in allowed.get(own, set()):
                violations.append(f"{module} ({own}) imports {imported} ({_layer(imported)})")
    assert violations == []
