"""What a run did: one record per agent call, one event per TTS decision.

`Trace.to_chrome()` writes the Chrome / Perfetto trace format
(`chrome://tracing`, ui.perfetto.dev): one track per agent, a slice per
call (its tokens, prefix-cache hits and finish reason in the slice's args),
and instant events for the supervisors' decisions (votes, scores, beam
pruning). Concurrent calls of one agent overlap on its track.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class CallRecord:
    """One agent call (one sample of it)."""

    id: int
    agent: str
    path: str  # where in the flow: node ids and iteration indices
    seed: int
    start: float  # seconds since the run started
    end: float = 0.0
    text: str = ""
    fields: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    finish_reason: str = ""
    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None
    prefix_group: str | None = None  # the plan's static prompt-prefix group of the call


@dataclass
class TraceEvent:
    """A supervisor's decision: what it saw and chose."""

    kind: str  # vote | best | resample | beam | tree | refine
    path: str
    time: float
    detail: dict[str, Any]


class Trace:
    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.calls: list[CallRecord] = []
        self.events: list[TraceEvent] = []
        self.running = 0

    def now(self) -> float:
        return time.perf_counter() - self.started

    def begin_call(self, agent: str, path: str, seed: int) -> CallRecord:
        record = CallRecord(len(self.calls), agent, path, seed, self.now())
        self.calls.append(record)
        self.running += 1
        return record

    def end_call(self, record: CallRecord) -> None:
        record.end = self.now()
        self.running -= 1

    def event(self, kind: str, path: str, **detail: Any) -> None:
        self.events.append(TraceEvent(kind, path, self.now(), detail))

    def summary(self) -> dict[str, Any]:
        done = [c for c in self.calls if c.end]
        return {
            "calls": len(done),
            "failed_calls": sum(1 for c in done if c.error),
            "prompt_tokens": sum(c.prompt_tokens for c in done),
            "cached_prompt_tokens": sum(c.cached_prompt_tokens for c in done),
            "completion_tokens": sum(c.completion_tokens for c in done),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "calls": [asdict(c) for c in self.calls],
            "events": [asdict(e) for e in self.events],
        }

    def to_chrome(self) -> dict[str, Any]:
        agents = sorted({c.agent for c in self.calls})
        tid = {agent: i + 1 for i, agent in enumerate(agents)}
        events: list[dict[str, Any]] = [
            {"ph": "M", "pid": 1, "name": "process_name", "args": {"name": "hive run"}},
            {"ph": "M", "pid": 1, "tid": 0, "name": "thread_name", "args": {"name": "flow"}},
        ]
        for agent in agents:
            events.append(
                {"ph": "M", "pid": 1, "tid": tid[agent], "name": "thread_name",
                 "args": {"name": f"agent {agent}"}}
            )  # fmt: skip
        now = self.now()
        for c in self.calls:
            end = c.end or now  # an unfinished call (interrupted run) ends at the dump
            events.append(
                {
                    "ph": "X",
                    "pid": 1,
                    "tid": tid[c.agent],
                    "name": c.agent,
                    "cat": "call",
                    "ts": c.start * 1e6,
                    "dur": max(end - c.start, 0.0) * 1e6,
                    "args": {
                        "path": c.path,
                        "seed": c.seed,
                        "prefix_group": c.prefix_group,
                        "prompt_tokens": c.prompt_tokens,
                        "prefix_cache_hit_tokens": c.cached_prompt_tokens,
                        "completion_tokens": c.completion_tokens,
                        "finish_reason": c.finish_reason or "unfinished",
                        "fields": c.fields,
                        **({"error": c.error} if c.error else {}),
                        **({"problems": c.problems} if c.problems else {}),
                    },
                }
            )
        for e in self.events:
            events.append(
                {"ph": "i", "s": "p", "pid": 1, "tid": 0, "name": e.kind, "cat": "decision",
                 "ts": e.time * 1e6, "args": {"path": e.path, **e.detail}}
            )  # fmt: skip
        return {"traceEvents": events, "displayTimeUnit": "ms"}

    def write_chrome(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_chrome(), default=str), encoding="utf-8")
