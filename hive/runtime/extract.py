"""Fields extracted from an agent's reply: regular expressions and JSON paths.

A field that cannot be found or converted is null and the reason is kept
(the call's trace shows it): a small model often misses the format, and a
vote or `best` should skip that sample rather than fail the whole run. A
flow that then uses the null where a value is needed fails with a message
that names the agent and the field.
"""

from __future__ import annotations

import json
import re
from typing import Any

import regex

from hive.compiler.spec import Agent, JsonExtract, RegexExtract

# A regex whose nested repetition backtracks on a reply (`(a|aa)+$`) could run for
# hours and stall every other call; `regex` (the `re`-compatible module transformers'
# tokenizers already use) stops a match after this long.
REGEX_TIMEOUT_S = 1.0
_TRUE = {"true", "yes", "y", "1"}
_FALSE = {"false", "no", "n", "0"}


def extract_fields(agent: Agent, text: str) -> tuple[dict[str, Any], list[str]]:
    """(fields, problems): every declared field (null where not found) and why not."""
    fields: dict[str, Any] = {}
    problems: list[str] = []
    parsed: Any = _NOT_PARSED
    for name, extractor in agent.extractors().items():
        if isinstance(extractor, RegexExtract):
            value, problem = _from_regex(extractor, text)
        else:
            if parsed is _NOT_PARSED:
                parsed = first_json_object(text)
            value, problem = _from_json(extractor, parsed)
        fields[name] = value
        if problem:
            problems.append(f"field '{name}': {problem}")
    return fields, problems


_NOT_PARSED = object()


def _from_regex(extractor: RegexExtract, text: str) -> tuple[Any, str | None]:
    try:
        match = regex.search(extractor.regex, text, timeout=REGEX_TIMEOUT_S, concurrent=True)
    except TimeoutError:
        return None, (
            f"regex '{extractor.regex}' ran over {REGEX_TIMEOUT_S:g} s on this reply "
            "(nested repetition that backtracks): simplify it"
        )
    if match is None:
        return None, f"no match for regex '{extractor.regex}'"
    raw = match.group(extractor.group_index())
    if raw is None:
        return None, f"group {extractor.group_index()} of '{extractor.regex}' did not match"
    return convert(raw.strip(), extractor.type)


def _from_json(extractor: JsonExtract, parsed: Any) -> tuple[Any, str | None]:
    if parsed is None:
        return None, "the reply holds no JSON object"
    value = parsed
    for key in extractor.json_path.split("."):
        if not isinstance(value, dict) or key not in value:
            return None, f"the reply's JSON has no '{extractor.json_path}'"
        value = value[key]
    return convert(value, extractor.type)


def first_json_object(text: str) -> dict[str, Any] | None:
    """The first `{...}` in `text` that parses as a JSON object (models wrap JSON in prose
    and code fences), or None."""
    decoder = json.JSONDecoder()
    start = text.find("{")
    while start != -1:
        try:
            value, _ = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            value = None
        if isinstance(value, dict):
            return value
        start = text.find("{", start + 1)
    return None


def convert(value: Any, type_name: str) -> tuple[Any, str | None]:
    """`value` as `type_name` (text from a regex, or a JSON value), or (None, why not)."""
    if type_name == "any":
        return value, None
    if type_name.startswith("list["):
        if isinstance(value, str):
            try:
                parsed = json.loads(value)
            except json.JSONDecodeError:
                parsed = None
            if isinstance(parsed, list):
                value = parsed
            else:  # "12, 13", or one item: a list of the comma-separated parts
                value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, list):
            return None, f"{_show(value)} is not a list"
        items = []
        for item in value:
            converted, problem = convert(item, type_name[5:-1])
            if problem:
                return None, problem
            items.append(converted)
        return items, None
    if type_name == "string":
        if isinstance(value, dict | list):
            return json.dumps(value), None
        return ("" if value is None else str(value)), None
    if type_name == "boolean":
        if isinstance(value, bool):
            return value, None
        word = str(value).strip().lower().rstrip(".!")
        if word in _TRUE:
            return True, None
        if word in _FALSE:
            return False, None
        return None, f"{_show(value)} is not a boolean"
    # integer / number
    if isinstance(value, bool):
        return None, f"{_show(value)} is not a number"
    if isinstance(value, str):
        cleaned = value.strip().replace(",", "")
        try:
            value = int(cleaned) if re.fullmatch(r"[+-]?\d+", cleaned) else float(cleaned)
        except ValueError:
            return None, f"{_show(value)} is not a number"
    if (
        not isinstance(value, int | float)
        or value != value
        or value in (float("inf"), -float("inf"))
    ):
        return None, f"{_show(value)} is not a number"
    if type_name == "integer":
        if isinstance(value, float) and not value.is_integer():
            return None, f"{_show(value)} is not an integer"
        return int(value), None
    return value, None


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
