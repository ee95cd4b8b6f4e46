"""The asyncio interface the plan executor uses.

`submit` queues a request and awaits its completions. One serving task runs
the engine while any request is pending: each step (schedule, forward,
sample) runs on a worker thread, so the event loop stays free for the
executor's own work (rendering prompts, extracting outputs, progress,
traces) while the model computes; torch releases the GIL inside its kernels.

Only the worker touches the scheduler while a step is in flight. Submits and
aborts that arrive meanwhile wait in an inbox that the serving task applies
between steps, and finish callbacks (which resolve asyncio futures) run on
the event loop, never on the worker.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from hive.runtime.engine.agent_stats import AgentPrior
from hive.runtime.engine.errors import EngineError
from hive.runtime.engine.prompts import Prompt
from hive.runtime.engine.request import Completion, Request
from hive.runtime.engine.sampling_params import SamplingParams

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from hive.runtime.engine.scheduler import Scheduler


@dataclass(frozen=True)
class GenerationRequest:
    """What the executor submits: a prompt, its sampling, and who asks (agent, priority)."""

    prompt: Prompt
    params: SamplingParams = SamplingParams()
    agent_id: str | None = None
    priority: int = 0
    prior: AgentPrior | None = None  # the plan's estimate for the agent (shares, eviction)


class AsyncServing:
    """Mixed into `Engine`: needs `make_requests`, `advance`, `completion`, `abort`,
    `scheduler`."""

    scheduler: Scheduler

    def _init_serving(self) -> None:
        self._loop_task: asyncio.Task[None] | None = None
        self._worker: concurrent.futures.ThreadPoolExecutor | None = None
        self._step_in_flight: concurrent.futures.Future[list[Request]] | None = None
        self._inbox: list[Callable[[], None]] = []

    @property
    def is_serving(self) -> bool:
        """True while the async serving task runs (then `generate` must not)."""
        return self._loop_task is not None and not self._loop_task.done()

    async def submit(self, request: GenerationRequest) -> list[Completion]:
        """Queue `request`; resolve to its `params.n` completions.

        A request that fails (invalid input, KV pool too small) raises its
        HiveError here; other submitted requests are unaffected.
        """
        loop = asyncio.get_running_loop()
        requests = self.make_requests(  # validates: raises before anything is queued
            request.prompt,
            request.params,
            agent_id=request.agent_id,
            priority=request.priority,
            prior=request.prior,
        )
        futures = []
        for req in requests:
            future: asyncio.Future[Completion] = loop.create_future()
            req.on_finish = self._resolver(future)
            futures.append(future)
        self._between_steps(lambda: [self.scheduler.add(req) for req in requests])
        if not self.is_serving:
            self._loop_task = loop.create_task(self._serve())
        try:
            return list(await asyncio.gather(*futures))
        except BaseException:
            # Cancelled, timed out, or one sample failed: stop the others too, so
            # nobody decodes for a caller that is gone.
            self._between_steps(lambda: [self.abort(req) for req in requests])
            raise

    def _between_steps(self, change: Callable[[], Any]) -> None:
        """Apply a scheduler change now, or after the step in flight (loop thread only)."""
        if self._step_in_flight is None:
            change()
        else:
            self._inbox.append(change)

    def _apply_inbox(self) -> None:
        inbox, self._inbox = self._inbox, []
        for change in inbox:
            change()

    def _resolver(self, future: asyncio.Future[Completion]) -> Any:
        def resolve(req: Request) -> None:
            if future.done():
                return
            if req.finish_reason == "error":
                future.set_exception(req.error or EngineError("request failed"))
            else:
                future.set_result(self.completion(req))

        return resolve

    def _worker_thread(self) -> concurrent.futures.ThreadPoolExecutor:
        if self._worker is None:
            threads = torch.get_num_threads()  # the worker uses the caller's setting
            self._worker = concurrent.futures.ThreadPoolExecutor(
                max_workers=1,
                thread_name_prefix="hive-engine",
                initializer=torch.set_num_threads,
                initargs=(threads,),
            )
        return self._worker

    def _finish_step_in_flight(self) -> None:
        """Block until the worker is done with the step in flight, then deliver its results."""
        step, self._step_in_flight = self._step_in_flight, None
        if step is None:
            return
        concurrent.futures.wait([step])
        if step.exception() is None:
            self._notify(step.result())

    @staticmethod
    def _notify(finished: list[Request]) -> None:
        for req in finished:
            if req.on_finish is not None:
                req.on_finish(req)

    async def _serve(self) -> None:
        try:
            while True:
                self._apply_inbox()
                if not self.scheduler.has_work():
                    return
                self._step_in_flight = self._worker_thread().submit(self.advance)
                try:
                    finished = await asyncio.wrap_future(self._step_in_flight)
                except asyncio.CancelledError:
                    # Cancelled (e.g. the loop is shutting down): let the worker finish
                    # before anyone else touches the scheduler, resolve whoever it
                    # finished, then apply what arrived meanwhile.
                    self._finish_step_in_flight()
                    self._apply_inbox()
                    raise
                self._step_in_flight = None
                self._notify(finished)
        except Exception as exc:  # a bug: fail every waiter instead of hanging them
            self._step_in_flight = None
            logger.exception("engine step failed; failing every pending request")
            self._apply_inbox()
            for req in self.scheduler.running + self.scheduler.waiting:
                self.scheduler.finish(req)
                req.error, req.finish_reason = EngineError(f"engine failure: {exc!r}"), "error"
                self.replay.finished(req)
                if req.on_finish is not None:
                    req.on_finish(req)
            # Not re-raised: nobody awaits this task; the waiters have the error.
