"""The `sandbox-vcr serve --control` process of a pytest session, and a client of its control API."""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, List, Optional, Tuple

READY_PREFIX = "sandbox-vcr serve: listening on "
BUILD_HINT = (
    "set SANDBOX_VCR_BIN=/path/to/sandbox-vcr, or put sandbox-vcr on PATH. Build it in a SandboxVCR checkout with "
    "`swift build -c release --product sandbox-vcr` (it lands in .build/release/sandbox-vcr)"
)


class SandboxVCRError(Exception):
    """The serve process could not be found, started or reached, or refused a control request."""


def find_binary(environ=os.environ) -> str:
    """The `sandbox-vcr` binary: $SANDBOX_VCR_BIN, else the one on PATH.

    Raises SandboxVCRError saying how to get one.
    """
    explicit = environ.get("SANDBOX_VCR_BIN")
    if explicit:
        if os.path.isfile(explicit) and os.access(explicit, os.X_OK):
            return explicit
        raise SandboxVCRError(
            f"SANDBOX_VCR_BIN={explicit!r} is not an executable file; point it at the sandbox-vcr binary "
            f"({BUILD_HINT})")
    found = shutil.which("sandbox-vcr", path=environ.get("PATH"))
    if found:
        return found
    raise SandboxVCRError(f"the sandbox-vcr binary was not found: {BUILD_HINT}")


