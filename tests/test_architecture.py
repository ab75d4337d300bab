"""The layers: every module under ``batchplan/`` imports only from the layers below it.

The rules are the ones ``docs/architecture.md`` draws; each folder's ``__init__``
says the same in words. The checker reads source with ``ast`` (nothing is
imported), so an import inside a function or under ``TYPE_CHECKING`` counts too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "batchplan"

CORE = "core"
# The core modules at the top of the package: value types and errors every layer shares.
CORE_MODULES = frozenset(
    {
        "__init__",
        "errors",
        "model",
        "options",
        "diagnostics",
        "redact",
        "files",
        "escaping",
        "threads",
    }
)
# What each layer may import besides itself. ``commands`` and ``cli`` sit on top: anything.
ALLOWED: dict[str, frozenset[str]] = {
    CORE: frozenset(),
    "config": frozenset({CORE}),
    "sandbox": frozenset({CORE}),
    "api": frozenset({CORE, "sandbox"}),
    "state": frozenset({CORE, "api"}),
    "plan": frozenset({CORE, "config", "api", "state"}),
    "apply": frozenset({CORE, "api", "state", "plan"}),
    "views": frozenset({CORE, "plan", "apply"}),
}
TOP = frozenset({"commands", "cli", "__main__"})
LAYERS = frozenset(ALLOWED) | TOP


class WrongWayImport(NamedTuple):
    module: str
    line: int
    imported: str
    layer: str
    target: str

    def __str__(self) -> str:
        return (
            f"{self.module}:{self.line}: imports {self.imported} "
            f"({self.layer} may not import {self.target})"
        )


def layer_of(dotted: str) -> str | None:
    """The layer a ``batchplan...`` module belongs to (None for anything outside the package)."""
    parts = dotted.split(".")
    if parts[0] != "batchplan":
        return None
    if len(parts) == 1 or parts[1] in CORE_MODULES:
        return CORE
    if parts[1] in LAYERS:
        return parts[1]
    raise ValueError(f"{dotted}: a module in no known layer; add it to docs/architecture.md")


def imported_names(tree: ast.AST, module: str, is_package: bool) -> Iterator[tuple[int, str]]:
    """Every module name ``tree`` imports, with its line (relative imports resolved)."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base]) if base else ".".join(anchor)
            for alias in node.names:
                # ``from batchplan import sandbox`` imports a layer, not a name in the core.
                candidate = f"{base}.{alias.name}"
                if base == "batchplan" and alias.name in LAYERS:
                    yield node.lineno, candidate
                else:
                    yield node.lineno, base


def wrong_way_imports(source: str, module: str, is_package: bool = False) -> list[WrongWayImport]:
    """The imports in ``source`` (the text of ``module``) that go against the layers."""
    layer = layer_of(module)
    if layer is None or layer in TOP:
        return []
    found = []
    for line, imported in imported_names(ast.parse(source), module, is_package):
        target = layer_of(imported)
        if target is None or target == layer or target in ALLOWED[layer]:
            continue
        found.append(WrongWayImport(module, line, imported, layer, target))
    return found


def package_modules() -> Iterator[tuple[str, Path, bool]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        is_package = parts[-1] == "__init__"
        dotted = ".".join(parts[:-1] if is_package else parts)
        yield dotted, path, is_package


def test_every_module_imports_only_from_the_layers_below_it() -> None:
    modules = list(package_modules())
    assert len(modules) > 40  # the walk found the package, not an empty folder
    problems = [
        str(problem)
        for dotted, path, is_package in modules
        for problem in wrong_way_imports(path.read_text(encoding="utf-8"), dotted, is_package)
    ]
    assert problems == []


@pytest.mark.parametrize(
    ("module", "source", "target"),
    [
        ("batchplan.config.load", "from batchplan.api.client import ScaleClient\n", "api"),
        ("batchplan.model", "import batchplan.config.load\n", "config"),
        ("batchplan.sandbox.store", "from batchplan.state import State\n", "state"),
        ("batchplan.api.client", "def f():\n    from batchplan.plan import diff\n", "plan"),
        ("batchplan.state.local", "from ..plan.changes import Plan\n", "plan"),
        ("batchplan.plan.diff", "from batchplan import views\n", "views"),
        ("batchplan.views.text", "from batchplan.commands import plan\n", "commands"),
        ("batchplan.apply.engine", "from batchplan.config import load\n", "config"),
        ("batchplan.views.json", "from batchplan.api.client import ScaleClient\n", "api"),
    ],
)
def test_a_wrong_way_import_is_caught(module: str, source: str, target: str) -> None:
    problems = wrong_way_imports(source, module)
    assert [problem.target for problem in problems] == [target]
    assert module in str(problems[0])


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("batchplan.plan.planfile", "from batchplan.config.schema import x\nimport json\n"),
        ("batchplan.api.endpoint", "from batchplan.sandbox import start_sandbox\n"),
        ("batchplan.state.writer", "from . import State\nfrom batchplan import __version__\n"),
        (
            "batchplan.cli",
            "from batchplan.commands import plan\nfrom batchplan.views import text\n",
        ),
        ("batchplan.commands.plan", "from batchplan.views.json import render\n"),
    ],
)
def test_a_right_way_import_passes(module: str, source: str) -> None:
    assert wrong_way_imports(source, module) == []


def test_a_module_in_no_layer_is_named() -> None:
    with pytest.raises(ValueError, match=r"batchplan\.engine"):
        wrong_way_imports("import json\n", "batchplan.engine.run")


# -- commands word nothing: their views do -------------------------------------

COMMANDS = PACKAGE / "commands"
# What writes a line out: click's and print's, a view's or stream's ``write``, ``tell``, ``note``.
PRINTERS = frozenset({"echo", "secho", "print", "tell", "write", "writelines", "note"})


