"""`hive bench resample`'s measurements on the default model (small sizes), and its report."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from hive.bench import resample as bench
from hive.cli import app
from hive.errors import HiveError
from hive.runtime import Engine


def test_redundancy_counts_prefixes_seen_before():
    p = (1, 2)
    r, positions = bench.redundancy([(p, [5, 6, 7]), (p, [5, 6, 8]), ((9,), [5])])
    # distinct prefixes: (), (5), (5, 6) for p, and () for (9,): 4 of 7 positions.
    assert positions == 7
    assert r == pytest.approx(1 - 4 / 7)


def test_extract_answer():
    assert bench.extract_answer("3 + 4 = 7. Answer: 7") == "7"
    assert bench.extract_answer("so it is 12 apples") == "12"
    assert bench.extract_answer("no number") is None


@pytest.fixture
def small(monkeypatch):
    monkeypatch.setattr(bench, "MAX_TOKENS", 12)
    monkeypatch.setattr(bench, "ATTEMPTS", 3)
    monkeypatch.setattr(bench, "SAMPLES", 4)


def test_exact_mode_changes_no_path_and_computes_fewer_tokens(smollm, small):
    hf_model, tokenizer, _ = smollm
    problems = bench.load_problems(2)

    def engine():
        return Engine.from_hf(hf_model, tokenizer, kv_cache_tokens=4096)

    runs = {mode: bench.run_resample(engine(), mode, problems) for mode in bench.MODES}
    off, exact, hotspot = runs[None], runs["exact"], runs["hotspot"]
    assert (exact.accuracy, exact.extra, exact.positions) == (
        off.accuracy,
        off.extra,
        off.positions,
    )
    assert exact.redundancy == pytest.approx(off.redundancy)
    rejected = exact.draft_tokens - exact.accepted_draft_tokens  # drafts also run tokens
    assert exact.forward_tokens - rejected <= off.forward_tokens and exact.cache_positions > 0
    assert off.draft_tokens == 0 and exact.steps <= off.steps
    assert hotspot.distinct_paths == hotspot.paths  # a re-sample never repeats a path
    parallel = bench.run_parallel(engine(), "exact", problems[0], 0.3, "sweep")
    plain = bench.run_parallel(engine(), None, problems[0], 0.3, "sweep")
    assert parallel.accuracy == plain.accuracy and parallel.positions == plain.positions
    report = bench.format_report(
        {"machine": "m", "runs": [bench._row(r, [off, exact]) for r in (off, exact)]}
    )
    assert "resample" in report and "1/(1-r)" in report


def _run(mode: str, seed: int, seconds: float, steps: int, accuracy: float, r: float):
    return bench.RunResult(
        workload="resample", mode=mode, temperature=0.7, seconds=seconds, forward_tokens=10 * steps,
        cache_positions=0 if mode == "off" else steps, bytes_held=steps, accuracy=accuracy,
        paths=8, distinct_paths=8, positions=steps, redundancy=r, seed=seed, steps=steps,
        extra={"attempts": 8},
    )  # fmt: skip


def test_seeds_pool_into_one_row_each_compared_with_its_own_cache_off_run():
    runs = [
        _run("off", 1, 60.0, 600, 0.25, 0.1),
        _run("hotspot", 1, 30.0, 300, 0.25, 0.0),
        _run("off", 2, 40.0, 400, 0.5, 0.2),
        _run("hotspot", 2, 40.0, 400, 0.0, 0.0),
    ]
    # Per seed, the ratio is against that seed's cache-off run.
    assert bench._row(runs[3], runs)["speedup"] == 1.0
    assert bench._row(runs[1], runs)["step_ratio"] == 2.0
    pooled = [bench.pool_seeds(runs[0::2]), bench.pool_seeds(runs[1::2])]
    off, hot = pooled
    assert (off.workload, off.seed, off.seconds, off.steps) == ("resample*", -1, 100.0, 1000)
    assert off.accuracy == pytest.approx(0.375)
    assert off.redundancy == pytest.approx(0.14)  # weighted by positions
    assert off.extra == {"attempts": 16, "seeds": [1, 2]}
    row = bench._row(hot, pooled)
    assert row["speedup"] == pytest.approx(100 / 70)
    assert row["step_ratio"] == pytest.approx(1000 / 700)
    report = bench.format_report({"machine": "m", "runs": [bench._row(r, pooled) for r in pooled]})
    assert "resample*   all" in report and "x steps" in report


def test_run_bench_runs_each_seed_and_puts_the_pooled_rows_after_them(monkeypatch):
    class FakeEngine:
        def generate(self, *args, **kwargs):
            return []

    sizes = []

    def fake_resample(engine, mode, problems, seed):
        sizes.append(len(problems))
        return _run(mode or "off", seed, 10.0, 100 if mode is None else 50, 0.5, 0.1)

    def fake_parallel(engine, mode, problem, temperature, name):
        run = _run(mode or "off", bench.SEED, 1.0, 10, 0.5, 0.1)
        run.workload, run.temperature = name, temperature
        return run

    monkeypatch.setattr(bench, "load_hf_model", lambda path: (None, None))
    monkeypatch.setattr(bench, "resolve_model", lambda model: model)
    monkeypatch.setattr(bench, "_engine", lambda *args: FakeEngine())
    monkeypatch.setattr(bench, "run_resample", fake_resample)
    monkeypatch.setattr(bench, "run_parallel", fake_parallel)
    rows = bench.run_bench(quick=True, seeds=2)["runs"]
    seeds = [bench.SEED, bench.SEED + bench.SEED_STRIDE]
    assert [(r["workload"], r["seed"]) for r in rows[:6]] == [
        ("resample", s) for s in seeds for _ in bench.MODES
    ]
    assert [(r["workload"], r["mode"], r["steps"]) for r in rows[6:9]] == [
        ("resample*", "off", 200),
        ("resample*", "exact", 100),
        ("resample*", "hotspot", 100),
    ]
    assert rows[8]["step_ratio"] == 2.0 and rows[8]["seeds"] == seeds
    assert [r["workload"] for r in rows[9:]] == ["parallel"] * 3 + ["sweep"] * 3
    assert set(sizes) == {2}  # --quick: two problems
    sizes.clear()
    result = bench.run_bench(problems=40)
    assert set(sizes) == {40} and result["problems"] == 40
    assert "re-sampling: 40 problems, up to 8 attempts each" in bench.format_report(result)


def test_a_problem_count_outside_the_dataset_is_a_clean_error_before_the_model_loads(
    monkeypatch,
):
    def no_load(path):
        raise AssertionError("the model loaded")

    monkeypatch.setattr(bench, "load_hf_model", no_load)
    for n in (0, 41):
        with pytest.raises(HiveError, match="--problems must be 1 to 40"):
            bench.run_bench(problems=n)
    assert len(bench.load_problems(40)) == 40
    result = CliRunner().invoke(app, ["bench", "resample", "--problems", "41"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr.startswith("error: --problems must be 1 to 40")
