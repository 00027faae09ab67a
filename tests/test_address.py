"""address.py: --address / RAY_ADDRESS parsed and probed before Ray starts (one line, seconds)."""
import time

import pytest

from taast_ray.address import check_address, split_address
from taast_ray.errors import ConfigError


@pytest.mark.parametrize("text, parsed", [
    ("10.0.0.5:6379", ("10.0.0.5", 6379)), ("head", ("head", 6379)), ("ray://head:10001", ("head", 10001)),
    ("ray://head", ("head", 10001)), ("[::1]:7000", ("::1", 7000)), ("auto", None), ("local", None),
])
def test_addresses_that_parse(text, parsed):
    assert split_address(text) == parsed


@pytest.mark.parametrize("text, reason", [
    ("notahost:abc", "port must be a number"), ("h:0", "port must be a number"), ("h:70000", "port must be"),
    (":6379", "host is empty"), ("http://h:8265", "not an address"), ("::1:6379", "needs brackets"),
    ("a b:1", "not an address"),
])
def test_addresses_that_do_not(text, reason):
    with pytest.raises(ValueError, match=reason):
        split_address(text)
    with pytest.raises(ConfigError, match=f"ray.address: .*{reason}"):
        check_address(text)


def test_an_unreachable_address_fails_fast_with_one_line():
    start = time.perf_counter()
    with pytest.raises(ConfigError) as err:
        check_address("127.0.0.1:1")
    assert time.perf_counter() - start < 5 and "cannot connect to 127.0.0.1:1" in str(err.value)
    with pytest.raises(ConfigError, match="cannot resolve host 'notahost.invalid'"):
        check_address("notahost.invalid:6379")


@pytest.fixture()
def listener():
    """A TCP listener on loopback that answers each connection with ``reply`` (or stays silent)."""
    import socket
    import threading

    servers = []

    def start(reply: bytes | None):
        server = socket.create_server(("127.0.0.1", 0))
        servers.append(server)

        def serve():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.recv(64)
                if reply is not None:
                    conn.sendall(reply)
                time.sleep(3)

        threading.Thread(target=serve, daemon=True).start()
        return f"127.0.0.1:{server.getsockname()[1]}"

    yield start
    for server in servers:
        server.close()


@pytest.mark.parametrize("reply", [None, b"HTTP/1.1 400 Bad Request\r\n\r\n", b"SSH-2.0-OpenSSH_9.6\r\n"])
def test_a_listener_that_is_not_ray_fails_in_bounded_time_with_one_line(listener, reply):
    """Ray retried such an address for ever (killed at 600 s); the probe asks it for gRPC first."""
    address = listener(reply)
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=f"^ray.address: {address} accepts connections but is not a Ray cluster"):
        check_address(address, timeout=1.0)
    assert time.perf_counter() - start < 3


def test_an_http2_server_passes_the_probe(listener):
    settings = bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])  # an empty SETTINGS frame, as a gRPC server opens
    check_address(listener(settings), timeout=1.0)


def test_a_real_ray_gcs_passes_the_probe(ray_local):
    check_address(ray_local.get_runtime_context().gcs_address)


def test_a_tls_cluster_is_checked_by_its_tcp_connection_alone(listener, monkeypatch):
    """RAY_USE_TLS: the head answers a TLS handshake, not our plain HTTP/2 opening."""
    monkeypatch.setenv("RAY_USE_TLS", "1")
    check_address(listener(None), timeout=1.0)
