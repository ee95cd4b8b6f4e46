"""Property-based fuzzing of the compiler front half with mutated example specs.

Whatever the mutation, compiling either succeeds or raises `SpecError` whose
diagnostics all point inside the file; any other exception is a bug.
"""

from __future__ import annotations

import json
import re

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hive.compiler import SpecError, compile_loaded, load_spec_text

from .conftest import SPECS

TEXTS = {p.name: p.read_text(encoding="utf-8") for p in SPECS}
DATA = {name: yaml.safe_load(text) for name, text in TEXTS.items()}

FUZZ = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,  # the same examples on every run: a failure is reproducible
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Characters that matter to YAML, JSON, Jinja and the flow language.
SPECIAL = list(" \t\n:-[]{}()'\"#&*!|>%@`,.=_\\") + ["{{", "}}", "{%", "  ", "\n  ", "x", "0", "é"]
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


def assert_compiles_or_reports(
    text: str, filename: str = "spec.yaml", *, is_json: bool = False
) -> None:
    num_lines = text.count("\n") + 1
    try:
        compile_loaded(load_spec_text(text, filename, is_json=is_json))
    except SpecError as exc:
        assert exc.diagnostics
        for d in exc.diagnostics:
            assert d.span is not None, d
            assert d.span.file == filename
            assert 1 <= d.span.line <= num_lines, (d.format(), num_lines)
            assert d.span.col >= 1, d.format()
            assert d.message
        assert exc.format()
        assert str(exc)


# -- (a) text-level edits ---------------------------------------------------------


@st.composite
def edited_text(draw) -> tuple[str, str]:
    name = draw(st.sampled_from(sorted(TEXTS)))
    text = TEXTS[name]
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(
            st.sampled_from(["delete", "insert", "replace", "dup_line", "drop_line", "indent"])
        )
        i = draw(st.integers(0, len(text)))
        if kind == "delete":
            text = text[:i] + text[i + draw(st.integers(1, 12)) :]
        elif kind == "insert":
            piece = draw(st.sampled_from(SPECIAL) | st.text(max_size=4))
            text = text[:i] + piece + text[i:]
        elif kind == "replace":
            text = text[:i] + draw(st.sampled_from(SPECIAL)) + text[i + 1 :]
        else:
            lines = text.split("\n")
            j = draw(st.integers(0, len(lines) - 1))
            if kind == "dup_line":
                lines.insert(j, lines[j])
            elif kind == "drop_line":
                del lines[j]
            else:
                lines[j] = draw(st.sampled_from([" ", "  ", "    ", "\t"])) + lines[j]
            text = "\n".join(lines)
    return name, text


@FUZZ
@given(edited_text())
def test_text_edits_never_crash(case):
    _, text = case
    assert_compiles_or_reports(text)


@FUZZ
@given(st.sampled_from(sorted(DATA)), st.data())
def test_json_text_edits_never_crash(name, data):
    text = json.dumps(DATA[name], indent=data.draw(st.sampled_from([None, 2, "\t"])))
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(text)))
        if data.draw(st.booleans()):
            text = text[:i] + text[i + data.draw(st.integers(1, 6)) :]
        else:
            text = (
                text[:i]
                + data.draw(st.sampled_from(SPECIAL + ["\\n", "\\u00e9", "\\t"]))
                + text[i:]
            )
    assert_compiles_or_reports(text, "spec.json", is_json=True)


# -- (b) structure-level mutations ------------------------------------------------

FLOW_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+|\"[^\"\n]*\"|\S")
FLOW_WORDS = [
    "sample", "x", "spawn", "join", "resample", "until", "max", "vote", "best", "map", "by",
    "beam", "tree", "refine", "if", "elif", "else", "for", "in", "while", "repeat", "return",
    "and", "or", "not", "_", "_critique", "len", "concat", "=", "==", ".", ",", ":", "(", ")",
    "[", "]", "{", "}", "\n", "\n    ", "0", "-1", "99999999999999999999", "1.5", '"s"',
]  # fmt: skip


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*prefix, i))


def _get(value, path):
    for part in path:
        value = value[part]
    return value


@st.composite
def mutated_flow(draw, flow: str) -> str:
    tokens = FLOW_TOKEN.findall(flow)
    spans = [m.span() for m in FLOW_TOKEN.finditer(flow)]
    for _ in range(draw(st.integers(1, 3))):
        if not spans:
            break
        i = draw(st.integers(0, len(spans) - 1))
        start, end = spans[i]
        kind = draw(st.sampled_from(["delete", "replace", "swap", "number"]))
        if kind == "delete":
            new = ""
        elif kind == "replace":
            new = draw(st.sampled_from(FLOW_WORDS))
        elif kind == "swap":
            new = draw(st.sampled_from(tokens))
        else:
            new = draw(st.sampled_from(["0", "-1", "4097", "99999999999999999999", "1.0"]))
        flow = flow[:start] + new + flow[end:]
        spans = [m.span() for m in FLOW_TOKEN.finditer(flow)]
    return flow


@st.composite
def mutated_data(draw) -> dict:
    name = draw(st.sampled_from(sorted(DATA)))
    data = json.loads(json.dumps(DATA[name]))  # a deep copy
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(data) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent, key = _get(data, path[:-1]), path[-1]
        kind = draw(st.sampled_from(["drop", "replace", "rename", "flow", "flow", "template"]))
        if kind == "drop":
            del parent[key]
        elif kind == "replace":
            parent[key] = draw(JSON_VALUES)
        elif kind == "rename" and isinstance(parent, dict):
            new_key = draw(
                st.sampled_from(["promt", "temprature", "vote", "2x", "", "text", "x"])
                | st.text(max_size=5)
            )
            parent[new_key] = parent.pop(key)
        elif kind == "flow" and isinstance(data.get("flow"), str):
            data["flow"] = draw(mutated_flow(data["flow"]))
        elif (
            kind == "template"
            and isinstance(parent, dict)
            and isinstance(parent.get("prompt"), str)
        ):
            prompt = parent["prompt"]
            i = draw(st.integers(0, len(prompt)))
            parent["prompt"] = (
                prompt[:i]
                + draw(st.sampled_from(["{{", "}}", "{% if x %}", "{{ x.y }}", "{#"]))
                + prompt[i:]
            )
    return data


@FUZZ
@given(mutated_data())
def test_structure_mutations_never_crash(data):
    assert_compiles_or_reports(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


@FUZZ
@given(mutated_data())
def test_structure_mutations_as_json_never_crash(data):
    assert_compiles_or_reports(json.dumps(data, indent=2), "spec.json", is_json=True)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.sampled_from(sorted(DATA)), st.data())
def test_flow_mutations_never_crash(name, data):
    spec = json.loads(json.dumps(DATA[name]))
    spec["flow"] = data.draw(mutated_flow(spec["flow"]))
    text = yaml.safe_dump(spec, sort_keys=False, allow_unicode=True)
    assert_compiles_or_reports(text)


def test_examples_are_the_fuzz_seeds():
    assert len(TEXTS) >= 8
    for name, text in TEXTS.items():
        assert_compiles_or_reports(text, name)
        compile_loaded(load_spec_text(text, name))  # and they do compile
