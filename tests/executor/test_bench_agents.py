"""The `hive bench agents` workloads compile to the intended call patterns (no model)."""

from hive.bench.agents import POLICIES, build_workloads, format_report


class WordTokenizer:
    """One token per word: enough for the benchmark's prompt sizing."""

    def __call__(self, text):
        return {"input_ids": list(range(len(text.split())))}

    def decode(self, ids):
        return " ".join("rule" for _ in ids)


def test_workloads_compile_with_the_intended_calls():
    coord, pipe, copies = build_workloads(WordTokenizer())
    calls = {a: p.max_calls for a, p in coord.plan.priorities.agents.items()}
    assert calls["coordinator"] == 10 and calls["w0"] == 10
    assert len(calls) == 8 and coord.kv_cache_tokens < coord.prefix_tokens / 2
    assert {a: p.max_calls for a, p in pipe.plan.priorities.agents.items()} == {
        "writer": 4, "verifier": 4, "editor": 1,
    }  # fmt: skip
    assert len(copies.inputs) == 6 and copies.plan is pipe.plan


def test_report_lists_every_policy_and_belady():
    policy = {"hotspot_miss_rate": 0.5, "prefix_hit_rate": 0.4, "recomputed_tokens": 10,
              "seconds": 1.0, "hotspots": ["a"], "reduction_vs_lru": 0.0}  # fmt: skip
    row = {p: dict(policy) for p in POLICIES}
    row["belady"] = {**policy, "seconds": None, "reduction_vs_lru": 1.0}
    row.update(kv_cache_tokens=100, prefix_tokens=300, outputs_identical=True,
               replay_matches_engine=True)  # fmt: skip
    text = format_report({"machine": "m", "workloads": {"w": row}})
    assert "outputs identical across policies: True" in text
    assert all(f"  {p} " in text for p in (*POLICIES, "belady")) and "(off)" in text
