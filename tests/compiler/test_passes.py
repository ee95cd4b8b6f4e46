"""Each pass on small flows: what it found, and that the IR still verifies."""

from __future__ import annotations

import pytest

from hive.compiler.ir import verify

HEADER = """
hive: 1
name: t
inputs:
  q: string
  items: {type: "list[string]", max_items: 5}
agents:
  a:
    system: You are agent A, a careful assistant that answers briefly.
    prompt: "A: {{ q }}"
    extract: {n: {regex: '(\\d+)', type: number}, word: '(\\w+)'}
  b:
    system: You are agent A, a careful assistant that answers briefly.
    prompt: "B: {{ q }}"
  c:
    system: Something else entirely, no sharing here.
    prompt: "C: {{ x }}"
"""


def flow(body: str) -> str:
    return HEADER + "flow: |\n" + "".join(f"  {line}\n" for line in body.strip().splitlines())


@pytest.fixture
def plan(compile_text):
    def run(body: str):
        p = compile_text(flow(body))
        verify(p.graph)
        return p

    return run


def cache_scopes(p):
    nodes = p.graph.node_map()
    return sorted((nodes[c.target].agent, c.scope, c.max_paths) for c in p.graph.cache_nodes)


# -- logits_cache ---------------------------------------------------------------


def test_sample_and_resample_get_cache_nodes(plan):
    p = plan("""
s = sample a(q) x 6
r = resample b(q) until _.text == "ok" max 3
y = c(x=q)
return {s: s, r: r, y: y}
""")
    assert cache_scopes(p) == [("a", "samples", 6), ("b", "resample", 3)]
    key = p.graph.cache_nodes[0].key
    assert (
        key[0] == "model=smollm2-135m" and key[1] == "prompt=a(q)" and "temperature=0.7" in key[2]
    )


def test_agent_logits_cache_setting_sets_the_mode_or_removes_the_node(compile_text):
    text = flow("""
s = sample a(q) x 6
r = resample b(q) until _.text == "ok" max 3
return {s: s, r: r}
""")
    text = text.replace(
        'prompt: "A: {{ q }}"', 'prompt: "A: {{ q }}"\n    sampling: {logits_cache: hotspot}'
    )
    text = text.replace(
        'prompt: "B: {{ q }}"', 'prompt: "B: {{ q }}"\n    sampling: {logits_cache: "off"}'
    )
    p = compile_text(text)
    assert [(c.scope, c.mode) for c in p.graph.cache_nodes] == [("samples", "hotspot")]


def test_vote_over_identical_calls_marks_candidates(plan):
    p = plan("""
v = vote([a(q), a(q), a(q)], by=word)
w = vote([a(q), b(q)], by=text)
return v
""")
    assert cache_scopes(p) == [("a", "candidates", 3)] * 3


def test_loop_invariant_call_is_marked_but_loop_dependent_is_not(plan):
    p = plan("""
acc = ""
repeat 4:
    same = a(q)
    acc = acc + same.text
for it in items:
    varies = c(x=it)
return acc
""")
    assert cache_scopes(p) == [("a", "loop", 4)]


def test_search_expansions_are_marked(plan):
    p = plan("""
r = beam(expand=c(x=_.text), score=a(q).n, width=2, branch=3, depth=2)
t = tree(expand=c(x=_.text), score=a(q).n, breadth=4, depth=2)
return [r, t]
""")
    assert cache_scopes(p) == [("c", "expansion", 3), ("c", "expansion", 4)]


def test_single_greedy_call_is_not_marked(plan):
    assert plan("return a(q)").graph.cache_nodes == []


# -- priorities -----------------------------------------------------------------


def test_call_bounds_for_every_construct(plan):
    p = plan("""
s = sample a(q) x 4
r = resample b(q) until _.text == "y" max 3
m = map(items, c(x=_))
if len(m) > 2:
    z = c(x=q)
    z = c(x=q)
else:
    z = a(q)
return {s: s, r: r, z: z}
""")
    agents = p.priorities.agents
    assert agents["a"].max_calls == 4 + 1
    assert agents["b"].max_calls == 3
    assert agents["c"].max_calls == 5 + 2
    assert p.priorities.max_calls == 4 + 3 + 5 + 2  # the larger branch only
    # resample: success probability 1/2 per attempt -> 2 (1 - 2^-3) expected attempts
    assert agents["b"].expected_calls == pytest.approx(1.75)
    # if: each branch half the time
    assert agents["a"].expected_calls == pytest.approx(4.5)
    assert agents["c"].expected_calls == pytest.approx(6.0)


def test_search_and_refine_bounds(plan):
    p = plan("""
r = beam(expand=c(x=_.text), score=a(q).n, width=2, branch=3, depth=3)
return r
""")
    expansions = 3 + 2 * 2 * 3  # first level from one state, then width x branch per level
    assert p.priorities.agents["c"].max_calls == expansions
    assert p.priorities.agents["a"].max_calls == expansions
    p = plan("""
t = tree(expand=c(x=_.text), score=a(q).n, breadth=3, keep=2, depth=3)
return t
""")
    assert p.priorities.agents["c"].max_calls == 3 + 2 * 2 * 3
    p = plan("""
f = refine(a(q), critique=c(x=_.text), revise=b(q), rounds=2)
return f
""")
    assert [p.priorities.agents[n].max_calls for n in "abc"] == [1, 2, 2]


