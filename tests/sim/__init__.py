"""A GitHub REST API simulator for keysweep's worker tests, ``make run`` and benchmarks.

Run it as a process (``python -m tests.sim --port 0 --port-file FILE``) or from
tests with ``tests.sim.fixture.start_sim`` / the ``github_sim`` fixture. See
``tests/sim/README.md`` for the endpoints and the control API.
"""
