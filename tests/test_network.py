"""Bridge networking, links, and restart policies: the rest of containerStart."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from drivers.network.bridge import list_veths, veth_name
from drivers.network.namespace import list_netns, netns_name
from fsm import InvalidState, Orchestrator
from models import Endpoint

pytestmark = pytest.mark.root


def _endpoints(orc: Orchestrator) -> int:
    with orc.db.engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(Endpoint)).scalar_one())


def _wait_for(condition, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met before the deadline"
        time.sleep(0.05)


def test_two_containers_on_the_bridge_reach_each_other(orc: Orchestrator, image: str) -> None:
    server = orc.create(image, ["sleep", "600"], name="server")
    orc.start(server.id)
    server_ip = orc.host.network.address_of(server.id)
    assert server_ip is not None
    client = orc.create(image, ["ping", "-c", "1", "-W", "5", server_ip])
    orc.start(client.id)
    assert orc.wait(client.id, timeout=60) == 0, orc.log_text(client.id)
    assert "1 packets received" in orc.log_text(client.id)
    orc.stop(server.id, timeout=0)
    assert _endpoints(orc) == 0
    ids = {server.id, client.id}
    assert not {netns_name(i) for i in ids} & set(list_netns())
    assert not {veth_name(i) for i in ids} & set(list_veths())


def test_default_network_mode_is_the_bridge_with_a_mac_derived_from_the_ip(
    orc: Orchestrator, image: str
) -> None:
    c = orc.create(image, ["sh", "-c", "ip -o addr show eth0; cat /sys/class/net/eth0/address; "
                                       "ip route"])
    orc.start(c.id)
    ip = orc.host.network.address_of(c.id)
    assert orc.wait(c.id, timeout=60) == 0
    output = orc.log_text(c.id)
    assert ip is not None and f"inet {ip}/16" in output
    assert "02:42:" + ":".join(f"{int(b):02x}" for b in ip.split(".")) in output
    assert f"default via {orc.host.network.gateway}" in output


def test_a_linked_container_sees_link_variables_and_reaches_the_alias(
    orc: Orchestrator, image: str
) -> None:
    db = orc.create(image, ["sleep", "600"], name="db", env={"POSTGRES_USER": "app"},
                    exposed_ports=["5432/tcp"])
    orc.start(db.id)
    db_ip = orc.host.network.address_of(db.id)
    app = orc.create(image, ["sh", "-c", "env | grep ^DATABASE_ | sort; ping -c1 -W5 database"],
                     name="app", links=["db:database"])
    orc.start(app.id)
    assert orc.wait(app.id, timeout=60) == 0, orc.log_text(app.id)
    env = dict(line.split("=", 1) for line in orc.log_text(app.id).splitlines()
               if line.startswith("DATABASE_"))
    assert env == {
        "DATABASE_NAME": "/app/database",
        "DATABASE_PORT": f"tcp://{db_ip}:5432",
        "DATABASE_PORT_5432_TCP": f"tcp://{db_ip}:5432",
        "DATABASE_PORT_5432_TCP_ADDR": str(db_ip),
        "DATABASE_PORT_5432_TCP_PORT": "5432",
        "DATABASE_PORT_5432_TCP_PROTO": "tcp",
        "DATABASE_ENV_POSTGRES_USER": "app",
    }
    orc.stop(db.id, timeout=0)
    assert _endpoints(orc) == 0


def test_link_to_a_stopped_container_is_refused_before_anything_happens(
    orc: Orchestrator, image: str
) -> None:
    orc.create(image, ["true"], name="db", network_mode="none")
    with pytest.raises(InvalidState, match="start it before"):
        orc.create(image, ["true"], links=["db:database"])
    assert len(orc.list(all=True)) == 1


def test_joining_another_containers_network(orc: Orchestrator, image: str) -> None:
    server = orc.create(image, ["sleep", "600"], network_mode="none", name="pod")
    orc.start(server.id)
    joined = orc.create(image, ["ls", "/sys/class/net"], network_mode="container:pod")
    orc.start(joined.id)
    assert orc.wait(joined.id, timeout=60) == 0
    assert orc.log_text(joined.id).split() == ["lo"]
    orc.stop(server.id, timeout=0)


@pytest.mark.slow
def test_fifty_start_and_remove_cycles_leave_nothing(orc: Orchestrator, image: str) -> None:
    for _ in range(50):
        c = orc.create(image, ["true"])
        orc.start(c.id)
        assert orc.wait(c.id, timeout=60) == 0, (orc.get(c.id), orc.history(c.id))
        orc.remove(c.id)
    assert _endpoints(orc) == 0
    assert orc.list(all=True) == []


def test_on_failure_restarts_exactly_max_times(orc: Orchestrator, image: str,
                                               root: Path) -> None:
    c = orc.create(image, ["sh", "-c", "exit 1"], network_mode="none",
                   restart_policy="on-failure:3")
    orc.start(c.id)
    _wait_for(lambda: orc.get(c.id).restart_count == 3 and orc.get(c.id).state == "exited")
    from tests.hostcheck import processes_for

    _wait_for(lambda: not processes_for(root, [c.id]))  # the last exit hook has decided
    final = orc.get(c.id)
    assert (final.state, final.exit_code, final.restart_count) == ("exited", 1, 3)
    assert len(orc.events(container=c.id, actions=["restart"])) == 3
    assert len(orc.events(container=c.id, actions=["die"])) == 4


def test_always_restarts_until_stopped(orc: Orchestrator, image: str, root: Path) -> None:
    c = orc.create(image, ["sh", "-c", "sleep 0.2"], network_mode="none",
                   restart_policy="always")
    orc.start(c.id)
    _wait_for(lambda: orc.get(c.id).restart_count >= 2)
    stopped = orc.stop(c.id, timeout=1)
    assert stopped.manually_stopped
    from tests.hostcheck import processes_for

    _wait_for(lambda: not processes_for(root, [c.id]) and orc.get(c.id).state == "exited")
    count = orc.get(c.id).restart_count
    assert orc.get(c.id).state == "exited"
    # an explicit start is the user's: it runs again, and the policy applies again
    assert orc.get(c.id).restart_count == count
