"""The compiler driver: spec file -> Spec -> IR -> passes -> Plan."""

from __future__ import annotations

import gc
from contextlib import contextmanager
from pathlib import Path

import yaml
from pydantic import ValidationError

from hive.compiler.agents import analyse_agents
from hive.compiler.errors import Diagnostic, SpecError
from hive.compiler.ir import Graph
from hive.compiler.lower import lower
from hive.compiler.parser import parse_flow
from hive.compiler.passes import run_passes
from hive.compiler.plan import Plan
from hive.compiler.source import SourceDoc, parse_spec_text, read_spec_file
from hive.compiler.spec import Spec
from hive.compiler.validation import diagnostics_from_validation

# A flow that may make more calls than this is almost certainly a mistake (nested loop
# bounds multiply), and its plan would be too big to schedule usefully.
MAX_CALLS = 1_000_000


class LoadedSpec:
    """A validated spec with the document it came from (for positions in messages)."""

    def __init__(self, spec: Spec, doc: SourceDoc):
        self.spec = spec
        self.doc = doc

    @property
    def path(self) -> str:
        return self.doc.path


def _validate(doc: SourceDoc) -> LoadedSpec:
    if not isinstance(doc.data, dict):
        span = doc.span(())
        raise SpecError(
            [
                doc.diagnostic(
                    "error", "a spec must be a mapping with keys hive, name, agents, flow", span
                )
            ]
        )
    if doc.data.get("format") == "hive-plan":  # one clear message, not nine missing keys
        message = "this is a compiled plan, not a spec"
        hint = "run it with `hive run`; a plan file must end in .json"
        raise SpecError([doc.diagnostic("error", message, doc.span(()), hint)])
    try:
        spec = Spec.model_validate(doc.data)
    except ValidationError as exc:
        raise SpecError(diagnostics_from_validation(exc, doc)) from None
    return LoadedSpec(spec, doc)


@contextmanager
def _gc_paused():
    """Compilation allocates many small acyclic objects; the cyclic collector's passes
    over them are wasted work (about 10% of compiling a large flow)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def load_spec(path: str | Path) -> LoadedSpec:
    """Read and validate a spec file (YAML or JSON); raise `SpecError` with located messages."""
    with _gc_paused():
        return _validate(read_spec_file(path))


def load_spec_text(text: str, filename: str = "<spec>", *, is_json: bool = False) -> LoadedSpec:
    with _gc_paused():
        return _validate(parse_spec_text(text, filename, is_json=is_json))


class Compiled:
    """Everything compilation produced: the plan and the warnings found on the way."""

    def __init__(self, plan: Plan, warnings: list[Diagnostic]):
        self.plan = plan
        self.warnings = warnings


def compile_loaded(loaded: LoadedSpec) -> Compiled:
    with _gc_paused():
        return _compile(loaded)


def _compile(loaded: LoadedSpec) -> Compiled:
    spec, doc = loaded.spec, loaded.doc
    agents, diagnostics = analyse_agents(spec, doc)
    program = parse_flow(
        spec.flow,
        lambda offset: doc.span_in_string(("flow",), offset),
        doc.source_line,
    )
    try:
        graph = lower(
            program, list(spec.inputs), lambda offset: doc.span_in_string(("flow",), offset)
        )
    except RecursionError:  # e.g. `1 + 1 + ...` thousands of times: a deep left-leaning tree
        span = doc.span_in_string(("flow",), 0)
        raise SpecError([doc.diagnostic("error", "flow nests too deeply", span)]) from None
    _point_inputs_at_declarations(graph, doc)
    if any(d.severity == "error" for d in diagnostics):
        # Template errors make the agents' parameters unknown; report them alone.
        raise SpecError(diagnostics)
    try:
        results = run_passes(graph, spec, doc, agents)
    except RecursionError:  # hundreds of nested blocks: the passes recurse per region
        span = doc.span_in_string(("flow",), 0)
        raise SpecError([doc.diagnostic("error", "flow nests too deeply", span)]) from None
    diagnostics += results.diagnostics
    errors = [d for d in diagnostics if d.severity == "error"]
    if errors:
        raise SpecError(errors)
    assert results.priorities is not None
    if results.priorities.max_calls > MAX_CALLS:
        span = doc.span(("flow",))
        message = f"the flow may make {results.priorities.max_calls:,} agent calls; the limit is {MAX_CALLS:,}"
        raise SpecError(
            [doc.diagnostic("error", message, span, "lower a loop bound or sample count")]
        )
    warnings = [d for d in diagnostics if d.severity == "warning"]
    plan = Plan(
        source=doc.path,
        spec=spec,
        graph=graph,
        prefix_groups=results.prefix_groups,
        priorities=results.priorities,
        warnings=[d.format(with_source=False) for d in warnings],
    )
    return Compiled(plan, warnings)


def compile_spec(spec: LoadedSpec | Spec | str | Path) -> Plan:
    """Compile a spec (a loaded spec, a `Spec` model, or a path) into a Plan."""
    if isinstance(spec, str | Path):
        spec = load_spec(spec)
    elif isinstance(spec, Spec):
        # No file: render the model as YAML so messages still have positions.
        text = yaml.safe_dump(
            spec.model_dump(mode="json", by_alias=True, exclude_defaults=True), sort_keys=False
        )
        spec = load_spec_text(text, f"<spec {spec.name}>")
    return compile_loaded(spec).plan


def _point_inputs_at_declarations(graph: Graph, doc: SourceDoc) -> None:
    for node in graph.body.nodes:
        if node.op == "input":
            node.span = doc.span(("inputs", node.attrs["name"]), key=True)
