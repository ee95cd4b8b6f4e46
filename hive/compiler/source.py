"""Reading spec files (YAML or JSON) with the position of every value.

The document is composed with PyYAML's safe loader (JSON is read by `json`
for its exact semantics, and composed by YAML only for positions). While the
node tree is turned into plain Python data we record, for every path
(`("agents", "solver", "prompt")`), where its key and its value start, and
enough about each string scalar to map an offset inside the decoded string
(a flow program, a template) back to a line and column in the file.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hive.compiler import strict_json
from hive.compiler.errors import Diagnostic, Span, SpecError

PathKey = tuple[str | int, ...]

# Aliases expand into shared sub-trees; an untrusted spec could use them to
# blow up (the "billion laughs" document). No real spec comes near this.
MAX_NODES = 200_000
MAX_BYTES = 4 * 1024 * 1024

_ESCAPE_LEN = {"x": 2, "u": 4, "U": 8}
# libyaml's loader is ~10x faster than the pure-Python one and reports the same marks.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class _Scalar:
    style: str | None
    start: int  # offset of the scalar's first character (the quote or indicator) in the file
    end: int
    folded: str | None = None  # a folded block's decoded text: its line breaks moved


@dataclass
class SourceDoc:
    """A parsed spec file: its data and where each part of it is."""

    path: str
    text: str
    data: Any
    value_marks: dict[PathKey, tuple[int, int]] = field(default_factory=dict)
    key_marks: dict[PathKey, tuple[int, int]] = field(default_factory=dict)
    scalars: dict[PathKey, _Scalar] = field(default_factory=dict)
    _line_starts: list[int] = field(default_factory=list)
    _maps: dict[int, _BlockMap | _QuotedMap] = field(default_factory=dict)

    def __post_init__(self) -> None:
        starts = [0]
        for i, ch in enumerate(self.text):
            if ch == "\n":
                starts.append(i + 1)
        self._line_starts = starts

    def source_line(self, line: int) -> str | None:
        if not 1 <= line <= len(self._line_starts):
            return None
        start = self._line_starts[line - 1]
        end = self.text.find("\n", start)
        return self.text[start : end if end >= 0 else len(self.text)]

    def span(self, path: PathKey, *, key: bool = False) -> Span:
        """Where `path` is; the nearest enclosing value when `path` itself is absent."""
        marks = self.key_marks if key else self.value_marks
        probe = tuple(path)
        while probe:
            if probe in marks:
                return self._span(*marks[probe])
            if not key and probe in self.key_marks:
                return self._span(*self.key_marks[probe])
            probe = probe[:-1]
        return self._span(*self.value_marks.get((), (0, 0)))

    def span_in_string(self, path: PathKey, offset: int) -> Span:
        """The file position of character `offset` of the string value at `path`."""
        scalar = self.scalars.get(tuple(path))
        if scalar is None:
            return self.span(path)
        return self._span(*self._offset_to_line_col(self._raw_offset(scalar, offset)))

    def diagnostic(self, severity: str, message: str, span: Span, hint: str | None = None):
        return Diagnostic(severity, message, span, hint, self.source_line(span.line))  # type: ignore[arg-type]

    # -- internals ---------------------------------------------------------

    def _span(self, line0: int, col0: int) -> Span:
        last = len(self._line_starts) - 1
        if line0 > last:  # YAML's end-of-stream mark follows a final line break the file lacks
            line0, col0 = last, len(self.text) - self._line_starts[last]
        return Span(self.path, line0 + 1, col0 + 1)

    def _offset_to_line_col(self, index: int) -> tuple[int, int]:
        line = bisect.bisect_right(self._line_starts, index) - 1
        return line, index - self._line_starts[line]

    def _raw_offset(self, scalar: _Scalar, offset: int) -> int:
        if scalar.style is None:  # plain scalars are their own text
            return min(scalar.start + offset, max(scalar.end, scalar.start))
        mapper = self._maps.get(scalar.start)
        if mapper is None:
            if scalar.style in ("|", ">"):
                mapper = _BlockMap(self.text, scalar)
            else:
                mapper = _QuotedMap(self.text, scalar)
            self._maps[scalar.start] = mapper
        return mapper(offset)


class _BlockMap:
    """Offsets in a literal/folded block's decoded text -> offsets in the file.

    The block's content lines follow its header line, each indented by the
    same amount; decoded line i is file line i with that indent removed.
    """

    def __init__(self, text: str, scalar: _Scalar):
        header_end = text.find("\n", scalar.start)
        body_start = header_end + 1 if header_end >= 0 else len(text)
        raw_lines = text[body_start : scalar.end].split("\n")
        header = text[scalar.start : header_end if header_end >= 0 else len(text)]
        indicator = re.search(r"[1-9]", header.split("#")[0])  # `|2`: indentation given
        if indicator:
            parent = text.rfind("\n", 0, scalar.start) + 1
            parent_indent = len(text[parent:]) - len(text[parent:].lstrip(" "))
            self.indent = parent_indent + int(indicator.group())
        else:
            first = next((line for line in raw_lines if line.strip()), "")
            self.indent = len(first) - len(first.lstrip(" "))
        self.decoded_starts: list[int] = []
        self.file_starts: list[int] = []
        decoded, file_pos = 0, body_start
        for line in raw_lines:
            content = line[self.indent :]
            if scalar.folded is not None and content.strip():
                # Folding turns breaks into spaces and drops one of each run of
                # blank lines, but keeps every line's text: find it in the result.
                found = scalar.folded.find(content, decoded)
                decoded = found if found >= 0 else decoded
            self.decoded_starts.append(decoded)
            self.file_starts.append(file_pos)
            decoded += len(content) + (
                0 if scalar.folded is not None and not content.strip() else 1
            )
            file_pos += len(line) + 1

    def __call__(self, offset: int) -> int:
        if not self.file_starts:
            return 0
        i = max(bisect.bisect_right(self.decoded_starts, offset) - 1, 0)
        return self.file_starts[i] + self.indent + (offset - self.decoded_starts[i])


class _QuotedMap:
    """Offsets in a quoted scalar's decoded text -> offsets in the file.

    Built once per scalar from its special characters only: an escape
    (`\\n`, `\\u00e9`) or a doubled quote (`''`) is one decoded character, line
    breaks fold (see below), an escaped line break decodes to nothing; between
    them, decoded and file offsets advance together.
    """

    _DOUBLE = re.compile(r"\\|\n")
    _SINGLE = re.compile(r"''|\n")

    def __init__(self, text: str, scalar: _Scalar):
        i, end = scalar.start + 1, max(scalar.end - 1, scalar.start + 1)
        double = scalar.style == '"'
        special = self._DOUBLE if double else self._SINGLE
        # Runs of plain characters: decoded offset `decoded_starts[k]` is file offset
        # `file_starts[k]`, and both advance together until the next special character.
        self.decoded_starts: list[int] = [0]
        self.file_starts: list[int] = [i]
        self.end = end
        decoded = 0
        while True:
            match = special.search(text, i, end)
            if match is None:
                break
            j = match.start()
            if text[j] == "\n":
                # Folding: trailing blanks go; one break becomes a space, a run of k
                # breaks (blank lines between) becomes k - 1 newlines; indentation goes.
                line_end = j
                while line_end > i and text[line_end - 1] in " \t":
                    line_end -= 1
                decoded += line_end - i
                breaks = 0
                while j < end and text[j] == "\n":
                    breaks += 1
                    j += 1
                    while j < end and text[j] in " \t":
                        j += 1
                decoded += 1 if breaks == 1 else breaks - 1
            elif double and j + 1 < end and text[j + 1] == "\n":
                decoded += j - i  # an escaped line break joins the lines: nothing decoded
                j += 2
                while j < end and text[j] in " \t":
                    j += 1
            else:
                decoded += j - i
                if double:
                    j += 2 + _ESCAPE_LEN.get(text[j + 1], 0) if j + 1 < end else 1
                else:
                    j += 2
                decoded += 1  # an escape or a doubled quote is one character
            i = min(j, end)
            self.decoded_starts.append(decoded)
            self.file_starts.append(i)

    def __call__(self, offset: int) -> int:
        offset = max(offset, 0)
        k = bisect.bisect_right(self.decoded_starts, offset) - 1
        return min(self.file_starts[k] + (offset - self.decoded_starts[k]), self.end)


_COLLECTION_TAGS = {
    yaml.MappingNode: "tag:yaml.org,2002:map",
    yaml.SequenceNode: "tag:yaml.org,2002:seq",
}


class _Builder:
    """Turns a composed YAML node tree into data, recording positions by path."""

    def __init__(self, doc: SourceDoc, constructor: yaml.constructor.SafeConstructor):
        self.doc = doc
        self.constructor = constructor
        self.num_nodes = 0
        self.errors: list[Diagnostic] = []

    def build(self, node: yaml.Node, path: PathKey) -> Any:
        self.num_nodes += 1
        if self.num_nodes > MAX_NODES:
            raise _TooBig(node)
        self.doc.value_marks[path] = (node.start_mark.line, node.start_mark.column)
        plain_tag = _COLLECTION_TAGS.get(type(node))
        if plain_tag is not None and node.tag != plain_tag:
            # A tag on a collection would otherwise be dropped silently (scalars reject theirs).
            tag = node.tag.replace("tag:yaml.org,2002:", "!!")
            raise _Unsupported(node, f"YAML tag '{tag}' is not supported in specs")
        if isinstance(node, yaml.MappingNode):
            result: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise _Unsupported(
                        key_node, "YAML merge keys ('<<') are not supported in specs"
                    )
                if not isinstance(key_node, yaml.ScalarNode):
                    raise _Unsupported(key_node, "mapping keys must be plain strings")
                # The key's own text: YAML 1.1 would read `no:` / `on:` as booleans.
                key = str(key_node.value)
                child = (*path, key)
                if key in result:
                    line, col = key_node.start_mark.line, key_node.start_mark.column
                    first = self.doc.key_marks[child]
                    span = self.doc._span(line, col)
                    self.errors.append(
                        self.doc.diagnostic(
                            "error",
                            f"duplicate key '{key}' (first defined on line {first[0] + 1})",
                            span,
                        )
                    )
                    continue
                self.doc.key_marks[child] = (key_node.start_mark.line, key_node.start_mark.column)
                result[key] = self.build(value_node, child)
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        try:
            value = self.constructor.construct_object(node)
        except ValueError as exc:  # an integer past Python's 4,300 digits, a bad date...
            too_big = node.tag == "tag:yaml.org,2002:int"
            raise _Unsupported(node, "number is too large" if too_big else f"{exc}") from None
        if isinstance(value, str):
            folded = value if node.style == ">" else None
            self.doc.scalars[path] = _Scalar(
                node.style, node.start_mark.index, node.end_mark.index, folded
            )
        return value


class _TooBig(Exception):
    def __init__(self, node: yaml.Node):
        self.node = node


class _Unsupported(Exception):
    def __init__(self, node: yaml.Node, message: str):
        self.node = node
        self.message = message


def read_spec_file(path: str | Path) -> SourceDoc:
    """Read a spec file; raise `SpecError` with a located message when it is not valid YAML/JSON."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SpecError(
            [Diagnostic("error", f"cannot read spec: {exc.strerror}", Span(str(path), 1, 1))]
        ) from None
    return parse_spec_text(raw, str(path), is_json=path.suffix.lower() == ".json")


