"""Test-time-scaling supervisors.

Each is a small async function over callables (sample, score, expand,
critique, ...), so its logic is tested exactly against scripted results,
without a model; the interpreter binds the callables to flow regions and
agent calls. Each records its decisions in the run's trace.
"""
