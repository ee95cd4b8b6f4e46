"""Hive's engine against transformers on the same workloads (see hive/runtime/engine/bench.py).

Usage: python benchmarks/engine.py [--quick] [--json] [--model M] [--dtype D] [--repeat N]
(the same as `hive bench engine`). Results are recorded in benchmarks/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json

from hive.runtime.engine.bench import format_report, run_bench


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller workloads")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--model", default=None, help="model name or path (default smollm2-135m)")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16"])
    parser.add_argument("--repeat", type=int, default=1, help="runs per engine; medians compared")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
    results = run_bench(model=args.model, quick=args.quick, dtype=args.dtype, repeat=args.repeat)
    print(json.dumps(results, indent=2) if args.json else format_report(results))


if __name__ == "__main__":
    main()
