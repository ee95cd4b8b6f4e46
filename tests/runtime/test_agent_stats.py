"""Per-agent accounting (hits, recomputation after eviction), the trace replay, Belady."""

import pytest
from runtime_helpers import make_tiny, prompts_for

from hive.bench.agent_traces import coordinator_trace
from hive.runtime import Engine, SamplingParams
from hive.runtime.engine.agent_stats import (
    AGGREGATE_REFRESH,
    AgentLedger,
    AgentStats,
    hotspot_agents,
    hotspot_miss_rate,
)
from hive.runtime.engine.prefix_history import PrefixHistory
from hive.runtime.engine.replay import TraceRequest, replay


def test_prefix_history_matches_whole_pages_computed_before():
    history = PrefixHistory(page_size=4)
    history.insert(list(range(10)))  # pages [0..3], [4..7]; the partial page is not kept
    assert history.match(list(range(10))) == 8
    assert history.match([0, 1, 2, 3, 9, 9, 9, 9]) == 4
    assert history.match([1, 2, 3, 4]) == 0
    small = PrefixHistory(page_size=1, max_entries=5)
    small.insert([1, 2, 3, 4])
    small.insert([7, 8])  # over the budget: the history starts over
    assert small.match([1, 2]) == 0 and small.match([7, 8]) == 2


def test_ledger_counts_reusable_hit_and_recomputed_tokens():
    ledger = AgentLedger(page_size=1)
    prompt = list(range(30))
    ledger.record_admission("coord", prompt, hit_tokens=0)  # new: nothing reusable
    ledger.history.insert(prompt)  # the scheduler does this when the KV reaches the cache
    ledger.record_admission("coord", prompt, hit_tokens=30)  # cached
    ledger.record_admission("coord", prompt, hit_tokens=10)  # 20 tokens were evicted
    ledger.record_eviction({"coord", "worker"}, 3)
    c = ledger.agents["coord"]
    assert (c.calls, c.prompt_tokens, c.hit_tokens) == (3, 90, 40)
    assert (c.reusable_tokens, c.recomputed_tokens, c.evicted_pages) == (60, 20, 3)
    assert c.miss_rate == pytest.approx(20 / 60)
    assert ledger.agents["worker"].evicted_pages == 3


def test_hotspots_are_the_top_quarter_by_prompt_tokens():
    agents = {f"a{i}": AgentStats(prompt_tokens=100 * i, reusable_tokens=10, recomputed_tokens=i)
              for i in range(8)}  # fmt: skip
    assert hotspot_agents(agents) == ["a7", "a6"]
    assert hotspot_miss_rate(agents, ["a7", "a6"]) == pytest.approx(13 / 20)
    assert hotspot_agents({}) == [] and hotspot_miss_rate({}, []) == 0.0


def run_waves(engine, waves, max_tokens):
    """Each wave's prompts together (tagged with their agent), waves one after another;
    returns the trace the replay needs."""
    trace = []
    for w, wave in enumerate(waves):
        reqs = [
            engine.add_request(ids, SamplingParams(max_tokens=max_tokens, ignore_eos=True,
                                                   temperature=0), agent_id=agent)[0]
            for agent, ids in wave
        ]  # fmt: skip
        while engine.has_unfinished():
            engine.step()
        trace += [
            TraceRequest(agent, ids, list(r.output_ids), wave=w)
            for (agent, ids), r in zip(wave, reqs, strict=True)
        ]
    return trace


def workflow_waves():
    """A coordinator with a long prompt every round, two workers, a one-off agent."""
    coord, w1, w2, once = prompts_for(31, [60, 40, 40, 50])
    waves = []
    for r in range(4):
        waves.append([("coord", coord + [r + 1])])
        waves.append([("w1", w1 + [r + 1]), ("w2", w2 + [r + 1])])
        if r == 1:
            waves.append([("once", once)])
    return waves


