"""The plan executor against a scripted engine: every spec, seeds, concurrency, bad input."""

import asyncio
import random
import re
import time
from pathlib import Path

import pytest
from fake_engine import FakeEngine, assert_declared_outputs

import hive
from hive.runtime.errors import InputError, RunError
from hive.runtime.run import arun, load

SPECS = sorted(Path(__file__).parents[2].joinpath("specs").glob("*.*"))


def universal_reply(agent, prompt, seed):
    """A reply every example spec can extract its fields from."""
    score = seed % 10
    return (
        f"Step {seed % 7}: thinking. Answer: {seed % 3}. Rating: {score}/10. Value: {score}. "
        f"VERDICT: APPROVE. Score: {score}. yes "
        f'{{"label": "{["spam", "ham"][seed % 2]}", "verdict": "yes", "score": {score}, '
        f'"approved": "APPROVED", "value": {score}, "rating": {score}}}'
    )


def inputs_for(plan):
    values = {}
    for name, decl in plan.spec.input_specs().items():
        values[name] = ["first chunk", "second chunk"] if decl.type.startswith("list") else "q"
    return values


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.name)
def test_every_example_runs_and_returns_its_declared_outputs(spec):
    plan = load(spec)
    engine = FakeEngine(universal_reply)
    result = hive.run(plan, inputs_for(plan), engine=engine, seed=7)
    assert_declared_outputs(plan, result.outputs)
    assert result.metrics["calls"] == len(engine.requests) > 0
    assert all(c.end >= c.start for c in result.calls)


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.name)
def test_a_fixed_seed_reproduces_the_run_whatever_the_timing(spec):
    plan = load(spec)
    jitter = random.Random(0)
    steady = hive.run(plan, inputs_for(plan), engine=FakeEngine(universal_reply), seed=3)
    shuffled = hive.run(
        plan,
        inputs_for(plan),
        engine=FakeEngine(universal_reply, delay=lambda *_: jitter.random() * 0.003),
        seed=3,
        early_stop=False,
    )
    assert steady.outputs == shuffled.outputs
    key = lambda r: sorted((c.agent, c.path, c.seed) for c in r.calls)  # noqa: E731
    if "sample" not in plan.spec.flow:  # a vote may stop early at different points
        assert key(steady) == key(shuffled)
    other = hive.run(plan, inputs_for(plan), engine=FakeEngine(universal_reply), seed=4)
    assert {c.seed for c in other.calls}.isdisjoint({c.seed for c in steady.calls})


def test_samples_of_a_call_get_consecutive_seeds_and_share_one_prompt():
    engine = FakeEngine(lambda a, p, s: "Answer: 1" if a == "solver" else "yes")
    hive.run("specs/self_consistency.yaml", {"question": "2+2?"}, engine=engine, seed=1)
    solver = [r for r in engine.requests if r.agent_id == "solver"][:8]
    seeds = [r.params.seed for r in solver]
    assert seeds == list(range(seeds[0], seeds[0] + 8))
    assert len({r.prompt[-1]["content"] for r in solver}) == 1
    assert solver[0].prompt[0] == {"role": "system", "content": "You are a careful math tutor."}
    assert "Question: 2+2?" in solver[0].prompt[-1]["content"]


def test_a_vote_over_samples_stops_early_and_cancels_what_cannot_change_it():
    def delay(agent, prompt, seed):
        return 0.0 if seed % 8 < 6 else 0.5  # two of the eight samples are slow

    seeds = {}

    def reply(agent, prompt, seed):
        return "Answer: 4" if agent == "solver" else "yes"

    engine = FakeEngine(reply, delay=lambda a, p, s: delay(a, p, s - seeds.setdefault(a, s)))
    result = hive.run("specs/self_consistency.yaml", {"question": "2+2?"}, engine=engine)
    vote_event = next(e for e in result.trace.events if e.kind == "vote")
    assert vote_event.detail["stopped_early"] and engine.cancelled == 2
    assert result.outputs["answer"] == "4"


