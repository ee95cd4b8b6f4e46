"""The plan's per-agent estimates reach every engine request of that agent."""

from fake_engine import FakeEngine

import hive
from hive.compiler import compile_spec
from hive.runtime import AgentPrior

SPEC = "specs/self_consistency.yaml"


def test_every_request_carries_its_agents_plan_estimate():
    engine = FakeEngine(lambda a, p, s: "Answer: 1" if a == "solver" else "no")
    hive.run(SPEC, {"question": "2+2?"}, engine=engine, seed=1)
    plan = compile_spec(SPEC)
    for request in engine.requests:
        p = plan.priorities.agents[request.agent_id]
        assert request.prior == AgentPrior(
            p.contribution, p.expected_calls, plan.priorities.expected_calls, p.max_calls
        )
    assert {r.agent_id for r in engine.requests} == {"solver", "checker"}
    solver = engine.requests[0].prior
    assert solver.call_interval is not None and solver.call_interval >= 1


def test_the_engines_a_plan_runs_on_use_the_workflow_policy_unless_told(monkeypatch):
    """The policy that reads the priors above is the default for plans' engines (the
    engine's own default, for requests without a plan, stays LRU)."""
    from hive.runtime import run as run_module
    from hive.runtime.engine.engine import Engine

    made = []
    monkeypatch.setattr(Engine, "from_pretrained", classmethod(lambda cls, m, **o: made.append(o)))
    run_module.make_engine("smollm2-135m")
    run_module.make_engine("smollm2-135m", eviction_policy="lru", admission="fcfs")
    assert made == [
        {"eviction_policy": "workflow"},
        {"eviction_policy": "lru", "admission": "fcfs"},
    ]