def test_the_engine_counts_recomputation_after_eviction_per_agent():
    engine = Engine.from_hf(make_tiny("llama"), kv_cache_tokens=130, max_batch_tokens=256)
    run_waves(engine, workflow_waves(), max_tokens=4)
    stats = engine.agent_stats()
    assert set(stats) == {"coord", "w1", "w2", "once"}
    assert stats["coord"].calls == 4 and stats["w1"].calls == 4
    assert stats["coord"].reusable_tokens > 0
    assert sum(s.recomputed_tokens for s in stats.values()) > 0  # the pool is too small
    assert sum(s.evicted_pages for s in stats.values()) >= engine.stats()["num_evicted_pages"]


@pytest.mark.parametrize("policy", ["lru", "lfu", "agent", "workflow"])
def test_the_replay_gives_the_engines_own_counters(policy):
    """Same scheduler, cache and policy code, the forward pass skipped: same figures."""
    engine = Engine.from_hf(
        make_tiny("llama"), kv_cache_tokens=130, max_batch_tokens=256, eviction_policy=policy
    )
    trace = run_waves(engine, workflow_waves(), max_tokens=4)
    result = replay(trace, kv_cache_tokens=130, policy=policy, max_batch_tokens=256)
    assert result.agents == engine.agent_stats()
    assert result.preemptions == engine.stats()["num_preemptions"]
    assert result.evicted_pages == engine.stats()["num_evicted_pages"]


def cyclic_trace(num_agents, rounds, prefix_len):
    prefixes = prompts_for(40, [prefix_len] * num_agents)
    return [
        TraceRequest(f"a{a}", prefixes[a] + [r + 1], [7, 7], wave=r * num_agents + a)
        for r in range(rounds)
        for a in range(num_agents)
    ]


def test_belady_beats_lru_on_a_cyclic_workload():
    # Three agents called in turn, room for about two prefixes: LRU always evicts the
    # prefix needed next; Belady keeps one of them.
    trace = cyclic_trace(num_agents=3, rounds=6, prefix_len=40)
    lru = replay(trace, kv_cache_tokens=90, policy="lru")
    belady = replay(trace, kv_cache_tokens=90, policy="belady")
    assert lru.recomputed_tokens > 0
    assert belady.recomputed_tokens < lru.recomputed_tokens
    assert belady.hotspot_miss_rate <= lru.hotspot_miss_rate
    plenty = replay(trace, kv_cache_tokens=1000, policy="lru")
    assert plenty.recomputed_tokens == 0 and plenty.prefix_hit_rate > 0.8


@pytest.mark.parametrize("kv_cache_tokens", [500, 600])
def test_the_agent_policy_keeps_hot_prefixes_better_than_lru(kv_cache_tokens):
    trace = coordinator_trace(rounds=16, seed=0)
    results = {
        p: replay(trace, kv_cache_tokens=kv_cache_tokens, policy=p)
        for p in ("lru", "agent", "belady")
    }
    lru, agent, belady = results["lru"], results["agent"], results["belady"]
    assert lru.hotspot_miss_rate > 0
    assert agent.hotspot_miss_rate < 0.6 * lru.hotspot_miss_rate
    assert agent.recomputed_tokens < lru.recomputed_tokens
    assert belady.recomputed_tokens <= agent.recomputed_tokens
    assert agent.hotspots == lru.hotspots == ["coord", "w0", "w1"]


def test_the_workflow_policy_evicts_the_prefix_whose_agent_runs_last():
    """Keys from each agent's call rhythm: `soon` was called every other call and last
    called one call ago; `late` every fourth and just now... its next call is further."""
    from hive.runtime.engine.eviction import WorkflowPolicy
    from hive.runtime.engine.radix_cache import TreeNode

    ledger = AgentLedger(page_size=1)
    for agent in ["late", "soon", "x", "soon", "late", "soon", "y", "soon", "late"]:
        ledger.record_admission(agent, [hash(agent) % 97], hit_tokens=0)
    policy = WorkflowPolicy()
    policy.bind(ledger, None)

    def node(agent, last_access, hits=1):
        n = TreeNode(None, [1], [1], 0)
        n.agent_ids, n.last_access, n.hit_count = {agent}, last_access, hits
        return n

    soon, late, stale = node("soon", 5), node("late", 9), node("soon", 9, hits=0)
    assert ledger.agents["soon"].call_interval == 2.0
    assert ledger.agents["late"].call_interval == 4.0
    # next calls: soon at 8 + 2 = 10 (1 call away), late at 9 + 4 = 13 (4 away)
    assert sorted([soon, late, stale], key=policy.key) == [stale, late, soon]


