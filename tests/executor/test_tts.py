"""Each test-time-scaling supervisor against scripted results (no model, no engine)."""

import asyncio

import pytest

from hive.runtime.errors import RunError
from hive.runtime.trace import Trace
from hive.runtime.tts.best import best, pick
from hive.runtime.tts.refine import refine
from hive.runtime.tts.resample import resample
from hive.runtime.tts.search import search
from hive.runtime.tts.vote import majority, vote, vote_early
from hive.runtime.values import Record


def run(coro):
    return asyncio.run(coro)


async def by_answer(i, r):
    return r.get("answer")


# -- vote ---------------------------------------------------------------------------


def test_majority_counts_ignores_nulls_and_breaks_ties_by_first_occurrence():
    assert majority(["7", "8", "8", "7", None]) == (0, 2)  # 7 and 8 tie: 7 was first
    assert majority([None, "3", "4", "4"]) == (2, 2)
    assert majority([None, None]) == (None, 0)
    assert majority([{"a": [1]}, {"a": [1]}]) == (0, 2)  # records and lists vote too


def test_vote_returns_the_first_winning_sample_with_its_votes():
    trace = Trace()
    items = [Record(text=f"t{i}", answer=a) for i, a in enumerate(["1", "2", "2", "1", "2"])]
    won = run(vote(items, by_answer, trace, "v"))
    assert won == {"text": "t1", "answer": "2", "votes": 3}
    assert trace.events[0].detail["keys"] == ["1", "2", "2", "1", "2"]


def test_vote_with_no_countable_sample_falls_back_to_the_first_with_zero_votes():
    items = [Record(text="a", answer=None), Record(text="b", answer=None)]
    assert run(vote(items, by_answer, Trace(), "v")) == {"text": "a", "answer": None, "votes": 0}
    with pytest.raises(RunError, match="empty list"):
        run(vote([], by_answer, Trace(), "v"))


def _samples(answers, delays, log):
    async def one(i):
        try:
            await asyncio.sleep(delays[i])
        except asyncio.CancelledError:
            log.append(("cancelled", i))
            raise
        log.append(("done", i))
        return Record(text=f"s{i}", answer=answers[i])

    return [one(i) for i in range(len(answers))]


def test_vote_stops_once_the_leader_cannot_be_caught_and_cancels_the_rest():
    answers = ["5", "5", "5", "5", "5", "9", "9", "9"]
    delays = [0.01 * (i + 1) for i in range(5)] + [1.0, 1.0, 1.0]
    log, trace = [], Trace()
    won = run(vote_early(_samples(answers, delays, log), by_answer, trace, "v"))
    # After the fifth "5": 5 votes > 0 for "9" + 3 still running.
    assert won == {"text": "s0", "answer": "5", "votes": 5}
    detail = trace.events[0].detail
    assert detail["stopped_early"] and detail["cancelled"] == 3 and detail["counted"] == 5
    assert sorted(i for kind, i in log if kind == "cancelled") == [5, 6, 7]


def test_vote_waits_for_lower_index_samples_before_choosing_the_representative():
    # Samples 1..5 say "5" quickly; sample 0 is slow. The leader is certain after five,
    # but sample 0 might also say "5" and be the representative: the vote waits for it.
    answers = ["5", "5", "5", "5", "5", "5", "7", "7"]
    delays = [0.2, 0.01, 0.01, 0.01, 0.01, 0.01, 2.0, 2.0]
    won = run(vote_early(_samples(answers, delays, []), by_answer, Trace(), "v"))
    # Counted in index order: decided at the fifth "5" (5 > 0 + 3 uncounted).
    assert won["text"] == "s0" and won["votes"] == 5


def test_vote_without_early_stop_counts_every_sample():
    answers = ["5"] * 6 + ["9", "9"]
    delays = [0.001] * 6 + [0.05, 0.05]
    trace = Trace()
    won = run(vote_early(_samples(answers, delays, []), by_answer, trace, "v", early_stop=False))
    assert won["votes"] == 6 and trace.events[0].detail["counted"] == 8


