"""Test kit for uploads: the real CLI, an intake in a subprocess, bundles, and a faulty TCP proxy.

Everything listens on 127.0.0.1 only and every wait is bounded.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import socket
import ssl
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Optional

import requests

from collector.upload import TusClient

from tests.hosts import linux_host

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def stop_process(proc: Optional[subprocess.Popen]) -> None:
    """Terminate a server this test started (kill it if it does not go within 10 s)."""
    if proc and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def jcdiag(*args, env: Optional[dict] = None, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    """The real console entry point, as scripts and MDM run it."""
    return subprocess.run([sys.executable, "-m", "collector", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, cwd=REPO, env={**os.environ, **(env or {})},
                          stdin=subprocess.DEVNULL, **kw)


def one_json(result: subprocess.CompletedProcess) -> dict:
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, (result.stdout, result.stderr)
    return json.loads(lines[0])


class Intake:
    """``jcdiag intake serve`` in a subprocess; its log goes to a file (a pipe could fill up)."""

    def __init__(self, data: Path, port: Optional[int] = None, extra: tuple = (), env: Optional[dict] = None,
                 tls: Optional[tuple[Path, Path]] = None, preexec_fn=None):
        self.data = Path(data)
        self.port = port or free_port()
        self.tls = tls
        self.extra = tuple(map(str, extra)) + (("--tls-cert", str(tls[0]), "--tls-key", str(tls[1])) if tls else ())
        self.env = env or {}
        self.preexec_fn = preexec_fn
        self.log_path = self.data.parent / f"intake-{self.port}.log"
        self.proc: Optional[subprocess.Popen] = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def start(self) -> "Intake":
        self.data.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "collector", "intake", "serve", "--host", "127.0.0.1",
             "--port", str(self.port), "--data", str(self.data), *self.extra],
            cwd=REPO, env={**os.environ, **self.env}, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
            preexec_fn=self.preexec_fn)
        log.close()
        deadline = time.monotonic() + 20
        while "listening on" not in self.log():
            if self.proc.poll() is not None:
                raise RuntimeError(f"intake exited {self.proc.returncode}: {self.log()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"intake did not start: {self.log()}")
            time.sleep(0.05)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        stop_process(self.proc)

    def token(self, *args) -> str:
        r = jcdiag("intake", "token", "--data", self.data, *args)
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()

    def token_file(self, path: Path, *args) -> Path:
        path.write_text(self.token(*args) + "\n")
        return path

    def get(self, path: str, token: Optional[str] = None, headers: Optional[dict] = None,
            **kw) -> requests.Response:
        headers = {**(headers or {}), **({"Authorization": f"Bearer {token}"} if token else {})}
        if self.tls:
            kw.setdefault("verify", str(self.tls[0]))
        return requests.get(self.url + path, headers=headers, timeout=10, **kw)

    def log_lines(self) -> list[dict]:
        """The service's log, one JSON object per line (a line that is not JSON fails the test)."""
        return [json.loads(line) for line in self.log().splitlines() if line.strip()]

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stats(self, engineer_token: str) -> dict:
        return self.get("/api/v1/stats", engineer_token).json()

    def __enter__(self) -> "Intake":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def self_signed_cert(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (its own CA) and its key, made by the test: (cert.pem, key.pem)."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def make_bundle(workdir: Path, recipient_pub: Path, case: Optional[str] = None,
                random_bytes: int = 0) -> dict:
    """A real bundle from ``jcdiag collect`` of a fixture Linux host; its --json result.

    ``random_bytes`` attaches an incompressible file so the bundle has a known minimum size.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    root = linux_host(workdir / "root")
    args = ["collect", "--root", root, "--platform", "linux", "--recipient", recipient_pub,
            "--output", workdir / "out", "--json", "--yes"]
    if case:
        args += ["--case", case]
    if random_bytes:
        blob = workdir / "capture.bin"
        blob.write_bytes(os.urandom(random_bytes))
        args += ["--attach", blob]
    r = jcdiag(*args, timeout=120)
    assert r.returncode in (0, 3), r.stderr
    return one_json(r)


class FaultProxy:
    """A TCP proxy on 127.0.0.1 that can cut connections, throttle, and round-robin upstreams.

    ``cuts`` connections are cut, each at a random byte: client-to-server
    (mid-request, usually inside a PATCH body) or server-to-client (mid-response,
    after the server acted).  ``rate`` limits client-to-server bytes per second.
    """

    def __init__(self, upstreams: list[int], cuts: int = 0, up_window: int = 100_000,
                 down_window: int = 600, rate: Optional[float] = None, seed: Optional[int] = None,
                 port: int = 0, down_share: float = 0.3):
        self.upstreams = upstreams
        self.cuts_wanted = cuts
        self.cuts_done = 0
        self.up_window, self.down_window = up_window, down_window
        self.rate = rate
        self.random = random.Random(seed)
        self.down_share = down_share             # the share of cuts made in server-to-client data
        self.lock = threading.Lock()
        self.connections = 0
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _plan(self) -> tuple[Optional[str], int]:
        with self.lock:
            self.connections += 1
            if self.cuts_done >= self.cuts_wanted:
                return None, 0
            if self.random.random() >= self.down_share:
                return "up", self.random.randint(1, self.up_window)
            return "down", self.random.randint(1, self.down_window)

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                port = self.upstreams[self.connections % len(self.upstreams)]
            try:
                upstream = socket.create_connection(("127.0.0.1", port), timeout=10)
            except OSError:
                client.close()
                continue
            direction, budget = self._plan()
            pair = _Pair(self, client, upstream)
            threading.Thread(target=pair.pump, args=(client, upstream, direction == "up", budget, True),
                             daemon=True).start()
            threading.Thread(target=pair.pump, args=(upstream, client, direction == "down", budget, False),
                             daemon=True).start()

    def _cut_happened(self) -> None:
        with self.lock:
            self.cuts_done += 1

    def set_rate(self, rate: Optional[float]) -> None:
        self.rate = rate

    def close(self) -> None:
        self.closed = True
        self.sock.close()


class _Pair:
    def __init__(self, proxy: FaultProxy, client: socket.socket, upstream: socket.socket):
        self.proxy, self.client, self.upstream = proxy, client, upstream
        self.done = False
        self.lock = threading.Lock()

    def close(self, cut: bool) -> None:
        with self.lock:
            if self.done:
                return
            self.done = True
        if cut:
            self.proxy._cut_happened()
        for s in (self.client, self.upstream):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def pump(self, src: socket.socket, dst: socket.socket, cutting: bool, budget: int, upward: bool) -> None:
        moved = 0
        try:
            while True:
                want = 16384
                if cutting:
                    want = min(want, budget - moved)
                    if want <= 0:
                        self.close(True)
                        return
                data = src.recv(want)
                if not data:
                    self.close(False)
                    return
                if upward and self.proxy.rate:
                    time.sleep(len(data) / self.proxy.rate)
                dst.sendall(data)
                moved += len(data)
        except OSError:
            self.close(False)


def raw_upload(url: str, token: str, data: bytes, metadata: dict, chunk: int = 64 * 1024) -> str:
    """Create and PATCH through with the library client, bypassing send()'s own checks."""
    client = TusClient(token)
    upload_url = client.create(url + "/files/", len(data), metadata)
    offset = 0
    while offset < len(data):
        piece = data[offset:offset + chunk]
        offset, _ = client.patch(upload_url, offset, piece, True, final=offset + len(piece) == len(data))
    return upload_url


