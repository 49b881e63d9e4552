"""The import direction, checked on the source tree with ``ast`` (no extra tool).

Pure code — ``meterpay.kernel``, every area's ``model.py`` and ``rules.py``,
and ``meterpay.drivers`` — must not import the database, the web, the
network or the workers, neither directly nor through another meterpay module
it imports. Web modules never import SQLAlchemy or ``meterpay.db``: route
handlers call services, they never query.

Every import form counts: ``import x``, ``import x.y as z``, ``from x import
y``, relative imports, imports inside functions or ``if TYPE_CHECKING:``
blocks, and ``importlib.import_module("x")`` / ``__import__("x")`` with a
literal name.
"""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

import meterpay

PACKAGE_ROOT = Path(meterpay.__file__).resolve().parent
ROOT_NAME = "meterpay"
ADAPTERS = ("db", "web", "links", "workers")
FORBIDDEN_IN_PURE = (
    *(f"{ROOT_NAME}.{adapter}" for adapter in ADAPTERS),
    "sqlalchemy",
    "fastapi",
    "starlette",
    "uvicorn",
    "psycopg",
    "alembic",
)
FORBIDDEN_IN_WEB = ("sqlalchemy", f"{ROOT_NAME}.db")


@dataclass(frozen=True, slots=True)
class Source:
    """One module's text and whether it is a package (``__init__.py``)."""

    text: str
    is_package: bool = False


@dataclass(frozen=True, slots=True)
class Violation:
    module: str
    line: int
    target: str
    via: tuple[str, ...] = ()

    def __str__(self) -> str:
        chain = " -> ".join((*self.via, self.module)) if self.via else self.module
        return f"{chain}:{self.line} imports {self.target}"


# --- the checker ------------------------------------------------------------------------------


def _resolve_relative(module: str, is_package: bool, level: int, name: str | None) -> str:
    package = module if is_package else module.rpartition(".")[0]
    parts = package.split(".")
    if level - 1 > len(parts) - 1:
        raise ValueError(f"relative import beyond the top package in {module}")
    base = parts[: len(parts) - (level - 1)]
    return ".".join([*base, name] if name else base)


def _dynamic_import(node: ast.Call) -> str | None:
    """The literal module name of ``importlib.import_module("x")`` or ``__import__("x")``."""
    func = node.func
    named = (isinstance(func, ast.Name) and func.id in ("__import__", "import_module")) or (
        isinstance(func, ast.Attribute) and func.attr == "import_module"
    )
    if named and node.args and isinstance(node.args[0], ast.Constant):
        value = node.args[0].value
        return value if isinstance(value, str) else None
    return None


