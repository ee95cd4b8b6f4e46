"""`hive bench resample`'s measurements on the default model (small sizes), and its report."""

from __future__ import annotations

import pytest

from hive.bench import resample as bench
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