def parse_spec_text(raw: bytes | str, filename: str, *, is_json: bool = False) -> SourceDoc:
    if isinstance(raw, bytes):
        if len(raw) > MAX_BYTES:
            raise SpecError(
                [
                    Diagnostic(
                        "error",
                        f"spec is larger than {MAX_BYTES // 1024 // 1024} MiB",
                        Span(filename, 1, 1),
                    )
                ]
            )
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise SpecError(
                [
                    Diagnostic(
                        "error", f"spec is not UTF-8 text (byte {exc.start})", Span(filename, 1, 1)
                    )
                ]
            ) from None
    else:
        text = raw
    doc = SourceDoc(filename, text, None)
    if not text.strip():
        raise SpecError([doc.diagnostic("error", "spec is empty", Span(filename, 1, 1))])
    json_data: Any = None
    if is_json:
        try:
            json_data = strict_json.loads(text)
        except strict_json.JSONProblem as exc:
            span = doc._span(*doc._offset_to_line_col(exc.offset or 0))
            raise SpecError(
                [doc.diagnostic("error", f"invalid JSON: {exc.message}", span)]
            ) from None
        # Valid JSON has tabs only between tokens, where YAML rejects them; a space
        # keeps every offset the same.
        text = text.replace("\t", " ")
    loader = None
    try:
        loader = _Loader(text)
        node = loader.get_single_node()
        if node is None:
            raise SpecError([doc.diagnostic("error", "spec is empty", Span(filename, 1, 1))])
        builder = _Builder(doc, loader)
        doc.data = builder.build(node, ())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        span = doc._span(mark.line, mark.column) if mark else Span(filename, 1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        if exc.context and problem.startswith("but "):  # "but found another document"
            problem = f"{exc.context} {problem}"
        kind = "JSON" if is_json else "YAML"
        line = doc.source_line(span.line) or ""
        hint = (
            "YAML indents with spaces, not tabs" if line[span.col - 1 : span.col] == "\t" else None
        )
        raise SpecError(
            [doc.diagnostic("error", f"invalid {kind}: {problem}", span, hint)]
        ) from None
    except yaml.reader.ReaderError as exc:
        span = doc._span(*doc._offset_to_line_col(exc.position))
        message = f"invalid character {chr(exc.character)!r} (code point {exc.character:#x})"
        raise SpecError([doc.diagnostic("error", message, span)]) from None
    except yaml.YAMLError as exc:
        raise SpecError(
            [Diagnostic("error", f"invalid YAML: {exc}", Span(filename, 1, 1))]
        ) from None
    except _TooBig as exc:
        span = doc._span(exc.node.start_mark.line, exc.node.start_mark.column)
        raise SpecError(
            [
                doc.diagnostic(
                    "error", f"spec expands to more than {MAX_NODES} values (aliases?)", span
                )
            ]
        ) from None
    except _Unsupported as exc:
        span = doc._span(exc.node.start_mark.line, exc.node.start_mark.column)
        raise SpecError([doc.diagnostic("error", exc.message, span)]) from None
    except RecursionError:
        raise SpecError(
            [Diagnostic("error", "spec nests too deeply", Span(filename, 1, 1))]
        ) from None
    finally:
        if loader is not None:
            loader.dispose()
    if builder.errors:
        raise SpecError(builder.errors)
    if is_json:
        doc.data = json_data  # JSON's own values: YAML 1.1 reads 1e5 as a string
    return doc
