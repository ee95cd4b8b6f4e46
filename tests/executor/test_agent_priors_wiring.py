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
