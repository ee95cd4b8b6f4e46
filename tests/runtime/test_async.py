"""The asyncio interface: concurrent submits share the engine's steps."""

import asyncio
import threading

import pytest
import torch
from runtime_helpers import prompts_for

from hive.runtime import Engine, GenerationRequest, SamplingParams


def hold_forward(engine):
    """Make the engine's forward pass wait mid-step: returns (in_step, release) events."""
    forward = engine.model.forward
    in_step, release = threading.Event(), threading.Event()

    def held_forward(batch, attention):
        in_step.set()
        release.wait(5)
        return forward(batch, attention)

    engine.model.forward = held_forward
    return in_step, release


def test_concurrent_submits_are_batched_and_match_generate(tiny_llama):
    engine = Engine.from_hf(tiny_llama, kv_cache_tokens=2048)
    prompts = prompts_for(40, [9, 14, 30, 5, 22, 17])
    params = SamplingParams(temperature=0.8, seed=3, max_tokens=10, ignore_eos=True)
    expected = Engine.from_hf(tiny_llama, kv_cache_tokens=2048).generate(prompts, params)

    async def main():
        requests = [GenerationRequest(p, params, agent_id="solver", priority=1) for p in prompts]
        return await asyncio.gather(*(engine.submit(r) for r in requests))

    results = asyncio.run(main())
    assert [r[0].token_ids for r in results] == [e.token_ids for e in expected]
    assert engine.stats()["num_steps"] <= 12  # all six decoded together, not one after another


def test_submit_with_n_returns_n_completions(tiny_llama):
    engine = Engine.from_hf(tiny_llama, kv_cache_tokens=2048)

    async def main():
        first = engine.submit(GenerationRequest([5, 6, 7], SamplingParams(n=3, max_tokens=4)))
        await asyncio.sleep(0)
        later = engine.submit(GenerationRequest([8, 9], SamplingParams(max_tokens=2)))
        return await asyncio.gather(first, later)

    first, later = asyncio.run(main())
    assert [c.sample_index for c in first] == [0, 1, 2] and len(later) == 1


def test_steps_run_off_the_event_loop_thread(tiny_llama):
    engine = Engine.from_hf(tiny_llama, kv_cache_tokens=2048)
    threads = set()
    forward = engine.model.forward

    def recording_forward(batch, attention):
        threads.add(threading.get_ident())
        return forward(batch, attention)

    engine.model.forward = recording_forward
    ticks = 0

    async def ticker(done):
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0)

    async def main():
        done = asyncio.Event()
        tick_task = asyncio.create_task(ticker(done))
        params = SamplingParams(max_tokens=30, ignore_eos=True)
        out = await engine.submit(GenerationRequest([5, 6, 7], params))
        done.set()
        await tick_task
        return out, threading.get_ident()

    (completion,), loop_thread = asyncio.run(main())
    assert len(completion.token_ids) == 30
    assert threads and loop_thread not in threads
    assert ticks >= 30  # the loop kept running other coroutines during the steps


def test_submits_arriving_during_a_step_join_later_steps(tiny_llama):
    """A submit made while the worker is mid-step is queued, then batched; tokens as alone."""
    engine = Engine.from_hf(tiny_llama, kv_cache_tokens=2048)
    prompts = prompts_for(41, [12, 7, 19])
    params = SamplingParams(temperature=0.9, seed=5, max_tokens=12, ignore_eos=True)
    alone = [Engine.from_hf(tiny_llama, kv_cache_tokens=2048).generate(p, params) for p in prompts]
    in_step, release = hold_forward(engine)

    async def main():
        first = asyncio.create_task(engine.submit(GenerationRequest(prompts[0], params)))
        await asyncio.to_thread(in_step.wait, 5)  # the worker is inside a step now
        later = [
            asyncio.create_task(engine.submit(GenerationRequest(p, params))) for p in prompts[1:]
        ]
        await asyncio.sleep(0)
        assert len(engine._inbox) == 2  # queued, not added under the worker's feet
        release.set()
        return await asyncio.gather(first, *later)

    results = asyncio.run(main())
    assert [r[0].token_ids for r in results] == [a[0].token_ids for a in alone]
    engine.scheduler.check_invariants()


def test_generate_works_after_async_serving(tiny_llama):
    engine = Engine.from_hf(tiny_llama, kv_cache_tokens=2048)
    params = SamplingParams(temperature=0, max_tokens=6)

    async def main():
        return await engine.submit(GenerationRequest([3, 4, 5], params))

    (served,) = asyncio.run(main())
    assert not engine.is_serving
    assert engine.generate([3, 4, 5], params)[0].token_ids == served.token_ids


def test_cancel_during_a_step_aborts_after_it(tiny_llama):
    engine = Engine.from_hf(tiny_llama, kv_cache_tokens=2048)
    in_step, release = hold_forward(engine)
    long = SamplingParams(max_tokens=200, ignore_eos=True)

    async def main():
        task = asyncio.create_task(engine.submit(GenerationRequest([1, 2, 3], long)))
        await asyncio.to_thread(in_step.wait, 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert engine.scheduler.running  # untouched while the worker is mid-step
        release.set()
        while engine.is_serving:
            await asyncio.sleep(0.01)

    asyncio.run(main())
    assert not engine.scheduler.running and not engine.scheduler.waiting
    assert engine.stats()["num_decode_tokens"] < 5
    engine.scheduler.check_invariants()


def test_submit_under_the_callers_inference_mode(tiny_llama):
    """Requests built under inference_mode are updated by the worker, outside it."""
    engine = Engine.from_hf(tiny_llama, kv_cache_tokens=2048)
    params = SamplingParams(temperature=0, max_tokens=5, repetition_penalty=1.2)

    async def main():
        with torch.inference_mode():
            return await engine.submit(GenerationRequest([5, 6, 7], params))

    (completion,) = asyncio.run(main())
    assert completion.finish_reason == "length" and len(completion.token_ids) == 5


def test_cancelling_the_server_mid_step_still_resolves_what_the_step_finished(tiny_llama):
    engine = Engine.from_hf(tiny_llama, kv_cache_tokens=2048)
    in_step, release = hold_forward(engine)

    async def main():
        one_token = SamplingParams(max_tokens=1)
        task = asyncio.create_task(engine.submit(GenerationRequest([1, 2, 3], one_token)))
        await asyncio.to_thread(in_step.wait, 5)
        engine._loop_task.cancel()
        release.set()
        return await asyncio.wait_for(task, 5)

    (completion,) = asyncio.run(main())
    assert len(completion.token_ids) == 1