class ServeProcess:
    """One `sandbox-vcr serve --port 0` child: started, asked, stopped.

    By default `serve --control` (with `--url upstream`); `arguments` replaces those options (e.g. `--cassette FILE
    --record MODE --modal-port 0` for the Modal fixture). `env` is the child's environment (default: this process's).
    """

    def __init__(self, binary: str, upstream: Optional[str], log_path: Path, start_timeout: float = 60,
                 arguments: Optional[List[str]] = None, env: Optional[dict] = None):
        self.log_path = log_path
        if arguments is None:
            arguments = ["--control", "--port", "0"] + (["--url", upstream] if upstream else [])
        command = [binary, "serve", *arguments, "--log-level", os.environ.get("SANDBOX_VCR_LOG_LEVEL", "warning")]
        self._log = open(log_path, "wb")
        self._socket: Optional[socket.socket] = None
        self._buffer = bytearray()
        #: Requests sent whose answers are not read yet: (method, path, callback).
        self._pending: List[Tuple[str, str, Callable[[Any, Optional[Exception]], None]]] = []
        try:
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._log, close_fds=True, env=env)
        except OSError as error:
            self._log.close()
            raise SandboxVCRError(f"could not start {binary}: {error} ({BUILD_HINT})") from error
        line = self._read_line(start_timeout)
        if not line.startswith(READY_PREFIX):
            self.stop()
            raise SandboxVCRError(
                f"sandbox-vcr serve did not start (it printed {line!r}); its log:\n{self.log_tail()}")
        # `http://127.0.0.1:P1`, or with --modal-port `http://127.0.0.1:P1, modal: http://127.0.0.1:P2`.
        self.url, _, modal_url = line[len(READY_PREFIX):].strip().partition(", modal: ")
        #: The Modal gRPC API's URL (`serve --modal-port`), else None.
        self.modal_url: Optional[str] = modal_url or None
        host, port = self.url.removeprefix("http://").rsplit(":", 1)
        self._host, self._port = host, int(port)

    def _read_line(self, timeout: float) -> str:
        """The first line of standard output, or what came before the process exited or `timeout` passed."""
        stdout = self.process.stdout
        assert stdout is not None
        deadline = time.monotonic() + timeout
        data = b""
        while not data.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            ready, _, _ = select.select([stdout], [], [], remaining)
            if not ready:
                break
            chunk = os.read(stdout.fileno(), 4096)
            if not chunk:
                break
            data += chunk
        return data.decode("utf-8", "replace")

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text("utf-8", "replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]) or "(empty)"

    def request(self, method: str, path: str, body: Optional[dict] = None) -> Any:
        """Sends one control request on the kept-alive connection and returns the decoded JSON answer, after
        reading the answers of earlier `send`s.

        A plain HTTP/1.1 exchange on a socket (http.client's header parsing alone costs more than the server's
        answer). Raises SandboxVCRError for a refusal (its `error` code and `detail`) or a dead server.
        """
        self.drain()
        message = self._message(method, path, body)
        for attempt in (1, 2):
            try:
                self._connect().sendall(message)
                status, data = self._read_response()
                break
            except (OSError, ValueError) as error:
                self._close_socket()
                if attempt == 2 or self.process.poll() is not None:
                    raise self._failure(method, path, error) from error
        return self._decode(method, path, status, data)

    def send(self, method: str, path: str, body: Optional[dict], on_answer: Callable[[Any, Optional[Exception]], None]):
        """Sends a request without waiting: its answer (or the error) goes to `on_answer` when the next `request`
        or `drain` reads it. The server answers a connection's requests in order, so what came later sees its
        effect; meanwhile the server works while the caller goes on."""
        try:
            self._connect().sendall(self._message(method, path, body))
        except OSError as error:
            self._close_socket()
            on_answer(None, self._failure(method, path, error))
            return
        self._pending.append((method, path, on_answer))

    def drain(self):
        """Reads the answers of every earlier `send`, in order, and hands each to its callback."""
        while self._pending:
            method, path, on_answer = self._pending.pop(0)
            try:
                status, data = self._read_response()
            except (OSError, ValueError) as error:
                failure = self._failure(method, path, error)
                for _, _, callback in [(method, path, on_answer)] + self._pending:
                    callback(None, failure)
                self._pending = []
                self._close_socket()
                return
            try:
                answer = self._decode(method, path, status, data)
            except SandboxVCRError as error:
                on_answer(None, error)
            else:
                on_answer(answer, None)

    def _message(self, method: str, path: str, body: Optional[dict]) -> bytes:
        payload = b"" if body is None else json.dumps(body).encode("utf-8")
        head = f"{method} {path} HTTP/1.1\r\nHost: {self._host}:{self._port}\r\nContent-Length: {len(payload)}\r\n"
        if body is not None:
            head += "Content-Type: application/json\r\n"
        return head.encode("ascii") + b"\r\n" + payload

    def _connect(self) -> socket.socket:
        if self._socket is None:
            self._socket = socket.create_connection((self._host, self._port), timeout=120)
            self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self._socket

    def _failure(self, method: str, path: str, error: Exception) -> SandboxVCRError:
        return SandboxVCRError(
            f"sandbox-vcr serve at {self.url} did not answer {method} {path}: {error}; its log:\n{self.log_tail()}")

    @staticmethod
    def _decode(method: str, path: str, status: int, data: bytes) -> Any:
        answer = json.loads(data) if data else None
        if status != 200:
            code = answer.get("error") if isinstance(answer, dict) else None
            detail = answer.get("detail") if isinstance(answer, dict) else data[:500]
            raise SandboxVCRError(f"sandbox-vcr serve refused {method} {path} ({status} {code}): {detail}")
        return answer

    def _read_response(self) -> Tuple[int, bytes]:
        """Reads one answer: its status and body (Content-Length or chunked). Raises ValueError if malformed."""
        while b"\r\n\r\n" not in self._buffer:
            self._receive()
        end = self._buffer.index(b"\r\n\r\n")
        lines = bytes(self._buffer[:end]).decode("latin-1").split("\r\n")
        del self._buffer[: end + 4]
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise ValueError(f"not an HTTP answer: {lines[0]!r}")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = bytearray()
            while True:
                while b"\r\n" not in self._buffer:
                    self._receive()
                size_end = self._buffer.index(b"\r\n")
                size = int(bytes(self._buffer[:size_end]).split(b";")[0], 16)
                while len(self._buffer) < size_end + 2 + size + 2:
                    self._receive()
                body += self._buffer[size_end + 2: size_end + 2 + size]
                del self._buffer[: size_end + 2 + size + 2]
                if size == 0:
                    break
        else:
            length = int(headers.get("content-length", "0"))
            while len(self._buffer) < length:
                self._receive()
            body = self._buffer[:length]
            del self._buffer[:length]
        if headers.get("connection", "").lower() == "close":
            self._close_socket()
        return int(parts[1]), bytes(body)

    def _receive(self):
        assert self._socket is not None
        chunk = self._socket.recv(65536)
        if not chunk:
            raise ValueError("the server closed the connection")
        self._buffer += chunk

    def _close_socket(self):
        if self._socket is not None:
            self._socket.close()
        self._socket = None
        self._buffer = bytearray()

    def stop(self, timeout: float = 60) -> Optional[int]:
        """SIGTERM (graceful: in-flight requests answered, recordings committed), then waits; SIGKILL if stuck."""
        if self.process.poll() is None:
            self.drain()
        self._close_socket()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._log.close()
        return self.process.returncode
