"""Local multi-node Ray clusters on one host, for the multi-node test and benchmark only."""
from __future__ import annotations


def free_port() -> int:
    """A TCP port free on this host right now (for local clusters started with ``ray start``)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node_agent_ports() -> list[str]:
    """``ray start`` options giving one node's agents free ports. Nodes on one host, or a node beside
    another Ray instance (the test session's), would otherwise all want the defaults (52365, ...),
    and a head whose job agent cannot bind never accepts ``ray job submit``."""
    return [f"--{name}={free_port()}" for name in ("dashboard-agent-listen-port", "dashboard-agent-grpc-port",
                                                   "runtime-env-agent-port", "metrics-export-port")]
