"""The Plan: a compiled workflow, as versioned JSON.

It holds the validated spec (the runtime needs its agents and templates),
the IR with its types, and every pass's annotations. `Plan.to_json()` and
`load_plan()` round-trip to an equal object.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from hive.compiler import strict_json
from hive.compiler.errors import PlanError, SpecError
from hive.compiler.ir import Graph
from hive.compiler.passes.prefixes import PrefixGroup
from hive.compiler.passes.priorities import Priorities
from hive.compiler.spec import Spec

PLAN_FORMAT = "hive-plan"
PLAN_VERSION = 1


class Plan(BaseModel):
    """A compiled workflow, ready for `hive run`."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["hive-plan"] = PLAN_FORMAT
    version: Literal[1] = PLAN_VERSION
    source: str
    """The spec file this plan was compiled from."""
    spec: Spec
    graph: Graph
    prefix_groups: list[PrefixGroup]
    priorities: Priorities
    warnings: list[str] = []

    def to_json(self, indent: int | None = 2) -> str:
        return self.model_dump_json(indent=indent, by_alias=True)

    def call_group(self) -> dict[int, str]:
        """Prefix group id of each call node."""
        return {call: g.id for g in self.prefix_groups for call in g.calls}


def load_plan(path_or_text: str | Path) -> Plan:
    """Read a plan written by `Plan.to_json()` (a path, or the JSON text itself)."""
    text = str(path_or_text)
    if not text.lstrip().startswith("{"):
        try:
            text = Path(path_or_text).read_text(encoding="utf-8")
        except OSError as exc:
            raise PlanError(f"{path_or_text}: cannot read plan: {exc.strerror}") from None
    try:
        data = strict_json.loads(text)
    except strict_json.JSONProblem as exc:
        raise PlanError(f"plan is not valid JSON: {exc.message}{exc.where}") from None
    if not isinstance(data, dict) or data.get("format") != PLAN_FORMAT:
        raise PlanError('not a Hive plan (no "format": "hive-plan")')
    if data.get("version") != PLAN_VERSION:
        raise PlanError(
            f"plan version {data.get('version')!r} is not supported; recompile it with `hive compile`"
        )
    try:
        plan = Plan.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise PlanError(f"invalid plan at {where}: {first['msg']}") from None
    _check_against_spec(plan)
    return plan


def _check_against_spec(plan: Plan) -> None:
    """The plan must be what its own spec compiles to (graph, prefix groups,
    priorities). The runtime trusts them (agents, counts, edges), so a plan edited by
    hand or damaged could otherwise call an agent the spec lacks or sample a billion
    times; recompiling the spec costs milliseconds (0.6 s for 1,000 agents)."""
    from hive.compiler.compile import compile_spec  # compile imports plan

    try:
        again = compile_spec(plan.spec)
    except SpecError as exc:
        problem = exc.diagnostics[0].message
        raise PlanError(
            f"the plan's spec does not compile ({problem}); recompile it with `hive compile`"
        ) from None
    if (
        _without_spans(plan.graph) != _without_spans(again.graph)
        or plan.prefix_groups != again.prefix_groups
        or plan.priorities != again.priorities
    ):
        raise PlanError(
            "the plan is not what its spec compiles to (was it edited?); "
            "recompile it with `hive compile`"
        )


def _without_spans(graph: Graph) -> object:
    """The graph as JSON data without source positions (they point into another file)."""

    def strip(value: object) -> object:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k != "span"}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return strip(TypeAdapter(Graph).dump_python(graph, mode="json"))
