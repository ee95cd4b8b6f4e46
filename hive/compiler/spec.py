"""The spec document: Pydantic models for a workflow written in YAML or JSON.

These models are the trust boundary: every field is typed, unknown keys are
rejected, and the field docstrings become the descriptions in the generated
JSON Schema (`hive schema`), so editors show them as help.
"""

from __future__ import annotations

import re
import warnings
from typing import Annotated, Any, Literal

import regex
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    field_validator,
    model_validator,
)

NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_]*$"
TYPE_PATTERN = (
    r"^(string|number|integer|boolean|any)$"
    r"|^list\[(string|number|integer|boolean|any)\]$"
)
SPEC_VERSION = 1
DEFAULT_MODEL = "smollm2-135m"

Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=64)]
TypeName = Annotated[
    str,
    Field(
        pattern=TYPE_PATTERN,
        description="A value type: string, number, integer, boolean, any, or list[<type>].",
        examples=["string", "integer", "list[string]"],
    ),
]


# Where `regex` (which runs extractions, for its timeout) reads a pattern unlike Python's
# `re`: fuzzy-matching braces (`x{e}`, `(?:ab){d<=1}`, `{2i+2d+1s<=4}`), which `re` takes
# as literal text, and POSIX classes (`[[:digit:]]`), a set for `re`. A brace is escaped
# by an odd run of backslashes before it.
_REGEX_ONLY = regex.compile(
    r"(?<![\\])(?:\\\\)*\{[\d\s<=+,:]*[edis][\d\s<=+,:edis]*(?::\[[^\]]*\])?\}"
    r"|\[[^\]\\]*\[:\^?[A-Za-z]+:\]"
)


def _check_regex(value: str) -> str:
    """A Python `re` pattern, or one using the `regex` module's extensions (`\\p{L}`),
    that the `regex` module (which runs it) reads as written."""
    if not value:
        raise ValueError("the regular expression is empty")
    found = _REGEX_ONLY.search(value)
    if found:
        raise ValueError(
            f"'{found.group().lstrip(chr(92))}' is fuzzy matching or a POSIX class to the "
            "regex engine extractions run on (text to Python's re): escape its '{' or '['"
        )
    try:
        regex.compile(value)
    except regex.error as exc:
        try:  # Python's re says where a common mistake is more precisely
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                re.compile(value)
        except re.error as re_exc:
            raise ValueError(f"invalid regular expression: {re_exc}") from None
        raise ValueError(f"invalid regular expression: {exc}") from None
    return value


# Checked where it is written, so an error points at the regex itself.
Regex = Annotated[str, AfterValidator(_check_regex)]


def _is_of_type(value: Any, type_name: str) -> bool:
    """Whether a JSON value fits a spec type name (`string`, `list[integer]`, ...)."""
    if type_name.startswith("list["):
        return isinstance(value, list) and all(_is_of_type(v, type_name[5:-1]) for v in value)
    checks = {
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "any": lambda v: True,
    }
    return checks[type_name](value)


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", use_attribute_docstrings=True, frozen=True, allow_inf_nan=False
    )


class InputSpec(_Model):
    """A workflow input with its type and, for lists, a bound on its length."""

    type: TypeName = "string"
    """The input's type."""
    description: str | None = None
    """What the input means; shown in `hive run --help`-style listings."""
    max_items: Annotated[int, Field(ge=1, le=100_000)] | None = None
    """For list inputs: the largest number of items. `map` and `for` over the list need it
    so that the compiler can bound how many calls the flow makes."""
    default: JsonValue = None
    """Value used when the input is not given (of the input's type)."""

    @model_validator(mode="after")
    def _default_has_the_type(self) -> InputSpec:
        if self.default is not None and not _is_of_type(self.default, self.type):
            raise ValueError(f"default {self.default!r} is not of type {self.type}")
        return self


class Sampling(_Model):
    """How an agent's completion is sampled."""

    temperature: Annotated[float, Field(ge=0.0, le=5.0)] = 0.7
    """Softmax temperature; 0 means greedy decoding."""
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0
    """Nucleus sampling: keep the smallest set of tokens whose probability reaches top_p."""
    top_k: Annotated[int, Field(ge=0)] = 0
    """Keep only the k most likely tokens; 0 disables the filter."""
    min_p: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    """Drop tokens less likely than min_p times the most likely token."""
    max_tokens: Annotated[int, Field(ge=1, le=131_072)] = 256
    """The most tokens one completion may generate."""
    stop: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list, max_length=16)
    """Strings that end the completion (not included in the text)."""
    repetition_penalty: Annotated[float, Field(gt=0.0, le=10.0)] = 1.0
    """Divide logits of tokens already present by this factor (1 disables it)."""
    frequency_penalty: Annotated[float, Field(ge=-2.0, le=2.0)] = 0.0
    """Subtract this times a token's count in the output so far."""
    presence_penalty: Annotated[float, Field(ge=-2.0, le=2.0)] = 0.0
    """Subtract this once from every token already in the output."""
    logits_cache: Literal["exact", "hotspot", "off"] | None = None
    """Reuse next-token distributions across this agent's repeated calls (the Logits
    Cache). Unset: `exact` for the calls the compiler marks as repeating (n > 1,
    resample loops, votes, search expansions), off elsewhere. `exact` and `hotspot`
    turn it on for every call of the agent; `hotspot` is an approximate sampler that
    re-samples an earlier path only from one of its most uncertain positions. `off`
    never uses it."""
    seed: int | None = None
    """A seed of the agent's own: its calls derive their seeds from this (and their place
    in the flow) instead of from the run seed, so its replies do not change with `--seed`."""


