"""The embedded local target: each node is an sshd on its own loopback address."""

from composer.targets.local.target import (
    DEFAULT_PORT,
    NODE_FILES,
    NODES_PER_BLOCK,
    Allocation,
    LocalTarget,
    find_sshd,
    local_port,
    open_leases_dir,
    port_free,
    session_env,
)

__all__ = [
    "DEFAULT_PORT", "NODES_PER_BLOCK", "NODE_FILES", "Allocation", "LocalTarget", "find_sshd",
    "local_port", "open_leases_dir", "port_free", "session_env",
]
