"""Tariff files and consumption profiles (YAML, JSON, CSV): read exactly, written back alike.

A tariff file holds one tariff, its prices in the ``TariffComponents.to_dict()`` form::

    code: bj-residential
    name: 北京居民电价
    utility: electricity
    effective_from: 2026-01-01T00:00:00+08:00
    components: {energy: {unit_price: "0.4883"}, tiers: ...}

or, for several versions, ``versions: [{effective_from, components}, ...]`` in place
of the last two keys. A profile (for a quote) is rows of ``quantity, start, end``
with optional register deltas ``tip, peak, flat, valley`` and ``time_zone``: a CSV
with a header, or a YAML/JSON list, or a mapping ``{profile: [...], state: {...}}``.

Invariants:
- a number is never a float: YAML and JSON decimals become ``Decimal`` from their
  own text; a YAML integer stays ``int`` only in plain base 10, and what YAML 1.1
  would read as a sexagesimal, octal or hex number (``22:00``, ``010``) stays the
  text it is; timestamps stay text until read as ISO 8601 with an offset;
- a key given twice is refused, not silently overridden;
- every refusal names the field from the top of the file
  (``versions[1].components.tiers.steps[0].up_to``, ``row 3.start``);
- versions are in strictly increasing ``effective_from`` order, each with an offset;
- ``load_tariff(dump_tariff(doc, fmt), fmt) == doc`` for YAML and JSON.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from pathlib import PurePath
from typing import Any, Final

import yaml

from meterpay.kernel.errors import InvalidInput
from meterpay.kernel.quantity import Utility
from meterpay.tariffs.components import EnergyPrice, TariffComponents
from meterpay.tariffs.fields import (
    TariffInvalid,
    as_choice,
    as_list,
    as_object,
    as_text,
    field_scope,
)
from meterpay.tariffs.model import Tariff
from meterpay.tariffs.tou import Period
from meterpay.tariffs.usage import InvalidUsage, TierState, Usage

_TARIFF_CODE: Final = re.compile(r"[A-Za-z0-9_.\-]{1,32}")
_BASE_10_INT: Final = re.compile(r"[-+]?[0-9]+")
PROFILE_COLUMNS: Final = ("quantity", "start", "end", *(p.value for p in Period), "time_zone")
FILE: Final = "(file)"


class FileFormat(StrEnum):
    YAML = "yaml"
    JSON = "json"
    CSV = "csv"  # profiles only

    @classmethod
    def of(cls, path: str | PurePath) -> FileFormat:
        """The format a file name says: ``.json``, ``.csv``, anything else YAML."""
        suffix = PurePath(path).suffix.lower()
        return {".json": cls.JSON, ".csv": cls.CSV}.get(suffix, cls.YAML)


class ProfileInvalid(InvalidInput):
    """A consumption profile that cannot be priced; ``field`` says where."""

    code = "profile_invalid"

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}", field=field, rule=rule)


@dataclass(frozen=True, slots=True)
class VersionDoc:
    effective_from: datetime
    components: TariffComponents


@dataclass(frozen=True, slots=True)
class TariffDoc:
    """One tariff as a file holds it: what ``create_tariff`` and ``add_version`` take."""

    code: str
    name: str
    utility: Utility
    versions: tuple[VersionDoc, ...]


@dataclass(frozen=True, slots=True)
class ProfileDoc:
    usages: tuple[Usage, ...]
    state: TierState | None = None


# --- exact text -> plain data -----------------------------------------------------------------


class _ExactLoader(yaml.SafeLoader):
    """YAML's safe loader that never makes a float, a base-60 number or a datetime."""


def _exact_float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Decimal | str:
    text = str(loader.construct_scalar(node))
    try:
        return Decimal(text)
    except InvalidOperation:
        return text  # ".inf", "1:30.5": left as text, refused by the field that reads it


def _exact_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int | str:
    text = str(loader.construct_scalar(node))
    return int(text) if _BASE_10_INT.fullmatch(text) else text


