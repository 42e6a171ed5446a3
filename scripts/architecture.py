"""The library's shape in numbers: modules, lines, import cycles, function-local imports, the longest
functions, and imports that go up a layer.

    python scripts/architecture.py            # a Markdown report on stdout
    python scripts/architecture.py --json     # the same as JSON

docs/architecture.md keeps the report before and after the redesign.
"""

from __future__ import annotations

import argparse
import ast
import json
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "polyp_sam_hf"

# Lower index = lower layer; a module may import its own layer and the ones below it.
LAYERS = ("core", "data", "models", "evaluation", "training", "publishing", "commands")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def resolve(module: str, node: ast.ImportFrom, is_package: bool) -> list[str]:
    """The package modules a `from ... import ...` names (absolute or relative)."""
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - node.level + 1]
        prefix = ".".join(base + ([node.module] if node.module else []))
    else:
        prefix = node.module or ""
    if not prefix.startswith("polyp_sam_hf"):
        return []
    return [prefix] + [f"{prefix}.{alias.name}" for alias in node.names]


def analyse() -> dict:
    files = sorted(p for p in PACKAGE.rglob("*.py"))
    modules = {module_name(p): p for p in files}
    graph: dict[str, set[str]] = {}
    local_imports: list[str] = []
    functions: list[tuple[int, str]] = []
    lines = 0
    for name, path in modules.items():
        source = path.read_text()
        lines += len(source.splitlines())
        tree = ast.parse(source)
        is_package = path.name == "__init__.py"
        graph[name] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                graph[name] |= {t for t in resolve(name, node, is_package) if t in modules and t != name}
            elif isinstance(node, ast.Import):
                graph[name] |= {a.name for a in node.names if a.name in modules}
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                functions.append((node.end_lineno - node.lineno + 1, f"{name}.{node.name}"))
                for inner in ast.walk(node):
                    if isinstance(inner, (ast.Import, ast.ImportFrom)) and inner is not node:
                        local_imports.append(f"{name}:{inner.lineno}")
    cycles = find_cycles(graph)
    upward = []
    for name, targets in graph.items():
        for target in targets:
            if layer_of(target) is not None and layer_of(name) is not None and layer_of(target) > layer_of(name):
                upward.append(f"{name} -> {target}")
    functions.sort(reverse=True)
    return {
        "modules": len(modules),
        "lines": lines,
        "top_level_modules": sorted(m for m in modules if m.count(".") == 1),
        "import_cycles": cycles,
        "function_local_imports": len(set(local_imports)),
        "upward_imports": sorted(upward),
        "longest_functions": [f"{n} lines: {f}" for n, f in functions[:8]],
    }


def layer_of(module: str) -> int | None:
    parts = module.split(".")
    if len(parts) < 2:
        return None
    return LAYERS.index(parts[1]) if parts[1] in LAYERS else None


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            # a package importing its own submodule (re-exports) is not a cycle worth naming
            if len(component) > 1:
                components.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return components


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    report = analyse()
    if parser.parse_args().json:
        print(json.dumps(report, indent=2))
        return
    print(f"- modules: {report['modules']}, lines: {report['lines']}")
    print(f"- modules directly under the package: {len(report['top_level_modules'])}")
    print(f"- import cycles: {len(report['import_cycles'])} {report['import_cycles'] or ''}")
    print(f"- function-local imports: {report['function_local_imports']}")
    print(f"- imports that go up a layer: {len(report['upward_imports'])}")
    print("- longest functions:")
    for entry in report["longest_functions"]:
        print(f"  - {entry}")


if __name__ == "__main__":
    main()
