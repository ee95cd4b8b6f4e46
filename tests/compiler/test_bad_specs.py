"""Hand-written bad specs: each gives one located error (`file:line:col`), never a traceback.

Every case is a whole spec file written to disk, so the asserted line and
column are the ones a user sees in their editor.
"""

from __future__ import annotations

import json
import time

import pytest

from hive.compiler import Diagnostic, SpecError, compile_loaded, load_spec
from hive.compiler.source import MAX_BYTES

GOOD = """\
hive: 1
name: t
inputs:
  question: string
agents:
  solver:
    prompt: "Q: {{ question }}"
    extract: {answer: 'A: (\\d+)'}
flow: |
  r = solver(question)
  return {answer: r.answer}
"""


def first_error(tmp_path, text: str | bytes, filename: str = "spec.yaml") -> Diagnostic:
    path = tmp_path / filename
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    with pytest.raises(SpecError) as info:
        compile_loaded(load_spec(path))
    diagnostic = info.value.diagnostics[0]
    assert diagnostic.span is not None
    assert diagnostic.span.file == str(path)
    text = info.value.format()
    assert f"{path}:{diagnostic.span.line}:{diagnostic.span.col}: error: " in text
    assert "Traceback" not in text
    return diagnostic


def with_flow(flow: str, head: str = GOOD) -> str:
    """GOOD with its flow replaced; the flow's first line is line 10 of the file."""
    lines = flow.strip("\n").split("\n")
    return head.split("flow: |")[0] + "flow: |\n" + "".join(f"  {line}\n" for line in lines)


# (id, file text, line, col, message substring, hint substring or None)
# fmt: off
CASES = [
    # -- broken YAML ----------------------------------------------------------
    ("bad-indentation", "hive: 1\nname: t\n  agents: {}\n", 3, 9, "mapping values are not allowed", None),
    ("unclosed-quote", 'hive: 1\nname: "t\nagents: {}\n', 4, 1, "found unexpected end of stream", None),
    ("tab-indent", "hive: 1\nname: t\nagents:\n\tsolver: {}\n", 4, 1, "cannot start any token", "YAML indents with spaces, not tabs"),
    ("unclosed-bracket", "hive: 1\nagents: [a, b\nname: t\n", 3, 5, "expected ',' or ']'", None),
    ("two-documents", GOOD + "---\nhive: 1\n", 12, 1, "expected a single document in the stream but found another document", None),
    ("duplicate-key", "hive: 1\nname: t\nname: u\n", 3, 1, "duplicate key 'name' (first defined on line 2)", None),
    ("duplicate-nested-key", GOOD.replace("    extract:", "    prompt: again\n    extract:"), 8, 5, "duplicate key 'prompt' (first defined on line 7)", None),
    ("python-tag", GOOD.replace("name: t", "name: !!python/object/apply:os.system [ls]"), 2, 7, "YAML tag '!!python/object/apply:os.system' is not supported", None),
    ("merge-key", "base: &b {prompt: x}\nagents:\n  a:\n    <<: *b\n", 4, 5, "merge keys ('<<') are not supported", None),
    ("complex-key", "? [a, b]\n: 1\n", 1, 3, "mapping keys must be plain strings", None),
    ("undefined-alias", "hive: 1\nname: *n\n", 2, 7, "found undefined alias", None),
    ("nul-character", "hive: 1\nname: t\x00\n", 2, 8, "invalid character '\\x00'", None),
    ("no-final-newline", GOOD + "oops", 12, 5, "could not find expected ':'", None),
    # -- not a spec at all ---------------------------------------------------
    ("list-document", "- hive: 1\n- name: t\n", 1, 1, "a spec must be a mapping", None),
    ("scalar-document", "just some text\n", 1, 1, "a spec must be a mapping", None),
    ("empty-file", "", 1, 1, "spec is empty", None),
    ("only-comments", "# nothing here\n\n", 1, 1, "spec is empty", None),
    ("not-utf8", b"hive: 1\nname: \xff\xfe\n", 1, 1, "not UTF-8 text (byte 14)", None),
    # -- schema ---------------------------------------------------------------
    ("version-2", GOOD.replace("hive: 1", "hive: 2"), 1, 7, "unsupported spec version 2", None),
    ("infinite-temperature", GOOD.replace("    extract:", "    sampling: {temperature: .inf}\n    extract:"), 8, 29, "input should be a finite number", None),
    ("version-string", GOOD.replace("hive: 1", "hive: '1'"), 1, 7, "unsupported spec version '1'", None),
    ("missing-name", GOOD.replace("name: t\n", ""), 1, 1, "missing required key 'name' in the spec", None),
    ("missing-agents-and-flow", "hive: 1\nname: t\n", 1, 1, "missing required keys 'agents', 'flow' in the spec", None),
    ("missing-flow", GOOD.split("flow:")[0], 1, 1, "missing required key 'flow'", None),
    ("missing-prompt", GOOD.replace('    prompt: "Q: {{ question }}"\n', ""), 7, 5, "missing required key 'prompt' in agents.solver", None),
    ("no-agents", GOOD.replace("agents:\n  solver:", "agents: {}\n  solver:").split("  solver:")[0]         + "flow: return 1\n", 1, 1, "a spec needs at least one agent", None),
    ("unknown-key-promt", GOOD.replace("    prompt:", "    promt:"), 7, 5, "unknown key 'promt' in agents.solver", "did you mean 'prompt'?"),
    ("unknown-key-temprature", GOOD.replace("    extract:", "    sampling: {temprature: 1}\n    extract:"), 8, 16, "unknown key 'temprature' in agents.solver.sampling", "did you mean 'temperature'?"),
    ("unknown-top-key", GOOD.replace("flow: |", "flw: |"), 9, 1, "unknown key 'flw' in the spec", "did you mean 'flow'?"),
    ("unknown-key-far", GOOD.replace("    extract:", "    colour: red\n    extract:"), 8, 5, "unknown key 'colour' in agents.solver", "allowed: description, role"),
    ("temperature-hot", GOOD.replace("    extract:", "    sampling: {temperature: hot}\n    extract:"), 8, 29, "agents.solver.sampling.temperature must be a number, not a string", None),
    ("max-tokens-negative", GOOD.replace("    extract:", "    sampling:\n      max_tokens: -1\n    extract:"), 9, 19, "agents.solver.sampling.max_tokens: input should be greater than or equal to 1", None),
    ("top-p-too-big", GOOD.replace("    extract:", "    sampling: {top_p: 1.5}\n    extract:"), 8, 23, "top_p: input should be less than or equal to 1", None),
    ("sampling-not-mapping", GOOD.replace("    extract:", "    sampling: [1, 2]\n    extract:"), 8, 15, "agents.solver.sampling must be a mapping, not a list", None),
    ("role-unknown", GOOD.replace("    extract:", "    role: boss\n    extract:"), 8, 11, "agents.solver.role: input should be 'coordinator'", None),
    ("input-type-strng", GOOD.replace("question: string", "question: strng"), 4, 13, "'strng' is not a type", "did you mean 'string'?"),
    ("input-type-in-mapping", GOOD.replace("question: string", "question: {type: 'lst[string]'}"), 4, 20, "'lst[string]' is not a type", "did you mean 'list[string]'?"),
    ("input-wrong-type", GOOD.replace("question: string", "question: 5"), 4, 13, "inputs.question must be a string or a mapping, not an integer", None),
    ("bad-regex-shorthand", GOOD.replace("'A: (\\d+)'", "'A: (\\d+'"), 8, 23, "agents.solver.extract.answer: invalid regular expression: missing ), unterminated subpattern", None),
    ("bad-regex-object", GOOD.replace("{answer: 'A: (\\d+)'}", "{answer: {regex: '(', type: number}}"), 8, 31, "agents.solver.extract.answer.regex: invalid regular expression", None),
    ("regex-fuzzy-brace", GOOD.replace("{answer: 'A: (\\d+)'}", "{answer: 'A{e}: (\\d+)'}"), 8, 23, "'{e}' is fuzzy matching or a POSIX class to the regex engine extractions run on (text to Python's re)", None),
    ("regex-posix-class", GOOD.replace("{answer: 'A: (\\d+)'}", "{answer: 'A: ([[:digit:]]+)'}"), 8, 23, "'[[:digit:]' is fuzzy matching or a POSIX class", None),
    ("regex-escaped-backslash-then-fuzzy", GOOD.replace("{answer: 'A: (\\d+)'}", "{answer: 'A\\\\{e}: (\\d+)'}"), 8, 23, "'{e}' is fuzzy matching", None),
    ("regex-and-json", GOOD.replace("{answer: 'A: (\\d+)'}", "{answer: {regex: 'A: (\\d+)', json: answer}}"), 8, 43, "'json' cannot be combined with the other keys of agents.solver.extract.answer: an extraction is a regex or a JSON path, not both", None),
    ("extract-regx", GOOD.replace("{answer: 'A: (\\d+)'}", "{answer: {regx: 'a'}}"), 8, 24, "unknown key 'regx' in agents.solver.extract.answer", "did you mean 'regex'?"),
    ("empty-regex", GOOD.replace("'A: (\\d+)'", "''"), 8, 23, "agents.solver.extract.answer: the regular expression is empty", None),
    ("extract-text", GOOD.replace("{answer: 'A: (\\d+)'}", "{text: 'a'}"), 8, 14, "'text' is the raw completion", None),
    ("agent-name-digit", GOOD.replace("  solver:", "  2solver:"), 6, 3, "agents: '2solver' is not a valid name", None),
    ("param-name-dash", GOOD.replace("    extract:", "    params: [question, a-b]\n    extract:"), 8, 24, "agents.solver.params.1: 'a-b' is not a valid name", None),
    ("flow-not-string", GOOD.split("flow:")[0] + "flow: [1, 2]\n", 9, 7, "flow must be a string, not a list", None),
    ("int-too-large", GOOD.replace("hive: 1", "hive: " + "9" * 5000), 1, 7, "number is too large", None),
    ("min-p-one", GOOD.replace("    extract:", "    sampling: {min_p: 1}\n    extract:"), 8, 23, "min_p: input should be less than 1", None),
    # -- JSON -----------------------------------------------------------------
]
# fmt: on

