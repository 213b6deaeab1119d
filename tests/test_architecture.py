"""The package's shape: its import graph has no cycles and no module imports one above it in the layout.

Layers, lowest first (docs/architecture.md). A module may import its own layer and those below, at module
level or inside a function alike. Commands sit on top and import anything; no command imports another.
"""
import ast
import os

from helpers import REPO

PACKAGE = os.path.join(REPO, "keras_latent")
LAYERS = [
    {"errors", "files", "config", "cli", "quiet_start", "stats", "_lazy", "machine", "__init__"},
    {"runs"},
    {"data"},
    {"model"},
    {"attached"},
    {"exporting"},
    {"training"},
    {"analysis"},
    {"tuning"},
    {"reporting"},
    {"studies"},
    {"explorer"},
    {"train", "analyze", "report", "export", "search_weights", "study", "explore", "attach"},  # the commands
]
COMMANDS = LAYERS[-1]


def _modules() -> dict[str, str]:
    """Dotted module name -> file, for every module of the package."""
    found = {}
    for root, _, names in os.walk(PACKAGE):
        for name in names:
            if name.endswith(".py"):
                rel = os.path.relpath(os.path.join(root, name), REPO)[:-3].replace(os.sep, ".")
                found[rel.removesuffix(".__init__")] = os.path.join(root, name)
    return found


def _imports(path: str, module: str, known: set[str]) -> set[str]:
    """Package modules that `path` imports anywhere (also inside functions), resolved to known modules."""
    found = set()
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = node.module
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name.startswith("keras_latent") and name != module and name != "keras_latent":
                found.add(name)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {m: _imports(path, m, set(modules)) for m, path in modules.items()}


def _layer(module: str) -> int | None:
    top = module.split(".")[1] if "." in module else "__init__"
    return next((i for i, names in enumerate(LAYERS) if top in names), None)


def test_every_module_has_a_layer():
    assert [m for m in _graph() if _layer(m) is None] == []


def test_no_module_imports_one_above_it():
    upward = sorted(f"{m} imports {d}" for m, deps in _graph().items() for d in deps if _layer(d) > _layer(m))
    assert upward == []


def test_no_command_imports_another_command():
    graph = _graph()
    commands = {f"keras_latent.{c}" for c in COMMANDS}
    assert sorted(f"{m} imports {d}" for m in commands for d in graph[m] if d in commands) == []


def test_the_import_graph_has_no_cycles():
    graph, state, cycles = _graph(), {}, []

    def visit(node, path):
        state[node] = "open"
        for dep in sorted(graph[node]):
            if state.get(dep) == "open":
                cycles.append(" -> ".join(path[path.index(dep):] + [dep]) if dep in path else f"{node} -> {dep}")
            elif dep not in state:
                visit(dep, path + [dep])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []
