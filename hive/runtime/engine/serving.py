"""The asyncio interface the plan executor uses.

`submit` queues a request and awaits its completions; one task steps the
engine while any request is pending and yields to the event loop between
steps, so submits made concurrently are batched together by the scheduler.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

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


class AsyncServing:
    """Mixed into `Engine`: needs `add_request`, `step`, `completion`, `scheduler`."""

    scheduler: Scheduler
    _loop_task: asyncio.Task[None] | None = None

    async def submit(self, request: GenerationRequest) -> list[Completion]:
        """Queue `request`; resolve to its `params.n` completions.

        A request that fails (invalid input, KV pool too small) raises its
        HiveError here; other submitted requests are unaffected.
        """
        loop = asyncio.get_running_loop()
        requests = self.add_request(
            request.prompt, request.params, agent_id=request.agent_id, priority=request.priority
        )
        futures = []
        for req in requests:
            future: asyncio.Future[Completion] = loop.create_future()
            req.on_finish = self._resolver(future)
            futures.append(future)
        if self._loop_task is None or self._loop_task.done():
            self._loop_task = loop.create_task(self._serve())
        try:
            return list(await asyncio.gather(*futures))
        except BaseException:
            # Cancelled, timed out, or one sample failed: stop the others too, so
            # nobody decodes for a caller that is gone.
            for req in requests:
                self.scheduler.abort(req)
            raise

    def _resolver(self, future: asyncio.Future[Completion]) -> Any:
        def resolve(req: Request) -> None:
            if future.done():
                return
            if req.finish_reason == "error":
                future.set_exception(req.error or EngineError("request failed"))
            else:
                future.set_result(self.completion(req))

        return resolve

    async def _serve(self) -> None:
        try:
            while self.scheduler.has_work():
                self.step()
                await asyncio.sleep(0)
        except Exception as exc:  # a bug: fail every waiter instead of hanging them
            logger.exception("engine step failed; failing every pending request")
            for req in self.scheduler.running + self.scheduler.waiting:
                self.scheduler.finish(req)
                req.error, req.finish_reason = EngineError(f"engine failure: {exc!r}"), "error"
                if req.on_finish is not None:
                    req.on_finish(req)
            # Not re-raised: nobody awaits this task; the waiters have the error.