def _as_text(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> str:
    return str(loader.construct_scalar(node))


def _unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: set[object] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if isinstance(key, str | int) and key in seen:
            line = key_node.start_mark.line + 1
            raise TariffInvalid(str(key), f"is given twice (line {line})")
        seen.add(key if isinstance(key, str | int) else id(key))
    return loader.construct_mapping(node)


_ExactLoader.add_constructor("tag:yaml.org,2002:float", _exact_float)
_ExactLoader.add_constructor("tag:yaml.org,2002:int", _exact_int)
_ExactLoader.add_constructor("tag:yaml.org,2002:timestamp", _as_text)
_ExactLoader.add_constructor("tag:yaml.org,2002:map", _unique_mapping)


def _json_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise TariffInvalid(key, "is given twice")
        found[key] = value
    return found


def _no_constant(name: str) -> object:
    raise TariffInvalid(FILE, f"{name} is not a number")


def parse_text(text: str, fmt: FileFormat) -> object:
    """YAML or JSON text as plain data with exact numbers (see the module docstring)."""
    if fmt is FileFormat.JSON:
        try:
            return json.loads(
                text,
                parse_float=Decimal,
                parse_constant=_no_constant,
                object_pairs_hook=_json_pairs,
            )
        except json.JSONDecodeError as exc:
            rule = f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
            raise TariffInvalid(FILE, rule) from None
    if fmt is FileFormat.YAML:
        try:
            return yaml.load(text, Loader=_ExactLoader)  # noqa: S506  a SafeLoader subclass
        except yaml.YAMLError as exc:
            raise TariffInvalid(FILE, f"not valid YAML: {_yaml_problem(exc)}") from None
    raise TariffInvalid(FILE, f"a {fmt} file holds rows, not a document")


def _yaml_problem(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None) or str(exc)
    mark = getattr(exc, "problem_mark", None)
    return f"{problem} (line {mark.line + 1})" if mark is not None else str(problem)


# --- tariff files -----------------------------------------------------------------------------


def load_tariff(text: str, fmt: FileFormat) -> TariffDoc:
    """A tariff file's text, validated; a refusal is a ``TariffInvalid`` naming the field."""
    return tariff_from_data(parse_text(text, fmt))


def tariff_from_data(data: object) -> TariffDoc:
    optional = ("effective_from", "components", "versions")
    fields = as_object(data, "", ("code", "name", "utility"), optional)
    code = fields["code"]
    if not isinstance(code, str) or not _TARIFF_CODE.fullmatch(code):
        rule = "must be 1-32 letters, digits, '_', '.' or '-'"
        raise TariffInvalid("code", f"{rule}, got {code!r}")
    if "versions" in fields:
        single = [key for key in ("effective_from", "components") if key in fields]
        if single:
            raise TariffInvalid(single[0], "give versions or effective_from with components")
        versions = _versions(fields["versions"])
    else:
        versions = (
            _version({k: fields[k] for k in ("effective_from", "components") if k in fields}),
        )
    return TariffDoc(
        code=code,
        name=as_text(fields["name"], "name"),
        utility=as_choice(fields["utility"], Utility, "utility"),
        versions=versions,
    )


def _versions(data: object) -> tuple[VersionDoc, ...]:
    items = as_list(data, "versions")
    if not items:
        raise TariffInvalid("versions", "a tariff needs at least one version")
    versions: list[VersionDoc] = []
    for index, item in enumerate(items):
        with field_scope(f"versions[{index}]"):
            version = _version(item)
        if versions and version.effective_from <= versions[-1].effective_from:
            rule = f"must be after versions[{index - 1}].effective_from"
            raise TariffInvalid(f"versions[{index}].effective_from", rule)
        versions.append(version)
    return tuple(versions)


def _version(data: object) -> VersionDoc:
    fields = as_object(data, "", ("effective_from", "components"))
    effective_from = aware_time(fields["effective_from"], "effective_from")
    with field_scope("components"):
        components = TariffComponents.from_dict(fields["components"])
    return VersionDoc(effective_from, components)


def aware_time(value: object, field: str) -> datetime:
    """An ISO 8601 time with an offset (``2026-01-01T00:00:00+08:00``)."""
    rule = "must be an ISO 8601 time with an offset, e.g. 2026-01-01T00:00:00+08:00"
    try:
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    except ValueError:
        raise TariffInvalid(field, f"{rule}, got {value!r}") from None
    if moment.utcoffset() is None:
        raise TariffInvalid(field, f"{rule}; {value!r} has no offset")
    return moment


def tariff_doc(tariff: Tariff) -> TariffDoc:
    """A stored tariff as a file holds it."""
    versions = tuple(
        VersionDoc(v.effective_from, v.components or TariffComponents(EnergyPrice(v.unit_price)))
        for v in tariff.versions
    )
    return TariffDoc(tariff.code, tariff.name, tariff.utility, versions)


def tariff_to_data(doc: TariffDoc, zone: tzinfo | None = None) -> dict[str, object]:
    """The file's plain data; times in ``zone`` when given. One version: the short shape."""
    versions = [
        {
            "effective_from": (
                v.effective_from.astimezone(zone) if zone else v.effective_from
            ).isoformat(),
            "components": _pruned(v.components.to_dict()),
        }
        for v in doc.versions
    ]
    head: dict[str, object] = {"code": doc.code, "name": doc.name, "utility": doc.utility.value}
    return {**head, **versions[0]} if len(versions) == 1 else {**head, "versions": versions}


def _pruned(components: dict[str, object]) -> dict[str, object]:
    """Leave out the components a version does not use: a file shows what it charges."""
    return {key: value for key, value in components.items() if value not in (None, [])}


def dump_tariff(doc: TariffDoc, fmt: FileFormat, zone: tzinfo | None = None) -> str:
    """The tariff file's text: YAML with Chinese left readable, or indented JSON."""
    data = tariff_to_data(doc, zone)
    if fmt is FileFormat.JSON:
        return json.dumps(data, ensure_ascii=False, indent=2) + "\n"
    if fmt is FileFormat.YAML:
        return yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=100)
    raise TariffInvalid("format", "a tariff is written as yaml or json")


