"""serve.rate_limit (a token bucket per client address, 429 with Retry-After) and HTTPS
with --tls-cert/--tls-key, on a real server process."""

from __future__ import annotations

import contextlib
import shutil
import signal
import ssl
import subprocess

import httpx
import pytest
from conftest import Server, copy_index

from avrec.serve.limits import MAX_CLIENTS, RateLimiter, client_key


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_a_bucket_allows_its_burst_then_refills_at_the_rate():
    clock = Clock()
    lim = RateLimiter(rate=2.0, burst=3, clock=clock)
    assert [lim.allow("a")[0] for _ in range(4)] == [True, True, True, False]
    ok, wait = lim.allow("a")
    assert not ok and wait == pytest.approx(0.5)  # one token comes back in 1 / rate seconds
    assert lim.allow("b")[0]  # another client has its own bucket
    clock.t += 0.5
    assert lim.allow("a")[0] and not lim.allow("a")[0]
    clock.t += 60
    assert [lim.allow("a")[0] for _ in range(4)] == [True, True, True, False]  # refilled to the burst, no more


def test_the_client_table_is_bounded():
    lim = RateLimiter(rate=1.0, clock=Clock())
    for i in range(MAX_CLIENTS + 10):
        lim.allow(f"10.0.{i // 256}.{i % 256}")
    assert len(lim.buckets) == MAX_CLIENTS


def test_the_client_is_the_address_not_a_header_it_can_vary():
    scope = {"client": ("10.1.2.3", 5555), "headers": [(b"authorization", b"Bearer anything-at-all")]}
    assert client_key(scope) == "10.1.2.3"


def test_over_the_rate_is_a_429_with_retry_after_and_probes_pass(world, tmp_path):
    _taste, p = world
    s = Server(str(copy_index(p["index"], tmp_path / "index")), "--no-events",
               "--set", "serve.rate_limit=0.5", "--set", "serve.rate_burst=3")
    try:
        codes = [s.client.get("/recommend", params={"user": "u1", "k": 3}).status_code for _ in range(3)]
        assert codes == [200, 200, 200]
        r = s.client.get("/similar", params={"item": "item-001"})
        assert r.status_code == 429
        assert "serve.rate_limit" in r.json()["error"] and "\n" not in r.json()["error"]
        assert int(r.headers["retry-after"]) >= 1
        assert s.client.get("/health").status_code == 200  # never limited
        page = s.client.get("/metrics").text
        assert 'status="429"' in page
    finally:
        s.stop()


def _stalled_post(url: str, path: str = "/events"):
    """A socket that sent a POST's headers and the first byte of a 100-byte body, then stalls."""
    import socket
    from urllib.parse import urlsplit

    u = urlsplit(url)
    sock = socket.create_connection((u.hostname, u.port), timeout=20)
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 "Content-Length: 100\r\n\r\n{".encode())
    return sock


def _read_all(sock) -> str:
    data = b""
    with contextlib.suppress(OSError):
        while chunk := sock.recv(65536):
            data += chunk
    sock.close()
    return data.decode("utf-8", "replace")


def test_a_body_that_stalls_is_a_408_and_sigterm_does_not_wait_on_it(world, tmp_path):
    # a client that sends half a body and stops would otherwise hold its request open for
    # ever, and a SIGTERM would wait the graceful timeout on it, then answer it 500
    _taste, p = world
    s = Server(str(copy_index(p["index"], tmp_path / "index")), "--events", str(tmp_path / "ev.sqlite"),
               "--set", "serve.body_timeout_s=1")
    try:
        answer = _read_all(_stalled_post(s.url))
        assert answer.startswith("HTTP/1.1 408") and "serve.body_timeout_s" in answer, answer
        assert s.client.post("/events", json={"user_id": "u1", "item_id": "item-001"}).status_code == 200
        held = _stalled_post(s.url)
        s.proc.send_signal(signal.SIGTERM)
        assert s.proc.wait(timeout=20) == 0
        assert _read_all(held).startswith("HTTP/1.1 408")
        assert "Traceback" not in s.stderr() and "CancelledError" not in s.stderr()
    finally:
        s.stop()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is needed to make a self-signed certificate")
def test_https_with_a_certificate_the_client_verifies(world, tmp_path):
    _taste, p = world
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    ctx = ssl.create_default_context(cafile=str(cert))
    s = Server(str(copy_index(p["index"], tmp_path / "index")), "--no-events", "--tls-cert", str(cert),
               "--tls-key", str(key), verify=ctx)
    try:
        assert s.url.startswith("https://127.0.0.1:")
        r = s.client.get("/recommend", params={"user": "u1", "k": 3})
        assert r.status_code == 200 and len(r.json()["items"]) == 3
        with pytest.raises(httpx.HTTPError):  # plain HTTP on the TLS port gets no answer
            httpx.get(s.url.replace("https://", "http://") + "/health", timeout=5)
    finally:
        s.stop()


def test_tls_needs_both_files_that_exist(world, tmp_path, avrec_cli):
    _taste, p = world
    r = avrec_cli("serve", str(p["index"]), "--tls-cert", str(tmp_path / "nope.pem"))
    assert r.returncode == 2 and "--tls-cert and --tls-key go together" in r.stderr
    r = avrec_cli("serve", str(p["index"]), "--tls-cert", str(tmp_path / "nope.pem"), "--tls-key", str(tmp_path / "k"))
    assert r.returncode == 2 and "not found" in r.stderr and len(r.stderr.strip().splitlines()) == 1