class FakeTus:
    """A minimal in-memory tus server for client behaviour; ``faults`` answer before the real logic.

    ``root`` mode answers tus at ``/`` (a plain tus server, like tusd); otherwise at
    ``/files/`` like the intake, with ``verify`` deciding whether it confirms sha256.
    """

    def __init__(self, root: bool = True, verify: bool = False, tls: tuple | None = None,
                 extensions: str = "creation,termination,checksum", location_origin: Optional[str] = None):
        self.root, self.verify = root, verify
        self.extensions = extensions
        self.location_origin = location_origin      # put uploads on another origin (a CDN, say)
        self.seen: list[tuple[str, str, Optional[str], int]] = []   # method, path, Authorization, body
        self.faults: list[tuple[str, int, dict, bytes]] = []
        self.uploads: dict[str, bytearray] = {}
        self.lengths: dict[str, int] = {}
        self.requests: list[tuple[str, str, float]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def reply(self, status, headers=None, body=b""):
                self.send_response(status)
                self.send_header("Tus-Resumable", "1.0.0")
                for k, v in (headers or {}).items():
                    self.send_header(k, str(v))
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if body and self.command != "HEAD":
                    self.wfile.write(body)

            def handle_any(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fake.requests.append((self.command, self.path, time.monotonic()))
                fake.seen.append((self.command, self.path, self.headers.get("Authorization"), len(body)))
                for i, (method, status, headers, payload) in enumerate(fake.faults):
                    if method == self.command:
                        del fake.faults[i]
                        return self.reply(status, headers, payload)
                prefix = "/" if fake.root else "/files/"
                if self.command == "OPTIONS":
                    if self.path != prefix:
                        return self.reply(404) if not fake.root else self.reply(204)
                    return self.reply(204, {"Tus-Version": "1.0.0", "Tus-Extension": fake.extensions,
                                            "Tus-Checksum-Algorithm": "sha256"})
                if self.command == "POST":
                    uid = f"u{len(fake.uploads)}"
                    fake.uploads[uid] = bytearray(body)
                    fake.lengths[uid] = int(self.headers["Upload-Length"])
                    location = (fake.location_origin or "") + f"{prefix}{uid}"
                    return self.reply(201, {"Location": location, "Upload-Offset": len(body)})
                uid = self.path.rsplit("/", 1)[-1]
                if uid not in fake.uploads:
                    return self.reply(404)
                data = fake.uploads[uid]
                extra = {}
                if fake.verify and len(data) == fake.lengths[uid]:
                    digest = base64.b64encode(hashlib.sha256(bytes(data)).digest()).decode()
                    extra["Upload-Checksum-Verified"] = f"sha256 {digest}"
                if self.command == "HEAD":
                    return self.reply(200, {"Upload-Offset": len(data), "Upload-Length": fake.lengths[uid], **extra})
                if self.command == "PATCH":
                    if int(self.headers["Upload-Offset"]) != len(data):
                        return self.reply(409)
                    name, _, value = self.headers.get("Upload-Checksum", "").partition(" ")
                    if name == "sha256" and base64.b64decode(value) != hashlib.sha256(body).digest():
                        return self.reply(460)
                    data += body
                    if fake.verify and len(data) == fake.lengths[uid]:
                        digest = base64.b64encode(hashlib.sha256(bytes(data)).digest()).decode()
                        extra["Upload-Checksum-Verified"] = f"sha256 {digest}"
                    return self.reply(204, {"Upload-Offset": len(data), **extra})
                if self.command == "DELETE":
                    del fake.uploads[uid]
                    return self.reply(204)
                return self.reply(405)

            do_OPTIONS = do_POST = do_HEAD = do_PATCH = do_DELETE = do_GET = handle_any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.scheme = "http"
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            self.scheme = "https"
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class TuspyServer:
    """tuspyserver (a third-party tus server from PyPI) in a subprocess on 127.0.0.1: tus only at
    ``/files/``, no token.  It ends itself after ``lifetime`` seconds; ``requests()`` reads what
    it logged (``tests/tuspy_app.py``) and ``stored()`` what it keeps."""

    def __init__(self, workdir: Path, lifetime: float = 240):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.log_path = self.workdir / "requests.jsonl"
        self.lifetime = lifetime
        self.proc: Optional[subprocess.Popen] = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/files/"

    def start(self) -> "TuspyServer":
        out = open(self.workdir / "server.log", "ab")
        self.proc = subprocess.Popen([sys.executable, str(REPO / "tests" / "tuspy_app.py"), str(self.port),
                                      str(self.workdir / "files"), str(self.log_path), str(self.lifetime)],
                                     cwd=REPO, stdout=out, stderr=out, stdin=subprocess.DEVNULL)
        out.close()
        try:
            wait_port(self.port, 20)
        except TimeoutError:
            self.stop()
            raise RuntimeError((self.workdir / "server.log").read_text(errors="replace"))
        return self

    def events(self) -> list[dict]:
        if not self.log_path.exists():
            return []
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line.strip()]

    def requests(self) -> list[dict]:
        return [e for e in self.events() if e["event"] == "request"]

    def stored(self, upload_url: str) -> bytes:
        """The bytes the server holds for an upload (its files folder, by the URL's last part)."""
        return (self.workdir / "files" / upload_url.rstrip("/").rsplit("/", 1)[-1]).read_bytes()

    def stop(self) -> None:
        stop_process(self.proc)

    def __enter__(self) -> "TuspyServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