def test_spawned_calls_run_concurrently():
    engine = FakeEngine(universal_reply, delay=lambda *_: 0.01)
    hive.run("specs/panel_vote.json", {"message": "win a prize"}, engine=engine)
    assert engine.max_running == 3


def test_map_runs_every_element_concurrently_and_keeps_the_order():
    engine = FakeEngine(lambda a, p, s: p.split("Chunk:")[-1].strip() if a == "reader" else "done",
                        delay=lambda a, p, s: 0.02 if "one" in p else 0.0)  # fmt: skip
    plan = load("specs/map_reduce.yaml")
    chunks = ["one", "two", "three"]
    result = hive.run(plan, {"question": "q", "chunks": chunks}, engine=engine)
    assert engine.max_running == 3
    assert result.outputs["notes"] == 3
    reducer_prompt = engine.prompts_of("reducer")[0]
    assert reducer_prompt.index("one") < reducer_prompt.index("two") < reducer_prompt.index("three")


def test_a_failing_call_in_a_spawn_group_names_its_agent_and_cancels_the_others():
    def reply(agent, prompt, seed):
        if agent == "lenient":
            return RunError("the engine rejected the request")
        return "Label: spam"

    engine = FakeEngine(reply, delay=lambda a, p, s: 0.0 if a == "lenient" else 5.0)

    async def go():
        return await asyncio.wait_for(
            arun("specs/panel_vote.json", {"message": "hello"}, engine=engine), timeout=2
        )

    with pytest.raises(RunError, match=r"agent 'lenient' \(message='hello'\)"):
        asyncio.run(go())
    assert engine.cancelled == 2


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({}, "missing input 'question' (string)"),
        ({"question": "q", "extra": 1}, "unknown input(s) extra"),
        ({"question": 5}, "input 'question' must be string, got 5"),
    ],
)
def test_bad_inputs_are_clear_errors(inputs, message):
    with pytest.raises(InputError, match=re.escape(message)):
        hive.run("specs/self_consistency.yaml", inputs, engine=FakeEngine(universal_reply))


def test_a_list_input_longer_than_declared_is_rejected():
    with pytest.raises(InputError, match="at most 16"):
        hive.run(
            "specs/map_reduce.yaml",
            {"question": "q", "chunks": ["c"] * 17},
            engine=FakeEngine(universal_reply),
        )


def write_spec(tmp_path, agents, flow, inputs="  q: string\n"):
    path = tmp_path / "s.yaml"
    path.write_text(f"hive: 1\nname: t\ninputs:\n{inputs}agents:\n{agents}flow: |\n{flow}")
    return path


def test_a_template_error_at_run_time_names_the_agent(tmp_path):
    spec = write_spec(
        tmp_path,
        "  a:\n    prompt: '{{ q.missing.deeper }}'\n",
        "  r = a(q)\n  return {t: r.text}\n",
    )
    with pytest.raises(RunError, match=r"s.yaml:\d+:\d+: agent 'a': prompt template"):
        hive.run(spec, {"q": "text"}, engine=FakeEngine(universal_reply))


def test_an_extraction_that_finds_nothing_is_null_and_recorded(tmp_path):
    spec = write_spec(
        tmp_path,
        "  a:\n    prompt: '{{ q }}'\n    extract:\n      n: {regex: 'N=(\\d+)', type: integer}\n"
        "      v: {json: verdict}\n",
        "  r = a(q)\n  return {n: r.n, v: r.v}\n",
    )
    result = hive.run(spec, {"q": "x"}, engine=FakeEngine(lambda *_: "no number {not json"))
    assert result.outputs == {"n": None, "v": None}
    (call,) = result.calls
    assert call.problems == [
        "field 'n': no match for regex 'N=(\\d+)'",
        "field 'v': the reply holds no JSON object",
    ]


