"""The `hive bench agents` workloads compile to the intended call patterns (no model)."""

from hive.bench.agents import BASELINE, CONFIGS, NUM_READERS, build_workloads, format_report


class WordTokenizer:
    """One token per word: enough for the benchmark's prompt sizing."""

    def __call__(self, text):
        return {"input_ids": list(range(len(text.split())))}

    def decode(self, ids):
        return " ".join("rule" for _ in ids)


def test_workloads_compile_with_the_intended_calls():
    coord, pipe, copies, burst = build_workloads(WordTokenizer())
    calls = {a: p.max_calls for a, p in coord.plan.priorities.agents.items()}
    assert calls["coordinator"] == 10 and calls["w0"] == 10
    assert len(calls) == 8 and coord.kv_cache_tokens < coord.prefix_tokens / 2
    assert {a: p.max_calls for a, p in pipe.plan.priorities.agents.items()} == {
        "planner": 1, "writer": 4, "verifier": 4, "critic": 4, "editor": 1,
    }  # fmt: skip
    assert pipe.kv_cache_tokens <= pipe.prefix_tokens / 2
    assert len(copies.inputs) == 6 and copies.plan is pipe.plan
    # The burst: the lead's chain is the critical path and its top contributor; the
    # readers outnumber the batch slots.
    burst_agents = burst.plan.priorities.agents
    assert burst_agents["lead"].critical and burst_agents["reader"].max_calls == NUM_READERS
    assert burst_agents["lead"].contribution > burst_agents["reader"].contribution
    assert burst.max_running_requests < NUM_READERS
    assert len(burst.inputs[0]["docs"]) == NUM_READERS


def test_workload_names_match_and_an_unknown_one_fails_before_the_model_loads():
    import pytest

    from hive.bench.agents import WORKLOADS, run_bench
    from hive.runtime.engine.errors import EngineError

    assert tuple(w.name for w in build_workloads(WordTokenizer())) == WORKLOADS
    with pytest.raises(EngineError, match="unknown workload 'nope'; known: coordinator"):
        run_bench(model="/nonexistent/model", only=["nope"])


def test_the_baseline_is_the_agent_unaware_engine():
    assert CONFIGS[BASELINE] == ("lru", "fcfs")
    assert all(
        admission in ("shares", "residency")
        for name, (_, admission) in CONFIGS.items()
        if name != BASELINE
    )


def test_report_lists_every_configuration_and_belady():
    config = {"hotspot_miss_rate": 0.5, "prefix_hit_rate": 0.4, "recomputed_tokens": 10,
              "seconds": 2.0, "hotspots": ["a"], "reduction_vs_baseline": 0.0,
              "speedup_vs_baseline": 1.25, "top_agent_call_seconds": 0.5}  # fmt: skip
    row = {name: dict(config) for name in CONFIGS}
    row["belady"] = {**config, "seconds": None, "reduction_vs_baseline": 1.0,
                     "speedup_vs_baseline": None, "top_agent_call_seconds": None}  # fmt: skip
    row.update(kv_cache_tokens=100, prefix_tokens=300, outputs_identical=True,
               replay_matches_engine=True, top_agent="lead")  # fmt: skip
    text = format_report({"machine": "m", "workloads": {"w": row}})
    assert "outputs identical across configurations: True" in text
    assert all(f"  {name} " in text for name in (*CONFIGS, "belady")) and "(off)" in text
    assert "1.25x" in text and "top contributor (plan): lead" in text