@pytest.mark.parametrize("policy", ["lfu", "agent", "workflow"])
def test_outputs_do_not_change_with_the_eviction_policy(policy):
    """Determinism contract: a request's tokens depend on prompt, params and seed only."""
    hf = make_tiny("llama")
    params = SamplingParams(temperature=0.9, max_tokens=6, seed=3, ignore_eos=True)
    outputs = {}
    for name in ("lru", policy):
        engine = Engine.from_hf(hf, kv_cache_tokens=130, max_batch_tokens=256, eviction_policy=name)
        waves = [[(a, ids) for a, ids in wave] for wave in workflow_waves()]
        texts = []
        for wave in waves:
            reqs = [engine.add_request(ids, params, agent_id=a)[0] for a, ids in wave]
            while engine.has_unfinished():
                engine.step()
            texts += [list(r.output_ids) for r in reqs]
        outputs[name] = texts
        assert engine.stats()["num_evicted_pages"] > 0
    assert outputs["lru"] == outputs[policy]


def test_thousands_of_agents_and_untagged_requests_are_served():
    import time

    trace = [
        TraceRequest(f"agent{i}", prompts_for(60 + i % 50, [30])[0] + [i % 7], [1, 2], wave=i // 50)
        for i in range(3000)
    ]
    for policy, admission in (
        ("agent", "shares"),
        ("workflow", "shares"),
        ("workflow", "residency"),
    ):
        started = time.perf_counter()
        result = replay(trace, kv_cache_tokens=400, policy=policy, admission=admission)
        assert time.perf_counter() - started < 30  # aggregates are cached, not O(agents) per key
        assert len(result.agents) == 3000 and result.failed == 0
    engine = Engine.from_hf(make_tiny("llama"), kv_cache_tokens=200, eviction_policy="agent")
    for i, ids in enumerate(prompts_for(70, [20] * 40)):
        engine.add_request(ids, SamplingParams(max_tokens=2), agent_id=None if i % 2 else f"x{i}")
    while engine.has_unfinished():
        engine.step()
    stats = engine.agent_stats()
    assert stats["(no agent)"].calls == 20 and len(stats) == 21


def test_a_low_priority_request_is_not_starved_by_a_stream_of_higher_priority_work():
    engine = Engine.from_hf(make_tiny("llama"), kv_cache_tokens=120, max_batch_tokens=64)
    params = SamplingParams(max_tokens=40, ignore_eos=True, temperature=0)
    (low,) = engine.add_request(prompts_for(1, [30])[0], params, agent_id="cold", priority=0)
    stream = prompts_for(2, [25] * 400)
    hot = SamplingParams(max_tokens=12, ignore_eos=True, temperature=0)
    for step in range(400):
        if step % 2 == 0:
            engine.add_request(stream[step], hot, agent_id="hot", priority=5)
        engine.step()
        if low.finish_reason:
            break
    # Without aging it took 188 steps and 82 preemptions; with it, 53 steps and 8.
    assert low.finish_reason == "length" and step < 100
    assert low.age <= 10


@pytest.mark.parametrize("policy", ["lru", "agent"])
def test_a_recorded_async_trace_replays_to_the_same_counters(policy):
    """Calls submitted while the engine runs (as the executor does): the engine records
    each request's arrival step, and the replay re-runs them at those steps."""
    import asyncio

    from hive.runtime import GenerationRequest

    engine = Engine.from_hf(make_tiny("llama"), kv_cache_tokens=150, max_batch_tokens=64,
                            eviction_policy=policy, record_trace=True)  # fmt: skip
    coord, w1, w2 = prompts_for(90, [60, 45, 45])

    async def workflow():
        for r in range(4):
            params = SamplingParams(max_tokens=3 + r, ignore_eos=True, temperature=0)
            await engine.submit(GenerationRequest(coord + [r + 1], params, agent_id="coord"))
            await asyncio.gather(
                engine.submit(GenerationRequest(w1 + [r + 1], params, agent_id="w1")),
                engine.submit(GenerationRequest(w2 + [r + 1], params, agent_id="w2")),
            )

    asyncio.run(workflow())
    trace = engine.recorded_trace()
    assert len(trace) == 12 and all(t.arrival is not None for t in trace)
    result = replay(trace, kv_cache_tokens=150, policy=policy, max_batch_tokens=64)
    assert result.agents == engine.agent_stats()
    assert result.steps == engine.stats()["num_steps"]


def test_an_agent_that_never_finishes_does_not_hold_up_the_others():
    engine = Engine.from_hf(make_tiny("llama"), kv_cache_tokens=2048)
    (endless,) = engine.add_request(
        prompts_for(3, [20])[0], SamplingParams(max_tokens=200, ignore_eos=True), agent_id="slow"
    )
    quick = [
        engine.add_request(ids, SamplingParams(max_tokens=5, ignore_eos=True), agent_id="fast")[0]
        for ids in prompts_for(4, [15, 25, 10])
    ]
    for _ in range(8):
        engine.step()
    assert all(r.finish_reason == "length" for r in quick) and endless.finish_reason is None
    assert engine.agent_stats()["fast"].calls == 3


def test_only_what_reached_the_cache_counts_as_computed_before():
    # n samples of a short prompt admitted together (page size 4): nothing recomputed.
    engine = Engine.from_hf(make_tiny("llama"), kv_cache_tokens=512, page_size=4)
    engine.add_request(prompts_for(5, [7])[0], SamplingParams(n=4, max_tokens=2), agent_id="a")
    while engine.has_unfinished():
        engine.step()
    a = engine.agent_stats()["a"]
    assert (a.calls, a.visits, a.recomputed_tokens) == (4, 1, 0)
    # A chunked prefill aborted after its first chunk, then submitted again: the chunk
    # that reached the cache is a hit, nothing is "recomputed".
    engine = Engine.from_hf(make_tiny("llama"), kv_cache_tokens=512, max_batch_tokens=16)
    (ids,) = prompts_for(6, [60])
    (first,) = engine.add_request(ids, SamplingParams(max_tokens=2), agent_id="b")
    engine.step()
    engine.abort(first)
    engine.generate(ids, SamplingParams(max_tokens=2))
    b = engine.agent_stats()["b"]
    assert b.recomputed_tokens == 0


def test_untagged_failed_and_aborted_requests_replay_like_the_engine():
    engine = Engine.from_hf(make_tiny("llama"), kv_cache_tokens=64, record_trace=True)
    big, small, other = prompts_for(7, [50, 10, 12])
    params = SamplingParams(max_tokens=30, ignore_eos=True, temperature=0)
    engine.add_request(big, params, agent_id="big")  # grows past the pool: fails
    engine.add_request(small, SamplingParams(max_tokens=3, ignore_eos=True))  # no agent
    (gone,) = engine.add_request(other, params, agent_id="gone")
    for _ in range(3):
        engine.step()
    engine.abort(gone)
    while engine.has_unfinished():
        engine.step()
    assert engine.stats()["num_failed"] == 1
    trace = engine.recorded_trace()
    assert [t.agent for t in trace] == ["big", None, "gone"]
    assert trace[0].failed and trace[2].aborted_at == 3
    result = replay(trace, kv_cache_tokens=64)
    assert result.agents == engine.agent_stats() and result.failed == 1
    assert result.steps == engine.stats()["num_steps"]
    assert result.preemptions == engine.stats()["num_preemptions"]


def test_equal_priorities_do_not_age_so_the_oldest_keeps_progressing():
    trace = [TraceRequest(f"r{i}", p, [3] * 40) for i, p in enumerate(prompts_for(8, [30] * 3))]
    result = replay(trace, kv_cache_tokens=110)
    assert result.preemptions > 0
    engine = Engine.from_hf(make_tiny("llama"), kv_cache_tokens=110)
    reqs = [engine.add_request(t.prompt, SamplingParams(max_tokens=40, ignore_eos=True))[0]
            for t in trace]  # fmt: skip
    while engine.has_unfinished():
        engine.step()
    assert all(r.age == 0 for r in reqs)


def test_the_workflow_policy_stops_expecting_an_agent_whose_rhythm_stopped():
    from hive.runtime.engine.eviction import WorkflowPolicy
    from hive.runtime.engine.radix_cache import TreeNode

    ledger = AgentLedger(page_size=1)
    for agent in ["done", "done"] + ["hot", "x", "y"] * 6:
        ledger.record_admission(agent, [1], hit_tokens=0)
    policy = WorkflowPolicy()
    policy.bind(ledger, None)
    done, hot = TreeNode(None, [1], [1], 0), TreeNode(None, [2], [2], 1)
    done.agent_ids, done.hit_count, done.last_access = {"done"}, 1, 2
    hot.agent_ids, hot.hit_count, hot.last_access = {"hot"}, 1, 90
    assert policy.key(done) < policy.key(hot)  # the stopped agent's prefix goes first


def test_the_workflow_policy_keeps_a_first_prompt_the_plan_expects_again():
    """Before an agent's second call its rhythm is unknown: the plan's expected interval
    (the run's expected calls over the agent's: every 4th and every 10th call here) ranks
    its first prompt, and an agent the plan allows one call is not protected at all."""
    from hive.runtime.engine.agent_stats import AgentPrior
    from hive.runtime.engine.eviction import WorkflowPolicy
    from hive.runtime.engine.radix_cache import TreeNode

    ledger = AgentLedger(page_size=1)
    priors = {
        "coordinator": AgentPrior(0.5, expected_calls=10, workflow_calls=40, max_calls=10),
        "worker": AgentPrior(0.3, expected_calls=4, workflow_calls=40, max_calls=4),
        "once": AgentPrior(0.2, expected_calls=1, workflow_calls=40, max_calls=1),
    }
    assert priors["coordinator"].call_interval == 4.0
    for agent in ("coordinator", "worker", "once"):
        ledger.record_prior(agent, priors[agent])
        ledger.record_admission(agent, [len(agent)], hit_tokens=0)
    policy = WorkflowPolicy()
    policy.bind(ledger, None)

    def first_prompt(agent, last_access):
        n = TreeNode(None, [1], [1], 0)
        n.agent_ids, n.last_access, n.hit_count = {agent}, last_access, 0
        return n

    coordinator, worker, once = (
        first_prompt("coordinator", 1),
        first_prompt("worker", 2),
        first_prompt("once", 3),
    )
    # once: not expected again, first; worker: next call ~10 away; coordinator: ~2 away.
    assert sorted([coordinator, worker, once], key=policy.key) == [once, worker, coordinator]
    # Without the plan's word, a never-reused node is not protected (LRU among them).
    bare = AgentLedger(page_size=1)
    for agent in ("coordinator", "worker", "once"):
        bare.record_admission(agent, [len(agent)], hit_tokens=0)
    policy.bind(bare, None)
    assert sorted([coordinator, worker, once], key=policy.key) == [coordinator, worker, once]


def test_the_workflow_policy_weights_only_the_hot_agents_by_contribution():
    """The top quarter by contribution keep their relative contribution as the weight;
    the others share one weight (the largest of theirs), so that among them a prefix
    needed later goes first whatever its size: an evicted page costs the same to
    recompute in a big prompt as in a small one."""
    from hive.runtime.engine.agent_stats import AgentPrior
    from hive.runtime.engine.eviction import WorkflowPolicy

    ledger = AgentLedger(page_size=1)
    policy = WorkflowPolicy()
    policy.bind(ledger, None)
    assert policy.weight("anyone") == 1.0  # nothing known yet: every agent alike
    shares = {"coordinator": 0.5, "big": 0.3, "small": 0.15, "once": 0.05}
    for agent, share in shares.items():
        ledger.record_prior(agent, AgentPrior(share, expected_calls=2, workflow_calls=8))
        ledger.record_admission(agent, list(range(int(share * 100))), hit_tokens=0)
    hot, big, small, once = (policy.weight(a) for a in shares)
    assert hot == 1.0 and big == small == once < hot
    assert big == policy._relative_contribution("big", ledger)  # the largest cold one
    assert policy.weight("unknown") == big
    # The top contributor by what the engine saw, with a low plan prior, is hot and
    # never ranks below the cold agents.
    ledger = AgentLedger(page_size=1)
    policy.bind(ledger, None)
    shares = {"a": 0.05, "b": 0.6, "c": 0.2, "d": 0.15}
    for agent, share in shares.items():
        ledger.record_prior(agent, AgentPrior(share, expected_calls=2, workflow_calls=8))
        for _ in range(40 if agent == "a" else 1):
            ledger.record_admission(agent, list(range(1000)), hit_tokens=0)
    policy.weight("a")
    assert policy._hot == {"a"}
    assert policy.weight("a") >= policy.weight("b") == policy.weight("c") == policy.weight("d")


def test_the_plan_brings_the_workflow_policy_closer_to_belady_than_rhythm_alone():
    """Synthetic coordinator trace (seed 0, 800-token pool): from call rhythm alone the
    workflow policy recomputes 424 tokens, Belady 27, because every agent's first
    prompt is unprotected; with the plan's priors it keeps the first prompts of the
    agents called again (147)."""
    from hive.runtime.engine.agent_stats import AgentPrior

    trace = coordinator_trace(seed=0)
    calls: dict[str, int] = {}
    for t in trace:
        calls[t.agent] = calls.get(t.agent, 0) + 1
    total = sum(calls.values())
    planned = [
        TraceRequest(t.agent, t.prompt, t.output, t.wave,
                     prior=AgentPrior(calls[t.agent] / total, calls[t.agent], total,
                                      calls[t.agent]))
        for t in trace
    ]  # fmt: skip
    rhythm = replay(trace, kv_cache_tokens=800, policy="workflow").recomputed_tokens
    with_plan = replay(planned, kv_cache_tokens=800, policy="workflow").recomputed_tokens
    belady = replay(planned, kv_cache_tokens=800, policy="belady").recomputed_tokens
    assert belady <= with_plan < rhythm


def test_calls_arriving_together_are_one_visit_of_the_rhythm():
    """Concurrent copies of a workflow call an agent several times in a row: one visit,
    so the agent's interval is in steps of the workflow, not in copies."""
    ledger = AgentLedger(page_size=1)
    for agent in ["a", "a", "a", "b", "b", "b", "a", "a", "a", "b"]:
        ledger.record_admission(agent, [1], hit_tokens=0)
    a, b = ledger.agents["a"], ledger.agents["b"]
    assert (a.calls, a.visits, b.visits, ledger.total_visits) == (6, 2, 2, 4)
    assert a.call_interval == 2.0 and b.call_interval == 2.0


def test_the_workflow_policy_keeps_a_cycle_going_where_lru_thrashes():
    """Three agents in a loop (a writer, a verifier, a critic), a pool for one prefix
    besides the running call: LRU always evicts the prefix needed next, so nothing is ever
    a hit and no policy sees a reuse to protect. Prefixes computed again after an eviction
    are marked, and while the plan allows the agent more calls the workflow policy keeps
    them, ordered by the cycle's rhythm: Belady's result or better, not LRU's."""
    import random

    from hive.runtime.engine.agent_stats import AgentPrior

    rng = random.Random(0)
    prefix = {a: [rng.randrange(1, 500) for _ in range(300)] for a in "wvc"}
    trace, bare = [], []
    for r in range(6):
        for i, agent in enumerate("wvc"):
            prompt = prefix[agent] + [rng.randrange(1, 500) for _ in range(10)]
            prior = AgentPrior(1 / 3, expected_calls=6, workflow_calls=18, max_calls=6)
            trace.append(TraceRequest(agent, prompt, [7] * 4, wave=3 * r + i, prior=prior))
            bare.append(TraceRequest(agent, prompt, [7] * 4, wave=3 * r + i))
    lru = replay(trace, kv_cache_tokens=650, policy="lru").recomputed_tokens
    workflow = replay(trace, kv_cache_tokens=650, policy="workflow").recomputed_tokens
    belady = replay(trace, kv_cache_tokens=650, policy="belady").recomputed_tokens
    # Belady's furthest-next-use order is a near-optimal floor on a radix tree (the
    # victim gives only the pages needed, from its tail), not an exact one.
    assert workflow <= belady < lru / 2
    assert replay(bare, kv_cache_tokens=650, policy="workflow").recomputed_tokens == lru


def test_a_recomputed_prefix_is_marked_up_to_where_it_was_computed_before():
    from hive.runtime.engine.kv_pool import PageAllocator
    from hive.runtime.engine.radix_cache import RadixCache

    cache = RadixCache(PageAllocator(64), page_size=2)
    tokens = list(range(10))
    cache.insert(tokens, cache.allocator.allocate(5))
    cache.mark_recomputed(tokens[:6])
    node = cache.match_prefix(tokens, record=False).node
    assert not node.recomputed and node.token_ids == [6, 7, 8, 9]  # the call's own tail
    assert node.parent.recomputed and node.parent.token_ids == list(range(6))


def test_aggregates_over_many_agents_are_refreshed_amortised():
    """With few agents, every admission refreshes the contributions; with thousands, they may
    lag agents / AGGREGATE_REFRESH admissions (O(AGGREGATE_REFRESH) per admission, not
    O(agents)), and are then recomputed."""
    ledger = AgentLedger(page_size=1)
    for i in range(10):
        ledger.record_admission(f"a{i}", [1, 2, 3], 0)
    version, before = ledger.version, ledger.contributions()
    ledger.record_admission("a0", [1, 2, 3], 0)
    assert not ledger.is_current(version) and ledger.contributions() is not before
    assert ledger.contributions()["a0"] > before["a0"]
    for i in range(3200 - 10):
        ledger.record_admission(f"b{i}", [1], 0)
    assert len(ledger.agents) // AGGREGATE_REFRESH == 100
    version, before = ledger.version, ledger.contributions()
    for _ in range(99):
        ledger.record_admission("late", [1, 2, 3, 4], 0)
    assert ledger.is_current(version) and ledger.contributions() is before
    assert "late" not in before  # admitted since: the floor until the refresh
    ledger.record_admission("late", [1, 2, 3, 4], 0)
    assert not ledger.is_current(version)
    assert ledger.contributions()["late"] > ledger.contributions()["b0"]
    assert not ledger.is_current(-1)


def test_workflow_weights_stay_relative_to_the_top_agent_while_aggregates_lag():
    """With hundreds of agents the ledger's contributions refresh every agents / 32
    admissions; the policy's aggregates refresh with them and its weights read the same
    snapshot, so every weight stays in (0, 1] and the top agent's is 1 (two lag windows
    out of phase gave a weight of 114)."""
    from hive.runtime.engine.agent_stats import AgentPrior
    from hive.runtime.engine.eviction import WorkflowPolicy

    ledger = AgentLedger(page_size=1)
    policy = WorkflowPolicy()
    policy.bind(ledger, None)
    prior = AgentPrior(0.001, expected_calls=1, workflow_calls=700, max_calls=1)
    for i in range(640):
        ledger.record_prior(f"a{i}", prior)
        ledger.record_admission(f"a{i}", [1], hit_tokens=0)
    ledger.record_prior("top", AgentPrior(0.5, expected_calls=50, workflow_calls=700))
    ledger.contributions()  # the scheduler's shares read them too, at other times
    for step in range(200):
        ledger.record_admission("top", list(range(400 + step)), hit_tokens=0)
        if step % 7 == 0:
            ledger.record_admission(f"a{step}", [1, 2], hit_tokens=0)
        if step < 10:
            continue  # the policy's first look comes ten admissions after the ledger's
        weights = [policy.weight(a) for a in ("top", "a0", "a1", f"a{step}")]
        assert all(0 < w <= 1 for w in weights), (step, weights)
        assert policy.weight("top") == max(weights)
