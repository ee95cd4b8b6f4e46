"""Per-agent compute shares: contribution, entitlements, lending, reclaim, starvation."""

from __future__ import annotations

import random

import pytest
from runtime_helpers import Harness, make_tiny

from hive.runtime import Engine, SamplingParams
from hive.runtime.engine.agent_shares import FLOOR, STARVE_STEPS, AgentShares
from hive.runtime.engine.agent_stats import PRIOR_CALLS, AgentLedger, AgentPrior
from hive.runtime.engine.errors import EngineError, InvalidRequestError


def test_contribution_starts_from_the_plan_and_moves_to_what_the_engine_sees():
    ledger = AgentLedger(page_size=1)
    ledger.record_prior("hot", AgentPrior(0.75))
    ledger.record_prior("cold", AgentPrior(0.25))
    c = ledger.contributions()
    assert c == pytest.approx({"hot": 0.75, "cold": 0.25})
    # The engine then sees only "cold" work: after N calls the online share weighs N.
    for _ in range(PRIOR_CALLS):
        ledger.record_admission("cold", list(range(100)), hit_tokens=0)
    c = ledger.contributions()
    assert c["hot"] == pytest.approx(0.75 * 0.5)
    assert c["cold"] == pytest.approx(0.25 * 0.5 + 0.5)
    assert sum(c.values()) == pytest.approx(1.0)


def test_contribution_counts_output_reuse_and_what_eviction_cost():
    ledger = AgentLedger(page_size=1)
    ledger.record_admission("a", list(range(10)), hit_tokens=0)
    ledger.record_admission("b", list(range(1000, 1010)), hit_tokens=0)
    ledger.record_finish("a", 5)
    ledger.record_replayed("a", 3)
    ledger.history.insert(list(range(10)))  # its prompt reached the cache once
    ledger.record_admission("a", list(range(10)), hit_tokens=4)  # reusable 10, 6 recomputed
    a, b = ledger.agents["a"], ledger.agents["b"]
    assert a.online_value == 20 + 5 + 4 + 3 + 6
    assert b.online_value == 10
    assert (a.finished_calls, a.mean_output, b.mean_output) == (1, 5.0, 0.0)
    c = ledger.contributions()
    assert c["a"] == pytest.approx(38 / 48) and c["b"] == pytest.approx(10 / 48)


def test_shares_follow_contribution_with_a_floor_for_every_agent_with_work():
    ledger = AgentLedger(page_size=1)
    ledger.record_prior("hot", AgentPrior(1.0))
    ledger.record_prior("cold", AgentPrior(0.0))
    shares = AgentShares(ledger, max_running_requests=10).shares({"hot", "cold"})
    assert shares["cold"] == pytest.approx(FLOOR / 2)
    assert shares["hot"] == pytest.approx(FLOOR / 2 + 1 - FLOOR)
    # An agent nobody knows yet: equal shares while every contribution is 0.
    fresh = AgentShares(AgentLedger(page_size=1), 10).shares({"x", "y", "z"})
    assert fresh == pytest.approx({"x": 1 / 3, "y": 1 / 3, "z": 1 / 3})


def burst(h, hot_contribution=0.5, cold=16):
    """A burst of one cold agent's calls queued just before one hot call."""
    for i in range(cold):
        h.add("cold", prompt_len=40, max_tokens=8, contribution=1 - hot_contribution, seed=i)
    return h.add("hot", prompt_len=40, max_tokens=8, contribution=hot_contribution, seed=99)


def test_a_burst_of_cold_calls_cannot_take_every_slot_from_a_hot_agent():
    fcfs, shares = Harness("fcfs"), Harness("shares")
    hot_fcfs, hot_shares = burst(fcfs), burst(shares)
    fcfs.run()
    shares.run()
    # First come, first served: the hot call waits behind most of the burst.
    assert fcfs.finished_at[hot_fcfs.rid] > 3 * shares.finished_at[hot_shares.rid]
    # With shares it is admitted at once, in the first step, beside the burst.
    assert shares.finished_at[hot_shares.rid] <= 8 + 2
    assert shares.max_running_seen["cold"] == 4  # lent: the burst still uses free slots


def test_a_lent_slot_is_given_back_when_its_agent_asks():
    h = Harness("shares", max_running=4)
    for i in range(8):
        h.add("cold", max_tokens=50, contribution=0.5, seed=i)
    h.step()
    assert sum(r.agent_id == "cold" for r in h.scheduler.running) == 4  # all lent
    hot = h.add("hot", max_tokens=3, contribution=0.5)
    h.step()
    assert hot in h.scheduler.running
    assert h.stats.num_reclaimed_slots == 1
    h.run()
    assert h.finished_at[hot.rid] <= 5
    # Reclaiming never thrashes: the hot agent took one slot back, once.
    assert h.stats.num_reclaimed_slots == 1


def test_prefill_tokens_are_shared_by_contribution_then_lent():
    h = Harness("shares", max_running=8, max_batch_tokens=100)
    cold = [h.add("cold", prompt_len=400, contribution=0.5, seed=i) for i in range(3)]
    hot = h.add("hot", prompt_len=400, contribution=0.5, seed=9)
    schedule = h.step()
    by_agent = {"cold": 0, "hot": 0}
    for item in schedule.items:
        by_agent[item.request.agent_id] += item.extend_len
    assert by_agent == {"hot": 50, "cold": 50}  # FCFS would give all 100 to cold[0]
    # Alone, an agent takes the whole budget: shares only split contended capacity.
    for req in cold:
        h.scheduler.abort(req)
    schedule = h.step()
    assert [(i.request.rid, i.extend_len) for i in schedule.items] == [(hot.rid, 100)]


