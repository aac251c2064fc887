"""What each node is and which Python environment its workload gets, in one command per
node: the facts script (composer/facts.py) and the environment probe
(composer/envprobe.py) run back to back in one SSH session command, one round trip
instead of two.

On a target whose nodes are all this one machine (``Target.nodes_share_host``: one
kernel, one filesystem, the same PATH and interpreter for every node), the head node
is asked once and its answer is recorded for every node, each entry saying which node
answered (``probed_on``): asking N processes of one machine the same question N times
costs N interpreter start-ups and says nothing more.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from composer import environment, facts
from composer.launch import env_prefix
from composer.remote import Session, fan_out

#: Printed between the facts and the environment probe's output.
FACTS_END = "composer-facts-end"


@dataclass(frozen=True)
class NodeProbe:
    """One node's answer: its facts, and its environment when asked (None otherwise)."""

    facts: dict[str, Any]
    environment: environment.Environment | None


def command(env_path: str | None, env: Mapping[str, str] | None) -> str:
    """The facts script with the session's PATH, then (``env`` given) the environment
    probe with the workload's environment; every value one quoted word."""
    line = facts.command(env_path)
    if env is None:
        return line
    return (f"{line}; echo {FACTS_END}; "
            f"{env_prefix(env)} {shlex.join(environment.probe_argv())}")


def split(text: str) -> tuple[str, str | None]:
    """The facts' part and the environment probe's part (None when it has none)."""
    head, sep, tail = text.partition(f"\n{FACTS_END}\n")
    if not sep and text.startswith(f"{FACTS_END}\n"):
        return "", text[len(FACTS_END) + 1:]
    return (head, tail) if sep else (text, None)


def probe(session: Session, env_path: str | None,
          env: Mapping[str, str] | None) -> NodeProbe:
    """Ask one node (the environment too when ``env`` is given)."""
    timeout = environment.PROBE_TIMEOUT if env is not None else facts.TIMEOUT
    try:
        text = session.check(command(env_path, env), timeout=timeout)
    except TimeoutError:
        if env is None:
            raise
        # the facts must be had; the environment may be recorded as unanswered
        return NodeProbe(facts.gather(session, env_path),
                         environment.failed(f"no answer in {timeout}s", ""))
    fact_text, env_text = split(text)
    probed = None
    if env is not None:
        probed = environment.parse(env_text if env_text is not None else text)
    return NodeProbe(facts.of_node(session, fact_text), probed)


def probe_nodes(sessions: Sequence[Session], env_path: str | None,
                env: Mapping[str, str] | None,
                shared_host: bool) -> list[NodeProbe]:
    """Every node's answer, in rank order; on a shared host the head's, for each node."""
    if not shared_host or len(sessions) < 2:
        return fan_out(lambda s: probe(s, env_path, env), sessions)
    head = probe(sessions[0], env_path, env)
    return [head, *(_as_node(head, s) for s in sessions[1:])]


def _as_node(head: NodeProbe, session: Session) -> NodeProbe:
    """The head's answer, recorded for another node of the same machine."""
    node = session.node
    found = {**head.facts, "rank": node.rank, "name": node.name, "address": node.address,
             "node_addr": node.address, "probed_on": head.facts["name"]}
    return NodeProbe(found, head.environment)