def test_critical_path_and_stages(plan):
    p = plan("""
first = a(q)
side = c(x=q)
second = b(q=first.text)
return second
""")
    agents = p.priorities.agents
    assert agents["a"].critical and agents["b"].critical
    assert not agents["c"].critical
    assert agents["a"].stages == [0] and agents["b"].stages == [1] and agents["c"].stages == [0]
    assert p.priorities.order == ["a", "c", "b"]
    assert p.priorities.critical_path_rounds == 2


def test_stages_repeat_in_loops_for_next_use(plan):
    p = plan("""
x = q
repeat 3:
    x = a(q=x).text
    x = b(q=x).text
return x
""")
    assert p.priorities.agents["a"].stages == [0, 2, 4]
    assert p.priorities.agents["b"].stages == [1, 3, 5]


def test_fan_in_fan_out(plan):
    p = plan("""
x = a(q)
y = b(q=x.text)
z = c(x=y.text + x.text)
return z
""")
    agents = p.priorities.agents
    assert (agents["a"].fan_in, agents["a"].fan_out) == (0, 2)
    assert (agents["b"].fan_in, agents["b"].fan_out) == (1, 1)
    assert (agents["c"].fan_in, agents["c"].fan_out) == (2, 0)


def test_contributions_sum_to_one_and_follow_calls(plan):
    p = plan("""
s = sample a(q) x 8
y = b(q=s[0].text)
return y
""")
    agents = p.priorities.agents
    assert sum(x.contribution for x in agents.values()) == pytest.approx(1.0, abs=1e-3)
    assert agents["a"].contribution > agents["b"].contribution > agents["c"].contribution == 0


# -- prefixes -------------------------------------------------------------------


def test_agents_sharing_a_system_prompt_share_a_prefix_group(plan):
    p = plan("""
x = a(q)
y = b(q)
z = c(x=q)
return [x, y, z]
""")
    groups = {tuple(g.agents): g for g in p.prefix_groups}
    shared = groups[("a", "b")]
    system = "You are agent A, a careful assistant that answers briefly."
    assert shared.shared_chars == len(system) + 1  # the system prompt and the turn separator
    assert groups[("c",)].shared_chars == len(
        "Something else entirely, no sharing here."
    ) + 1 + len("C: ")
    assert sorted(shared.calls) == sorted(n.id for n in p.graph.nodes() if n.agent in ("a", "b"))


# -- resolve: types -------------------------------------------------------------


def test_combinator_result_types(plan):
    p = plan("""
v = vote(sample a(q) x 3, by=word)
b1 = best(sample a(q) x 3, by=n)
r = resample a(q) until _.n > 2 max 2
h = spawn a(q)
one = join(h)
two = join(spawn b(q), spawn b(q))
return {v: v.votes, b: b1.score, r: r.attempts, one: one.word, two: two[1].text}
""")
    ret = next(n for n in p.graph.body.nodes if n.op == "return")
    assert str(ret.type) == "{v: integer, b: number, r: integer, one: string, two: string}"


def test_nested_loops_keep_the_schedule_bounded(plan):
    p = plan("""
x = q
repeat 8:
    repeat 8:
        repeat 8:
            x = a(q=x).text
return x
""")
    a = p.priorities.agents["a"]
    assert a.max_calls == 512
    assert a.stages == list(range(256))  # one stage per dependent call, capped at MAX_STAGES


def test_flow_with_too_many_calls_is_rejected(compile_text):
    from hive.compiler import SpecError

    with pytest.raises(SpecError, match="may make 16,777,216 agent calls; the limit is 1,000,000"):
        compile_text(
            flow("""
x = q
repeat 64:
    repeat 64:
        repeat 64:
            repeat 64:
                x = a(q=x).text
return x
""")
        )


def test_cache_marks_need_one_context(plan):
    p = plan("""
r = a(q)
same_call_listed = vote([r, r, r], by=text)
swapped = vote([c(x=q), c(x=r.text)], by=text)
repeat 2:
    inner = resample b(q) until a(q=_.text).word == "ok" max 3
return 1
""")
    # One call listed three times is not three samples; calls with different arguments
    # are different contexts; a call over the loop's resample candidate `_` changes.
    assert cache_scopes(p) == [("b", "resample", 3)]


def test_lists_grown_in_a_loop_get_the_bound_of_the_last_iteration(plan):
    p = plan("""
acc = []
repeat 3:
    acc = acc + [a(q)]
for r in acc:
    c(x=r.text)
return len(acc)
""")
    loop = next(n for n in p.graph.body.nodes if n.op == "repeat")
    assert str(loop.type) == "{acc: list[{text: string, n: number, word: string}]<=3}"
    assert p.priorities.agents["c"].max_calls == 3


def test_list_growing_faster_than_linearly_is_unbounded(compile_text):
    from hive.compiler import SpecError

    with pytest.raises(SpecError, match="for over a list of unknown length is unbounded"):
        compile_text(
            flow("""
xs = [1]
repeat 3:
    xs = xs + xs
for v in xs:
    a(q)
return 1
""")
        )


def test_loop_body_is_typed_with_what_later_iterations_see(compile_text):
    from hive.compiler import SpecError

    # On the second iteration `r` is b's result, which has no field `n`.
    with pytest.raises(SpecError, match="has no field 'n'"):
        compile_text(
            flow("""
r = a(q)
repeat 2:
    s = c(x=str(r.n))
    r = b(q)
return s
""")
        )


def test_refine_rounds_are_typed_with_revised_drafts(compile_text):
    from hive.compiler import SpecError

    with pytest.raises(SpecError, match="has no field 'n'"):
        compile_text(
            flow("""
d = refine(a(q), critique=c(x=str(_.n)), revise=b(q=_critique.text), rounds=2)
return d
""")
        )
