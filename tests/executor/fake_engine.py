"""A scripted engine: replies come from a function of (agent, prompt, seed), no model.
Also the check, shared by the executor tests, that a run returned its declared outputs."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from hive.compiler.spec import _is_of_type
from hive.runtime.engine.request import Completion
from hive.runtime.engine.serving import GenerationRequest

Reply = Callable[[str, str, int], str]  # (agent, user prompt, seed) -> text


@dataclass
class FakeEngine:
    reply: Reply
    delay: Callable[[str, str, int], float] = lambda agent, prompt, seed: 0.0
    requests: list[GenerationRequest] = field(default_factory=list)
    cancelled: int = 0
    running: int = 0
    max_running: int = 0

    async def submit(self, request: GenerationRequest) -> list[Completion]:
        self.requests.append(request)
        agent = request.agent_id or ""
        prompt = request.prompt[-1]["content"]
        seed = request.params.seed
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            await asyncio.sleep(self.delay(agent, prompt, seed))
            text = self.reply(agent, prompt, seed)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.running -= 1
        if isinstance(text, Exception):
            raise text
        return [
            Completion(
                text=text,
                token_ids=list(range(len(text.split()))),
                finish_reason="stop",
                prompt_token_ids=list(range(len(prompt.split()))),
            )
        ]

    def prompts_of(self, agent: str) -> list[str]:
        return [r.prompt[-1]["content"] for r in self.requests if r.agent_id == agent]


def assert_declared_outputs(plan, outputs) -> None:
    """The run returned exactly the spec's outputs, each null (a reply lacked the field)
    or of its declared type."""
    declared = plan.spec.outputs or {}
    assert set(outputs) == set(declared)
    for name, type_name in declared.items():
        value = outputs[name]
        assert value is None or _is_of_type(value, type_name), (name, value)
