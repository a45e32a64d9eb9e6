import socket

from atalaya.lab.ports import free_port, is_loopback


def test_free_port_is_free_for_tcp_and_udp() -> None:
    port = free_port("127.0.0.44")
    with (
        socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp,
    ):
        tcp.bind(("127.0.0.44", port))
        udp.bind(("127.0.0.44", port))


def test_is_loopback() -> None:
    assert is_loopback("127.0.0.1")
    assert is_loopback("127.255.3.9")
    for other in ("10.0.0.1", "128.0.0.1", "127.0.0", "127.0.0.256", "127.0.0.x", "", "::1"):
        assert not is_loopback(other), other


def test_free_port_on_ipv6() -> None:
    port = free_port("::1")
    with (
        socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as tcp,
        socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as udp,
    ):
        tcp.bind(("::1", port))
        udp.bind(("::1", port))