def imported_names(module: str, source: Source) -> Iterator[tuple[str, int]]:
    """Every dotted name the module imports, with its line; ``from a import b`` gives
    both ``a`` and ``a.b`` since ``b`` may be a submodule."""
    for node in ast.walk(ast.parse(source.text, filename=module)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = (
                _resolve_relative(module, source.is_package, node.level, node.module)
                if node.level
                else node.module or ""
            )
            yield base, node.lineno
            for alias in node.names:
                if alias.name != "*":
                    yield f"{base}.{alias.name}", node.lineno
        elif isinstance(node, ast.Call) and (name := _dynamic_import(node)):
            yield name, node.lineno


def _is_within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def direct_violations(module: str, source: Source, forbidden: tuple[str, ...]) -> list[Violation]:
    """One violation per forbidden name and line (``from a import b`` reports ``a`` once)."""
    hits = sorted(
        {
            (line, name)
            for name, line in imported_names(module, source)
            if any(_is_within(name, prefix) for prefix in forbidden)
        }
    )
    return [
        Violation(module, line, name)
        for line, name in hits
        if not any(other != name and _is_within(name, other) for at, other in hits if at == line)
    ]


def _own_module(name: str, sources: Mapping[str, Source]) -> str | None:
    """The longest prefix of ``name`` that is one of our modules (``a.b.Thing`` -> ``a.b``)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in sources:
            return candidate
    return None


def _loaded_with(module: str, sources: Mapping[str, Source]) -> list[str]:
    """Importing ``a.b.c`` also runs ``a/__init__.py`` and ``a/b/__init__.py``."""
    parts = module.split(".")
    return [
        ".".join(parts[:end]) for end in range(1, len(parts)) if ".".join(parts[:end]) in sources
    ]


def reachable_violations(
    start: str, sources: Mapping[str, Source], forbidden: tuple[str, ...]
) -> list[Violation]:
    """Forbidden imports anywhere in what importing ``start`` loads from our own package."""
    paths: dict[str, tuple[str, ...]] = {start: ()}
    queue = deque([start])
    found: list[Violation] = []
    while queue:
        module = queue.popleft()
        via = paths[module]
        for violation in direct_violations(module, sources[module], forbidden):
            found.append(Violation(module, violation.line, violation.target, via))
        names = [name for name, _ in imported_names(module, sources[module])]
        for name in names + _loaded_with(module, sources):
            target = _own_module(name, sources)
            if target is not None and target not in paths:
                paths[target] = (*via, module)
                queue.append(target)
    return found


# --- the tree ---------------------------------------------------------------------------------


def _module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE_ROOT.parent).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(parts)


def _tree() -> dict[str, Source]:
    return {
        _module_name(path): Source(path.read_text(encoding="utf-8"), path.name == "__init__.py")
        for path in sorted(PACKAGE_ROOT.rglob("*.py"))
    }


SOURCES = _tree()


def _area_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _is_pure(module: str) -> bool:
    area, last = _area_of(module), module.rpartition(".")[2]
    if area in ("kernel", "drivers"):
        return True
    return area not in ADAPTERS and last in ("model", "rules") and module.count(".") >= 2


PURE = sorted(m for m in SOURCES if _is_pure(m))
WEB = sorted(m for m in SOURCES if _area_of(m) == "web")


# --- the rules on our tree --------------------------------------------------------------------


def test_the_walk_finds_the_kernel_and_the_areas_models_and_rules() -> None:
    """Discovery is not vacuous: the kernel and some model and rules modules are found."""
    assert any(_area_of(m) == "kernel" for m in PURE)
    assert any(m.endswith(".model") for m in PURE)
    assert any(m.endswith(".rules") for m in PURE)
    assert WEB, "no web modules found"


@pytest.mark.parametrize("module", PURE)
def test_pure_code_imports_no_database_web_or_network_code(module: str) -> None:
    """A pure module names none of the adapters or their libraries in any import."""
    assert direct_violations(module, SOURCES[module], FORBIDDEN_IN_PURE) == []


@pytest.mark.parametrize("module", PURE)
def test_pure_code_reaches_no_adapter_through_other_meterpay_modules(module: str) -> None:
    """Nothing pure code loads from meterpay (package ``__init__`` files included)
    imports the database, the web, the network or the workers."""
    found = reachable_violations(module, SOURCES, FORBIDDEN_IN_PURE)
    assert [str(v) for v in found] == []


@pytest.mark.parametrize("module", WEB)
def test_web_modules_import_no_sqlalchemy_because_route_handlers_never_query(
    module: str,
) -> None:
    """Web code calls services; it never builds a query or touches the schema."""
    assert direct_violations(module, SOURCES[module], FORBIDDEN_IN_WEB) == []


# --- the checker checks itself ----------------------------------------------------------------

BAD_MODEL = '''
"""A model that reaches for the database in every way we know."""
import sqlalchemy
import fastapi.responses as responses
from starlette.requests import Request
from ..db import schema
from .. import web
from meterpay import links
import importlib


def load() -> None:
    import psycopg
    from alembic import op
    importlib.import_module("uvicorn")
    __import__("meterpay.workers.scheduler")
'''

CLEAN_MODEL = '''
"""A model that only uses the standard library and the kernel."""
from dataclasses import dataclass
from decimal import Decimal
from meterpay.kernel.money import Money
from ..kernel import clock
from . import rules
import sqlalchemy_like_but_not_sqlalchemy
import fastapix
'''


def test_the_checker_flags_every_forbidden_import_form_in_a_bad_snippet() -> None:
    """Plain, aliased, from-, relative, function-local and dynamic imports are all caught."""
    found = direct_violations("meterpay.metering.model", Source(BAD_MODEL), FORBIDDEN_IN_PURE)
    assert sorted(v.target for v in found) == [
        "alembic",
        "fastapi.responses",
        "meterpay.db",
        "meterpay.links",
        "meterpay.web",
        "meterpay.workers.scheduler",
        "psycopg",
        "sqlalchemy",
        "starlette.requests",
        "uvicorn",
    ]


def test_the_checker_passes_a_clean_snippet_and_respects_name_boundaries() -> None:
    """The kernel, the standard library and look-alike names are not violations."""
    assert (
        direct_violations("meterpay.metering.model", Source(CLEAN_MODEL), FORBIDDEN_IN_PURE) == []
    )


def test_relative_imports_resolve_from_a_package_as_from_a_module() -> None:
    """``from . import x`` in ``a/b/__init__.py`` means ``a.b.x``; in ``a/b/c.py`` too."""
    in_package = dict(imported_names("meterpay.metering", Source("from . import x", True)))
    in_module = dict(imported_names("meterpay.metering.c", Source("from . import x")))
    assert "meterpay.metering.x" in in_package
    assert "meterpay.metering.x" in in_module


def test_the_checker_follows_a_forbidden_import_through_an_innocent_looking_module() -> None:
    """A rule that imports a helper that imports SQLAlchemy is caught, with the path shown."""
    sources = {
        "meterpay": Source("", is_package=True),
        "meterpay.billing": Source("", is_package=True),
        "meterpay.billing.rules": Source("from meterpay.billing.pricing import price"),
        "meterpay.billing.pricing": Source("def price():\n    from sqlalchemy import select\n"),
        "meterpay.ledger": Source("from meterpay.ledger import repository", is_package=True),
        "meterpay.ledger.model": Source("x = 1"),
        "meterpay.ledger.repository": Source("import sqlalchemy"),
    }
    via_helper = reachable_violations("meterpay.billing.rules", sources, FORBIDDEN_IN_PURE)
    via_init = reachable_violations("meterpay.ledger.model", sources, FORBIDDEN_IN_PURE)
    assert [str(v) for v in via_helper] == [
        "meterpay.billing.rules -> meterpay.billing.pricing:2 imports sqlalchemy"
    ]
    assert [v.module for v in via_init] == ["meterpay.ledger.repository"]
