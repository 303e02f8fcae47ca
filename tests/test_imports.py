"""The import structure of src/vlmloc, read with ``ast`` (``vlmloc.sources``; nothing imported,
no torch): no import cycle, and no lower layer imports an upper one.

The layers, lowest first (a module may import its own layer and the layers below it):

1. foundation: ``vlmloc`` (the package), ``paper``, ``tasks``, ``images``, ``gather``,
   ``workload``, ``sources``, ``outputs``, ``statistics``, ``defaults``, ``plans``, ``data``;
2. models: ``models``, ``geometry``, ``vision_cache``, ``mean_embedding``, ``scoring``;
3. interventions: ``interventions``, ``attribution``;
4. runner: ``runner``;
5. experiments: ``experiments``, ``probes``;
6. tables: ``tables`` (pandas only; they read the experiments' rows and the head ranking);
7. applications: ``figures``, ``toy``;
8. glue: ``workflow`` (what the rule scripts and the .smk files call; nothing below imports it).

A module belongs to the layer of its first name under ``vlmloc`` (``vlmloc.models.llava`` to
``models``). Both checks count the imports inside functions too (a lazy import is still a
dependency), and each module's imports are the modules its statements name
(``vlmloc.sources``).
"""

from pathlib import Path

import pytest

from vlmloc.sources import dependencies, import_graph, modules, scoring_sources

SRC = Path(__file__).resolve().parents[1] / "src" / "vlmloc"

LAYERS = (
    (
        "foundation",
        {
            "vlmloc",
            "paper",
            "tasks",
            "images",
            "gather",
            "workload",
            "sources",
            "outputs",
            "statistics",
            "defaults",
            "plans",
            "data",
        },
    ),
    ("models", {"models", "geometry", "vision_cache", "mean_embedding", "scoring"}),
    ("interventions", {"interventions", "attribution"}),
    ("runner", {"runner"}),
    ("experiments", {"experiments", "probes"}),
    ("tables", {"tables"}),
    ("applications", {"figures", "toy"}),
    ("glue", {"workflow"}),
)


def layer_of(module: str) -> int:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else parts[0]
    for rank, (_, names) in enumerate(LAYERS):
        if top in names:
            return rank
    raise KeyError(module)


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (its modules, the first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph(SRC)


def test_the_graph_sees_relative_absolute_and_function_level_imports(graph):
    assert "vlmloc.tasks" in graph["vlmloc.scoring"]  # from .tasks import ... (module level)
    assert (
        "vlmloc.models" in graph["vlmloc.scoring"]
    )  # from .models import ADAPTERS (in a function)
    assert "vlmloc.models" not in import_graph(SRC, function_level=False)["vlmloc.scoring"]
    assert "vlmloc.models.base" in graph["vlmloc.geometry"]  # from .models.base import ...
    assert "vlmloc.interventions.base" in graph["vlmloc.runner"]  # one package over
    assert "vlmloc.experiments" in graph["vlmloc.experiments.base"]  # from . import load_all


def test_no_import_cycle(graph):
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_every_module_has_a_layer(graph):
    unplaced = []
    for module in graph:
        try:
            layer_of(module)
        except KeyError:
            unplaced.append(module)
    assert not unplaced, (
        f"place these modules in a layer of LAYERS (tests/test_imports.py): {unplaced}"
    )


def test_no_lower_layer_imports_an_upper_one(graph):
    upward = [
        f"{m} ({LAYERS[layer_of(m)][0]}) imports {t} ({LAYERS[layer_of(t)][0]})"
        for m, targets in sorted(graph.items())
        for t in sorted(targets)
        if layer_of(t) > layer_of(m)
    ]
    assert not upward, "\n".join(upward)


def test_scoring_sources_are_what_scoring_imports():
    """The scoring rule's input (PARSER_CODE in workflow/rules/common.smk): scoring.py, the
    tasks' scores, every family's parser, and what they import in turn."""
    files = scoring_sources()
    assert files == sorted(files) and all(f.startswith("src/vlmloc/") for f in files)
    for f in (
        "scoring.py",
        "tasks.py",
        "models/__init__.py",
        "models/base.py",
        "models/llava.py",
        "models/internvl.py",
    ):
        assert f"src/vlmloc/{f}" in files
    from vlmloc.models import ADAPTERS  # every family's parser

    known = modules(SRC)
    for cls in ADAPTERS.values():
        assert Path(known[cls.__module__]).relative_to(SRC.parents[1]).as_posix() in files
    # transitive: whatever a module that scoring imports imports is in too
    graph = import_graph(SRC)
    assert {
        Path(known[m]).relative_to(SRC.parents[1]).as_posix()
        for m in dependencies("vlmloc.scoring", graph)
    } == set(files)
    assert "vlmloc.tasks" in graph["vlmloc.models.base"]
    # and nothing the scoring does not use: no model running, no experiment
    assert not any(
        f.endswith(("runner.py", "experiments/base.py", "experiments/screening.py")) for f in files
    )


def test_scoring_sources_follow_a_new_import(tmp_path):
    """A module that the scoring starts to import (here in a function) joins the list."""
    import shutil

    pkg = tmp_path / "src" / "vlmloc"
    shutil.copytree(SRC, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    (pkg / "helper.py").write_text("X = 1\n")
    (pkg / "other.py").write_text("from .helper import X\n")
    scoring = pkg / "scoring.py"
    assert "src/vlmloc/other.py" not in scoring_sources(tmp_path, pkg)
    scoring.write_text(scoring.read_text() + "\n\ndef f():\n    from . import other\n")
    assert {"src/vlmloc/other.py", "src/vlmloc/helper.py"} <= set(scoring_sources(tmp_path, pkg))


def test_every_import_of_the_package_names_a_module_that_exists():
    """Each ``from .x import ...`` / ``import vlmloc.x`` names a module or package of the source
    tree (a module turned into a package keeps its relative imports only if they gain a dot:
    ``vlmloc.workflow``'s ``from .data`` once pointed at a ``vlmloc.workflow.data`` that is not
    there, and only a workflow run found it)."""
    import ast

    root = SRC.parent

    def exists(name: str) -> bool:
        path = root.joinpath(*name.split("."))
        return path.with_suffix(".py").exists() or (path / "__init__.py").exists()

    missing = []
    for file in sorted(SRC.rglob("*.py")):
        parts = list(file.relative_to(root).with_suffix("").parts)
        package = parts[:-1]  # a module's package; an __init__'s is its own folder
        for node in ast.walk(ast.parse(file.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package[: len(package) - (node.level - 1)]
                names.append(".".join(base + ([node.module] if node.module else [])))
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "vlmloc":
                names.append(node.module)
            elif isinstance(node, ast.Import):
                names += [a.name for a in node.names if a.name.split(".")[0] == "vlmloc"]
            missing += [f"{file.relative_to(root)}: {n}" for n in names if not exists(n)]
    assert not missing, missing