def test_a_regex_that_backtracks_for_ever_times_out_to_a_null_field(tmp_path):
    """`(a|aa)+$` on a long run of a's backtracks exponentially: with `re` the call would
    never return and every other call would stall; the match stops after
    REGEX_TIMEOUT_S and the field is null, with the reason."""
    spec = write_spec(
        tmp_path,
        "  a:\n    prompt: '{{ q }}'\n    extract:\n      n: {regex: '(a|aa)+$', type: string}\n"
        "      m: {regex: 'a(a)', type: string}\n",
        "  r = a(q)\n  return {n: r.n, m: r.m}\n",
    )
    started = time.perf_counter()
    result = hive.run(spec, {"q": "x"}, engine=FakeEngine(lambda *_: "a" * 60 + "b"))
    assert time.perf_counter() - started < 30
    assert result.outputs == {"n": None, "m": "a"}  # the other field is still extracted
    (call,) = result.calls
    assert call.problems == [
        "field 'n': regex '(a|aa)+$' ran over 1 s on this reply (nested repetition that "
        "backtracks): simplify it"
    ]


def test_a_string_or_list_doubled_in_a_loop_is_bounded(tmp_path):
    """`s = s + s` 64 times would take all memory; past MAX_VALUE_SIZE it is an error."""

    def run(flow, q="x"):
        spec = write_spec(tmp_path, "  a:\n    prompt: '{{ q }}'\n", flow)
        return hive.run(spec, {"q": q}, engine=FakeEngine(echo))

    for init in ("q", "[q]"):
        with pytest.raises(RunError, match="'\\+' would make 1,048,576 characters or items"):
            run(f"  s = {init}\n  repeat 64:\n    s = s + s\n  return {{n: len(s)}}\n")
    with pytest.raises(RunError, match="concat\\(\\) would make"):
        run("  s = [q, q]\n  repeat 17:\n    s = s + s\n  return {t: concat(s, sep=', ')}\n", "xy")
    # A record of itself twice prints 2**n copies: its size counts them (found by review).
    with pytest.raises(RunError, match=r"a record would make [\d,]+ characters or items"):
        run("  r = {a: q, b: q}\n  repeat 40:\n    r = {a: r, b: r}\n  return {t: str(r)}\n")
    # Numbers count by their digits (2**1000 prints 302), and a list nested 1,200 deep (past
    # Python's recursion limit) is measured without recursion.
    with pytest.raises(RunError, match="'\\+' would make"):
        run(
            "  n = 1\n  repeat 1000:\n    n = n + n\n  s = [n]\n  repeat 12:\n    s = s + s\n"
            "  return {t: str(s)}\n"
        )
    flow = "  l = [q]\n  repeat 1200:\n    l = [l]\n  return {n: len(l)}\n"
    assert run(flow).outputs == {"n": 1}


def test_using_a_missing_field_as_a_number_fails_with_its_position(tmp_path):
    spec = write_spec(
        tmp_path,
        "  a:\n    prompt: '{{ q }}'\n    extract:\n      n: {regex: 'N=(\\d+)', type: integer}\n",
        "  r = a(q)\n  return {m: r.n + 1}\n",
    )
    with pytest.raises(RunError, match=r"s.yaml:\d+:\d+: '\+' needs numbers, got None"):
        hive.run(spec, {"q": "x"}, engine=FakeEngine(lambda *_: "nothing"))


def test_a_verifier_that_never_accepts_is_bounded():
    engine = FakeEngine(lambda a, p, s: "Answer: 3" if a == "solver" else "VERDICT: no")
    result = hive.run("specs/resample_verifier.yaml", {"question": "q"}, engine=engine)
    assert result.outputs == {"answer": "3", "accepted": False, "attempts": 6}
    assert len(engine.prompts_of("solver")) == 6


def test_hive_run_inside_an_event_loop_points_at_arun():
    async def go():
        hive.run(
            "specs/self_consistency.yaml", {"question": "q"}, engine=FakeEngine(universal_reply)
        )

    with pytest.raises(RunError, match="hive.arun"):
        asyncio.run(go())


def test_many_inputs_share_one_engine_concurrently():
    engine = FakeEngine(universal_reply, delay=lambda *_: 0.01)
    plan = load("specs/best_of_n.yaml")

    async def go():
        return await asyncio.gather(
            *(arun(plan, {"question": f"q{i}"}, engine=engine, seed=i) for i in range(3))
        )

    results = asyncio.run(go())
    assert len(results) == 3 and engine.max_running >= 12  # 3 runs x 4 samples at once


