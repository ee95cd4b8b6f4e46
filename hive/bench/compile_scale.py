"""Compile a generated spec with many agents and a long flow, and time each phase.

    hive bench compile [--agents 1000] [--calls 5000] [--repeat 5] [--json]
    python benchmarks/compile_scale.py ...   (the same)
 The flow mixes plain calls, `sample ... x N`,
`vote`, `spawn`/`join` and a bounded loop, so every pass has work to do.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import yaml


def generate_spec(num_agents: int, num_calls: int) -> str:
    agents = {}
    for i in range(num_agents):
        agents[f"agent{i}"] = {
            "system": f"You are specialist number {i} of a large team. Be brief.",
            "prompt": f"Specialist {i}, task: {{{{ task }}}}\nContext: {{{{ context }}}}",
            "sampling": {"temperature": 0.7, "max_tokens": 32},
            "extract": {"answer": r"Answer:\s*(\w+)"},
        }
    lines = ["prev = task"]
    calls = 0
    i = 0
    while calls < num_calls:
        a = f"agent{i % num_agents}"
        kind = i % 10
        if kind == 7:
            lines.append(f"s{i} = sample {a}(task, context=prev) x 4")
            lines.append(f"prev = vote(s{i}, by=answer).text")
            calls += 4
        elif kind == 8:
            b = f"agent{(i + 1) % num_agents}"
            lines.append(f"h{i} = spawn {a}(task, context=prev)")
            lines.append(f"g{i} = spawn {b}(task, context=prev)")
            lines.append(f"prev = join(h{i}, g{i})[0].text")
            calls += 2
        elif kind == 9:
            lines.append("repeat 2:")
            lines.append(f"    prev = {a}(task, context=prev).text")
            calls += 2
        else:
            lines.append(f"prev = {a}(task, context=prev).text")
            calls += 1
        i += 1
    lines.append("return {answer: prev}")
    spec = {
        "hive": 1,
        "name": "scale",
        "inputs": {"task": "string"},
        "outputs": {"answer": "string"},
        "agents": agents,
    }
    # The flow as a literal block, the way people write it.
    flow = "".join(f"  {line}\n" for line in lines)
    return yaml.safe_dump(spec, sort_keys=False, width=10_000) + "flow: |\n" + flow


def run(num_agents: int = 1000, num_calls: int = 5000, repeat: int = 5) -> dict:
    from hive.compiler import compile_loaded, load_spec_text

    text = generate_spec(num_agents, num_calls)
    load_times, compile_times, json_times = [], [], []
    plan = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        loaded = load_spec_text(text, "scale.yaml")
        t1 = time.perf_counter()
        plan = compile_loaded(loaded).plan
        t2 = time.perf_counter()
        plan.to_json()
        t3 = time.perf_counter()
        load_times.append(t1 - t0)
        compile_times.append(t2 - t1)
        json_times.append(t3 - t2)
    assert plan is not None
    total = [a + b for a, b in zip(load_times, compile_times, strict=True)]
    return {
        "agents": num_agents,
        "max_calls": plan.priorities.max_calls,
        "spec_bytes": len(text),
        "ir_nodes": sum(1 for _ in plan.graph.nodes()),
        "load_s": statistics.median(load_times),
        "compile_s": statistics.median(compile_times),
        "total_s": statistics.median(total),
        "to_json_s": statistics.median(json_times),
        "repeat": repeat,
    }


def report(result: dict) -> str:
    return (
        f"spec: {result['agents']} agents, {result['max_calls']} calls at most, "
        f"{result['spec_bytes'] / 1e6:.2f} MB, {result['ir_nodes']} IR nodes\n"
        f"load+validate {result['load_s'] * 1e3:.0f} ms, compile (parse, lower, 4 passes) "
        f"{result['compile_s'] * 1e3:.0f} ms, total {result['total_s'] * 1e3:.0f} ms "
        f"(median of {result['repeat']}); plan to JSON {result['to_json_s'] * 1e3:.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args.agents, args.calls, args.repeat)
    print(json.dumps(result) if args.json else report(result))


if __name__ == "__main__":
    main()
