"""The live display of `hive run` (on stderr): calls done and running, tokens/s, cache hits."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.text import Text

from hive.runtime.trace import Trace


def status_line(traces: list[Trace], seconds: float, engine_stats: dict[str, Any] | None) -> Text:
    done = sum(1 for t in traces for c in t.calls if c.end)
    running = sum(t.running for t in traces)
    tokens = sum(c.completion_tokens for t in traces for c in t.calls)
    prompt = sum(c.prompt_tokens for t in traces for c in t.calls if c.end)
    cached = sum(c.cached_prompt_tokens for t in traces for c in t.calls if c.end)
    line = (
        f"calls {done} done, {running} running | {tokens} tokens "
        f"({tokens / seconds if seconds > 0 else 0:.0f}/s) | prefix cache {cached}/{prompt} "
        f"prompt tokens | {seconds:.1f}s"
    )
    if engine_stats:
        line += f" | engine steps {int(engine_stats.get('num_steps', 0))}"
    return Text(line)


async def show_progress(
    console: Console,
    traces: Callable[[], list[Trace]],
    engine_stats: Callable[[], dict[str, Any] | None],
    started: Callable[[], float],
    interval: float = 0.25,
) -> None:
    """Refresh until cancelled (the run's task cancels it when the run ends)."""
    with Live(console=console, refresh_per_second=8, transient=True) as live:
        while True:
            live.update(status_line(traces(), started(), engine_stats()))
            await asyncio.sleep(interval)