def echo(agent, prompt, seed):
    return f"{agent}: {prompt}"


def test_join_of_one_spawn_is_its_result_and_of_a_list_is_the_list(tmp_path):
    spec = write_spec(
        tmp_path,
        "  a:\n    prompt: 'A {{ q }}'\n",
        "  h = spawn a(q)\n  r = join(h)\n  hs = [spawn a(q=q + '1'), spawn a(q=q + '2')]\n"
        "  rs = join(hs)\n  both = join(h, hs)\n"
        "  return {one: r.text, many: [rs[0].text, rs[1].text], n: len(both)}\n",
    )
    result = hive.run(spec, {"q": "x"}, engine=FakeEngine(echo))
    assert result.outputs == {"one": "a: A x", "many": ["a: A x1", "a: A x2"], "n": 2}


def test_an_unjoined_spawn_handle_is_never_a_prompt_or_an_output(tmp_path):
    spec = write_spec(
        tmp_path,
        "  a:\n    prompt: 'A {{ q }}'\n  b:\n    prompt: 'B {{ x }}'\n",
        "  hs = [spawn a(q)]\n  r = b(x=hs)\n  return {t: r.text}\n",
    )
    with pytest.raises(RunError, match="join it first"):
        hive.run(spec, {"q": "x"}, engine=FakeEngine(echo))


def test_a_vote_in_a_loop_over_samples_made_once_does_not_resample(tmp_path):
    spec = write_spec(
        tmp_path,
        "  s:\n    prompt: 'S {{ q }}'\n    extract: {answer: '(\\d)'}\n",
        "  votes = sample s(q) x 4\n  w = ''\n  repeat 3:\n    w = vote(votes, by=answer).answer\n"
        "  return {w: w}\n",
    )
    engine = FakeEngine(lambda a, p, s: "7")
    assert hive.run(spec, {"q": "x"}, engine=engine).outputs == {"w": "7"}
    assert len(engine.requests) == 4


def test_strings_and_records_can_be_indexed(tmp_path):
    spec = write_spec(
        tmp_path,
        "  a:\n    prompt: 'A {{ q }}'\n",
        "  r = a(q)\n  return {c: q[0], t: r['text'], last: q[-1]}\n",
    )
    result = hive.run(spec, {"q": "xyz"}, engine=FakeEngine(echo))
    assert result.outputs == {"c": "x", "t": "a: A xyz", "last": "z"}


def test_every_lambda_call_has_its_own_seed_and_path():
    engine = FakeEngine(lambda a, p, s: "Answer: 3" if a == "solver" else "VERDICT: no")
    result = hive.run("specs/resample_verifier.yaml", {"question": "q"}, engine=engine)
    verifier = [c for c in result.calls if c.agent == "verifier"]
    assert len(verifier) == 6 and len({c.seed for c in verifier}) == 6
    beam = hive.run("specs/beam_search.yaml", {"problem": "p"}, engine=FakeEngine(universal_reply))
    for agent in ("stepper", "rater"):
        calls = [c for c in beam.calls if c.agent == agent]
        assert len({c.path for c in calls}) == len(calls) == len({c.seed for c in calls})


def test_templates_render_null_and_booleans_as_flow_text(tmp_path):
    spec = write_spec(
        tmp_path,
        "  a:\n    prompt: 'A {{ q }}'\n    extract:\n      n: {regex: 'N=(\\d+)', type: integer}\n"
        "      ok: {regex: '(yes|no)', type: boolean}\n"
        "  b:\n    prompt: 'n=[{{ n }}] ok=[{{ ok }}]'\n",
        "  r = a(q)\n  s = b(n=r.n, ok=r.ok)\n  return {t: s.text}\n",
    )
    engine = FakeEngine(lambda a, p, s: "yes" if a == "a" else p)
    assert hive.run(spec, {"q": "x"}, engine=engine).outputs == {"t": "n=[] ok=[true]"}


