"""Eviction policies for the radix cache, behind one small interface.

A policy ranks evictable radix nodes (unreferenced leaves): the node with
the smallest `key` goes first. Nodes carry what an agent-aware policy needs:
`last_access`, `hit_count`, `agent_ids` (the agents whose requests used the
node) and `priority` (the highest request priority that used it).
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from hive.runtime.engine.errors import EngineError

if TYPE_CHECKING:
    from hive.runtime.engine.radix_cache import TreeNode


class BaseEvictionPolicy(ABC):
    name: str = "base"

    @abstractmethod
    def key(self, node: TreeNode) -> Any:
        """Sort key of an evictable node; smaller keys are evicted first."""


class LRUPolicy(BaseEvictionPolicy):
    """Least recently used first."""

    name = "lru"

    def key(self, node: TreeNode) -> Any:
        return node.last_access


class LFUPolicy(BaseEvictionPolicy):
    """Least frequently used first; ties broken by recency."""

    name = "lfu"

    def key(self, node: TreeNode) -> Any:
        return (node.hit_count, node.last_access)


# name -> "module:Class"; imported on first use so later policies stay cheap to add.
EVICTION_POLICIES: dict[str, str] = {
    "lru": "hive.runtime.engine.eviction:LRUPolicy",
    "lfu": "hive.runtime.engine.eviction:LFUPolicy",
}


def make_eviction_policy(name: str) -> BaseEvictionPolicy:
    target = EVICTION_POLICIES.get(name)
    if target is None:
        known = ", ".join(sorted(EVICTION_POLICIES))
        raise EngineError(f"unknown eviction policy {name!r}; known: {known}")
    module_name, class_name = target.split(":")
    return getattr(importlib.import_module(module_name), class_name)()
