"""What the compiler knows about each agent: parameters, result type, static prefix.

Built once per spec from the `Agent` models; template problems become
located diagnostics (the position inside the YAML string of the template).
"""

from __future__ import annotations

from dataclasses import dataclass

from hive.compiler import templates
from hive.compiler.errors import Diagnostic
from hive.compiler.source import SourceDoc
from hive.compiler.spec import Spec
from hive.compiler.types import STRING, Type, parse_type, record


@dataclass(frozen=True)
class AgentInfo:
    name: str
    params: tuple[str, ...]  # in positional order
    has_declared_params: bool
    result: Type  # record: text + extracted fields
    system_prefix: str  # static text of the system prompt ("" when it starts with a variable)
    prompt_prefix: str  # static text of the prompt up to its first variable
    system_is_static: bool  # the whole system prompt has no variables


def analyse_agents(spec: Spec, doc: SourceDoc) -> tuple[dict[str, AgentInfo], list[Diagnostic]]:
    infos: dict[str, AgentInfo] = {}
    diagnostics: list[Diagnostic] = []
    for name, agent in spec.agents.items():
        used: list[str] = []
        for key in ("system", "prompt"):
            source = getattr(agent, key)
            if source is None:
                continue
            try:
                for var in templates.variables(source):
                    if var not in used:
                        used.append(var)
            except templates.TemplateProblem as exc:
                path = ("agents", name, key)
                span = doc.span_in_string(path, templates.line_offset(source, exc.line))
                diagnostics.append(doc.diagnostic("error", f"template error: {exc.message}", span))
        if agent.params is not None:
            params = tuple(agent.params)
            for var in used:
                if var not in params:
                    span = doc.span(("agents", name, "params"))
                    diagnostics.append(
                        doc.diagnostic(
                            "error",
                            f"agent '{name}' uses template variable '{var}' that is not in its params",
                            span,
                        )
                    )
        else:
            params = tuple(used)
        fields = [("text", STRING)]
        fields += [(field, parse_type(e.type)) for field, e in agent.extractors().items()]
        system = agent.system or ""
        system_prefix = templates.static_prefix(system)
        infos[name] = AgentInfo(
            name=name,
            params=params,
            has_declared_params=agent.params is not None,
            result=record(*fields, origin=name),
            system_prefix=system_prefix,
            prompt_prefix=templates.static_prefix(agent.prompt),
            system_is_static=system_prefix == system,
        )
    return infos, diagnostics
