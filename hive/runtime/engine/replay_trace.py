"""One request of a workload trace (what the engine records with `record_trace`)."""

from __future__ import annotations

from dataclasses import dataclass

from hive.runtime.engine.agent_stats import AgentPrior


@dataclass(frozen=True)
class TraceRequest:
    """`wave`: submitted once every request of earlier waves has finished (a hand-built
    workflow's rounds). `arrival`: submitted when the engine has run that many steps
    (recorded by the engine); when any request has one, the replay uses arrivals.
    Requests the scheduler failed (KV pool too small) are in the trace too: the
    replay's scheduler fails them the same way."""

    agent: str | None  # None: a request without an agent id
    prompt: list[int]
    output: list[int]
    wave: int = 0
    priority: int = 0
    prior: AgentPrior | None = None
    arrival: int | None = None
    aborted_at: int | None = None  # the engine step count when its caller gave up
    failed: bool = False  # the scheduler failed it (it could never fit the pool)