def test_non_finite_numbers_are_rejected(tmp_path):
    spec = write_spec(
        tmp_path, "  a:\n    prompt: 'A {{ n }}'\n", "  r = a(n=n)\n  return {x: n * n}\n",
        inputs="  n: number\n",
    )  # fmt: skip
    with pytest.raises(InputError, match="finite"):
        hive.run(spec, {"n": float("nan")}, engine=FakeEngine(echo))
    with pytest.raises(RunError, match="overflowed"):
        hive.run(spec, {"n": 1e308}, engine=FakeEngine(echo))


def test_a_prompt_template_cannot_build_a_gigabyte_prompt(tmp_path):
    spec = write_spec(tmp_path, "  a:\n    prompt: '{{ q * 1000000000 }}'\n",
                      "  r = a(q)\n  return {t: r.text}\n")  # fmt: skip
    with pytest.raises(RunError, match="prompt template failed: '\\*' would make"):
        hive.run(spec, {"q": "ab"}, engine=FakeEngine(echo))


def test_a_prompt_template_cannot_loop_for_hours(tmp_path):
    loops = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    spec = write_spec(tmp_path, f"  a:\n    prompt: '{loops}{{{{ q }}}}'\n",
                      "  r = a(q)\n  return {t: r.text}\n")  # fmt: skip
    with pytest.raises(RunError, match="prompt template failed: the template ran over its budget"):
        hive.run(spec, {"q": "ab"}, engine=FakeEngine(echo))


def test_integers_are_bounded_like_numbers(tmp_path):
    """Integers stay below 2**1023, within the range of numbers: squaring one past it is an error at once,
    not a value that takes minutes and gigabytes to compute."""
    spec = write_spec(
        tmp_path, "  a:\n    prompt: 'A {{ n }}'\n",
        "  x = n\n  repeat 30:\n    x = x * x\n  r = a(n=x)\n  return {x: x}\n",
        inputs="  n: integer\n",
    )  # fmt: skip
    with pytest.raises(RunError, match="'\\*' overflowed"):
        hive.run(spec, {"n": 10}, engine=FakeEngine(echo))
    with pytest.raises(InputError, match="integers below 2\\*\\*1023"):
        hive.run(spec, {"n": 2**1100}, engine=FakeEngine(echo))
    with pytest.raises(InputError, match="an integer of 20,001 bits"):
        hive.run(spec, {"n": 2**20000}, engine=FakeEngine(echo))
    with pytest.raises(RunError, match="'\\*' overflowed"):  # the largest integer still goes in
        hive.run(spec, {"n": 2**1023 - 1}, engine=FakeEngine(echo))


def test_an_input_nested_too_deep_or_too_large_is_refused(tmp_path):
    """The checks and the printing of values recurse: an input nested 500 deep was a bare
    RecursionError (found by review)."""
    spec = write_spec(
        tmp_path, "  a:\n    prompt: '{{ x }}'\n", "  r = a(x=x)\n  return {t: r.text}\n",
        inputs="  x: any\n",
    )  # fmt: skip
    deep: object = 1
    for _ in range(500):
        deep = [deep]
    with pytest.raises(InputError, match="nests deeper than 100 lists or records"):
        hive.run(spec, {"x": deep}, engine=FakeEngine(echo))
    with pytest.raises(InputError, match="holds over 1,000,000 characters or items"):
        hive.run(spec, {"x": ["x" * 1000] * 1001}, engine=FakeEngine(echo))
    assert hive.run(spec, {"x": [[1, 2], {"a": [3]}]}, engine=FakeEngine(echo)).outputs


def test_a_flow_list_knows_the_size_a_walk_would_give():
    from hive.compiler.types import value_size
    from hive.runtime.values import RecordList, binop

    items = RecordList(["ab", {"k": "v"}])
    items.known_size = value_size(list(items))
    for i in range(50):
        items = binop("+", items, [f"x{i}", [i, [2**100]]])
    assert items.known_size == value_size(list(items)) == value_size(items)