class WordedOutput(NamedTuple):
    module: str
    function: str
    line: int

    def __str__(self) -> str:
        return (
            f"{self.module}:{self.line} (in {self.function}): prints wording of its own; "
            "hand the facts to the command's view in batchplan/views/ instead"
        )


def _callee(call: ast.Call) -> str | None:
    """The name a call is made through: ``echo`` for ``echo(...)``, ``click.echo(...)``, ..."""
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return None


def _has_words(node: ast.AST, helpers: frozenset[str]) -> bool:
    """A sentence built here: an f-string, a worded literal, or a helper's result.

    A literal is worded when it holds a letter or digit and is more than one
    bare name: ``"stdout"`` names a stream, ``"Removed "`` starts a sentence.
    """
    for part in ast.walk(node):
        if isinstance(part, ast.JoinedStr):
            return True
        if isinstance(part, ast.Constant) and isinstance(part.value, str):
            text = part.value
            if any(char.isalnum() for char in text) and not text.isidentifier():
                return True
        if isinstance(part, ast.Call) and _callee(part) in helpers:
            return True  # ``echo(_what_was_done(...))``: the helper words the line
    return False


def _is_docstring(statement: ast.stmt) -> bool:
    return isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant)


def _printers_of(tree: ast.Module) -> frozenset[str]:
    """The printers, and this module's functions that pass their argument to one (``_stderr``)."""
    wrappers = {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
        and len([s for s in node.body if not _is_docstring(s)]) == 1
        and any(isinstance(c, ast.Call) and _callee(c) in PRINTERS for c in ast.walk(node))
    }
    return PRINTERS | wrappers


def worded_output(source: str, module: str) -> list[WordedOutput]:
    """Every printer call in ``source`` (a command module) whose line is worded here."""
    tree = ast.parse(source)
    helpers = frozenset(
        node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.ClassDef)
    )
    printers = _printers_of(tree)
    found = []
    functions = [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)]
    for function in functions:
        for call in ast.walk(function):
            if not (isinstance(call, ast.Call) and _callee(call) in printers):
                continue
            arguments = [*call.args, *(keyword.value for keyword in call.keywords)]
            if any(_has_words(argument, helpers) for argument in arguments):
                found.append(WordedOutput(module, function.name, call.lineno))
    return sorted(set(found), key=lambda site: (site.module, site.line))


def command_modules() -> list[tuple[str, Path]]:
    return [
        (f"batchplan.commands.{path.stem}", path)
        for path in sorted(COMMANDS.glob("*.py"))
        if path.stem != "__init__"
    ]


def test_no_command_words_its_output_a_view_does() -> None:
    modules = command_modules()
    assert len(modules) >= 10  # the walk found the commands
    found = [
        site
        for module, path in modules
        for site in worded_output(path.read_text(encoding="utf-8"), module)
    ]
    assert [str(site) for site in found] == []


@pytest.mark.parametrize(
    "source",
    [
        'def f(echo):\n    echo(f"Removed {name}.")\n',
        'def f(echo):\n    echo("Removed " + name)\n',
        'def f():\n    click.echo("Done.", err=True)\n',
        'def f(view):\n    view.echo("{} done".format(name))\n',
        'def f():\n    print(f"{x}")\n',
        'def f():\n    sys.stderr.write("Stopped now.\\n")\n',
        'def g():\n    return "done"\ndef f(echo):\n    echo(g())\n',
        'def _err(line):\n    click.echo(line, err=True)\ndef f():\n    _err(f"no state at {x}")\n',
        'def _err(line):\n    "Doc."\n    click.echo(line, err=True)\ndef f():\n    _err("No.")\n',
    ],
)
def test_a_worded_line_in_a_command_is_caught(source: str) -> None:
    assert [site.function for site in worded_output(source, "batchplan.commands.x")] == ["f"]


@pytest.mark.parametrize(
    "source",
    [
        "def f(view, path):\n    view.wrote_config(path)\n",
        "def f(echo, text):\n    echo(text)\n",
        'def f():\n    click.echo("")\n',  # ends a prompt's line: no wording
        'def f(state):\n    raise StateError(f"no state at {state}")\n',
        'def f(path):\n    path.write_text("x")\n',
        'def f(trouble, exc):\n    trouble.tell("stdout", exc)\n',  # a stream's name
    ],
)
def test_a_command_handing_facts_to_its_view_passes(source: str) -> None:
    assert worded_output(source, "batchplan.commands.x") == []


# -- threads leave signals to the main thread ----------------------------------


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return node.id if isinstance(node, ast.Name) else ""


def unquiet_threads(source: str) -> list[int]:
    """Lines making a thread or a pool directly, not through ``threads.start``/``threads.Pool``."""
    return [
        node.lineno
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call)
        and (
            _dotted(node.func) in {"threading.Thread", "Thread"}
            or _dotted(node.func).endswith("ThreadPoolExecutor")
        )
    ]


def test_every_thread_batchplan_starts_blocks_the_signals_it_handles() -> None:
    # The embedded sandbox runs in a command's process too; threads.py keeps the rule.
    found = [
        f"{path.relative_to(PACKAGE)}:{line}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "threads.py"
        for line in unquiet_threads(path.read_text(encoding="utf-8"))
    ]
    assert found == []


@pytest.mark.parametrize(
    ("source", "lines"),
    [
        ("threading.Thread(target=f).start()", [1]),
        ("pool = ThreadPoolExecutor(4)", [1]),
        ("threads.start('worker', f)", []),
        ("pool = threads.Pool(max_workers=4)", []),
    ],
)
def test_the_thread_check_tells_quiet_from_unquiet(source: str, lines: list[int]) -> None:
    assert unquiet_threads(source) == lines
