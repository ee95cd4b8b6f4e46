"""Pydantic validation errors -> located, readable diagnostics.

Pydantic reports a `loc` path per error; union members add labels to it
(`str`, `RegexExtract`, ...). We keep the part of the path that exists in the
document, point at the key for unknown keys, merge the errors that several
union members raise for one value, and reword the messages users meet most.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

from pydantic import BaseModel, ValidationError

from hive.compiler.errors import Diagnostic, did_you_mean
from hive.compiler.source import SourceDoc
from hive.compiler.spec import (
    TYPE_PATTERN,
    Agent,
    InputSpec,
    JsonExtract,
    RegexExtract,
    Sampling,
    Spec,
)


def _section_model(path: tuple) -> list[type[BaseModel]]:
    """The models whose keys are allowed at `path` (for did-you-mean on unknown keys)."""
    match path:
        case ():
            return [Spec]
        case ("agents", _):
            return [Agent]
        case ("agents", _, "sampling"):
            return [Sampling]
        case ("agents", _, "extract", _):
            return [RegexExtract, JsonExtract]
        case ("inputs", _):
            return [InputSpec]
    return []


def _allowed_keys(path: tuple) -> list[str]:
    keys: list[str] = []
    for model in _section_model(path):
        for name, info in model.model_fields.items():
            keys.append(info.alias or name)
    return keys


def _indexes(node: Any, part: Any) -> bool:
    """Whether `part` is a key or index of `node` (a `loc` also holds union labels)."""
    if isinstance(node, dict):
        return isinstance(part, str) and part in node
    return isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)


def _data_path(data: Any, loc: tuple) -> tuple:
    """The longest prefix of `loc` that indexes into `data`, skipping union labels."""
    path: list = []
    node = data
    for part in loc:
        if _indexes(node, part):
            path.append(part)
            node = node[part]
    return tuple(path)


# What a value of the wrong type should have been, by Pydantic error type.
_EXPECTED = {
    "string_type": "a string",
    "model_type": "a mapping",
    "dict_type": "a mapping",
    "list_type": "a list",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "a boolean",
    "bool_parsing": "a boolean",
}


def _message(err: dict, path: tuple, value: Any) -> tuple[str, str | None]:
    kind, msg = err["type"], err["msg"]
    where = ".".join(str(p) for p in path) or "spec"
    if kind == "missing":
        return f"missing required key '{err['loc'][-1]}' in {where}", None
    if "[key]" in err["loc"]:  # a mapping key (an agent or input name) is invalid
        parent = ".".join(str(p) for p in path[:-1]) or "spec"
        return (
            f"{parent}: {str(path[-1])!r} is not a valid name (letters, digits and _, starting with a letter)",
            None,
        )
    if kind == "literal_error" and path == ("hive",):
        return f"unsupported spec version {value!r}; this Hive reads version 1 (hive: 1)", None
    if kind == "string_pattern_mismatch":
        pattern = err.get("ctx", {}).get("pattern", "")
        if pattern == TYPE_PATTERN:
            hint = did_you_mean(
                str(value), ["string", "number", "integer", "boolean", "any", "list[string]"]
            )
            return (
                f"{where}: '{value}' is not a type; use string, number, integer, boolean, any or list[<type>]",
                hint,
            )
        return (
            f"{where}: {value!r} is not a valid name (letters, digits and _, starting with a letter)",
            None,
        )
    if kind in _EXPECTED:
        return f"{where} must be {_EXPECTED[kind]}, not {_kind(value)}", None
    if kind.endswith("_type") or kind.endswith("_parsing"):
        return f"{where}: {msg[0].lower() + msg[1:]}, got {_kind(value)}", None
    msg = re.sub(r"^Value error, ", "", msg)
    return f"{where}: {msg[0].lower() + msg[1:]}", None


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {
        dict: "a mapping",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
    }.get(type(value), type(value).__name__)


def _lookup(data: Any, path: tuple) -> Any:
    for part in path:
        data = data[part]
    return data


def _union_branch(data: Any, err: dict) -> tuple[tuple, str] | None:
    """(path of the value, union member label) when `err` comes from one member of a union."""
    loc = err["loc"][:-1] if err["type"] == "missing" else err["loc"]
    node, path = data, []
    for part in loc:
        if _indexes(node, part):
            node = node[part]
        elif part == "[key]":
            return None
        else:
            return tuple(path), str(part)
        path.append(part)
    return None


def _is_shape_error(err: dict, label: str) -> bool:
    """Whether the union member rejected the value's type outright (not its contents)."""
    return err["loc"][-1] == label and err["type"] in _EXPECTED