def test_the_stopping_point_does_not_depend_on_completion_order():
    answers = ["5", "9", "5", "5", "5", "5", "9", "9"]
    outcomes = set()
    for order in ([0.01] * 8, [0.08 - 0.01 * i for i in range(8)], [0.03, 0.01] * 4):
        trace = Trace()
        won = run(vote_early(_samples(answers, order, []), by_answer, trace, "v"))
        outcomes.add((won["text"], won["votes"], trace.events[0].detail["counted"]))
    assert outcomes == {("s0", 5, 6)}


def test_vote_and_best_over_plain_values_return_the_value():
    async def itself(i, v):
        return v

    assert run(vote(["b", "a", "a"], itself, Trace(), "v")) == "a"
    assert run(best([3, 9, 1], itself, Trace(), "b")) == 9


def test_a_close_vote_is_never_stopped_early():
    answers = ["1", "2", "1", "2", "1", "2"]
    delays = [0.001 * (i + 1) for i in range(6)]
    trace = Trace()
    won = run(vote_early(_samples(answers, delays, []), by_answer, trace, "v"))
    assert won == {"text": "s0", "answer": "1", "votes": 3}  # tie: first seen wins
    assert not trace.events[0].detail["stopped_early"]


def test_a_failing_sample_fails_the_vote_and_cancels_the_others():
    log = []

    async def boom():
        await asyncio.sleep(0.01)
        raise RunError("agent 'solver': the engine failed")

    samples = [boom(), *_samples(["1", "1", "1"], [1.0, 1.0, 1.0], log)]
    with pytest.raises(RunError, match="solver"):
        run(vote_early(samples, by_answer, Trace(), "v"))
    assert sorted(i for kind, i in log if kind == "cancelled") == [0, 1, 2]


def test_a_sample_failing_after_the_winner_is_certain_never_fails_the_vote():
    """Whether the vote fails depends on the samples, not on when the failure arrives."""

    async def boom(delay):
        await asyncio.sleep(delay)
        raise RunError("agent 'solver': the engine failed")

    for fail_delay in (0.0, 0.2):
        samples = _samples(["4"] * 7, [0.01] * 7, []) + [boom(fail_delay)]
        won = run(vote_early(samples, by_answer, Trace(), "v"))
        assert won["answer"] == "4" and won["votes"] == 5  # 5 > 0 + 3: decided at sample 4


# -- best ---------------------------------------------------------------------------


def test_pick_highest_lowest_ties_and_non_numbers():
    assert pick([3, 9, 9, 1]) == 1
    assert pick([3, 9, 9, 1], lowest=True) == 3
    assert pick([None, "7", 2.5, True]) == 2  # text, null and booleans are not scores
    assert pick([None, None]) == 0
    assert pick([float("nan"), 1]) == 1


def test_best_scores_every_candidate_concurrently_and_attaches_the_score():
    started, trace = [], Trace()

    async def score(i, c):
        started.append(i)
        await asyncio.sleep(0.01)
        assert len(started) == 3  # all three are scoring at once
        return {"a": 4, "b": 8, "c": 6}[c["text"]]

    items = [Record(text=t) for t in "abc"]
    assert run(best(items, score, trace, "b")) == {"text": "b", "score": 8.0}
    assert trace.events[0].detail["scores"] == [4, 8, 6]
    started.clear()
    assert run(best(items, score, Trace(), "b", lowest=True)) == {"text": "a", "score": 4.0}


def test_best_with_no_numeric_score_keeps_the_first_candidate():
    async def score(i, c):
        return None

    items = [Record(text="a"), Record(text="b")]
    assert run(best(items, score, Trace(), "b")) == {"text": "a", "score": None}


# -- resample -----------------------------------------------------------------------


def test_resample_stops_at_the_first_accepted_attempt():
    attempts = []

    async def attempt(k):
        attempts.append(k)
        return Record(text=f"try {k}", answer=str(k))

    async def accept(r, k):
        return r["answer"] == "2"

    result = run(resample(attempt, accept, 6, Trace(), "r"))
    assert attempts == [0, 1, 2]
    assert result == {"text": "try 2", "answer": "2", "accepted": True, "attempts": 3}


