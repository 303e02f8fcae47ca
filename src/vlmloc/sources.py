"""vlmloc's own import graph, read from the source files with ``ast``: nothing is imported (no
torch, no pandas), so the workflow's Snakefile can call it before any job.

- ``import_graph()``: which vlmloc modules each vlmloc module imports, at module level and
  inside functions (tests/test_imports.py checks it for cycles and for the layer order);
- ``scoring_sources()``: the source files of ``vlmloc.scoring`` and of every vlmloc module it
  imports, transitively. The workflow's scoring rules take them as input (``PARSER_CODE`` in
  ``workflow/rules/common.smk``), so a change to the parsers or the scores rescores every
  experiment, and the list follows the code instead of being kept by hand.

An edge is the module an import statement names: ``from .models import ADAPTERS`` is an edge to
the package ``vlmloc.models`` (its ``__init__.py``), ``from .models.base import Adapter`` one to
``vlmloc.models.base``, ``from . import tasks`` one to ``vlmloc.tasks``. Imports made through
``importlib`` (the lazy ``__init__`` of ``experiments`` and ``probes``) are not seen.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "vlmloc"
PACKAGE_DIR = Path(__file__).resolve().parent
SCORING = "vlmloc.scoring"


def modules(package_dir: str | Path = PACKAGE_DIR) -> dict[str, Path]:
    """Every module of the package under ``package_dir``: dotted name -> source file (a package is
    its ``__init__.py``)."""
    package_dir = Path(package_dir)
    out = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = [PACKAGE, *path.relative_to(package_dir).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _named(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    """The dotted names an import statement of ``module`` reaches: the module, or for ``from X
    import a`` both ``X.a`` (in case it is a submodule) and ``X``."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        here = module.split(".") if is_package else module.split(".")[:-1]
        if node.level > 1:
            here = here[: -(node.level - 1)]
        base = ".".join(here + ([node.module] if node.module else []))
    else:
        base = node.module or ""
    return [f"{base}.{alias.name}" for alias in node.names] + [base]


def imports_of(module: str, known: dict[str, Path], function_level: bool = True) -> set[str]:
    """The vlmloc modules that ``module`` imports (``known``: ``modules()``); with
    ``function_level=False`` only the imports that run when the module is imported (statements
    outside any function)."""
    path = known[module]
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    if function_level:
        nodes = [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]
    else:
        nodes = list(_outside_functions(tree))
    out = set()
    for node in nodes:
        names = _named(node, module, is_package)
        if isinstance(node, ast.ImportFrom):  # X.a when a is a submodule, else X
            subs = [n for n in names[:-1] if n in known]
            names = subs if len(subs) == len(names) - 1 else [*subs, names[-1]]
        for name in names:
            while name not in known and "." in name:  # vlmloc.x.attribute -> vlmloc.x
                name = name.rsplit(".", 1)[0]
            if name in known and name != module:
                out.add(name)
    return out


def _outside_functions(node: ast.AST):
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child
        elif not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            yield from _outside_functions(child)


def import_graph(
    package_dir: str | Path = PACKAGE_DIR, function_level: bool = True
) -> dict[str, set[str]]:
    """Module -> the vlmloc modules it imports (see ``imports_of``), for every module."""
    known = modules(package_dir)
    return {name: imports_of(name, known, function_level) for name in known}


def dependencies(module: str, graph) -> set[str]:
    """``module`` and every module it imports, transitively (``graph``: ``import_graph()``, or any
    mapping or function from a module to the modules it imports)."""
    step = graph if callable(graph) else graph.__getitem__
    seen, todo = set(), [module]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(step(name))
    return seen


def scoring_sources(
    root: str | Path | None = None, package_dir: str | Path = PACKAGE_DIR
) -> list[str]:
    """The source files of ``vlmloc.scoring`` and of every vlmloc module it imports (at module
    level or inside a function), transitively: sorted POSIX paths relative to ``root`` (default:
    the checkout, two folders above the package, e.g. ``src/vlmloc/scoring.py``)."""
    package_dir = Path(package_dir).resolve()
    root = Path(root).resolve() if root is not None else package_dir.parents[1]
    known = modules(package_dir)
    reached = dependencies(SCORING, lambda m: imports_of(m, known))  # parses only what it reaches
    return sorted(known[m].relative_to(root).as_posix() for m in reached)
