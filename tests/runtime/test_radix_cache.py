import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hive.runtime.engine.errors import EngineError
from hive.runtime.engine.eviction import LFUPolicy, LRUPolicy, make_eviction_policy
from hive.runtime.engine.kv_pool import PageAllocator
from hive.runtime.engine.radix_cache import RadixCache


def make(num_pages=64, page_size=1, policy=None):
    alloc = PageAllocator(num_pages)
    return alloc, RadixCache(alloc, page_size, policy)


def cache_seq(alloc, cache, tokens):
    """Insert `tokens` the way a finished request does; return pages it left owned."""
    ps = cache.page_size
    match = cache.match_prefix(tokens)
    pages = list(match.page_ids) + alloc.allocate(-(-(len(tokens) - match.num_tokens) // ps))
    existing = cache.insert(tokens, pages)
    alloc.free(pages[match.num_tokens // ps : existing // ps])
    full = len(tokens) - len(tokens) % ps
    alloc.free(pages[full // ps :])


def check(alloc, cache):
    pages = cache.all_page_ids()
    assert len(pages) == len(set(pages)) == cache.num_pages
    assert not set(pages) & alloc.free_page_ids()
    assert len(pages) + alloc.num_free == alloc.num_pages
    assert all(n.ref_count >= 0 for n in cache.nodes())


def test_match_insert_and_split():
    alloc, cache = make()
    cache_seq(alloc, cache, [1, 2, 3, 4, 5])
    match = cache.match_prefix([1, 2, 3, 9])
    assert match.num_tokens == 3 and len(match.page_ids) == 3
    cache_seq(alloc, cache, [1, 2, 3, 9, 9])
    assert cache.match_prefix([1, 2, 3, 4, 5, 6]).num_tokens == 5
    assert cache.match_prefix([1, 2, 3, 9, 9]).num_tokens == 5
    assert cache.match_prefix([7]).num_tokens == 0
    check(alloc, cache)
    assert cache.num_pages == 7  # 1,2,3 shared + 4,5 + 9,9


def test_insert_reports_already_cached_prefix():
    alloc, cache = make()
    pages = alloc.allocate(4)
    assert cache.insert([1, 2, 3, 4], pages) == 0
    dup = alloc.allocate(5)
    assert cache.insert([1, 2, 3, 4, 5], dup) == 4  # caller frees dup[:4]
    alloc.free(dup[:4])
    check(alloc, cache)


def test_locked_nodes_are_not_evicted():
    alloc, cache = make()
    cache_seq(alloc, cache, [1, 2, 3])
    cache_seq(alloc, cache, [4, 5, 6])
    match = cache.match_prefix([1, 2, 3])
    cache.lock(match.node)
    assert cache.evict(100) == 3
    assert cache.match_prefix([1, 2, 3]).num_tokens == 3
    assert cache.match_prefix([4, 5, 6]).num_tokens == 0
    cache.unlock(match.node)
    assert cache.evict(100) == 3
    check(alloc, cache)
    with pytest.raises(AssertionError):
        cache.unlock(match.node)


def test_lru_evicts_least_recent_first():
    alloc, cache = make(policy=LRUPolicy())
    for seq in ([1, 1], [2, 2], [3, 3]):
        cache_seq(alloc, cache, seq)
    cache.match_prefix([1, 1])  # touch the oldest
    cache.evict(2)
    assert cache.match_prefix([1, 1]).num_tokens == 2
    assert cache.match_prefix([2, 2]).num_tokens == 0


def test_lfu_evicts_least_frequent_first():
    alloc, cache = make(policy=LFUPolicy())
    for seq in ([1, 1], [2, 2], [3, 3]):
        cache_seq(alloc, cache, seq)
    for _ in range(3):
        cache.match_prefix([2, 2])
    cache.match_prefix([3, 3])
    cache.evict(4)
    assert cache.match_prefix([2, 2]).num_tokens == 2
    assert cache.match_prefix([1, 1]).num_tokens == 0


@pytest.mark.parametrize("page_size", [1, 2])
def test_eviction_takes_only_the_pages_needed_from_the_tail_of_a_leaf(page_size):
    alloc, cache = make(page_size=page_size)
    tokens = list(range(1, 13))
    cache_seq(alloc, cache, tokens)
    assert cache.evict(2) == 2  # of 12 // page_size pages
    kept = len(tokens) - 2 * page_size
    assert cache.match_prefix(tokens).num_tokens == kept  # the head is still a hit
    assert cache.num_pages == kept // page_size
    check(alloc, cache)
    # The next victim in LRU order gives its tail first, the older leaf its whole self.
    cache_seq(alloc, cache, [50] * (2 * page_size))
    assert cache.evict(kept // page_size + 1) == kept // page_size + 1
    assert cache.match_prefix(tokens).num_tokens == 0
    assert cache.match_prefix([50] * (2 * page_size)).num_tokens == page_size
    check(alloc, cache)


def test_nodes_record_agents_and_priority():
    alloc, cache = make()
    pages = alloc.allocate(3)
    cache.insert([1, 2, 3], pages, agent_id="solver", priority=2)
    match = cache.match_prefix([1, 2], agent_id="checker", priority=1)
    assert match.node.agent_ids == {"solver", "checker"}
    assert match.node.priority == 2


def test_page_granularity_matches_whole_pages_only():
    alloc, cache = make(page_size=4)
    cache_seq(alloc, cache, list(range(10)))  # 2 whole pages cached, partial freed
    assert cache.num_pages == 2
    assert cache.match_prefix(list(range(10))).num_tokens == 8
    assert cache.match_prefix(list(range(7))).num_tokens == 4
    assert cache.match_prefix([0, 1, 2, 3, 4, 5, 99, 7]).num_tokens == 4
    check(alloc, cache)


def test_unknown_policy_is_a_hive_error():
    with pytest.raises(EngineError, match="known: agent, lfu, lru"):
        make_eviction_policy("belady")


@settings(max_examples=60, deadline=None)
@given(
    ops=st.lists(
        st.tuples(
            st.sampled_from(["insert", "lock", "evict"]),
            st.lists(st.integers(0, 3), min_size=1, max_size=12),
        ),
        max_size=40,
    ),
    page_size=st.sampled_from([1, 2, 4]),
)
def test_random_operations_keep_invariants(ops, page_size):
    alloc, cache = make(num_pages=48, page_size=page_size)
    locks = []
    for op, tokens in ops:
        if op == "insert":
            need = -(-len(tokens) // page_size)
            if alloc.num_free < need:
                cache.evict(need - alloc.num_free)
            if alloc.num_free >= need:
                cache_seq(alloc, cache, tokens)
        elif op == "lock":
            match = cache.match_prefix(tokens)
            cache.lock(match.node)
            locks.append(match.node)
        else:
            freed = cache.evict(len(tokens))
            # Exactly what was asked, unless every unlocked page is gone.
            stuck = all(n.ref_count > 0 or n.children for n in cache.nodes())
            assert freed == len(tokens) or (freed < len(tokens) and stuck)
        check(alloc, cache)
    for node in locks:
        cache.unlock(node)
    cache.evict(10**6)
    check(alloc, cache)
    assert cache.num_pages == 0 and alloc.num_free == 48
