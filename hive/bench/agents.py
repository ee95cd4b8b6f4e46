"""`hive bench agents`: agent-aware scheduling on multi-agent workloads, on the model.

Four workloads, each a generated spec run by the executor on the default model
(replies capped at a few tokens: the point is the prefixes, not the answers):

- `coordinator`: a coordinator (1,200-token system prompt) every round and seven
  workers (300-1,500-token system prompts) at skewed rates (every round, every
  2nd, 3rd, 4th, and three once), ten rounds;
- `pipeline`: a planner, then a writer, a verifier and (on a fail) a critic in a loop
  (at most 4 tries), then an editor;
- `copies`: six concurrent copies of the pipeline with different tasks;
- `burst`: a lead agent's chain of six calls (the critical path) while sixteen
  spawned reader calls, each with its own 300-token document, arrive at once and
  would take every batch slot (8) and prefill token; the pool holds everything,
  so only admission matters here.

The KV pool holds well under all the distinct prefixes in the first three: 3,000
tokens for the coordinator workload's ~7,500, and 1,600 for the pipeline's ~3,200
(the loop's three agents never fit together: one prefix gives way at every call).

Configurations, each on a fresh engine with its trace recorded: `lru+fcfs` (an
agent-unaware engine: LRU eviction, first-come-first-served admission, the
baseline), then `lru`, `lfu`, `agent`, `workflow` eviction with agent-aware
admission (per-agent shares of slots and prefill tokens), and `residency`:
`workflow` eviction with `residency` admission (shares, and a call waits rather
than evict a more valuable agent's cached prefix); `belady` replays the
baseline's trace offline with the optimal eviction for it (the replay reproduces
the engine's own counters; the report says whether it did): the floor of eviction
alone, for the baseline's admission order, which residency changes, so it can go
below it. Printed per
configuration: hotspot miss rate (hotspots: the top quarter of agents by prompt
tokens), its reduction against the baseline, prefix hit rate, recomputed prefill
tokens, wall time and its ratio to the baseline, and whether the outputs are the
same for every configuration (they must be: the engine's determinism contract).
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
from dataclasses import dataclass
from typing import Any

from hive.compiler import compile_loaded, load_spec_text
from hive.compiler.plan import Plan
from hive.runtime.engine.agent_stats import hotspot_agents, hotspot_miss_rate, prefix_hit_rate
from hive.runtime.engine.bench import system_prompt
from hive.runtime.engine.engine import Engine
from hive.runtime.engine.errors import EngineError
from hive.runtime.engine.replay import replay
from hive.runtime.run import arun

POLICIES = ("lru", "lfu", "agent", "workflow")  # with agent-aware admission
WORKLOADS = ("coordinator", "pipeline", "copies", "burst")
BASELINE = "lru+fcfs"  # the agent-unaware engine
CONFIGS = {
    BASELINE: ("lru", "fcfs"),
    **{p: (p, "shares") for p in POLICIES},
    "residency": ("workflow", "residency"),
}
MAX_TOKENS = 6
READER_TOKENS = 12  # the burst's readers write longer replies: they hold their slots


@dataclass(frozen=True)
class Workload:
    name: str
    plan: Plan
    inputs: list[dict[str, Any]]
    kv_cache_tokens: int
    prefix_tokens: int  # distinct system-prompt tokens of all agents
    max_running_requests: int = 256


def _agent(system: str, prompt: str, max_tokens: int = MAX_TOKENS) -> str:
    indented = "\n".join("      " + line for line in system.splitlines() or [""])
    return (
        f"    system: |\n{indented}\n    prompt: {prompt!r}\n"
        f"    sampling: {{temperature: 0.7, max_tokens: {max_tokens}}}\n"
    )


def coordinator_spec(tokenizer: Any) -> tuple[str, int]:
    sizes = {"coordinator": 1200, **{f"w{i}": 300 + 200 * i for i in range(7)}}
    agents = ""
    for name, size in sizes.items():
        role = f"You are the {name} of a hardware design team. " + system_prompt(tokenizer, size)
        prompt = "Task: {{ task }} Notes: {{ notes }}" if name == "coordinator" else (
            "Task: {{ task }} Plan: {{ plan }}")  # fmt: skip
        agents += f"  {name}:\n" + _agent(role, prompt)
    schedule = {"w1": "r % 2 == 0", "w2": "r % 3 == 0", "w3": "r % 4 == 0",
                "w4": "r == 5", "w5": "r == 7", "w6": "r == 9"}  # fmt: skip
    body = "".join(
        f"    if {cond}:\n        out = {w}(task, plan=plan.text).text\n"
        for w, cond in schedule.items()
    )
    flow = (
        'notes = ""\nr = 0\nrepeat 10:\n    plan = coordinator(task, notes=notes)\n'
        "    out = w0(task, plan=plan.text).text\n" + body + "    notes = out\n    r = r + 1\n"
        "return {notes: notes, rounds: r}\n"
    )
    return _spec("bench-coordinator", agents, flow), sum(sizes.values())


def pipeline_spec(tokenizer: Any) -> tuple[str, int]:
    sizes = {"planner": 800, "writer": 600, "verifier": 900, "critic": 500, "editor": 400}
    prompts = {
        "planner": "Task: {{ task }}",
        "writer": "Task: {{ task }} Plan: {{ plan }} Feedback: {{ feedback }}",
        "verifier": "Task: {{ task }} Draft: {{ draft }} Reply PASS or FAIL.",
        "critic": "Task: {{ task }} Draft: {{ draft }}",
        "editor": "Task: {{ task }} Draft: {{ draft }}",
    }
    agents = ""
    for name, size in sizes.items():
        role = f"You are the {name}. " + system_prompt(tokenizer, size)
        agents += f"  {name}:\n" + _agent(role, prompts[name])
        if name == "verifier":
            agents += "    extract: {verdict: '(PASS|FAIL)'}\n"
    flow = (
        'plan = planner(task).text\nok = false\ndraft = ""\nnotes = ""\ntries = 0\n'
        "while not ok max 4:\n"
        "    draft = writer(task, plan=plan, feedback=notes).text\n"
        "    v = verifier(task, draft=draft)\n"
        '    ok = v.verdict == "PASS"\n'
        "    if not ok:\n        notes = critic(task, draft=draft).text\n"
        "    tries = tries + 1\n"
        "final = editor(task, draft=draft)\nreturn {text: final.text, tries: tries}\n"
    )
    return _spec("bench-pipeline", agents, flow), sum(sizes.values())


NUM_READERS = 16
DOCUMENT_TOKENS = 300


def burst_spec(tokenizer: Any) -> tuple[str, int]:
    lead = "You are the lead engineer. " + system_prompt(tokenizer, 600)
    reader = "You are a reader. Summarise the document in one line."
    agents = "  lead:\n" + _agent(lead, "Task: {{ task }} Notes so far: {{ notes }}")
    agents += "  reader:\n" + _agent(reader, "Document: {{ doc }}", READER_TOKENS)
    spawns = "".join(f"h{i} = spawn reader(doc=docs[{i}])\n" for i in range(NUM_READERS))
    handles = ", ".join(f"h{i}" for i in range(NUM_READERS))
    flow = (
        spawns + 'notes = ""\nrepeat 8:\n    notes = lead(task, notes=notes).text\n'
        f"done = join({handles})\nreturn {{notes: notes}}\n"
    )
    return _spec("bench-burst", agents, flow, {"docs": "list[string]"}), 600


def documents(tokenizer: Any) -> list[str]:
    """NUM_READERS distinct documents of about DOCUMENT_TOKENS tokens each."""
    text = system_prompt(tokenizer, DOCUMENT_TOKENS * NUM_READERS)
    ids = tokenizer(text)["input_ids"]
    return [
        f"Report {i}. " + tokenizer.decode(ids[i * DOCUMENT_TOKENS : (i + 1) * DOCUMENT_TOKENS])
        for i in range(NUM_READERS)
    ]


def _spec(name: str, agents: str, flow: str, extra_inputs: dict[str, str] | None = None) -> str:
    indented = "".join("  " + line + "\n" for line in flow.splitlines())
    inputs = "".join(f"  {k}: {v}\n" for k, v in {"task": "string", **(extra_inputs or {})}.items())
    return f"hive: 1\nname: {name}\ninputs:\n{inputs}agents:\n{agents}flow: |\n{indented}"


def build_workloads(tokenizer: Any) -> list[Workload]:
    coord, coord_prefix = coordinator_spec(tokenizer)
    pipe, pipe_prefix = pipeline_spec(tokenizer)
    burst, burst_prefix = burst_spec(tokenizer)
    coord_plan = compile_loaded(load_spec_text(coord, "bench-coordinator.yaml")).plan
    pipe_plan = compile_loaded(load_spec_text(pipe, "bench-pipeline.yaml")).plan
    burst_plan = compile_loaded(load_spec_text(burst, "bench-burst.yaml")).plan
    tasks = ["a UART", "an 8-bit counter", "a FIFO", "an SPI master", "a PWM block", "a timer"]
    # Pools: about 40% of the coordinator workload's distinct prefixes, half of the
    # pipeline's (its copies share them); the burst's pool holds everything.
    return [
        Workload("coordinator", coord_plan, [{"task": "a UART"}], 3000, coord_prefix),
        Workload("pipeline", pipe_plan, [{"task": "a FIFO"}], 1600, pipe_prefix),
        Workload("copies", pipe_plan, [{"task": t} for t in tasks], 1600, pipe_prefix),
        Workload("burst", burst_plan, [{"task": "a UART", "docs": documents(tokenizer)}],
                 16384, burst_prefix, max_running_requests=8),
    ]  # fmt: skip


async def _run(engine: Engine, w: Workload) -> tuple[list[dict[str, Any]], float]:
    """The outputs, and the mean latency of a call of the plan's top contributor."""
    results = await asyncio.gather(
        *(arun(w.plan, inputs, engine=engine, seed=0) for inputs in w.inputs)
    )
    agents = w.plan.priorities.agents
    top = max(agents, key=lambda a: agents[a].contribution)
    latencies = [c.end - c.start for r in results for c in r.calls if c.agent == top]
    return [r.outputs for r in results], sum(latencies) / len(latencies)