def cold_after_a_flood(admission):
    """The step at which one cold call finishes, queued after 200 hot calls."""
    h = Harness(admission, max_running=4)
    for i in range(200):
        h.add("hot", max_tokens=6, contribution=1.0, seed=i)
    h.step()
    cold = h.add("cold", max_tokens=6, contribution=0.0)
    h.run()
    return h.finished_at[cold.rid]


def test_a_cold_agent_is_not_starved_by_a_flood_of_hot_work():
    # Its floor share puts it first when a slot frees, not behind 200 queued calls.
    assert cold_after_a_flood("shares") <= 6 + 8
    assert cold_after_a_flood("fcfs") > 200


def test_thousands_of_agents_are_all_served_and_the_oldest_goes_first():
    h = Harness("shares", max_running=8, max_batch_tokens=256)
    reqs = [h.add(f"agent{i}", prompt_len=6, max_tokens=2, seed=i) for i in range(2000)]
    h.run()
    assert len(h.finished_at) == len(reqs)
    # No agent's single call waited more than the queue ahead of it needs.
    assert max(h.finished_at.values()) <= 2 * len(reqs) // 8 + STARVE_STEPS


def test_an_agent_that_never_finishes_holds_one_slot_not_the_engine():
    h = Harness("shares", max_running=2)
    endless = h.add("stuck", max_tokens=10_000, contribution=1.0)
    others = [h.add("worker", max_tokens=3, seed=i) for i in range(20)]
    for _ in range(200):
        h.step()
    assert all(r.rid in h.finished_at for r in others)
    assert endless.rid not in h.finished_at


def test_the_replay_gives_the_engines_counters_with_shares():
    from hive.bench.agent_traces import coordinator_trace
    from hive.runtime.engine.replay import replay

    trace = coordinator_trace(seed=0, rounds=6)
    for admission in ("shares", "fcfs"):
        result = replay(trace, kv_cache_tokens=600, policy="lru", admission=admission)
        assert result.steps > 0 and result.failed == 0


@pytest.fixture(scope="module")
def tiny_llama():
    return make_tiny("llama")


def test_outputs_do_not_change_with_admission(tiny_llama):
    """The determinism contract: shares reorder and re-chunk work, and residency makes
    calls wait (in a pool too small for all), never change tokens."""
    results = {}
    for admission in ("fcfs", "shares", "residency"):
        engine = Engine.from_hf(
            tiny_llama, kv_cache_tokens=2048 if admission != "residency" else 160,
            max_running_requests=3, max_batch_tokens=24, admission=admission,
            eviction_policy="workflow",
        )  # fmt: skip
        rng = random.Random(0)
        reqs = []
        for i in range(9):
            agent = "hot" if i % 3 == 0 else f"cold{i % 2}"
            prompt = [rng.randrange(5, 200) for _ in range(rng.randrange(10, 60))]
            params = SamplingParams(max_tokens=12, temperature=0.8, seed=i, ignore_eos=True)
            prior = AgentPrior(0.6 if agent == "hot" else 0.2)
            reqs += engine.add_request(prompt, params, agent_id=agent, prior=prior)
        while engine.has_unfinished():
            engine.step()
        results[admission] = [r.output_ids for r in reqs]
        if admission == "shares":
            assert engine.stats()["num_reclaimed_slots"] >= 0
    assert results["fcfs"] == results["shares"] == results["residency"]


def test_bad_admission_and_priors_are_clear_errors(tiny_llama):
    with pytest.raises(EngineError, match="admission must be 'shares', 'residency' or 'fcfs'"):
        Engine.from_hf(tiny_llama, kv_cache_tokens=256, admission="fair")
    for bad in (-1, float("nan"), "high", True, float("inf")):
        with pytest.raises(InvalidRequestError, match="AgentPrior.contribution must be a number"):
            AgentPrior(bad)
        with pytest.raises(InvalidRequestError, match="AgentPrior.expected_calls must be"):
            AgentPrior(0.5, expected_calls=bad)
    engine = Engine.from_hf(tiny_llama, kv_cache_tokens=256)
    with pytest.raises(InvalidRequestError, match="prior must be an AgentPrior, got float"):
        engine.add_request([1, 2, 3], agent_id="a", prior=0.5)
    # The engine keeps serving.
    (done,) = engine.generate([[1, 2, 3]], SamplingParams(max_tokens=2))
    assert len(done.token_ids) == 2


def test_a_reclaimed_slot_stays_with_the_agent_that_asked_even_after_long_waits():
    """A request preempted to give a slot back is not admitted again in the same step,
    and a long-running request does not count as starving the moment it is preempted
    (starvation counts from when a request last started waiting)."""
    h = Harness("shares", max_running=4)
    cold = [h.add("cold", max_tokens=400, contribution=0.1, seed=i) for i in range(4)]
    for _ in range(200):
        h.step()
    hot = h.add("hot", max_tokens=3, contribution=0.9)
    h.step()
    assert hot in h.scheduler.running
    h.run()
    assert h.finished_at[hot.rid] <= 200 + 4
    assert h.stats.num_reclaimed_slots <= 2  # not one per step
    assert all(r.rid in h.finished_at for r in cold)


def test_reclaim_never_preempts_a_higher_priority_request():
    h = Harness("shares", max_running=2)
    for i in range(2):
        req = h.add("cold", max_tokens=50, contribution=0.1, seed=i)
        req.priority = 5
    h.step()
    hot = h.add("hot", max_tokens=3, contribution=0.9)
    h.step()
    assert hot not in h.scheduler.running and h.stats.num_reclaimed_slots == 0
