"""The fault bench's short version: the whole deployment (real worker processes per
queue and beat under a supervisor, Redis with AOF, the key service, the simulator,
alert receivers) through every fault scenario for seconds, on every broker keysweep
supports. Each scenario must lose nothing, do nothing twice, send no GitHub request
before it is allowed, and leave no planted key in cleartext anywhere it wrote.
``python bench/faults.py --quick`` runs the same scenarios longer and prints figures."""

from __future__ import annotations

import pytest

from tests.helpers import load_bench

faults = load_bench("faults")

# RabbitMQ: the scenarios where the broker is what is faulted or what redelivers; the
# others exercise Redis state, GitHub and the key service, the same on either broker.
SCENARIOS = {
    "redis": list(faults.SCENARIOS),
    "rabbitmq": ["baseline", "sigkill", "redis-restart"],
}


@pytest.mark.timeout(600)
@pytest.mark.parametrize("broker", ["redis", "rabbitmq"])
def test_every_fault_scenario_loses_nothing_and_does_nothing_twice(
    broker: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert broker == "redis" or faults.rabbitmq_answers(), "RabbitMQ must answer on :5672"
    results = faults.run_broker(broker, SCENARIOS[broker], faults.TEST, echo=False)
    with capsys.disabled():
        print()
        for r in results:
            print(r.line())
    assert [r.scenario for r in results] == SCENARIOS[broker]
    for r in results:
        assert r.planted > 0, r.line()
        assert (r.lost, r.unalerted, r.revoked_twice, r.alerted_twice, r.early, r.cleartext) == (
            0,
            0,
            0,
            0,
            0,
            0,
        ), r.line()
        assert r.revoked == r.planted
