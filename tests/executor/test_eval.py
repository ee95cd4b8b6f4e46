"""`hive eval` and the arithmetic dataset, on a scripted engine."""

import asyncio
import json
import re
from pathlib import Path

import pytest
from fake_engine import FakeEngine
from typer.testing import CliRunner

from hive.bench.arithmetic import generate, to_jsonl
from hive.cli import app
from hive.runtime import run as run_module
from hive.runtime.errors import InputError
from hive.runtime.evaluate import evaluate, same_answer

ROOT = Path(__file__).parents[2]
DATASET = ROOT / "benchmarks/eval/arithmetic.jsonl"


def test_the_shipped_dataset_is_the_generated_one_with_correct_answers():
    rows = generate(40, seed=0)
    assert DATASET.read_text() == to_jsonl(rows)
    for row in rows:  # recompute every answer from the question's numbers and wording
        q = row["question"]
        n = [int(x) for x in re.findall(r"\d+", q)]
        if "gets" in q and "loses" in q:
            expected = n[0] + n[1] - n[2]
        elif "gets" in q:
            expected = n[0] + n[1]
        elif "gives" in q:
            expected = n[0] - n[1]
        elif "boxes" in q:
            expected = n[0] * n[1]
        else:
            expected = n[0] // n[1]
        assert row["answer"] == str(expected), q


def test_answers_compare_as_numbers_or_folded_text():
    assert same_answer("42", 42) and same_answer(" 42.0 ", "42") and same_answer("1,000", "1000")
    assert same_answer("Yes", "yes ") and not same_answer(None, "0") and not same_answer("41", 42)


def oracle(agent, prompt, seed):
    """Right on even seeds' samples for questions about books, wrong otherwise."""
    question = prompt.rsplit("Question:", 1)[-1]
    row = next(r for r in generate(40) if r["question"] in question)
    return f"{row['answer'] if 'books' in question else 0}"


def test_evaluate_reports_accuracy_and_cost():
    report = asyncio.run(
        evaluate(ROOT / "benchmarks/eval/vote8.yaml", DATASET, "answer", engine=FakeEngine(oracle))
    )
    books = sum(1 for r in generate(40) if "books" in r["question"])
    assert report["examples"] == 40 and report["correct"] == books
    assert report["accuracy"] == pytest.approx(books / 40)
    assert report["calls"] == 40 * 8 and report["calls_per_example"] == 8
    assert [r["correct"] for r in report["rows"]].count(True) == books


def test_evaluate_bad_arguments(tmp_path):
    spec = ROOT / "benchmarks/eval/greedy.yaml"
    with pytest.raises(InputError, match="no output 'verdict'"):
        asyncio.run(evaluate(spec, DATASET, "answer", output="verdict", engine=FakeEngine(oracle)))
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "q"}) + "\n")
    with pytest.raises(InputError, match=r"bad.jsonl:1: no 'answer' field"):
        asyncio.run(evaluate(spec, bad, "answer", engine=FakeEngine(oracle)))


def test_hive_eval_command(monkeypatch):
    monkeypatch.setattr(run_module, "make_engine", lambda model, **o: FakeEngine(oracle))
    result = CliRunner().invoke(
        app,
        ["eval", "benchmarks/eval/greedy.yaml", "--dataset", str(DATASET), "--expect", "answer",
         "--limit", "10"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.stdout
    assert "10 calls (1.0 per example)" in result.stdout


def test_a_failing_example_is_reported_and_the_others_still_count(monkeypatch, tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text('{"question": "fine", "answer": "4"}\n{"question": "FAIL", "answer": "4"}\n')

    def reply(agent, prompt, seed):
        return InputError("boom") if "FAIL" in prompt else "4"

    report = asyncio.run(
        evaluate(ROOT / "benchmarks/eval/greedy.yaml", data, "answer", engine=FakeEngine(reply))
    )
    assert report["correct"] == 1 and report["errors"] == 1
    assert "agent 'solver'" in report["rows"][1]["error"]
    monkeypatch.setattr(run_module, "make_engine", lambda model, **o: FakeEngine(reply))
    result = CliRunner().invoke(
        app, ["eval", "benchmarks/eval/greedy.yaml", "--dataset", str(data), "--expect", "answer"]
    )
    assert result.exit_code == 1 and "(1/2; 1 failed (first: " in result.stdout


def test_eval_model_option_reaches_every_call(monkeypatch):
    made = []
    monkeypatch.setattr(
        run_module, "make_engine", lambda model, **o: made.append(model) or FakeEngine(oracle)
    )
    asyncio.run(
        evaluate(ROOT / "benchmarks/eval/greedy.yaml", DATASET, "answer", model="mine", limit=2)
    )
    assert made == ["mine"]


def test_eval_rejects_a_missing_output_and_a_bad_limit(tmp_path):
    spec = tmp_path / "plain.yaml"
    spec.write_text("hive: 1\nname: p\ninputs: {question: string}\nagents:\n  a:\n"
                    "    prompt: '{{ question }}'\nflow: |\n  r = a(question)\n  return r.text\n")  # fmt: skip
    with pytest.raises(InputError, match="no output 'answer'.*returns result"):
        asyncio.run(evaluate(spec, DATASET, "answer", engine=FakeEngine(oracle), limit=1))
    with pytest.raises(InputError, match="limit must be at least 1"):
        asyncio.run(evaluate(spec, DATASET, "answer", engine=FakeEngine(oracle), limit=0))