def _figures(agents: dict[str, Any], hot: list[str]) -> dict[str, Any]:
    return {
        "hotspot_miss_rate": hotspot_miss_rate(agents, hot),
        "prefix_hit_rate": prefix_hit_rate(agents),
        "recomputed_tokens": sum(a.recomputed_tokens for a in agents.values()),
        "hotspots": hot,
        "calls": sum(a.calls for a in agents.values()),
    }


def run_workload(hf: Any, tokenizer: Any, w: Workload, repeat: int = 1) -> dict[str, Any]:
    """Every configuration on `w`; with `repeat`, the configurations run in turn that
    many times (paired: drift hits all alike) and wall times are medians."""
    agents = w.plan.priorities.agents
    row: dict[str, Any] = {
        "kv_cache_tokens": w.kv_cache_tokens,
        "prefix_tokens": w.prefix_tokens,
        "top_agent": max(agents, key=lambda a: agents[a].contribution),
    }
    outputs = {}
    traces = {}
    seconds: dict[str, list[float]] = {name: [] for name in CONFIGS}
    latencies: dict[str, list[float]] = {name: [] for name in CONFIGS}
    for _ in range(repeat):
        for name, (policy, admission) in CONFIGS.items():
            engine = Engine.from_hf(
                hf, tokenizer, kv_cache_tokens=w.kv_cache_tokens, eviction_policy=policy,
                admission=admission, max_running_requests=w.max_running_requests,
                record_trace=True,
            )  # fmt: skip
            started = time.perf_counter()
            outputs[name], latency = asyncio.run(_run(engine, w))
            seconds[name].append(time.perf_counter() - started)
            latencies[name].append(latency)
            if name not in row:  # the counters do not change between repeats
                agents = engine.agent_stats()
                row[name] = _figures(agents, hotspot_agents(agents))
                row[name]["reclaimed_slots"] = engine.stats()["num_reclaimed_slots"]
                traces[name] = engine.recorded_trace()
            del engine
            gc.collect()
    for name in CONFIGS:
        row[name]["seconds"] = statistics.median(seconds[name])
        row[name]["top_agent_call_seconds"] = statistics.median(latencies[name])
    options = {"kv_cache_tokens": w.kv_cache_tokens, "max_running_requests": w.max_running_requests}
    offline = replay(traces[BASELINE], policy="belady", admission="fcfs", **options)
    row["belady"] = {
        "hotspot_miss_rate": offline.hotspot_miss_rate,
        "prefix_hit_rate": offline.prefix_hit_rate,
        "recomputed_tokens": offline.recomputed_tokens,
        "seconds": None,
        "hotspots": offline.hotspots,
    }
    row["replay_matches_engine"] = all(
        replay(traces[name], policy=policy, admission=admission, **options).recomputed_tokens
        == row[name]["recomputed_tokens"]
        for name, (policy, admission) in CONFIGS.items()
        if policy == "lru"
    )
    base = row[BASELINE]
    for name in (*CONFIGS, "belady"):
        r = row[name]
        r["reduction_vs_baseline"] = (
            1 - r["hotspot_miss_rate"] / base["hotspot_miss_rate"]
            if base["hotspot_miss_rate"]
            else 0.0
        )
        r["speedup_vs_baseline"] = base["seconds"] / r["seconds"] if r["seconds"] else None
    row["outputs_identical"] = all(outputs[name] == outputs[BASELINE] for name in CONFIGS)
    return row