def _choose_union_members(data: Any, errors: list[dict]) -> list[dict]:
    """For a value several union members rejected, keep the errors of the member the user
    meant: one that accepted the value's shape, with the fewest unknown keys and errors."""
    members: dict[tuple, dict[str, list[dict]]] = {}
    for err in errors:
        branch = _union_branch(data, err)
        if branch is not None:
            members.setdefault(branch[0], {}).setdefault(branch[1], []).append(err)
    dropped: set[int] = set()
    for by_label in members.values():
        if len(by_label) < 2:
            continue
        fitting = {
            label: errs for label, errs in by_label.items()
            if not all(_is_shape_error(e, label) for e in errs)
        }  # fmt: skip
        if not fitting:
            continue  # no member fits: report them together ("must be a string or a mapping")
        best = min(
            fitting,
            key=lambda label: (
                sum(e["type"] == "extra_forbidden" for e in fitting[label]),
                len(fitting[label]),
            ),
        )
        for label, errs in by_label.items():
            if label != best:
                dropped.update(id(e) for e in errs)
    return [e for e in errors if id(e) not in dropped]


def diagnostics_from_validation(exc: ValidationError, doc: SourceDoc) -> list[Diagnostic]:
    errors = _choose_union_members(doc.data, exc.errors())
    # A required key next to an unknown key that is its near miss (`promt`) is one mistake.
    near_misses = set()
    for err in errors:
        if err["type"] == "extra_forbidden":
            path = _data_path(doc.data, err["loc"])
            for name in difflib.get_close_matches(
                str(path[-1]), _allowed_keys(path[:-1]), n=1, cutoff=0.6
            ):
                near_misses.add((*path[:-1], name))
    errors = [
        e
        for e in errors
        if e["type"] != "missing"
        or (*_data_path(doc.data, e["loc"][:-1]), e["loc"][-1]) not in near_misses
    ]
    by_path: dict[tuple, list[dict]] = {}
    for err in errors:
        loc = tuple(err["loc"])
        if err["type"] == "extra_forbidden":
            path = _data_path(doc.data, loc)
            by_path.setdefault(("extra", *path), []).append(err)
            continue
        path = _data_path(doc.data, loc)
        if err["type"] == "missing":
            path = _data_path(doc.data, loc[:-1])
        by_path.setdefault(path, []).append(err)

    out: list[Diagnostic] = []
    for key, errors in by_path.items():
        if key and key[0] == "extra":
            path = key[1:]
            name = str(path[-1])
            allowed = _allowed_keys(path[:-1])
            if name in allowed:  # a key of another member of a union: {regex, json}
                where = ".".join(str(p) for p in path[:-1])
                out.append(
                    doc.diagnostic(
                        "error",
                        f"'{name}' cannot be combined with the other keys of {where}"
                        + (": an extraction is a regex or a JSON path, not both"
                           if {"regex", "json"} <= set(_lookup(doc.data, path[:-1])) else ""),
                        doc.span(path, key=True),
                    )
                )  # fmt: skip
                continue
            hint = did_you_mean(name, allowed) or (
                f"allowed: {', '.join(allowed)}" if allowed else None
            )
            where = ".".join(str(p) for p in path[:-1]) or "the spec"
            out.append(
                doc.diagnostic(
                    "error", f"unknown key '{name}' in {where}", doc.span(path, key=True), hint
                )
            )
            continue
        path = key
        value = _lookup(doc.data, path)
        where = ".".join(str(p) for p in path) or "the spec"
        missing = [f"'{e['loc'][-1]}'" for e in errors if e["type"] == "missing"]
        if missing:
            keys = "key" if len(missing) == 1 else "keys"
            out.append(
                doc.diagnostic(
                    "error",
                    f"missing required {keys} {', '.join(missing)} in {where}",
                    doc.span(path),
                )
            )
        errors = [e for e in errors if e["type"] != "missing"]
        if not errors:
            continue
        if "[key]" in errors[0]["loc"]:
            message, _ = _message(errors[0], path, value)
            out.append(doc.diagnostic("error", message, doc.span(path, key=True)))
            continue
        expected = list(dict.fromkeys(_EXPECTED.get(e["type"]) for e in errors))
        if len(errors) > 1 and None not in expected:
            # No member of a union fits the value's type.
            message = f"{where} must be {' or '.join(expected)}, not {_kind(value)}"  # type: ignore[arg-type]
            out.append(doc.diagnostic("error", message, doc.span(path)))
            continue
        messages: list[str] = []
        hint = None
        for err in errors:
            message, h = _message(err, path, value)
            hint = hint or h
            if message not in messages:
                messages.append(message)
        out.append(doc.diagnostic("error", "; ".join(messages[:2]), doc.span(path), hint))
    return out