# fmt: off
JSON_CASES = [
    ("json-syntax", '{"hive": 1, "name": "t",\n "agents": {,}}', 2, 13, "invalid JSON: Expecting property name", None),
    ("json-trailing-comma", '{"hive": 1,\n "name": "t",\n}', 3, 1, "invalid JSON: Expecting property name", None),
    ("json-empty", "", 1, 1, "spec is empty", None),
    ("json-duplicate-key", '{"hive": 1, "name": "t", "name": "u"}', 1, 26, "duplicate key 'name'", None),
    ("json-nan", '{"hive": 1, "name": "t",\n "inputs": {"q": {"default": NaN}}}', 2, 30, "invalid JSON: NaN is not a JSON number", None),
    ("json-int-too-large", '{"hive": ' + "9" * 5000 + "}", 1, 1, "invalid JSON: a number is too large", None),
    ("json-unknown-key", '{"hive": 1, "name": "t",\n "agents": {"s": {"prompt": "x", "sampling": {"temprature": 1}}}, "flow": "return 1"}', 2, 47, "unknown key 'temprature'", "did you mean 'temperature'?"),
]
# fmt: on


@pytest.mark.parametrize(
    ("text", "line", "col", "message", "hint"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_yaml_spec(tmp_path, text, line, col, message, hint):
    d = first_error(tmp_path, text)
    assert (d.span.line, d.span.col) == (line, col), d.format()
    assert message in d.message, d.format()
    if hint is not None:
        assert d.hint is not None and hint in d.hint, d.format()


@pytest.mark.parametrize(
    ("text", "line", "col", "message", "hint"),
    [c[1:] for c in JSON_CASES],
    ids=[c[0] for c in JSON_CASES],
)
def test_bad_json_spec(tmp_path, text, line, col, message, hint):
    d = first_error(tmp_path, text, "spec.json")
    assert (d.span.line, d.span.col) == (line, col), d.format()
    assert message in d.message, d.format()
    if hint is not None:
        assert d.hint is not None and hint in d.hint, d.format()


# -- the flow language ----------------------------------------------------------

# fmt: off
FLOW_CASES = [
    # Syntax. The flow's first line is line 10 of the file, indented by 2.
    ("syntax-line-1", "r = solver(question) $\nreturn r", 10, 24, "unexpected character '$' in flow", None),
    ("unclosed-paren", "r = solver(question\nreturn r", 11, 3, "unexpected 'return'", "is the '(' at line 10, column 13 closed?"),
    ("assign-in-condition", "r = solver(question)\nif r.answer = 1:\n    x = 1\nreturn r", 11, 15, "unexpected '='", "use '==' to compare"),
    ("line-ends-early", "r = solver(question)\nx = r.answer +\nreturn r", 11, 17, "line ends early; expected an expression", None),
    ("missing-block", "r = solver(question)\nif r:\nx = 1\nreturn r", 12, 3, "expected an indented block after ':'", None),
    ("unexpected-indent", "r = solver(question)\n    x = 1\nreturn r", 11, 7, "unexpected indent", None),
    ("bad-dedent", "r = solver(question)\nif r:\n    x = 1\n  y = 2\nreturn r", 13, 5, "unindent does not match", None),
    ("flow-ends-early", "r = solver(question)\nreturn {answer:", 11, 18, "flow ends early", None),
    ("bad-string-escape", 'x = "\\N"\nreturn x', 10, 7, "invalid string literal: malformed \\N character escape", None),
    ("bad-key-escape", 'x = {"\\u12": 1}\nreturn x', 10, 8, "invalid string literal: truncated \\uXXXX escape", None),
    ("unterminated-string", "x = 'abc\nreturn x", 10, 7, "unterminated string in flow", None),
    ("while-without-max", "r = solver(question)\nwhile true:\n    r = solver(question)\nreturn r", 11, 13, "unexpected ':'; expected", None),
    # Names.
    ("undefined-variable", "r = solver(question)\nreturn {answer: r.answer, q: qestion}", 11, 32, "undefined variable 'qestion'", "did you mean 'question'?"),
    ("undefined-argument", "r = solver(qestion)\nreturn r", 10, 14, "undefined variable 'qestion'", "did you mean 'question'?"),
    ("unknown-agent", "r = slover(question)\nreturn r", 10, 7, "unknown agent 'slover'", "did you mean 'solver'?"),
    ("unknown-field", "r = solver(question)\nreturn {answer: r.answr}", 11, 21, "'solver' result has no field 'answr'", "did you mean 'answer'?"),
    ("agent-as-value", "r = solver\nreturn r", 10, 7, "'solver' is an agent; call it", None),
    ("underscore-outside-lambda", "r = solver(question=_)\nreturn r", 10, 23, "'_' is only defined inside", None),
    # Arguments.
    ("duplicate-argument", "r = solver(question=question, question=question)\nreturn r", 10, 33, "parameter 'question' of 'solver' is given twice", None),
    ("duplicate-after-positional", "r = solver(question, question=question)\nreturn r", 10, 24, "parameter 'question' of 'solver' is given twice", None),
    ("negative-literal-argument", "r = beam(question, expand=solver(_), score=len(_), width=-2, depth=2)\nreturn r", 10, 7, "beam() width must be an integer between 1 and 4096", None),
    ("concat-sep-not-a-string", "r = concat([question], sep=1)\nreturn r", 10, 26, "concat() sep must be a string", None),
    ("unknown-parameter", "r = solver(question, q=1)\nreturn r", 10, 24, "agent 'solver' has no parameter 'q'", "it takes question"),
    ("misspelt-parameter", "r = solver(qestion=question)\nreturn r", 10, 14, "agent 'solver' has no parameter 'qestion'", "did you mean 'question'?"),
    ("misspelt-combinator-kwarg", "rs = sample solver(question) x 3\nv = vote(rs, bye=answer)\nreturn v", 11, 16, "vote() has no argument 'bye'", "did you mean 'by'?"),
    ("missing-argument", "r = solver()\nreturn r", 10, 7, "missing argument(s) for 'solver': question", None),
    ("positional-without-name", 'r = solver("hi")\nreturn r', 10, 7, "argument 1 of 'solver' needs a parameter name", "write <param>=<value>"),
    ("builtin-wrong-arity", "r = solver(question)\nreturn len(r, r)", 11, 10, "len() takes 1 argument(s), got 2", None),
    ("builtin-unknown-kwarg", "r = solver(question)\nreturn len(r, sep=1)", 11, 17, "len() has no argument 'sep'", None),
    # Futures, combinators, bounds.
    ("future-without-join", "h = spawn solver(question)\nreturn {answer: h.answer}", 11, 21, "cannot read '.answer' of a spawned call", "join it first"),
    ("future-as-argument", "h = spawn solver(question)\nr = solver(question=h)\nreturn r", 11, 7, "spawned call that was not joined", "join it first"),
    ("join-not-future", "r = solver(question)\nj = join(r)\nreturn j", 11, 7, "join() takes spawned calls", None),
    ("vote-without-by", "rs = sample solver(question) x 3\nv = vote(rs)\nreturn v", 11, 7, "vote() needs by=<field> or by=<expression over _>", None),
    ("vote-by-unknown-field", "rs = sample solver(question) x 3\nv = vote(rs, by=answr)\nreturn v", 11, 7, "the elements have no field 'answr'", "did you mean 'answer'?"),
    ("best-by-string", "rs = sample solver(question) x 3\nb = best(rs, by=_.text)\nreturn b", 11, 7, "best's scorer must give a number, not string", "extract a number"),
    ("best-by-string-field", "rs = sample solver(question) x 3\nb = best(rs, by=answer)\nreturn b", 11, 7, "best by 'answer' needs a number", None),
    ("sample-zero", "rs = sample solver(question) x 0\nreturn rs", 10, 8, "sample count must be between 1 and 4096, got 0", None),
    ("sample-huge", "rs = sample solver(question) x 99999999999\nreturn rs", 10, 8, "sample count must be between 1 and 4096", None),
    ("sample-of-builtin", "rs = sample len(question) x 2\nreturn rs", 10, 8, "sample needs an agent call, not 'len(...)'", None),
    ("resample-max-0", 'r = resample solver(question) until _.answer == "1" max 0\nreturn r', 10, 7, "'max' must be between 1 and 4096", None),
    ("repeat-0", "r = solver(question)\nrepeat 0:\n    r = solver(question)\nreturn r", 11, 1 + 2, "repeat count must be between 1 and 4096", None),
    ("beam-missing-width", "b = beam(expand=solver(question=_.text), score=1, depth=2)\nreturn b", 10, 7, "beam() needs width=<integer>", None),
    ("refine-no-draft", "r = refine(critique=solver(question=_.text), revise=solver(question=_.text), rounds=2)\nreturn r", 10, 7, "refine() takes one draft call", None),
    ("compare-types", "r = solver(question)\nreturn r.text < 3", 11, 17, "cannot compare string < integer", None),
    # Control flow.
    ("code-after-return", "r = solver(question)\nreturn r\nx = 1", 12, 3, "unreachable code after 'return'", None),
    ("return-inside-if", 'r = solver(question)\nif r.answer == "1":\n    return r\nreturn r', 12, 7, "'return' is only allowed at the end of the flow", None),
    ("missing-return", "r = solver(question)", 10, 23, "the flow has no 'return'", None),
    ("branch-only-variable", 'if question == "x":\n    y = solver(question)\nreturn y', 12, 10, "undefined variable 'y'", "assigned in only one branch of the 'if' on line 10"),
    ("loop-only-variable", "repeat 2:\n    y = solver(question)\nreturn y", 12, 10, "undefined variable 'y'", "first assigned inside the loop on line 10"),
    ("number-too-large", "x = 1.5e999\nreturn x", 10, 7, "number 1.5e999 is too large", None),
    ("integer-too-large", "x = 2 + " + "9" * 400 + "\nreturn x", 10, 11, "integer 9999999999...(400 digits) is too large", None),
    ("integer-too-large-to-convert", "x = " + "9" * 5000 + "\nreturn x", 10, 7, "(5000 digits) is too large", None),
    ("leading-zeros-then-too-large", "x = " + "0" * 5000 + "9" * 400 + "\nreturn x", 10, 7, "(5400 digits) is too large", None),
    ("repeat-count-too-large", "r = solver(question)\nrepeat " + "9" * 5000 + ":\n    r = solver(question)\nreturn r", 11, 10, "is too large", None),
    ("positional-after-keyword", "r = solver(question=question, question)\nreturn r", 10, 33, "positional argument after a keyword argument", None),
    ("field-of-neither-branch", 'if question == "a":\n    x = 1\nelse:\n    x = "b"\nreturn {answer: x.answer}', 14, 21, "cannot read '.answer': the value here is integer | string", None),
    ("for-over-string", "for c in question:\n    r = solver(question=c)\nreturn 1", 10, 3, "for needs a list, not string", None),
]
# fmt: on


@pytest.mark.parametrize(
    ("flow", "line", "col", "message", "hint"),
    [c[1:] for c in FLOW_CASES],
    ids=[c[0] for c in FLOW_CASES],
)
def test_bad_flow(tmp_path, flow, line, col, message, hint):
    d = first_error(tmp_path, with_flow(flow))
    assert (d.span.line, d.span.col) == (line, col), d.format()
    assert message in d.message, d.format()
    if hint is not None:
        assert d.hint is not None and hint in d.hint, d.format()


LIST_INPUT = GOOD.replace("  question: string\n", "  question: string\n  items: list[string]\n")


def test_map_over_unbounded_list(tmp_path):
    flow = "xs = map(items, solver(question=_))\nreturn xs"
    d = first_error(tmp_path, with_flow(flow, LIST_INPUT))
    assert (d.span.line, d.span.col) == (11, 8)
    assert "map over a list of unknown length is unbounded" in d.message
    assert d.hint == "declare max_items on the input list"


def test_for_over_unbounded_list(tmp_path):
    flow = "for it in items:\n    r = solver(question=it)\nreturn 1"
    d = first_error(tmp_path, with_flow(flow, LIST_INPUT))
    assert (d.span.line, d.span.col) == (11, 3)
    assert "for over a list of unknown length is unbounded" in d.message


def test_map_over_bounded_list_compiles(tmp_path):
    head = LIST_INPUT.replace(
        "items: list[string]", "items:\n    type: list[string]\n    max_items: 4"
    )
    path = tmp_path / "spec.yaml"
    path.write_text(with_flow("xs = map(items, solver(question=_))\nreturn xs", head))
    compile_loaded(load_spec(path))


def test_flow_error_deep_in_block_points_into_the_file(tmp_path):
    # A flow whose block starts further down, with comments and blank lines inside.
    text = GOOD.replace(
        "flow: |\n  r = solver(question)\n",
        "flow: |\n  # first we ask\n\n  r = solver(question)\n  if r.answer:\n      x = r.answer ?? 1\n",
    )
    d = first_error(tmp_path, text)
    assert (d.span.line, d.span.col) == (14, 20)
    assert d.source_line == "      x = r.answer ?? 1"
    assert "unexpected character '?'" in d.message


def test_flow_error_in_folded_and_quoted_yaml_strings(tmp_path):
    text = GOOD.split("flow: |")[0] + 'flow: "r = solver(question)\\nreturn r $"\n'
    d = first_error(tmp_path, text)
    # The flow's "\n" escape is two characters in the file.
    assert (d.span.line, d.span.col) == (9, 39)
    assert d.source_line[38] == "$"
    text = GOOD.split("flow: |")[0] + "flow: 'x = ''a'' $'\n"  # '' is one quote
    d = first_error(tmp_path, text)
    assert (d.span.line, d.span.col) == (9, 18)
    text = GOOD.split("flow: |")[0] + "flow: >\n  r = solver(question)\n\n  return r $\n"
    d = first_error(tmp_path, text)
    assert (d.span.line, d.span.col) == (12, 12)


def test_flow_error_in_json_string_with_escapes(tmp_path):
    spec = {
        "hive": 1,
        "name": "t",
        "inputs": {"question": "string"},
        "agents": {"solver": {"prompt": "Q: {{ question }}"}},
        "flow": 'r = solver(question)\nx = "caf\\u00e9\\t" + 1 $\nreturn r',
    }
    text = json.dumps(spec, indent=2)
    line = text.split("\n").index(next(s for s in text.split("\n") if '"flow"' in s)) + 1
    d = first_error(tmp_path, text, "spec.json")
    assert d.span.line == line
    raw_line = text.split("\n")[line - 1]
    assert raw_line[d.span.col - 1] == "$"
    assert "unexpected character '$'" in d.message


def test_json_with_tabs_and_exponents_is_read_as_json(tmp_path):
    spec = json.loads(json.dumps({
        "hive": 1,
        "name": "t",
        "inputs": {"question": "string"},
        "agents": {"solver": {"prompt": "Q: {{ question }}", "sampling": {"temperature": 0.5}}},
        "flow": "return solver(question)",
    }))  # fmt: skip
    text = json.dumps(spec, indent="\t").replace("0.5", "5e-1")
    path = tmp_path / "spec.json"
    path.write_text(text)
    loaded = load_spec(path)
    assert loaded.spec.agents["solver"].sampling.temperature == 0.5
    compile_loaded(loaded)


def test_windows_line_endings_and_bom(tmp_path):
    text = "\ufeff" + with_flow("r = solver(question) $\nreturn r").replace("\n", "\r\n")
    d = first_error(tmp_path, text.encode("utf-8"))
    assert (d.span.line, d.span.col) == (10, 24)
    assert d.source_line.rstrip("\r") == "  r = solver(question) $"


def test_parenthesised_expressions_and_empty_calls_compile(tmp_path):
    text = with_flow("r = (solver(question))\nreturn {answer: (r).answer, n: (1 + 2) * 3}")
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    compile_loaded(load_spec(path))


# -- outputs, agents, delegation -------------------------------------------------

OUTPUTS = GOOD.replace("name: t\n", "name: t\noutputs:\n  answer: integer\n  extra: string\n")


def test_outputs_type_mismatch(tmp_path):
    d = first_error(tmp_path, OUTPUTS)
    assert (d.span.line, d.span.col) == (14, 3)
    assert "output 'answer' is declared integer but the flow returns string" in d.message


def test_outputs_missing_and_extra(tmp_path):
    text = OUTPUTS.replace("answer: integer", "answer: string")
    d = first_error(tmp_path, text)
    assert (d.span.line, d.span.col) == (14, 3)
    assert "the returned record has no output 'extra'" in d.message
    text = GOOD.replace("name: t\n", "name: t\noutputs:\n  answr: string\n")
    d = first_error(tmp_path, text)
    assert "the returned record has no output 'answr'" in d.message
    assert d.hint == "did you mean 'answer'?"


def test_outputs_declared_but_flow_returns_string(tmp_path):
    text = with_flow("r = solver(question)\nreturn r.text", OUTPUTS)
    d = first_error(tmp_path, text)
    assert (d.span.line, d.span.col) == (14, 3)
    assert "the flow returns string, but the spec declares outputs" in d.message


def add_agents(extra: str) -> str:
    """GOOD with `extra` agents before `solver` (they start on line 6)."""
    return GOOD.replace("  solver:\n", extra + "  solver:\n")


def test_delegation_cycle(tmp_path):
    text = add_agents(
        "  a:\n    prompt: hi\n    calls: [b]\n  b:\n    prompt: hi\n    calls: [a]\n"
    )
    d = first_error(tmp_path, text)
    assert (d.span.line, d.span.col) == (11, 12)
    assert "delegation cycle: a -> b -> a" in d.message


def test_self_delegation(tmp_path):
    d = first_error(tmp_path, add_agents("  a:\n    prompt: hi\n    calls: [a]\n"))
    assert (d.span.line, d.span.col) == (8, 12)
    assert "delegation cycle: a -> a" in d.message


def test_unknown_agent_in_calls(tmp_path):
    d = first_error(tmp_path, add_agents("  a:\n    prompt: hi\n    calls: [slver]\n"))
    assert (d.span.line, d.span.col) == (8, 13)
    assert "agent 'a' may call unknown agent 'slver'" in d.message
    assert d.hint == "did you mean 'solver'?"


def test_agent_named_like_a_builtin(tmp_path):
    d = first_error(tmp_path, add_agents("  vote:\n    prompt: hi\n"))
    assert (d.span.line, d.span.col) == (6, 3)
    assert "agent name 'vote' is a built-in" in d.message


# -- templates -------------------------------------------------------------------


def test_template_syntax_error_in_quoted_string(tmp_path):
    d = first_error(tmp_path, GOOD.replace('"Q: {{ question }}"', '"Q: {{ question }"'))
    assert (d.span.line, d.span.col) == (7, 14)
    assert "template error: unexpected '}'" in d.message


def test_template_syntax_error_on_a_later_line_of_a_block(tmp_path):
    prompt = "    prompt: |\n      line one\n      {% if question %}\n      {{ question }\n      {% endif %}\n"
    d = first_error(tmp_path, GOOD.replace('    prompt: "Q: {{ question }}"\n', prompt))
    assert (d.span.line, d.span.col) == (10, 7)
    assert d.source_line == "      {{ question }"
    assert "template error" in d.message


def test_template_unknown_filter(tmp_path):
    d = first_error(tmp_path, GOOD.replace("{{ question }}", "{{ question | shout }}"))
    assert (d.span.line, d.span.col) == (7, 14)
    assert "template error: No filter named 'shout'" in d.message


def test_template_variable_not_in_params(tmp_path):
    text = GOOD.replace("    extract:", "    params: [q]\n    extract:")
    d = first_error(tmp_path, text)
    assert (d.span.line, d.span.col) == (8, 13)
    assert "agent 'solver' uses template variable 'question' that is not in its params" in d.message


def test_templates_render_in_the_sandbox():
    from jinja2.exceptions import SecurityError

    from hive.compiler import templates

    env = templates.environment()
    with pytest.raises(SecurityError):
        env.from_string("{{ x.__class__.__mro__ }}").render(x="")
    with pytest.raises(SecurityError):
        env.from_string("{{ f.__globals__ }}").render(f=lambda: 0)
    # Bounded arithmetic: a gigabyte-sized prompt or a minutes-long power is refused.
    assert env.from_string("{{ q * 3 }} {{ 2 ** 10 }}").render(q="ab") == "ababab 1024"
    with pytest.raises(SecurityError, match="2,000,000,000 characters or items"):
        env.from_string("{{ q * 1000000000 }}").render(q="ab")
    with pytest.raises(SecurityError, match="too large"):
        env.from_string("{{ 10 ** 100000000 }}").render()


def _render(source, context):
    from hive.compiler import templates
    from hive.compiler.sandbox import render_bounded

    return render_bounded(templates.environment().from_string(source), context)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        # A string doubled in a loop over a namespace, or by a recursive macro.
        ("{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}"
         "{% endfor %}{{ ns.s }}", "'~' would make 1,048,576 characters"),
        ("{% set ns = namespace(s=['x']) %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}"
         "{% endfor %}{{ ns.s }}", "'\\+' would make 1,048,576 characters or items"),
        ("{% macro f(s, n) %}{% if n %}{{ f(s ~ s, n - 1) }}{% else %}{{ s }}{% endif %}"
         "{% endmacro %}{{ f('x', 60) }}", "'~' would make"),
        # Widths that allocate a gigabyte at once.
        ("{{ 'x' | center(1000000000) }}", "'center': width 1,000,000,000 is over the limit"),
        ("{{ 'a\\nb' | indent(1000000000) }}", "'indent': width"),
        ("{{ 'x'.ljust(width=1000000000) }}", "ljust\\(\\): width"),
        ("{{ '%0999999999d' % 1 }}", "'%': a format width over the limit"),
        ("{{ '%*d' % (999999999, 1) }}", "'%': a format width"),
        ("{{ '{:>999999999}'.format(1) }}", "format\\(\\): a format width"),
        ("{{ '{:>{w}}'.format(1, w=999999999) }}", "format\\(\\): a format width"),
        ("{{ '%0999999999d' | format(1) }}", "'format': a format width"),
        ("{{ (q * 900000).replace('', 'yy') }}", "replace\\(\\) would make over 1,000,000"),
        ("{{ (q * 900000) | replace('', 'yy') }}", "replace\\(\\) would make"),
        # A filter's or a call's result, and the rendered prompt, are checked too.
        ("{{ (q * 400000) | list | join('yy') }}", "'join' made over 1,000,000 characters"),
        ("{% for i in range(100000) %}{{ q * 1000 }}{% endfor %}", "rendered prompt passed"),
        # Found by review: lists mutated in place, blocks printed into a buffer, repeats
        # of one big value, and products of two values each within the limit.
        ("{% set l = ['x'] %}{% for i in range(21) %}{{ l.extend(l) }}{% endfor %}", "unsafe"),
        ("{% set x %}{% for i in range(20) %}{{ q * 999999 }}{% endfor %}{% endset %}{{ x }}",
         "a block printed over 1,000,000"),
        ("{% macro m() %}{% for i in range(20) %}{{ q * 999999 }}{% endfor %}{% endmacro %}"
         "{{ m() }}", "a block printed"),
        ("{{ ([q * 999999] * 100000) | length }}", "'\\*' would make 100,000,000,000"),
        ("{% set a = [q * 500000] %}{% set b = [a, a, a] %}{{ b | length }}", "a literal made"),
        ("{{ ('\\t' * 1000).expandtabs(20000) }}", "expandtabs\\(\\) would make"),
        ("{{ ('a\\n' * 1000) | indent(20000) }}", "'indent' would make"),
        ("{{ ('a\\n' * 1000) | indent(q * 20000) }}", "'indent' would make"),
        ("{{ ('{0}' * 20).format(q * 999999) }}", "format\\(\\) would make"),
        ("{{ ('%s' * 20) % (q * 999999,) }}", "'%' would make"),
        ("{{ '{0:{1[0]}}'.format(1, [999999999]) }}", "format\\(\\): a format width"),
        ("{% for b in [1] | batch(20000000, 'x') %}{{ b }}{% endfor %}", "'batch': width"),
        # Found by a second review: values that print to more than their items (numbers,
        # namespaces, dict views, ranges), bytes, totals of format fields, separators.
        ("{% set ns = namespace(a=none) %}{% for i in range(25) %}"
         "{% set ns.a = namespace(x=ns.a, y=ns.a) %}{% endfor %}{{ ns.a }}", "Namespace"),
        ("{% set d = {'a': 'x' * 10000} %}{{ [d.items()] * 300 }}", "'\\*' would make"),
        ("{{ [10 ** 4299] * 300 }}", "'\\*' would make 1,290,600"),
        ("{{ ([range(1000)] * 1500) | map('list') | list }}", "'\\*' would make"),
        ("{{ ('x'.encode() * 50000000) | length }}", "'encode' of 'str' object is unsafe"),
        ("{{ (('%0999999d' * 5) % ((1,) * 5)) | length }}", "'%': a format width"),
        ("{{ ('{:999999}' * 5).format(*[1] * 5) | length }}", "format\\(\\): a format width"),
        ("{{ ([1] * 3000) | join('x' * 3000) }}", "'join' would make"),
        ("{{ ([[1]] * 3000) | tojson(indent=1000) }}", "'tojson' would make"),
    ],
)  # fmt: skip
def test_templates_cannot_build_huge_values(source, message):
    from jinja2.exceptions import SecurityError

    with pytest.raises(SecurityError, match=message):
        _render(source, {"q": "a"})


