"""`hive compile --emit ir`: the IR text with every pass's annotations."""

from __future__ import annotations

from pathlib import Path

from hive.compiler.ir import CALL_OPS, format_graph
from hive.compiler.plan import Plan


def format_ir_report(plan: Plan) -> str:
    groups = plan.call_group()
    notes: dict[int, list[str]] = {}
    for node in plan.graph.nodes():
        if node.op in CALL_OPS and node.id in groups:
            notes.setdefault(node.id, []).append(f"prefix {groups[node.id]}")
    lines = [
        f"; plan for {plan.spec.name} (from {Path(plan.source).name})",
        format_graph(plan.graph, notes).rstrip("\n"),
        "",
    ]
    lines.append("; prefix groups")
    for g in plan.prefix_groups:
        lines.append(
            f"{g.id}: agents=[{', '.join(g.agents)}] calls={len(g.calls)} shared_chars={g.shared_chars} {g.preview!r}"
        )
    p = plan.priorities
    lines += [
        "",
        f"; priorities (max_calls={p.max_calls} expected_calls={p.expected_calls} critical_path_rounds={p.critical_path_rounds})",
    ]
    for name, a in sorted(p.agents.items(), key=lambda kv: -kv[1].contribution):
        lines.append(
            f"agent {name}: contribution={a.contribution:.3f} expected_calls={a.expected_calls} "
            f"max_calls={a.max_calls} fan_in={a.fan_in} fan_out={a.fan_out} critical={str(a.critical).lower()} "
            f"prefix_chars={a.prefix_chars} stages={a.stages}"
        )
    lines.append(f"next-use order: {' -> '.join(p.order)}")
    return "\n".join(lines) + "\n"
