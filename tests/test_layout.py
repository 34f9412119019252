"""The layout's dependency rule, read from the source: the tree shows who depends on whom.

* ``login_etl`` (the function, what runs in Lambda) imports none of the other three;
* ``login_etl_cli`` (the operator CLI) imports nothing of ``login_etl_local`` nor of
  ``benchmarks``: the local stack's commands and function process plug in through entry points
  (``pyproject.toml``), and the CLI reads the stack's record with its own ``local_stack``;
* ``login_etl_local`` (the laptop's stack and emulators) imports nothing of ``benchmarks``.

Every import counts: at module level, under ``TYPE_CHECKING``, inside functions, and
``importlib.import_module`` / ``__import__`` of a constant name.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {
    "login_etl": ROOT / "src" / "login_etl",
    "login_etl_cli": ROOT / "src" / "login_etl_cli",
    "login_etl_local": ROOT / "src" / "login_etl_local",
    "benchmarks": ROOT / "benchmarks",
}
ENTRY_POINT_GROUPS = ("login_etl.commands", "login_etl.functions")


@dataclass(frozen=True)
class Import:
    """One module a module imports, and where."""

    importer: str  # dotted module name
    target: str  # dotted name: the module, or module.attribute for ``from m import a``
    line: int
    in_function: bool


def module_name(package: str, path: Path) -> str:
    parts = [package, *path.relative_to(PACKAGES[package]).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(importer: str, path: Path) -> list[Import]:
    """Every import in the file, with whether it sits inside a function."""
    found: list[Import] = []
    is_package = path.name == "__init__.py"

    def absolute(module: str | None, level: int) -> str:
        if level == 0:
            return module or ""
        base = importer.split(".")
        base = base if is_package else base[:-1]
        base = base[: len(base) - (level - 1)]
        return ".".join([*base, module] if module else base)

    def visit(node: ast.AST, in_function: bool) -> None:
        inside = in_function or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Import):
            found.extend(Import(importer, alias.name, line, inside) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = absolute(node.module, node.level)
            found.extend(Import(importer, f"{module}.{a.name}", line, inside) for a in node.names)
        elif isinstance(node, ast.Call) and _dynamic_import(node):
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                found.append(Import(importer, first.value, line, inside))
        for child in ast.iter_child_nodes(node):
            visit(child, inside)

    visit(ast.parse(path.read_text(), str(path)), in_function=False)
    return found


def _dynamic_import(call: ast.Call) -> bool:
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    return name in ("import_module", "__import__") and bool(call.args)


def all_imports() -> list[Import]:
    found = []
    for package, directory in PACKAGES.items():
        for path in sorted(directory.rglob("*.py")):
            found += imports_of(module_name(package, path), path)
    return found


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def violation(item: Import) -> str | None:
    """Why this import breaks the rule, or None."""
    importer, target = item.importer, item.target
    if within(importer, "login_etl"):
        others = ("login_etl_cli", "login_etl_local", "benchmarks")
        if any(within(target, other) for other in others):
            return "the function imports none of the tools"
    elif within(importer, "login_etl_cli"):
        if within(target, "benchmarks"):
            return "the operator CLI does not import the benchmarks"
        if within(target, "login_etl_local"):
            return "the operator CLI imports nothing of the local stack (entry points plug it in)"
    elif within(importer, "login_etl_local") and within(target, "benchmarks"):
        return "the local stack does not import the benchmarks"
    return None


def test_every_package_is_read() -> None:
    found = {item.importer.split(".")[0] for item in all_imports()}

    assert found == set(PACKAGES)


def test_the_dependency_rule_holds() -> None:
    broken = [
        f"{item.importer} line {item.line}: {item.target}: {why}"
        for item in all_imports()
        if (why := violation(item)) is not None
    ]

    assert broken == []


@pytest.mark.parametrize(
    ("item", "allowed"),
    [
        (Import("login_etl_cli.targets", "login_etl_cli.local_stack.X", 1, False), True),
        (Import("login_etl_cli.targets", "login_etl_local.stack_record.X", 1, False), False),
        (Import("login_etl_cli.targets", "login_etl_local.stack.LocalStack", 1, True), False),
        (Import("login_etl_cli.commands.registry", "login_etl_local.commands", 1, True), False),
        (Import("login_etl_cli.main", "login_etl_local.commands.run", 1, True), False),
        (Import("login_etl_cli.redrive", "login_etl_local", 1, False), False),
        (Import("login_etl_local.stack_record", "login_etl_cli.local_stack.X", 1, False), True),
        (Import("login_etl.handler", "login_etl_cli.keys.KeyStore", 1, True), False),
        (Import("login_etl_local.stack", "benchmarks.floor", 1, False), False),
        (Import("login_etl_local.stack", "login_etl_cli.signals.shielded", 1, False), True),
    ],
)
def test_the_rule_tells_allowed_from_forbidden(item: Import, allowed: bool) -> None:
    assert (violation(item) is None) is allowed


def test_function_level_and_dynamic_imports_are_seen(tmp_path: Path) -> None:
    source = tmp_path / "module.py"
    source.write_text(
        "import importlib\n"
        "def f():\n"
        "    from login_etl_local.stack import local_stack\n"
        "    importlib.import_module('login_etl_local.seeding')\n"
    )

    found = imports_of("login_etl_cli.module", source)

    assert [(i.target, i.in_function) for i in found] == [
        ("importlib", False),
        ("login_etl_local.stack.local_stack", True),
        ("login_etl_local.seeding", True),
    ]


LOADED = """
import sys
from login_etl_cli import main
main.parser(load=sys.argv[1:])
print(" ".join(sorted(m for m in sys.modules if m.startswith("login_etl_local"))))
"""


def loaded_local_modules(*load: str) -> set[str]:
    """The ``login_etl_local`` modules a fresh interpreter imports to build the CLI's parser."""
    result = subprocess.run(
        [sys.executable, "-c", LOADED, *load], capture_output=True, text=True, check=True
    )
    return set(result.stdout.split())


def test_stack_and_run_are_imported_only_when_named() -> None:
    unnamed = loaded_local_modules()
    named = loaded_local_modules("stack", "run")

    # The entry points' light module only, for the summaries of login-etl --help.
    assert unnamed == {"login_etl_local", "login_etl_local.commands"}
    assert {"login_etl_local.commands.stack", "login_etl_local.commands.run"} <= named


def test_what_the_local_stack_plugs_in_is_declared_and_loads() -> None:
    """The entry points the CLI finds the local commands and function process by."""
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]
    installed = {group: {e.name for e in entry_points(group=group)} for group in ENTRY_POINT_GROUPS}

    assert set(declared) == set(ENTRY_POINT_GROUPS)
    assert installed == {group: set(declared[group]) for group in ENTRY_POINT_GROUPS}
    for group in ENTRY_POINT_GROUPS:
        for entry in entry_points(group=group):
            assert within(entry.value.split(":")[0], "login_etl_local"), entry
            assert entry.load() is not None