def test_template_time_is_bounded_by_steps():
    """Loops that print nothing and self-recursive macros stop at the step budget."""
    from jinja2.exceptions import SecurityError

    from hive.compiler import templates
    from hive.compiler.sandbox import MAX_TEMPLATE_STEPS, render_bounded

    budget = "ran over its budget of loop iterations and calls"
    nested = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    with pytest.raises(SecurityError, match=budget):
        _render(nested, {})  # the default budget (10^10 iterations otherwise)
    env = templates.environment()
    doubling = (
        "{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}"
        "{{ f(60) }}"
    )  # 2^60 calls, never deeper than 60
    with pytest.raises(SecurityError, match=budget):
        render_bounded(env.from_string(doubling), {}, max_steps=10_000)
    # Each iteration and each call is one step: range(n) and n iterations.
    loop = "{% for i in range(n) %}{% endfor %}ok"
    assert render_bounded(env.from_string(loop), {"n": 100}, max_steps=101) == "ok"
    with pytest.raises(SecurityError, match=budget):
        render_bounded(env.from_string(loop), {"n": 101}, max_steps=101)
    assert _render("{% for i in range(100000) %}{% endfor %}ok", {}) == "ok"
    assert MAX_TEMPLATE_STEPS >= 100_000


def test_bounded_templates_still_format_and_concatenate():
    source = (
        "{{ q ~ '!' }} {{ q + 'x' }} {{ [1] + [2] }} {{ 'Call 5551234567: %s' % q }} "
        "{{ '%5d|%.2f' % (3, 2.5) }} {{ '{:>4}|{}'.format(7, 8) }} {{ 'n={n:>{w}}'.format(n=1, w=3) }} "
        "{{ '%s-%s' | format(q, q) }} {{ q | center(5) }} {{ 'a,b' | replace(',', ';') }}"
    )  # fmt: skip
    assert (
        _render(source, {"q": "ab"})
        == "ab! abx [1, 2] Call 5551234567: ab     3|2.50    7|8 n=  1 ab-ab   ab  a;b"
    )
    # Big numbers that are not widths, replace() that does not grow, tuple targets, blocks.
    source = (
        "{{ '{:>{w}} id={i}'.format('x', w=3, i=1700000000) }} {{ '%*d ts=%d' % (3, 1, 1700000000) }} "
        "{{ (q * 300000).replace('a', 'b') | length }} {{ (q * 300000).replace('a', 'bb', 1) | length }} "
        "{% for a, b in [(1, 2), (3, 4)] %}{{ a }}{{ b }}{% endfor %} {{ {'k': [1, 2]} }} "
        "{% macro m(a) %}[{{ a }}]{% endmacro %}{{ m(1) }}{% set x %}hi{% endset %}{{ x }}"
    )  # fmt: skip
    assert (
        _render(source, {"q": "ab"})
        == "  x id=1700000000   1 ts=1700000000 600000 600001 1234 {'k': [1, 2]} [1]hi"
    )
    # A big number as a filter's value is not a width; a list nested deep is no crash.
    source = (
        "{{ 5000000 | center(12) }} {% set ns = namespace(l=1) %}{% for i in range(1200) %}"
        "{% set ns.l = [ns.l] %}{% endfor %}{{ ns.l | length }}"
    )  # fmt: skip
    assert _render(source, {}) == "  5000000    1"
    # Loops of every kind: recursive, filtered, with an else.
    source = (
        "{% for x in [[1, [2]], [3]] recursive %}[{% if x is iterable %}{{ loop(x) }}"
        "{% else %}{{ x }}{% endif %}]{% endfor %} {% for i in range(10) if i % 2 %}{{ i }}"
        "{% endfor %} {% for x in [] %}x{% else %}empty{% endfor %}"
    )  # fmt: skip
    assert _render(source, {}) == "[[1][[2]]][[3]] 13579 empty"


