"""A property test: hypothesis drives random sequences of API calls against real containers and
checks the state table's invariants after each step."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, select

from drivers.network.namespace import list_netns, netns_name
from fsm import BerthError, Orchestrator, StartFailed, states
from models import Container, ContainerEvent, TransitionAudit
from tests.audit import assert_legal_chain

pytestmark = [pytest.mark.root, pytest.mark.slow]

COMMANDS = [["true"], ["sleep", "600"], ["sh", "-c", "exit 3"], ["/missing/binary"]]
SETTLED = {states.CREATED, states.EXITED, states.DEAD}


def check_invariants(orc: Orchestrator) -> None:
    with orc.db.engine.connect() as connection:
        rows = connection.execute(select(Container.id, Container.state, Container.version,
                                         Container.pid)).all()
        audit = connection.execute(select(TransitionAudit.container_id, TransitionAudit.trigger,
                                          TransitionAudit.source, TransitionAudit.dest)
                                   .order_by(TransitionAudit.id)).all()
        dies = dict(connection.execute(
            select(ContainerEvent.container_id, func.count())
            .where(ContainerEvent.action == "die").group_by(ContainerEvent.container_id)).all())
    chains: dict[str, list[tuple[str, str, str]]] = {}
    for container_id, trigger, source, dest in audit:
        chains.setdefault(container_id, []).append((trigger, source, dest))
    namespaces = set(list_netns())
    for container_id, state, version, pid in rows:
        chain = chains.get(container_id, [])
        # every committed change moved the version by one, from where the previous one ended
        assert version >= len(chain) + 1
        assert_legal_chain([(source, dest) for _, source, dest in chain], container_id)
        assert state not in states.IN_FLIGHT, (container_id, state)
        if state == states.RUNNING:
            assert pid
        if state in SETTLED:
            assert netns_name(container_id) not in namespaces
            assert not orc.paths(container_id).bundle.exists()
            endings = sum(1 for t, _, _ in chain if t in ("exit", "fail"))
            assert dies.get(container_id, 0) == endings


@pytest.mark.parametrize("steps", [10])
def test_random_api_sequences_keep_the_invariants(orc: Orchestrator, image: str,
                                                  steps: int) -> None:
    class Lifecycle(RuleBasedStateMachine):
        containers = Bundle("containers")

        @rule(target=containers, command=st.sampled_from(COMMANDS),
              network=st.sampled_from(["none", "bridge"]))
        def create(self, command: list[str], network: str) -> str:
            return orc.create(image, command, network_mode=network).id

        @rule(container=containers)
        def start(self, container: str) -> None:
            try:
                info = orc.start(container)
                assert info.state == states.RUNNING
            except StartFailed:
                assert orc.get(container).state == states.DEAD
            except BerthError:
                pass  # removed, dead, or already exited and restarted: all said clearly

        @rule(container=containers)
        def stop(self, container: str) -> None:
            try:
                assert orc.stop(container, timeout=0).state not in (states.RUNNING,
                                                                    states.STOPPING)
            except BerthError:
                pass

        @rule(container=containers)
        def remove(self, container: str) -> None:
            try:
                orc.remove(container, force=True)
            except BerthError:
                return
            assert all(c.id != container for c in orc.list(all=True))

        @invariant()
        def table_is_consistent(self) -> None:
            check_invariants(orc)

        def teardown(self) -> None:
            for container in orc.list(all=True):
                orc.remove(container.id, force=True)

    run_state_machine_as_test(
        Lifecycle,
        settings=settings(max_examples=6, stateful_step_count=steps, deadline=None,
                          suppress_health_check=list(HealthCheck)),
    )
