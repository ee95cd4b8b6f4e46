"""Pydantic validation errors -> located, readable diagnostics.

Pydantic reports a `loc` path per error; union members add labels to it
(`str`, `RegexExtract`, ...). We keep the part of the path that exists in the
document, point at the key for unknown keys, merge the errors that several
union members raise for one value, and reword the messages users meet most.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ValidationError

from hive.compiler.errors import Diagnostic, did_you_mean
from hive.compiler.source import SourceDoc
from hive.compiler.spec import TYPE_PATTERN, Agent, InputSpec, JsonExtract, RegexExtract, Sampling, Spec


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


def _data_path(data: Any, loc: tuple) -> tuple:
    """The longest prefix of `loc` that indexes into `data`, skipping union labels."""
    path: list = []
    node = data
    for part in loc:
        if isinstance(node, dict) and isinstance(part, str) and part in node:
            path.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path.append(part)
            node = node[part]
    return tuple(path)


def _message(err: dict, path: tuple, value: Any) -> tuple[str, str | None]:
    kind, msg = err["type"], err["msg"]
    where = ".".join(str(p) for p in path) or "spec"
    if kind == "missing":
        return f"missing required key '{err['loc'][-1]}' in {where}", None
    if kind == "literal_error" and path == ("hive",):
        return f"unsupported spec version {value!r}; this Hive reads version 1 (hive: 1)", None
    if kind == "string_pattern_mismatch":
        pattern = err.get("ctx", {}).get("pattern", "")
        if pattern == TYPE_PATTERN:
            hint = did_you_mean(str(value), ["string", "number", "integer", "boolean", "any", "list[string]"])
            return f"{where}: '{value}' is not a type; use string, number, integer, boolean, any or list[<type>]", hint
        return f"{where}: {value!r} is not a valid name (letters, digits and _, starting with a letter)", None
    if kind in ("dict_type", "model_type"):
        return f"{where} must be a mapping, not {_kind(value)}", None
    if kind.endswith("_type") or kind.endswith("_parsing"):
        return f"{where}: {msg[0].lower() + msg[1:]}, got {_kind(value)}", None
    msg = re.sub(r"^Value error, ", "", msg)
    return f"{where}: {msg[0].lower() + msg[1:]}", None


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "an integer", float: "a number"}.get(type(value), type(value).__name__)


def _lookup(data: Any, path: tuple) -> Any:
    for part in path:
        data = data[part]
    return data


def diagnostics_from_validation(exc: ValidationError, doc: SourceDoc) -> list[Diagnostic]:
    by_path: dict[tuple, list[dict]] = {}
    for err in exc.errors():
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
            hint = did_you_mean(name, allowed) or (f"allowed: {', '.join(allowed)}" if allowed else None)
            where = ".".join(str(p) for p in path[:-1]) or "the spec"
            out.append(doc.diagnostic("error", f"unknown key '{name}' in {where}", doc.span(path, key=True), hint))
            continue
        path = key
        value = _lookup(doc.data, path)
        # Several union members failing on one value: prefer the member whose own
        # errors go deepest (the user clearly meant that one), else merge.
        errors = [e for e in errors if e["type"] != "missing" or len(errors) == 1] or errors
        messages: list[str] = []
        hint = None
        for err in errors:
            message, h = _message(err, path, value)
            hint = hint or h
            if message not in messages:
                messages.append(message)
        span = doc.span(path)
        if len(messages) > 2:
            messages = messages[:2]
        out.append(doc.diagnostic("error", " or ".join(messages) if len(messages) > 1 else messages[0], span, hint))
    return out
