"""The plan executor: interprets the IR with asyncio.

Values flow along the IR's data edges; each region activation has its own
scope (a `ChainMap` over its parent's), so concurrent activations (the
elements of a `map`, the children of a beam level, the branches of a
`spawn`) never share bindings. Agent calls await the engine; everything
that can run at once does (`sample`, `map`, `spawn`, scorers of `best`,
expansions of a search level), so the engine batches them.

Every call gets a *path* (node ids and iteration indices from the flow's
root), from which its seed is derived: results do not depend on timing.

A `vote` over a `sample` whose list nothing else uses runs fused: it votes
as samples finish and cancels the rest once the winner is certain.
"""

from __future__ import annotations

import asyncio
from collections import ChainMap
from typing import Any

from hive.compiler.ir import CALL_OPS, Graph, Node, Region
from hive.compiler.plan import Plan
from hive.compiler.types import value_size
from hive.runtime.calls import AgentCaller, Path, gather_all, path_text
from hive.runtime.errors import RunError
from hive.runtime.tts.best import best
from hive.runtime.tts.refine import refine
from hive.runtime.tts.resample import resample
from hive.runtime.tts.search import search
from hive.runtime.tts.vote import vote, vote_early
from hive.runtime.values import (
    Record,
    RecordList,
    binop,
    builtin,
    check_size,
    describe,
    truthy,
    unop,
)

Scope = ChainMap


class _Return(Exception):
    def __init__(self, value: Any) -> None:
        self.value = value


class _FusedSample:
    """A `sample` node's value, left for the `vote` that alone uses it to run."""

    def __init__(self, node: Node, scope: Scope, path: Path) -> None:
        self.node, self.scope, self.path = node, scope, path


