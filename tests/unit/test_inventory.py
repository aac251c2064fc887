"""The node inventory every target's root module outputs, and the known_hosts made from it."""

from __future__ import annotations

from composer.launch import hostfile
from composer.remote import Node, host_id, known_hosts

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleKeyBlobxxxxxxxxxxxxxxxxxxxxxxxxxxx node-0"


def _cloud_node(rank: int) -> Node:
    return Node.from_output({
        "name": f"node-{rank}", "rank": rank, "address": f"203.0.113.{rank + 1}", "port": 22,
        "user": "ubuntu", "host_key": KEY, "work_dir": "/opt/composer/run-1", "slots": 4,
        "peer_address": f"10.0.0.{rank + 1}",
    })


def test_port_22_is_named_bare_as_openssh_and_paramiko_look_it_up() -> None:
    assert host_id("203.0.113.1", 22) == "203.0.113.1"
    assert host_id("127.0.1.1", 22022) == "[127.0.1.1]:22022"


def test_cloud_node_keeps_its_user_and_private_peer_address() -> None:
    node = _cloud_node(0)
    assert (node.user, node.peer, node.address) == ("ubuntu", "10.0.0.1", "203.0.113.1")


def test_local_node_is_its_own_peer() -> None:
    node = Node.from_output({"name": "node-0", "rank": 0, "address": "127.0.1.1", "port": 22022,
                             "host_key": KEY, "work_dir": "/w", "slots": 1})
    assert node.peer == "127.0.1.1" and node.user is None
    assert known_hosts([node], peers=True) == known_hosts([node])


def test_known_hosts_for_the_head_names_nodes_by_both_addresses() -> None:
    nodes = [_cloud_node(0), _cloud_node(1)]
    lines = known_hosts(nodes, peers=True).splitlines()
    assert [line.split()[0] for line in lines] == ["203.0.113.1", "10.0.0.1",
                                                   "203.0.113.2", "10.0.0.2"]
    assert all(line.split()[1:] == KEY.split()[:2] for line in lines)
    assert [line.split()[0] for line in known_hosts(nodes).splitlines()] == [
        "203.0.113.1", "203.0.113.2"]


def test_mpi_hostfile_uses_the_addresses_nodes_reach_each_other_on() -> None:
    assert hostfile([_cloud_node(0), _cloud_node(1)]) == "10.0.0.1 slots=4\n10.0.0.2 slots=4\n"
