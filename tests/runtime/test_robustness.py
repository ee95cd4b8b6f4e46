"""The engine keeps serving after failures, cancellations and memory pressure."""

import asyncio

import pytest
from runtime_helpers import prompts_for

from hive.runtime import Engine, GenerationRequest, SamplingParams
from hive.runtime.engine.request import RequestStatus

GREEDY = SamplingParams(temperature=0, max_tokens=4, ignore_eos=True)


def test_an_exception_during_generate_leaves_nothing_behind(tiny_llama, monkeypatch):
    engine = Engine.from_hf(tiny_llama, kv_cache_tokens=1024)
    (prompt,) = prompts_for(1, [12])
    expected = engine.generate(prompt, GREEDY)[0].token_ids

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    with monkeypatch.context() as patch:
        patch.setattr(engine.model, "forward", broken)
        with pytest.raises(RuntimeError, match="boom"):
            engine.generate(prompt, GREEDY)
    assert not engine.scheduler.running and not engine.scheduler.waiting
    assert engine.generate(prompt, GREEDY)[0].token_ids == expected
    engine.scheduler.check_invariants()


def test_cancelled_submit_stops_its_requests(tiny_llama):
    engine = Engine.from_hf(tiny_llama, kv_cache_tokens=1024)
    (prompt,) = prompts_for(2, [10])
    long = SamplingParams(temperature=0, max_tokens=200, ignore_eos=True)

    async def main():
        task = asyncio.create_task(engine.submit(GenerationRequest(prompt, long)))
        for _ in range(5):
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0)

    asyncio.run(main())
    assert not engine.scheduler.running and not engine.scheduler.waiting
    assert engine.stats()["num_decode_tokens"] < 50
    engine.scheduler.check_invariants()


def test_samples_of_one_prompt_run_together_with_large_pages(tiny_llama):
    # The siblings wait for the first sample's prompt pages, then all decode together.
    engine = Engine.from_hf(tiny_llama, kv_cache_tokens=4096, page_size=16)
    (prompt,) = prompts_for(3, [111])
    params = SamplingParams(temperature=0.8, max_tokens=20, ignore_eos=True, n=4, seed=5)
    completions = engine.generate(prompt, params)
    assert [len(c.token_ids) for c in completions] == [20] * 4
    assert engine.stats()["num_steps"] <= 25  # not 4 x 20 steps one after another


def test_preemption_spares_higher_priority_requests(tiny_llama):
    engine = Engine.from_hf(tiny_llama, kv_cache_tokens=48)
    low, high = prompts_for(4, [10, 10])
    params = SamplingParams(temperature=0, max_tokens=20, ignore_eos=True)
    engine.add_request(low, params, priority=0)
    (high_req,) = engine.add_request(high, params, priority=5)
    preempted = []
    original = engine.scheduler.preempt

    def record(req):
        preempted.append(req.priority)
        original(req)

    engine.scheduler.preempt = record
    while engine.has_unfinished():
        engine.step()
        engine.scheduler.check_invariants()
    assert preempted and set(preempted) == {0}
    assert high_req.status is RequestStatus.FINISHED and len(high_req.output_ids) == 20


def test_no_readmission_in_the_step_that_preempted(tiny_llama):
    engine = Engine.from_hf(tiny_llama, kv_cache_tokens=48)
    params = SamplingParams(temperature=0, max_tokens=30, ignore_eos=True)
    for prompt in prompts_for(5, [10, 10]):
        engine.add_request(prompt, params)
    scheduler = engine.scheduler
    preempted: list[int] = []
    readmitted: list[int] = []
    original_preempt, original_schedule = scheduler.preempt, scheduler.schedule

    def preempt(req):
        preempted.append(req.rid)
        original_preempt(req)

    def schedule():
        preempted.clear()
        result = original_schedule()
        readmitted.extend(i.request.rid for i in result.items if i.request.rid in preempted)
        return result

    scheduler.preempt, scheduler.schedule = preempt, schedule
    while engine.has_unfinished():
        engine.step()
        scheduler.check_invariants()
    assert engine.stats()["num_preemptions"] >= 1
    assert readmitted == []  # a request preempted in a step waits for a later step


def test_prefix_hits_are_counted_once_per_admission(tiny_llama):
    # LFU ranks by hit_count: prefill chunks, inserts and deferred matches are not hits.
    engine = Engine.from_hf(tiny_llama, kv_cache_tokens=4096, max_batch_tokens=10)
    (prompt,) = prompts_for(6, [100])
    params = SamplingParams(temperature=0, max_tokens=2)
    engine.generate(prompt, params)
    assert {node.hit_count for node in engine.cache.nodes()} == {0}
    engine.generate(prompt, params)
    assert max(node.hit_count for node in engine.cache.nodes()) == 1
