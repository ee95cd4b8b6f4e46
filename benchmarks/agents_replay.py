"""Eviction policies on synthetic coordinator/worker traces, replayed without the model.

Usage: python benchmarks/agents_replay.py [--json]
Prints, per trace seed and KV pool size, each policy's recomputed prefix tokens and
hotspot miss rate (hotspots: the top quarter of agents by prompt tokens), and the
agent policy's reduction against LRU. (The full `hive bench agents`, on the model and
on workloads from example specs, is still to come.)
"""

import argparse
import json

from hive.bench.agent_traces import coordinator_trace
from hive.runtime.engine.replay import replay

POLICIES = ("lru", "lfu", "agent", "workflow", "belady")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = []
    for seed in (0, 1, 2):
        trace = coordinator_trace(seed=seed)
        for tokens in (500, 600, 800):
            row = {"seed": seed, "kv_cache_tokens": tokens}
            for policy in POLICIES:
                r = replay(trace, kv_cache_tokens=tokens, policy=policy)
                row[policy] = {"recomputed": r.recomputed_tokens, "hotspot_miss": r.hotspot_miss_rate,
                               "prefix_hit": r.prefix_hit_rate, "hotspots": r.hotspots}  # fmt: skip
            lru = row["lru"]["hotspot_miss"]
            for p in ("agent", "workflow"):
                row[f"{p}_vs_lru"] = 1 - row[p]["hotspot_miss"] / lru if lru else 0.0
            rows.append(row)
    if args.json:
        print(json.dumps(rows))
        return
    print(f"{'seed':>4} {'pool':>5}  " + "  ".join(f"{p:>16}" for p in POLICIES)
          + "  agent/workflow vs lru")  # fmt: skip
    for row in rows:
        cells = "  ".join(
            f"{row[p]['recomputed']:>6} ({row[p]['hotspot_miss']:.3f})" for p in POLICIES
        )
        print(
            f"{row['seed']:>4} {row['kv_cache_tokens']:>5}  {cells}  "
            f"{-row['agent_vs_lru']:+.0%} / {-row['workflow_vs_lru']:+.0%}"
        )


if __name__ == "__main__":
    main()
