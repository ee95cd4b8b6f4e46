"""A small arithmetic word-problem dataset with known answers, generated here.

Deterministic for a seed: `python -m hive.bench.arithmetic -n 40 -o benchmarks/eval/arithmetic.jsonl`
writes the file shipped with the project (a test checks the two agree).
Problems are one or two operations over small numbers, in a few phrasings.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

NAMES = ["Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Goran", "Hana"]
THINGS = ["apples", "books", "coins", "marbles", "pencils", "stamps", "shells", "cards"]


def problem(rng: random.Random) -> dict[str, str]:
    name, other = rng.sample(NAMES, 2)
    thing = rng.choice(THINGS)
    kind = rng.randrange(5)
    a, b = rng.randint(2, 40), rng.randint(2, 20)
    if kind == 0:
        q, ans = (
            f"{name} has {a} {thing} and gets {b} more. How many {thing} does {name} have now?",
            a + b,
        )
    elif kind == 1:
        a = a + b
        q, ans = (
            f"{name} has {a} {thing} and gives {b} to {other}. How many {thing} are left?",
            a - b,
        )
    elif kind == 2:
        a, b = rng.randint(2, 9), rng.randint(2, 9)
        q, ans = f"{name} buys {a} boxes with {b} {thing} in each. How many {thing} is that?", a * b
    elif kind == 3:
        b = rng.randint(2, 9)
        a = b * rng.randint(2, 9)
        q, ans = (
            f"{name} shares {a} {thing} equally among {b} friends. How many does each friend get?",
            a // b,
        )
    else:
        c = rng.randint(1, 9)
        q, ans = (
            f"{name} has {a} {thing}, gets {b} more, then loses {c}. How many {thing} now?",
            a + b - c,
        )
    return {"question": q, "answer": str(ans)}


def generate(n: int, seed: int = 0) -> list[dict[str, str]]:
    rng = random.Random(seed)
    return [problem(rng) for _ in range(n)]


def to_jsonl(rows: list[dict[str, str]]) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args()
    args.output.write_text(to_jsonl(generate(args.n, args.seed)), encoding="utf-8")


if __name__ == "__main__":
    main()
