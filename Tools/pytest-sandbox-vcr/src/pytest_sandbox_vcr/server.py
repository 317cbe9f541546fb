"""The `sandbox-vcr serve --control` process of a pytest session, and a client of its control API."""

from __future__ import annotations

import http.client
import json
import os
import select
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Optional

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
    """One `sandbox-vcr serve --control --port 0` child: started, asked, stopped."""

    def __init__(self, binary: str, upstream: Optional[str], log_path: Path, start_timeout: float = 60):
        self.log_path = log_path
        command = [binary, "serve", "--control", "--port", "0", "--log-level", os.environ.get("SANDBOX_VCR_LOG_LEVEL", "warning")]
        if upstream:
            command += ["--url", upstream]
        self._log = open(log_path, "wb")
        self._connection: Optional[http.client.HTTPConnection] = None
        try:
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._log, close_fds=True)
        except OSError as error:
            self._log.close()
            raise SandboxVCRError(f"could not start {binary}: {error} ({BUILD_HINT})") from error
        line = self._read_line(start_timeout)
        if not line.startswith(READY_PREFIX):
            self.stop()
            raise SandboxVCRError(
                f"sandbox-vcr serve did not start (it printed {line!r}); its log:\n{self.log_tail()}")
        self.url = line[len(READY_PREFIX):].strip()
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
        """Sends one control request on the kept-alive connection and returns the decoded JSON answer.

        Raises SandboxVCRError for a refusal (its `error` code and `detail`) or a dead server.
        """
        payload = None if body is None else json.dumps(body).encode("utf-8")
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        for attempt in (1, 2):
            if self._connection is None:
                self._connection = http.client.HTTPConnection(self._host, self._port, timeout=120)
            try:
                self._connection.request(method, path, body=payload, headers=headers)
                response = self._connection.getresponse()
                data = response.read()
                break
            except (OSError, http.client.HTTPException) as error:
                self._connection.close()
                self._connection = None
                if attempt == 2 or self.process.poll() is not None:
                    raise SandboxVCRError(
                        f"sandbox-vcr serve at {self.url} did not answer {method} {path}: {error}; its log:\n"
                        f"{self.log_tail()}") from error
        answer = json.loads(data) if data else None
        if response.status != 200:
            code = answer.get("error") if isinstance(answer, dict) else None
            detail = answer.get("detail") if isinstance(answer, dict) else data[:500]
            raise SandboxVCRError(f"sandbox-vcr serve refused {method} {path} ({response.status} {code}): {detail}")
        return answer

    def stop(self, timeout: float = 60) -> Optional[int]:
        """SIGTERM (graceful: in-flight requests answered, recordings committed), then waits; SIGKILL if stuck."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None
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
