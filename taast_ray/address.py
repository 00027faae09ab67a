"""Ray addresses, checked before Ray starts (issue 17).

``ray.address`` is parsed when the configuration is validated, and probed with one TCP
connection before ``ray.init``, so a typo or an unreachable head fails in seconds with one line
instead of Ray retrying for minutes (``127.0.0.1:1`` kept it retrying past 120 s).
"""
from __future__ import annotations

import os
import socket

from taast_ray.errors import ConfigError

GCS_PORT = 6379          # ray start --head's default
CLIENT_PORT = 10001      # Ray Client (ray://)
PROBE_TIMEOUT_S = 10.0
_KEYWORDS = ("auto", "local")


def split_address(address: str) -> tuple[str, int] | None:
    """(host, port) of ``host:port`` / ``ray://host:port`` / ``[v6]:port``; None for auto/local.

    Raises ValueError with the reason when the text is none of these.
    """
    text = address.strip()
    if text in _KEYWORDS:
        return None
    client = text.startswith("ray://")
    rest = text[len("ray://"):] if client else text
    if not rest or "://" in rest or "/" in rest or any(c.isspace() for c in rest):
        raise ValueError("not an address")
    if rest.startswith("["):  # [::1]:6379
        host, bracket, tail = rest[1:].partition("]")
        if not bracket or (tail and not tail.startswith(":")):
            raise ValueError("expected [IPv6]:port")
        port_text, has_port = tail[1:], bool(tail)
    elif rest.count(":") > 1:
        raise ValueError("an IPv6 address needs brackets: [addr]:port")
    else:
        host, colon, port_text = rest.partition(":")
        has_port = bool(colon)
    if not host:
        raise ValueError("the host is empty")
    if not has_port:
        return host, CLIENT_PORT if client else GCS_PORT
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"the port must be a number 1-65535, not {port_text!r}")
    return host, int(port_text)


def address_syntax_error(address: str | None) -> str | None:
    if not address:
        return None
    try:
        split_address(address)
    except ValueError as exc:
        return str(exc)
    return None


def check_address(address: str | None, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Fail with one line unless something accepts TCP connections at the Ray address."""
    if not address:
        return
    try:
        target = split_address(address)
    except ValueError as exc:
        raise ConfigError(f"ray.address: {exc}; expected host:port, ray://host:port, auto or local, "
                          f"got {address!r}") from None
    if target is None:
        return
    host, port = target
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise ConfigError(f"ray.address: cannot resolve host {host!r} (from {address!r})") from None
    try:
        with socket.create_connection((host, port), timeout=timeout) as conn:
            speaks = speaks_http2(conn, timeout)
    except socket.timeout:
        raise ConfigError(f"ray.address: no answer from {host}:{port} within {timeout:.0f} s; "
                          f"is the cluster up and the port open to this machine?") from None
    except OSError as exc:
        raise ConfigError(f"ray.address: cannot connect to {host}:{port} ({exc.strerror or exc}); "
                          f"start the cluster or fix --address / RAY_ADDRESS") from None
    if not speaks and not _tls():  # Ray would retry such a listener for ever
        raise ConfigError(f"ray.address: {host}:{port} accepts connections but is not a Ray cluster (no gRPC "
                          f"answer within {timeout:.0f} s); check the port: the head's GCS (ray start "
                          f"--head, {GCS_PORT}) or Ray Client (ray://, {CLIENT_PORT})")


# An HTTP/2 client's opening (RFC 9113 §3.4): the preface and an empty SETTINGS frame. Ray's GCS
# and Ray Client are gRPC servers, which answer with a SETTINGS frame of their own.
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
_SETTINGS = 4


def _tls() -> bool:
    """A cluster with TLS (RAY_USE_TLS) answers a TLS handshake, not a plain HTTP/2 opening: the
    protocol probe is left out there, the TCP connection alone checked."""
    return os.environ.get("RAY_USE_TLS", "").lower() in ("1", "true", "yes")


def speaks_http2(conn: socket.socket, timeout: float) -> bool:
    """Whether the peer answers an HTTP/2 opening with a frame header of a SETTINGS frame."""
    conn.settimeout(timeout)
    try:
        conn.sendall(_HTTP2_PREFACE)
        header = b""
        while len(header) < 9:
            chunk = conn.recv(9 - len(header))
            if not chunk:
                return False
            header += chunk
    except OSError:  # a reset, or silence until the timeout
        return False
    return header[3] == _SETTINGS