def run_bench(
    model: str | None = None, repeat: int = 1, only: list[str] | None = None
) -> dict[str, Any]:
    from hive.runtime.engine.bench import machine
    from hive.runtime.engine.model_loader import load_hf_model, resolve_model

    unknown = set(only or ()) - set(WORKLOADS)
    if unknown:  # before the model loads
        known = ", ".join(WORKLOADS)
        raise EngineError(f"unknown workload {sorted(unknown)[0]!r}; known: {known}")
    hf, tokenizer = load_hf_model(resolve_model(model))
    results: dict[str, Any] = {"machine": machine(), "repeat": repeat, "workloads": {}}
    for w in build_workloads(tokenizer):
        if only is None or w.name in only:
            results["workloads"][w.name] = run_workload(hf, tokenizer, w, repeat)
    return results


def format_report(results: dict[str, Any]) -> str:
    repeat = results.get("repeat", 1)
    lines = [
        f"machine: {results['machine']}"
        + (f"; wall times: medians of {repeat}" if repeat > 1 else "")
    ]
    for name, row in results["workloads"].items():
        lines.append(
            f"{name}: pool {row['kv_cache_tokens']} tokens for {row['prefix_tokens']} prefix "
            f"tokens; outputs identical across configurations: {row['outputs_identical']}; "
            f"replay matches engine: {row['replay_matches_engine']}; top contributor "
            f"(plan): {row['top_agent']}"
        )
        lines.append(f"  {'config':9} {'hotspot miss':>12} {'vs base':>7} {'prefix hit':>10} "
                     f"{'recomputed':>10} {'wall s':>7} {'speedup':>7} {'top call s':>10}")  # fmt: skip
        for config in (*CONFIGS, "belady"):
            r = row[config]
            wall = f"{r['seconds']:7.2f}" if r["seconds"] is not None else "  (off)"
            speedup = r.get("speedup_vs_baseline")
            ratio = f"{speedup:6.2f}x" if speedup else ""
            call = r.get("top_agent_call_seconds")
            call_s = f"{call:10.2f}" if call is not None else ""
            lines.append(
                f"  {config:9} {r['hotspot_miss_rate']:12.3f} {-r['reduction_vs_baseline']:+7.0%} "
                f"{r['prefix_hit_rate']:10.3f} {r['recomputed_tokens']:10d} {wall} {ratio:>7} "
                f"{call_s}"
            )
    return "\n".join(lines)
