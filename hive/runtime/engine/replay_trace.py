"""One request of a workload trace (what the engine records with `record_trace`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TraceRequest:
    """`wave`: submitted once every request of earlier waves has finished (a hand-built
    workflow's rounds). `arrival`: submitted when the engine has run that many steps
    (recorded by the engine); when any request has one, the replay uses arrivals."""

    agent: str
    prompt: list[int]
    output: list[int]
    wave: int = 0
    priority: int = 0
    arrival: int | None = None