# -- limits ----------------------------------------------------------------------


def test_alias_bomb_is_rejected_quickly(tmp_path):
    lines = ["hive: 1", "name: t", "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    start = time.monotonic()
    d = first_error(tmp_path, "\n".join(lines) + "\n")
    assert time.monotonic() - start < 5
    assert "spec expands to more than" in d.message
    assert d.span.line >= 3


def test_huge_file_is_rejected(tmp_path):
    text = GOOD + "description: " + "x" * (MAX_BYTES + 1) + "\n"
    d = first_error(tmp_path, text)
    assert (d.span.line, d.span.col) == (1, 1)
    assert "spec is larger than 4 MiB" in d.message


def test_deeply_nested_value_is_rejected(tmp_path):
    d = first_error(tmp_path, GOOD + "description: " + "[" * 5000 + "]" * 5000 + "\n")
    assert d.span.line >= 1
    # Our own depth limit, or (PyYAML >= 6.0.3) the parser's: "exceeded maximum nesting depth".
    assert "nest" in d.message or "must be a string" in d.message


def test_deeply_nested_flow_is_rejected(tmp_path):
    d = first_error(tmp_path, with_flow("r = " + "[" * 3000 + "1" + "]" * 3000 + "\nreturn r"))
    assert d.span.line >= 1
    assert "nests too deeply" in d.message


def test_deep_parentheses_are_only_grouping(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(with_flow("r = " + "(" * 3000 + "1" + ")" * 3000 + "\nreturn r"))
    assert compile_loaded(load_spec(path)).plan.priorities.max_calls == 0


def test_missing_file(tmp_path):
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path / "nope.yaml")
    assert "cannot read spec" in info.value.diagnostics[0].message


def test_all_errors_are_reported_in_file_order(tmp_path):
    flow = "r = slover(question)\nx = qestion\nreturn r"
    with pytest.raises(SpecError) as info:
        path = tmp_path / "spec.yaml"
        path.write_text(with_flow(flow))
        compile_loaded(load_spec(path))
    lines = [(d.span.line, d.span.col) for d in info.value.diagnostics]
    assert lines == sorted(lines) and len(lines) == 2


# -- warnings --------------------------------------------------------------------


def test_unused_agent_is_a_warning(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(add_agents("  helper:\n    prompt: hi\n"))
    compiled = compile_loaded(load_spec(path))
    (w,) = compiled.warnings
    assert w.severity == "warning"
    assert (w.span.line, w.span.col) == (6, 3)
    assert "agent 'helper' is never called" in w.message
    assert w.format().startswith(f"{path}:6:3: warning: ")


def test_a_field_that_only_some_iterations_have_is_a_warning(tmp_path):
    """Before: the loop merged record and integer into 'any' and checked nothing."""
    path = tmp_path / "spec.yaml"
    path.write_text(with_flow("x = solver(question)\nrepeat 2:\n    x = len(x.text)\nreturn x"))
    compiled = compile_loaded(load_spec(path))
    (w,) = compiled.warnings
    assert (w.span.line, w.span.col) == (12, 17)
    assert "'.text' may fail: the value here is integer | {" in w.message


REVIEW_SPEC = """\
hive: 1
name: t
inputs:
  on: string
  q: {type: string, default: DEFAULT}
agents:
  no: {prompt: "{{ on }}", extract: {a: {regex: '(\\\\d+)', group: GROUP}}}
flow: |2
      # a comment indented more than the flow
  x = no(on)
  return zz
"""


def review_spec(default: str = '"x"', group: str = "1") -> str:
    return REVIEW_SPEC.replace("DEFAULT", default).replace("GROUP", group)


def test_input_default_must_have_the_input_type(tmp_path):
    d = first_error(tmp_path, review_spec(default="5"))
    assert (d.span.line, d.span.col) == (5, 6)
    assert "default 5 is not of type string" in d.message


def test_input_default_must_be_json(tmp_path):
    d = first_error(tmp_path, review_spec(default="2024-01-01"))
    assert d.span.line == 5


def test_extract_group_must_exist(tmp_path):
    d = first_error(tmp_path, review_spec(group="5"))
    assert "group 5 does not exist: the regex has 1 group(s)" in d.message


def test_yaml_11_boolean_words_are_plain_keys_and_indent_indicator_maps_positions(tmp_path):
    # `on` and `no` stay names (not booleans); `|2` sets the block's indentation.
    d = first_error(tmp_path, review_spec())
    assert "undefined variable 'zz'" in d.message
    assert (d.span.line, d.span.col) == (11, 10)


@pytest.mark.parametrize(
    ("flow_yaml", "line", "col"),
    [
        ('"r = solver(question)\\n\\\n  return zz"', 10, 10),  # escaped line break
        ("'r = solver(question)\n\n  return zz'", 11, 10),  # a blank line folds to one break
        ('"r = solver(question)  \n\n  return zz"', 11, 10),  # trailing blanks are dropped
    ],
)
def test_flow_errors_in_multiline_quoted_strings(tmp_path, flow_yaml, line, col):
    text = GOOD.split("flow: |")[0] + "flow: " + flow_yaml + "\n"
    d = first_error(tmp_path, text)
    assert "undefined variable 'zz'" in d.message
    assert (d.span.line, d.span.col) == (line, col)


def test_exponent_without_a_dot_is_a_number(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(
        with_flow("r = solver(question)\nreturn {answer: r.answer, big: 1e5}").replace(
            "outputs", "x"
        )
    )
    plan = compile_loaded(load_spec(path)).plan
    ret = next(n for n in plan.graph.body.nodes if n.op == "return")
    assert str(ret.type) == "{answer: string, big: number}"


@pytest.mark.parametrize(
    "flow",
    [
        "r = solver(qestion=question)\nreturn r",
        "rs = sample solver(question) x 3\nv = vote(rs, bye=answer)\nreturn v",
        "b = beam(expnd=solver(question=_.text), score=1, width=2, depth=2)\nreturn b",
        "b = beam(expand=solver(question=_.text), score=1, widht=2, depth=2)\nreturn b",
        "r = refine(solver(question), critque=solver(question=_.text), "
        "revise=solver(question=_.text), rounds=2)\nreturn r",
    ],
    ids=["agent-parameter", "vote-by", "beam-expand", "beam-width", "refine-critique"],
)
def test_a_misspelt_keyword_is_one_error_not_two(tmp_path, flow):
    """No follow-up 'missing argument' / 'needs by=' for the name the misspelling meant."""
    path = tmp_path / "spec.yaml"
    path.write_text(with_flow(flow), encoding="utf-8")
    with pytest.raises(SpecError) as info:
        compile_loaded(load_spec(path))
    errors = [d for d in info.value.diagnostics if d.severity == "error"]
    assert len(errors) == 1 and "did you mean" in (errors[0].hint or ""), info.value.format()


def test_each_repeated_keyword_is_reported_where_it_is_written(tmp_path):
    path = tmp_path / "spec.yaml"
    flow = (
        "rs = sample solver(question) x 3\nv = vote(rs, by=answer, by=answer, by=answer)\nreturn v"
    )
    path.write_text(with_flow(flow), encoding="utf-8")
    with pytest.raises(SpecError) as info:
        compile_loaded(load_spec(path))
    columns = [d.span.col for d in info.value.diagnostics if "given twice" in d.message]
    assert columns == [27, 38]
    # After a positional argument, each repeated keyword once, where it is written.
    path.write_text(
        with_flow("r = solver(question, question=question, question=question)\nreturn r"),
        encoding="utf-8",
    )
    with pytest.raises(SpecError) as info:
        compile_loaded(load_spec(path))
    columns = [d.span.col for d in info.value.diagnostics if "given twice" in d.message]
    assert columns == [24, 43]


def test_a_value_nested_into_itself_in_nested_loops_keeps_a_small_type(tmp_path):
    """Unions stay flat: this used to grow a deeper type on every pass (minutes, GBs)."""
    path = tmp_path / "spec.yaml"
    flow = "x = 0\nrepeat 2:\n    repeat 2:\n        x = {a: x, b: x}\nreturn {answer: str(x)}"
    path.write_text(with_flow(flow), encoding="utf-8")
    plan = compile_loaded(load_spec(path)).plan
    assert len(plan.to_json()) < 50_000


def test_a_list_growing_inside_a_record_is_not_given_an_unfinished_bound(tmp_path):
    """The loop's types do not settle within the typing passes: the list is unbounded
    (an error for `for`), never the bound of the last pass (5 of the 10 iterations)."""
    path = tmp_path / "spec.yaml"
    flow = (
        "x = {all: []}\nrepeat 10:\n    x = {all: x.all + [1]}\n"
        "for y in x.all:\n    r = solver(question=str(y))\nreturn {answer: str(len(x.all))}"
    )
    path.write_text(with_flow(flow), encoding="utf-8")
    with pytest.raises(SpecError, match="unbounded"):
        compile_loaded(load_spec(path))


def test_the_plan_leaves_out_keyword_positions_and_empty_alternatives(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(with_flow("r = solver(question=question)\nreturn r"), encoding="utf-8")
    text = compile_loaded(load_spec(path)).plan.to_json()
    assert "arg_spans" not in text and "alternatives" not in text