class Interpreter:
    def __init__(self, plan: Plan, caller: AgentCaller, *, early_stop: bool = True) -> None:
        self.plan = plan
        self.caller = caller
        self.trace = caller.trace
        self.early_stop = early_stop
        self.fused = _fusable_samples(plan.graph) if early_stop else set()
        self._spawned: list[asyncio.Task[Any]] = []

    async def run(self, inputs: dict[str, Any]) -> Any:
        scope: Scope = ChainMap({})
        self._inputs = inputs
        try:
            await self.region(self.plan.graph.body, scope, (), [])
        except _Return as done:
            return done.value
        finally:
            # A spawn never joined, or the flow failed: nothing keeps running for it.
            for task in self._spawned:
                task.cancel()
            if self._spawned:
                await asyncio.gather(*self._spawned, return_exceptions=True)
        return None

    # -- regions and nodes ---------------------------------------------------------

    async def region(self, region: Region, parent: Scope, path: Path, args: list[Any]) -> list:
        scope = parent.new_child(dict(zip(region.params, args, strict=True)))
        for node in region.nodes:
            try:
                scope[node.id] = await self.node(node, scope, path)
            except RunError as exc:
                raise _located(exc, node) from None
        return [scope[y] for y in region.yields]

    async def lam(self, region: Region, scope: Scope, path: Path, *args: Any) -> Any:
        (value,) = await self.region(region, scope, path, list(args))
        return value

    async def node(self, node: Node, scope: Scope, path: Path) -> Any:
        op = node.op
        args = [scope[i] for i in node.inputs]
        here = (*path, node.id)
        if op == "input":
            return self._inputs[node.attrs["name"]]
        if op == "const":
            return node.attrs["value"]
        if op == "field":
            return _field(args[0], node.attrs["name"])
        if op == "index":
            return _index(args[0], args[1])
        if op == "binop":
            return binop(node.attrs["op"], args[0], args[1])
        if op == "unop":
            return unop(node.attrs["op"], args[0])
        if op == "list":
            value = RecordList(args)
            value.known_size = value_size(value)
            check_size(value.known_size, "a list")
            return value
        if op == "record":
            value = Record(zip(node.attrs["keys"], args, strict=True))
            check_size(value_size(value), "a record")
            return value
        if op == "builtin":
            return builtin(node.attrs["name"], args, node.attrs)
        if op == "return":
            raise _Return(args[0])
        if op in CALL_OPS:
            return await self.agent_op(node, args, scope, here)
        handler = getattr(self, f"op_{op}", None)
        if handler is None:
            raise RunError(f"cannot run a '{op}' node (recompile the plan with `hive compile`)")
        return await handler(node, args, scope, here)

    # -- agent calls ---------------------------------------------------------------

    async def agent_op(self, node: Node, args: list[Any], scope: Scope, here: Path) -> Any:
        agent = node.attrs["agent"]
        named = dict(zip(node.attrs["arg_names"], args, strict=True))
        if node.op == "call":
            return await self.caller.call(agent, named, here)
        if node.op == "spawn":
            task = asyncio.ensure_future(self.caller.call(agent, named, here))
            self._spawned.append(task)
            return task
        if node.op == "sample":
            if node.id in self.fused:
                return _FusedSample(node, scope, here)
            return RecordList(await self.caller.sample(agent, named, here, node.attrs["n"]))
        # resample: attempt k is sample k of one prepared call (seed + k)
        prepared = self.caller.prepare(agent, named, here)
        until = node.region("until")
        assert until is not None
        return await resample(
            lambda k: self.caller.run(prepared, k),
            lambda result, k: self.lam(until, scope, (*here, k), result),
            node.attrs["max_attempts"],
            self.trace,
            path_text(here),
        )

    async def op_join(self, node: Node, args: list[Any], scope: Scope, here: Path) -> Any:
        """`join(h)`: h's result; `join(hs)`: a list of results; `join(h1, h2, ...)`: the
        list of each argument joined. All spawns are awaited together; one failure
        cancels the others."""
        futures = [f for a in args for f in (a if isinstance(a, list) else [a])
                   if isinstance(f, asyncio.Future)]  # fmt: skip
        results = dict(zip(map(id, futures), await gather_all(futures), strict=True))

        def joined(value: Any) -> Any:
            if isinstance(value, list):
                return RecordList(results.get(id(v), v) for v in value)
            return results.get(id(value), value)

        if len(args) == 1:
            return joined(args[0])
        return RecordList(joined(a) for a in args)

    # -- selection -----------------------------------------------------------------

    def _key(self, node: Node, scope: Scope, here: Path) -> Any:
        by_field, by = node.attrs.get("by_field"), node.region("by")
        if by_field is not None:

            async def key(i: int, item: Any) -> Any:
                return _field(item, by_field)

            return key
        assert by is not None

        async def key(i: int, item: Any) -> Any:
            return await self.lam(by, scope, (*here, i), item)

        return key

    async def op_vote(self, node: Node, args: list[Any], scope: Scope, here: Path) -> Any:
        key = self._key(node, scope, here)
        items = args[0]
        if isinstance(items, _FusedSample):
            s = items.node
            named = dict(zip(s.attrs["arg_names"], [items.scope[i] for i in s.inputs], strict=True))
            prepared = self.caller.prepare(s.attrs["agent"], named, items.path)
            samples = [self.caller.run(prepared, i) for i in range(s.attrs["n"])]
            return await vote_early(samples, key, self.trace, path_text(here))
        return await vote(_as_list(items, "vote"), key, self.trace, path_text(here))

    async def op_best(self, node: Node, args: list[Any], scope: Scope, here: Path) -> Any:
        key = self._key(node, scope, here)
        items = _as_list(args[0], "best")
        lowest = bool(node.attrs.get("lowest", False))
        return await best(items, key, self.trace, path_text(here), lowest=lowest)

    async def op_map(self, node: Node, args: list[Any], scope: Scope, here: Path) -> Any:
        each = node.region("each")
        assert each is not None
        items = _as_list(args[0], "map")
        return RecordList(
            await gather_all([self.lam(each, scope, (*here, j), x) for j, x in enumerate(items)])
        )

    # -- search and refinement -----------------------------------------------------

    async def _search(self, node: Node, scope: Scope, here: Path, width: int, fan: int) -> Any:
        expand, score = node.region("expand"), node.region("score")
        assert expand is not None and score is not None
        return await search(
            lambda state, at: self.lam(expand, scope, (*here, *at), state),
            lambda state, at: self.lam(score, scope, (*here, *at), state),
            width=width,
            branch=fan,
            depth=node.attrs["depth"],
            trace=self.trace,
            path=path_text(here),
            kind=node.op,
        )

    async def op_beam(self, node: Node, args: list[Any], scope: Scope, here: Path) -> Any:
        width = node.attrs["width"]
        return await self._search(node, scope, here, width, node.attrs.get("branch") or width)

    async def op_tree(self, node: Node, args: list[Any], scope: Scope, here: Path) -> Any:
        breadth = node.attrs["breadth"]
        return await self._search(node, scope, here, node.attrs.get("keep") or breadth, breadth)

    async def op_refine(self, node: Node, args: list[Any], scope: Scope, here: Path) -> Any:
        draft, critique, revise = (node.region(n) for n in ("draft", "critique", "revise"))
        stop = node.region("stop")
        assert draft is not None and critique is not None and revise is not None
        return await refine(
            lambda: self.lam(draft, scope, (*here, 0)),
            lambda d, r: self.lam(critique, scope, (*here, 1, r), d),
            lambda d, c, r: self.lam(revise, scope, (*here, 2, r), d, c),
            (lambda d, c, r: self.lam(stop, scope, (*here, 3, r), d, c)) if stop else None,
            node.attrs["rounds"],
            self.trace,
            path_text(here),
        )

    # -- control flow --------------------------------------------------------------

    async def op_if(self, node: Node, args: list[Any], scope: Scope, here: Path) -> Any:
        branch = node.regions[0] if truthy(args[0]) else node.regions[1]
        values = await self.region(branch, scope, (*here, 0 if truthy(args[0]) else 1), [])
        return Record(zip(node.attrs["carried"], values, strict=True))

    async def op_for(self, node: Node, args: list[Any], scope: Scope, here: Path) -> Any:
        body = node.region("body")
        assert body is not None
        carried = args[1:]
        for i, item in enumerate(_as_list(args[0], "for")):
            carried = await self.region(body, scope, (*here, i), [item, *carried])
        return Record(zip(node.attrs["carried"], carried, strict=True))

    async def op_repeat(self, node: Node, args: list[Any], scope: Scope, here: Path) -> Any:
        body = node.region("body")
        assert body is not None
        carried = args
        for i in range(node.attrs["count"]):
            carried = await self.region(body, scope, (*here, i), carried)
        return Record(zip(node.attrs["carried"], carried, strict=True))

    async def op_while(self, node: Node, args: list[Any], scope: Scope, here: Path) -> Any:
        cond, body = node.region("cond"), node.region("body")
        assert cond is not None and body is not None
        carried = args
        for i in range(node.attrs["max_iterations"]):
            if not truthy(await self.lam(cond, scope, (*here, i), *carried)):
                break
            carried = await self.region(body, scope, (*here, i), carried)
        return Record(zip(node.attrs["carried"], carried, strict=True))


