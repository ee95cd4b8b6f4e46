import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hive.runtime.engine.errors import KVCacheTooSmallError
from hive.runtime.engine.kv_pool import KVPool, PageAllocator, bytes_per_token, num_pages_for
from hive.runtime.engine.page_table import PageList, build_csr_page_table, qo_indptr


def test_allocator_hands_out_each_page_once():
    alloc = PageAllocator(10)
    a = alloc.allocate(4)
    b = alloc.allocate(6)
    assert sorted(a + b) == list(range(10))
    assert not alloc.can_allocate(1)
    alloc.free(a)
    assert alloc.num_free == 4
    assert sorted(alloc.allocate(4)) == sorted(a)


def test_allocator_rejects_double_free():
    alloc = PageAllocator(4)
    pages = alloc.allocate(2)
    alloc.free(pages)
    with pytest.raises(AssertionError):
        alloc.free(pages[:1])


def test_pool_layout_and_row_view():
    pool = KVPool(3, 5, 4, 2, 8, torch.float32, "cpu")
    assert pool.layers[0].shape == (5, 2, 4, 2, 8)
    k_row = pool.k_rows(torch.tensor([3]), torch.tensor([2]))
    pool.rows[1][k_row] = 1.0
    pool.rows[1][k_row + pool.page_size] = 2.0
    assert torch.all(pool.layers[1][3, 0, 2] == 1.0)
    assert torch.all(pool.layers[1][3, 1, 2] == 2.0)
    assert pool.layers[1].sum() == 16 * 1.0 + 16 * 2.0
    assert pool.capacity_tokens == 20


def test_pool_size_from_tokens_or_bytes():
    token_bytes = bytes_per_token(30, 3, 64, torch.float32)
    assert token_bytes == 2 * 30 * 3 * 64 * 4
    assert (
        num_pages_for(
            kv_cache_tokens=100, kv_cache_bytes=None, page_size=16, token_bytes=1, default_tokens=0
        )
        == 6
    )
    assert (
        num_pages_for(
            kv_cache_tokens=None,
            kv_cache_bytes=token_bytes * 64,
            page_size=1,
            token_bytes=token_bytes,
            default_tokens=0,
        )
        == 64
    )
    with pytest.raises(KVCacheTooSmallError):
        num_pages_for(
            kv_cache_tokens=3, kv_cache_bytes=None, page_size=4, token_bytes=1, default_tokens=0
        )


def test_csr_page_table_page_size_one():
    table = build_csr_page_table([[5, 2, 7], [1]], [3, 1], page_size=1)
    assert table.kv_indptr.tolist() == [0, 3, 4]
    assert table.kv_indices.tolist() == [5, 2, 7, 1]
    assert table.kv_last_page_len.tolist() == [1, 1]
    assert {t.dtype for t in table} == {torch.int32}


def test_csr_page_table_partial_last_pages():
    # 9 tokens in pages of 4 -> 3 pages, last holds 1; 8 tokens -> 2 full pages; extra
    # reserved pages beyond the KV length are not listed.
    table = build_csr_page_table([[4, 0, 9, 3], [6, 2, 8]], [9, 8], page_size=4)
    assert table.kv_indptr.tolist() == [0, 3, 5]
    assert table.kv_indices.tolist() == [4, 0, 9, 6, 2]
    assert table.kv_last_page_len.tolist() == [1, 4]


def test_qo_indptr():
    out = qo_indptr([1, 1, 5])
    assert out.tolist() == [0, 1, 2, 7] and out.dtype == torch.int32


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("extend"), st.lists(st.integers(0, 999), max_size=40)),
            st.tuples(st.just("replace"), st.lists(st.integers(0, 999), max_size=40)),
            st.tuples(st.just("reset"), st.lists(st.integers(0, 999), max_size=40)),
            st.tuples(st.just("sync"), st.just([])),
        ),
        max_size=30,
    )
)
def test_page_list_mirror_follows_every_edit(edits):
    pages = PageList()
    for op, arg in edits:
        if op == "extend":
            pages.extend(arg)
        elif op == "replace":
            pages.replace_prefix(arg[: len(pages)])
        elif op == "reset":
            pages.reset(arg)
        else:
            pages.tensor()
        assert pages.tensor().tolist() == pages.ids
        assert pages.tensor().dtype == torch.long


def test_csr_from_page_tensors_equals_from_lists():
    lists = [[4, 0, 9, 3], [6, 2, 8]]
    a = build_csr_page_table(lists, [9, 8], page_size=4)
    b = build_csr_page_table([torch.tensor(x) for x in lists], [9, 8], page_size=4)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