class RegexExtract(_Model):
    """Extract a field with a regular expression over the completion text."""

    regex: Annotated[Regex, Field(min_length=1)]
    """A Python regular expression (the `regex` module's extensions, such as `\\p{L}`, too);
    the field is its first group (or the whole match).
    A match that runs over a second on a reply stops, and the field is null."""
    type: TypeName = "string"
    """The field's type; the matched text is converted to it."""
    group: Annotated[int, Field(ge=0)] | None = None
    """Which capture group holds the value (0 is the whole match); by default the first
    group, or the whole match when the regex has no group."""

    @model_validator(mode="after")
    def _group_exists(self) -> RegexExtract:
        groups = regex.compile(self.regex).groups
        if self.group is not None and self.group > groups:
            raise ValueError(f"group {self.group} does not exist: the regex has {groups} group(s)")
        return self

    def group_index(self) -> int:
        """The capture group that holds the value."""
        if self.group is not None:
            return self.group
        return 1 if regex.compile(self.regex).groups else 0


class JsonExtract(_Model):
    """Extract a field from a JSON object in the completion text."""

    json_path: Annotated[
        str, Field(alias="json", pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
    ]
    """Dotted path of the value inside the first JSON object in the text, e.g. `verdict` or `review.score`."""
    type: TypeName = "any"
    """The field's type."""

    # Merged with _Model's config: also accept the field's Python name beside its alias.
    model_config = ConfigDict(populate_by_name=True)


Extractor = Annotated[
    Regex | RegexExtract | JsonExtract,
    Field(description="A regular expression (shorthand for {regex: ...}) or an extraction object."),
]

Role = Literal["coordinator", "worker", "generator", "verifier", "scorer", "critic", "reducer"]


class Agent(_Model):
    """An agent: a prompt template, how to sample it, and what to extract from its reply."""

    description: str | None = None
    """What the agent does (documentation only)."""
    role: Role | None = None
    """A hint for scheduling and for graphs: what part the agent plays."""
    priority: Annotated[int, Field(ge=0, le=10)] | None = None
    """A hint (0-10) that raises or lowers the agent's scheduling weight; the compiler's
    contribution estimate is used when absent."""
    model: str | None = None
    """A model for this agent; the spec's model by default."""
    system: str | None = None
    """The system prompt, a Jinja2 template."""
    prompt: Annotated[str, Field(min_length=1)]
    """The user prompt, a Jinja2 template over the call's arguments."""
    params: list[Name] | None = None
    """The agent's parameters in positional order. By default they are the variables its
    templates use; a call binds them by name (`solver(question=q)`, or `solver(question)`
    when the argument is a variable of the same name)."""
    sampling: Sampling = Field(default_factory=Sampling)
    """Sampling parameters for every call of this agent."""
    extract: dict[Name, Extractor] = Field(default_factory=dict)
    """Fields extracted from the reply; a call's result has `text` plus these fields."""
    calls: list[Name] = Field(default_factory=list)
    """Agents this agent may delegate to (they must exist; delegation cycles are errors)."""

    def extractors(self) -> dict[str, RegexExtract | JsonExtract]:
        # model_construct: the shorthand was already validated (a Regex); its group is the
        # first one, or the whole match when it has none.
        return {
            name: RegexExtract.model_construct(regex=e, type="string", group=None)
            if isinstance(e, str)
            else e
            for name, e in self.extract.items()
        }

    @field_validator("extract")
    @classmethod
    def _not_text(cls, value: dict[str, Any]) -> dict[str, Any]:
        if "text" in value:
            raise ValueError("'text' is the raw completion and cannot be an extracted field")
        return value


class Spec(_Model):
    """A Hive workflow: agents as data, and a flow program that calls them."""

    # Merged with _Model's config: also accept the field's Python name beside its alias.
    model_config = ConfigDict(populate_by_name=True)

    json_schema: str | None = Field(default=None, alias="$schema")
    """The JSON Schema this document follows (for editors of JSON specs); ignored by Hive."""
    hive: Literal[1]
    """The spec format version; this is version 1."""
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=128)]
    """The workflow's name."""
    description: str | None = None
    """What the workflow does."""
    model: str = DEFAULT_MODEL
    """The default model: `smollm2-135m` (embedded), a local directory, or a GGUF file."""
    inputs: dict[Name, TypeName | InputSpec] = Field(default_factory=dict)
    """Named inputs with their types (`question: string`) or full declarations."""
    outputs: dict[Name, TypeName] | None = None
    """The fields of the flow's `return` record and their types; checked by the compiler."""
    agents: dict[Name, Agent]
    """The agents, by name."""
    flow: Annotated[str, Field(min_length=1)]
    """The flow program (see the flow language in the README)."""

    def input_specs(self) -> dict[str, InputSpec]:
        return {
            name: InputSpec(type=decl) if isinstance(decl, str) else decl
            for name, decl in self.inputs.items()
        }

    @model_validator(mode="after")
    def _has_agents(self) -> Spec:
        if not self.agents:
            raise ValueError("a spec needs at least one agent")
        return self
