"""One agent call: render its templates, submit it to the engine, extract its fields.

Seeds: a call's seed is derived from the run seed (or the agent's own
`sampling.seed`), the agent and its *path* in the flow (node ids and
iteration indices), never from timing, so a run with a fixed seed gives the
same results however the engine interleaves its calls. Sample i of a call
uses seed + i, as the engine does for `n` samples of one request.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from jinja2 import StrictUndefined, TemplateError, UndefinedError

from hive.compiler.sandbox import BoundedSandbox, render_bounded
from hive.compiler.spec import Agent, RegexExtract, Spec
from hive.errors import HiveError
from hive.runtime.engine.agent_stats import AgentPrior
from hive.runtime.engine.request import Completion
from hive.runtime.engine.sampling_params import SamplingParams
from hive.runtime.engine.serving import GenerationRequest
from hive.runtime.errors import RunError
from hive.runtime.extract import extract_fields
from hive.runtime.trace import Trace
from hive.runtime.values import Record, describe, for_template, to_text

Path = tuple[int, ...]


class EngineLike(Protocol):
    """What the executor needs from an engine (the real one, or a scripted fake in tests)."""

    async def submit(self, request: GenerationRequest) -> list[Completion]: ...


def derive_seed(base: int, agent: str, path: Path) -> int:
    digest = hashlib.blake2b(f"{base}|{agent}|{path}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 2  # room for + sample index below 2**63


def path_text(path: Path) -> str:
    return "/".join(str(p) for p in path)


@dataclass(frozen=True)
class PreparedCall:
    agent: str
    messages: list[dict[str, str]]
    params: SamplingParams
    seed: int
    path: Path
    args: dict[str, Any]
    prefix_group: str | None = None


class AgentCaller:
    def __init__(
        self,
        spec: Spec,
        engine_for: Callable[[str], EngineLike],
        trace: Trace,
        *,
        seed: int = 0,
        priorities: dict[str, int] | None = None,
        priors: dict[str, AgentPrior] | None = None,
        max_tokens: int | None = None,
        prefix_groups: dict[int, str] | None = None,
        cache_modes: dict[int, str] | None = None,
        logits_cache: str = "plan",
    ) -> None:
        self.spec = spec
        self.engine_for = engine_for
        self.trace = trace
        self.seed = seed
        self.priorities = priorities or {}
        self.agent_priors = priors or {}  # the plan's estimates: seed shares and eviction
        self.max_tokens = max_tokens  # a cap on every call's max_tokens (quick runs, CI)
        self.prefix_groups = prefix_groups or {}  # call node id -> the plan's prefix group
        self.cache_modes = cache_modes or {}  # call node id -> the plan's Logits Cache mode
        self.logits_cache = logits_cache  # plan | exact | hotspot | off (hive run --logits-cache)
        self._templates: dict[tuple[str, str], Any] = {}
        # The compiler's sandbox settings, plus: every `{{ value }}` reads as `str()` in
        # the flow does (null is empty, booleans lower-case, records their text).
        self._jinja = BoundedSandbox(
            autoescape=False, undefined=StrictUndefined, keep_trailing_newline=True,
            finalize=to_text,
        )  # fmt: skip

    def prepare(self, agent_name: str, args: dict[str, Any], path: Path) -> PreparedCall:
        agent = self.spec.agents[agent_name]
        context = {k: for_template(v) for k, v in args.items()}
        messages = []
        if agent.system:
            messages.append(
                {"role": "system", "content": self._render(agent_name, "system", context)}
            )
        messages.append({"role": "user", "content": self._render(agent_name, "prompt", context)})
        base = agent.sampling.seed if agent.sampling.seed is not None else self.seed
        seed = derive_seed(base, agent_name, path)
        group = self.prefix_groups.get(path[-1]) if path else None  # a path ends at its node
        params = self._params(agent)
        mode = self._cache_mode(agent, path[-1] if path else None)
        if mode is not None:
            params = SamplingParams(**{**params.__dict__, "logits_cache": mode})
        return PreparedCall(agent_name, messages, params, seed, path, args, group)

    def _cache_mode(self, agent: Agent, node_id: int | None) -> str | None:
        """The Logits Cache mode of a call: the plan's (which honours the agent's own
        setting), the agent's explicit exact/hotspot for any call, or the run's override."""
        chosen = agent.sampling.logits_cache
        if self.logits_cache == "off" or chosen == "off":
            return None
        mode = chosen or self.cache_modes.get(node_id)  # type: ignore[arg-type]
        if mode is not None and self.logits_cache in ("exact", "hotspot"):
            return self.logits_cache
        return mode

    def _render(self, agent_name: str, which: str, context: dict[str, Any]) -> str:
        key = (agent_name, which)
        template = self._templates.get(key)
        agent = self.spec.agents[agent_name]
        try:
            if template is None:
                source = agent.system if which == "system" else agent.prompt
                template = self._templates[key] = self._jinja.from_string(source or "")
            return render_bounded(template, context)
        except UndefinedError as exc:
            raise RunError(f"agent '{agent_name}': {which} template: {exc.message}") from None
        except TemplateError as exc:
            raise RunError(f"agent '{agent_name}': {which} template failed: {exc}") from None
        except Exception as exc:  # an operation in the template on a value of the wrong kind
            raise RunError(
                f"agent '{agent_name}': {which} template failed: {type(exc).__name__}: {exc}"
            ) from None

    def _params(self, agent: Agent) -> SamplingParams:
        s = agent.sampling
        max_tokens = s.max_tokens if self.max_tokens is None else min(s.max_tokens, self.max_tokens)
        return SamplingParams(
            max_tokens=max_tokens,
            temperature=s.temperature,
            top_k=s.top_k,
            top_p=s.top_p,
            min_p=s.min_p,
            repetition_penalty=s.repetition_penalty,
            frequency_penalty=s.frequency_penalty,
            presence_penalty=s.presence_penalty,
            stop=tuple(s.stop),
        )

    async def run(self, call: PreparedCall, sample: int = 0) -> Record:
        """Sample `sample` of a prepared call: its result record."""
        seed = (call.seed + sample) % 2**63
        record = self.trace.begin_call(call.agent, path_text((*call.path, sample)), seed)
        record.prefix_group = call.prefix_group
        params = SamplingParams(**{**call.params.__dict__, "seed": seed, "n": 1})
        request = GenerationRequest(
            call.messages,
            params,
            agent_id=call.agent,
            priority=self.priorities.get(call.agent, 0),
            prior=self.agent_priors.get(call.agent),
        )
        try:
            (completion,) = await self.engine_for(self._model(call.agent)).submit(request)
        except asyncio.CancelledError:
            record.error = "cancelled"
            raise
        except HiveError as exc:
            record.error = str(exc)
            raise RunError(f"agent '{call.agent}' ({_args_preview(call.args)}): {exc}") from None
        finally:
            self.trace.end_call(record)
        agent = self.spec.agents[call.agent]
        if any(isinstance(e, RegexExtract) for e in agent.extractors().values()):
            # Off the event loop: a regex may run up to its timeout, and the engine and
            # every other call go on meanwhile (the match releases the GIL).
            fields, problems = await asyncio.to_thread(extract_fields, agent, completion.text)
        else:
            fields, problems = extract_fields(agent, completion.text)
        record.text, record.fields, record.problems = completion.text, fields, problems
        record.finish_reason = completion.finish_reason
        record.prompt_tokens = len(completion.prompt_token_ids)
        record.cached_prompt_tokens = completion.num_cached_prompt_tokens
        record.completion_tokens = len(completion.token_ids)
        return Record(text=completion.text, **fields)

    async def call(self, agent_name: str, args: dict[str, Any], path: Path) -> Record:
        return await self.run(self.prepare(agent_name, args, path))

    async def sample(self, agent_name: str, args: dict[str, Any], path: Path, n: int) -> list:
        """n samples of one call, concurrently (the engine batches them and computes the
        shared prompt once)."""
        prepared = self.prepare(agent_name, args, path)
        return await gather_all([self.run(prepared, i) for i in range(n)])

    def _model(self, agent_name: str) -> str:
        return self.spec.agents[agent_name].model or self.spec.model


async def gather_all(awaitables: list[Any]) -> list[Any]:
    """Run concurrently; on the first failure cancel the rest (and wait for them), then
    raise that failure: nothing keeps decoding for a flow that has already failed."""
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def _args_preview(args: dict[str, Any]) -> str:
    return ", ".join(f"{k}={describe(v, 40)}" for k, v in args.items())