def test_resample_with_a_verifier_that_never_accepts_stops_at_the_bound():
    attempts = []

    async def attempt(k):
        attempts.append(k)
        return Record(text=f"try {k}")

    async def never(r, k):
        return False

    result = run(resample(attempt, never, 4, Trace(), "r"))
    assert attempts == [0, 1, 2, 3]
    assert result == {"text": "try 3", "accepted": False, "attempts": 4}


# -- refine -------------------------------------------------------------------------


def _refine_parts(log, approve_at):
    async def draft():
        log.append("draft")
        return Record(text="v0")

    async def critique(d, r):
        log.append(f"critique {d['text']}")
        return Record(text="ok" if r == approve_at else "more", approved=r == approve_at)

    async def revise(d, c, r):
        log.append(f"revise {d['text']}")
        return Record(text=f"v{r + 1}")

    async def stop(d, c, r):
        return c["approved"]

    return draft, critique, revise, stop


def test_refine_stops_when_the_critic_approves():
    log = []
    draft, critique, revise, stop = _refine_parts(log, approve_at=1)
    result = run(refine(draft, critique, revise, stop, 3, Trace(), "f"))
    assert result == {"text": "v1", "rounds": 2}
    assert log == ["draft", "critique v0", "revise v0", "critique v1"]


def test_refine_without_approval_runs_every_round():
    log = []
    draft, critique, revise, stop = _refine_parts(log, approve_at=99)
    result = run(refine(draft, critique, revise, stop, 2, Trace(), "f"))
    assert result == {"text": "v2", "rounds": 2}
    no_stop = run(refine(draft, critique, revise, None, 1, Trace(), "f"))
    assert no_stop == {"text": "v1", "rounds": 1}


# -- beam / tree --------------------------------------------------------------------


def _search_parts(calls, steps, scores):
    async def expand(state, at):
        calls.append((state["text"], at))
        return Record(text=steps(state, at))

    async def score(state, at):
        return scores(state)

    return expand, score


def test_beam_keeps_the_best_width_states_per_level_and_returns_the_best():
    calls = []
    # A step is named by (level, beam, k); its score is its last digit k (and a bonus for
    # the path through beam 0), so the search is fully predictable.
    expand, score = _search_parts(
        calls,
        lambda s, at: f"L{at[0]}b{at[1]}k{at[2]}",
        lambda s: int(s["steps"][-1][-1]) + (10 if s["steps"][0].endswith("k1") else 0),
    )
    trace = Trace()
    result = run(search(expand, score, width=2, branch=3, depth=3, trace=trace, path="b"))
    # budget: 3 children of the root, then 2 kept x 3 per level
    assert len(calls) == 3 + 2 * 2 * 3
    assert result["steps"][0] == "L0b0k1" and result["steps"][-1].endswith("k2")
    assert result["text"] == "\n".join(result["steps"])
    assert result["score"] == 12.0
    assert [len(e.detail["kept"]) for e in trace.events] == [2, 2, 2]


def test_search_drops_duplicate_and_empty_steps_and_ranks_unscored_last():
    calls = []
    expand, score = _search_parts(
        calls,
        lambda s, at: ["same", "same", "", "other"][at[2]],
        lambda s: None if s["steps"][-1] == "other" else 1,
    )
    result = run(search(expand, score, width=3, branch=4, depth=1, trace=Trace(), path="t"))
    assert result == {"text": "same", "steps": ["same"], "score": 1.0}


def test_tree_budget_is_breadth_then_keep_times_breadth_per_level():
    calls = []
    expand, score = _search_parts(calls, lambda s, at: f"{at}", lambda s: len(s["text"]))
    run(search(expand, score, width=2, branch=3, depth=3, trace=Trace(), path="t", kind="tree"))
    assert len(calls) == 3 + 2 * (2 * 3)
    levels = [at[0] for _, at in calls]
    assert levels.count(0) == 3 and levels.count(1) == 6 and levels.count(2) == 6


def test_search_stops_when_a_level_has_no_usable_child():
    calls = []
    expand, score = _search_parts(calls, lambda s, at: "step" if at[0] == 0 else "", lambda s: 5)
    result = run(search(expand, score, width=1, branch=2, depth=4, trace=Trace(), path="t"))
    assert result["steps"] == ["step"] and len(calls) == 2 + 1 * 2