def _fusable_samples(graph: Graph) -> set[int]:
    """`sample` nodes whose list only a `vote` in the same region uses: that vote runs
    exactly once per sample, so it may stop the samples early. (A vote inside a loop or
    a lambda over the list would re-run them.)"""
    uses: dict[int, list[Node | None]] = {}
    region_of: dict[int, int] = {}

    def visit(region: Region) -> None:
        for y in region.yields:
            uses.setdefault(y, []).append(None)  # yielded: used outside, never fused
        for node in region.nodes:
            region_of[node.id] = id(region)
            for i in node.inputs:
                uses.setdefault(i, []).append(node)
            for sub in node.regions:
                visit(sub)

    visit(graph.body)
    fused = set()
    for node in graph.nodes():
        users = uses.get(node.id, [])
        user = users[0] if len(users) == 1 else None
        same_region = user is not None and region_of[user.id] == region_of[node.id]
        if node.op == "sample" and same_region and user.op == "vote":
            fused.add(node.id)
    return fused


def _field(value: Any, name: str) -> Any:
    if isinstance(value, asyncio.Future):
        raise RunError(f"'.{name}' of a spawned call: join it first")
    if not isinstance(value, dict):
        raise RunError(f"'.{name}' needs a record, got {describe(value)}")
    if name not in value:
        raise RunError(f"the record has no field '{name}' (it has {', '.join(value)})")
    return value[name]


def _index(value: Any, index: Any) -> Any:
    if isinstance(value, dict):
        if not isinstance(index, str):
            raise RunError(f"a record index must be a string, got {describe(index)}")
        return _field(value, index)
    if not isinstance(value, list | str):
        raise RunError(f"indexing needs a list, string or record, got {describe(value)}")
    if isinstance(index, bool) or not isinstance(index, int):
        raise RunError(f"a list index must be an integer, got {describe(index)}")
    if not -len(value) <= index < len(value):
        raise RunError(f"index {index} is out of range for a length of {len(value)}")
    return value[index]


def _as_list(value: Any, what: str) -> list:
    if not isinstance(value, list):
        raise RunError(f"{what}() needs a list, got {describe(value)}")
    return value


def _located(exc: RunError, node: Node) -> RunError:
    message = str(exc)
    if node.span is None or message.startswith(str(node.span.file)):
        return exc
    return type(exc)(f"{node.span}: {message}")