# --- consumption profiles ---------------------------------------------------------------------


def load_profile(text: str, fmt: FileFormat) -> ProfileDoc:
    """A profile's text, validated; a refusal is a ``ProfileInvalid`` naming row and column."""
    if fmt is FileFormat.CSV:
        return ProfileDoc(_csv_usages(text))
    try:
        data = parse_text(text, fmt)
    except TariffInvalid as exc:
        raise ProfileInvalid(exc.field, exc.rule) from None
    if isinstance(data, Mapping):
        _known_keys(data, "", ("profile", "state"))
        state = data.get("state")
        return ProfileDoc(_listed_usages(data.get("profile")), _state(state) if state else None)
    return ProfileDoc(_listed_usages(data))


def _csv_usages(text: str) -> tuple[Usage, ...]:
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))  # Excel writes a BOM
    header = [name.strip() for name in reader.fieldnames or ()]
    for required in PROFILE_COLUMNS[:3]:
        if required not in header:
            raise ProfileInvalid("header", f"needs the column {required}")
    unknown = [name for name in header if name not in PROFILE_COLUMNS]
    if unknown:
        raise ProfileInvalid("header", f"unknown column {unknown[0]!r} (known: {PROFILE_COLUMNS})")
    usages = []
    for line, row in enumerate(reader, start=2):
        cells = {k.strip(): v.strip() for k, v in row.items() if k and v and v.strip()}
        usages.append(_usage(cells, f"row {line}"))
    if not usages:
        raise ProfileInvalid("rows", "the profile has no rows")
    return tuple(usages)


def _listed_usages(data: object) -> tuple[Usage, ...]:
    if not isinstance(data, list) or not data:
        raise ProfileInvalid("profile", "must be a non-empty list of usages")
    usages = []
    for index, item in enumerate(data):
        if not isinstance(item, Mapping):
            raise ProfileInvalid(f"profile[{index}]", "must be a mapping")
        usages.append(_usage(item, f"profile[{index}]"))
    return tuple(usages)


def _usage(cells: Mapping[str, object], where: str) -> Usage:
    _known_keys(cells, where, PROFILE_COLUMNS)
    for required in PROFILE_COLUMNS[:3]:
        if cells.get(required) is None:
            raise ProfileInvalid(f"{where}.{required}", "is required")
    registers = {p: cells[p.value] for p in Period if cells.get(p.value) is not None}
    with _usage_scope(where):
        return Usage(
            quantity=_number(cells["quantity"], f"{where}.quantity"),
            start=_profile_time(cells["start"], f"{where}.start"),
            end=_profile_time(cells["end"], f"{where}.end"),
            registers={p: _number(v, f"{where}.{p}") for p, v in registers.items()} or None,
            time_zone=str(cells.get("time_zone") or "Asia/Shanghai"),
        )


def _state(data: object) -> TierState:
    if not isinstance(data, Mapping):
        raise ProfileInvalid("state", "must be a mapping {cycle_start, consumed}")
    _known_keys(data, "state", ("cycle_start", "consumed"))
    start = data.get("cycle_start")
    try:
        cycle_start = date.fromisoformat(str(start))
    except ValueError:
        rule = f"must be a date like 2026-01-01, got {start!r}"
        raise ProfileInvalid("state.cycle_start", rule) from None
    with _usage_scope("state"):
        return TierState(cycle_start, _number(data.get("consumed", 0), "state.consumed"))


def _known_keys(data: Mapping[Any, object], where: str, known: tuple[str, ...]) -> None:
    for key in data:
        if key not in known:
            field = f"{where}.{key}" if where else str(key)
            raise ProfileInvalid(field, f"unknown key (known keys: {', '.join(known)})")


def _number(value: object, field: str) -> Decimal:
    if isinstance(value, bool | float) or not isinstance(value, Decimal | int | str):
        raise ProfileInvalid(field, f'write numbers as text ("12.5"), not {value!r}')
    try:
        return Decimal(value)
    except InvalidOperation:
        raise ProfileInvalid(field, f"must be a number, got {value!r}") from None


def _profile_time(value: object, field: str) -> datetime:
    try:
        return aware_time(value, field)
    except TariffInvalid as exc:
        raise ProfileInvalid(exc.field, exc.rule) from None


@contextmanager
def _usage_scope(where: str) -> Iterator[None]:
    """Re-raise a ``Usage``'s own refusal (quantity, end before start …) under ``where``."""
    try:
        yield
    except InvalidUsage as exc:
        field = exc.details.get("field", "")
        raise ProfileInvalid(f"{where}.{field}" if field else where, exc.message) from None
