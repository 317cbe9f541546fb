"""The session's `sandbox-vcr serve --modal-port` process: Modal's gRPC API answered from one cassette.

Modal's Python SDK reads MODAL_SERVER_URL and the tokens when it makes its client, and keeps that client for the
process: the server URL cannot change per test. So one serve, with one cassette, answers a whole session (per xdist
worker); the environment points at it from the first use of the `sandbox_vcr_modal` fixture to the session's end.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from .server import SandboxVCRError, ServeProcess, find_binary

ENV_SERVER_URL = "MODAL_SERVER_URL"
ENV_TOKEN_ID = "MODAL_TOKEN_ID"
ENV_TOKEN_SECRET = "MODAL_TOKEN_SECRET"
#: What a replay-only session gives the SDK when no token is set: serve accepts any token in mode `never`.
PLACEHOLDER_TOKEN_ID = "ak-sandbox-vcr-replay"
PLACEHOLDER_TOKEN_SECRET = "as-sandbox-vcr-replay"
#: The counters of `GET /stats`'s `modal` object.
COUNTERS = ("calls", "sandboxes", "replayed", "recorded", "forwarded", "misses", "unimplemented")
MISS_LOG_MARKER = "Modal replay miss"


class SandboxVCRModal:
    """What the `sandbox_vcr_modal` fixture gives: the Modal URL the SDK talks to, the cassette and the counts."""

    def __init__(self, state: "ModalSessionState"):
        self._state = state

    url = property(lambda self: self._state.server_url("modal_url"),
                   doc="The Modal API URL (MODAL_SERVER_URL while the session runs), e.g. http://127.0.0.1:PORT.")
    http_url = property(lambda self: self._state.server_url("url"),
                        doc="serve's HTTP URL (its `GET /stats`; it also answers SandboxFusion from the cassette).")
    cassette = property(lambda self: self._state.cassette, doc="The session's Modal cassette (a Path).")
    record_mode = property(lambda self: self._state.record_mode, doc="never, missing, all or live.")
    upstream = property(lambda self: self._state.upstream,
                        doc="The Modal API recordings come from (None: serve's default, the profile or Modal).")
    log_path = property(lambda self: self._state.log_path, doc="serve's log file (misses are logged as warnings).")

    @property
    def stats(self) -> Dict[str, int]:
        """serve's Modal counters now: calls, sandboxes, replayed, recorded, forwarded, misses, unimplemented."""
        return self._state.stats()

    sandboxes = property(lambda self: self.stats["sandboxes"], doc="Sandboxes created so far.")
    replayed = property(lambda self: self.stats["replayed"], doc="Execs answered from the cassette.")
    recorded = property(lambda self: self.stats["recorded"], doc="Execs recorded into the cassette.")
    forwarded = property(lambda self: self.stats["forwarded"], doc="Execs sent to the upstream.")
    misses = property(lambda self: self.stats["misses"], doc="Execs (or sandbox images) with no recording.")

    def __repr__(self):
        return (f"SandboxVCRModal(url={self._state.server_url('modal_url')!r}, cassette={str(self.cassette)!r}, "
                f"record_mode={self.record_mode!r})")


class ModalSessionState:
    """The session's Modal serve (started by the first use of the fixture), the environment it replaced, and the
    misses it counted."""

    def __init__(self, config, record_mode: str, cassette: Path, upstream: Optional[str],
                 normalizers: Optional[List[str]] = None):
        self.config = config
        #: serve's --normalize REGEX=REPLACEMENT rules.
        self.normalizers = list(normalizers or [])
        self.record_mode = record_mode
        self.cassette = cassette
        #: --sandbox-modal-upstream; else MODAL_SERVER_URL when the serve starts.
        self.upstream = upstream
        self.server: Optional[ServeProcess] = None
        self.start_error: Optional[str] = None
        self.temp_dir: Optional[tempfile.TemporaryDirectory] = None
        self.log_path: Optional[Path] = None
        self.saved_environment: Optional[Dict[str, Optional[str]]] = None
        #: The counters when the serve stopped (or the sum over xdist workers).
        self.final: Optional[Dict[str, int]] = None
        #: Misses some test was told about (it failed for them, or allowed them).
        self.misses_in_tests = 0
        #: serve's log lines of every miss (read before the log is removed).
        self.miss_lines: List[str] = []
        self.problems: List[str] = []
        self.handle = SandboxVCRModal(self)
        self._log_offset = 0

    @property
    def running(self) -> bool:
        return self.server is not None

    def server_url(self, name: str) -> Optional[str]:
        return getattr(self.server, name) if self.server is not None else None

    def start(self) -> SandboxVCRModal:
        """Starts serve and points the environment at it (once per session); fails the asking test if it cannot."""
        if self.server is not None:
            return self.handle
        if self.start_error is not None:
            pytest.fail(self.start_error, pytrace=False)
        stale = _cached_modal_client_url()
        if stale is not None:
            self.start_error = (
                f"pytest-sandbox-vcr: Modal's client was already made (for {stale}) before sandbox_vcr_modal "
                f"started, and the SDK keeps it for the process: use the fixture (or the sandbox_vcr_modal marker) "
                f"before the first Modal call, e.g. in a conftest.py")
            pytest.fail(self.start_error, pytrace=False)
        upstream = self.upstream or os.environ.get(ENV_SERVER_URL) or None
        arguments = ["--cassette", str(self.cassette), "--record", self.record_mode, "--port", "0", "--modal-port", "0"]
        if upstream:
            arguments += ["--modal-upstream", upstream]
        for rule in self.normalizers:
            arguments += ["--normalize", rule]
        if self.record_mode != "never":
            self.cassette.parent.mkdir(parents=True, exist_ok=True)
        try:
            binary = find_binary()
            self.temp_dir = tempfile.TemporaryDirectory(prefix="sandbox-vcr-modal-")
            self.log_path = Path(self.temp_dir.name) / "serve.log"
            self.server = ServeProcess(binary, None, self.log_path, arguments=arguments, env=dict(os.environ))
        except SandboxVCRError as error:
            self.start_error = f"pytest-sandbox-vcr: the Modal server: {error}"
            self._cleanup()
            pytest.fail(self.start_error, pytrace=False)
        if self.server.modal_url is None:
            self.server.stop()
            self.server = None
            self.start_error = "pytest-sandbox-vcr: sandbox-vcr serve did not say its Modal URL (too old a build?)"
            self._cleanup()
            pytest.fail(self.start_error, pytrace=False)
        self.upstream = upstream
        self._apply_environment()
        return self.handle

    def _apply_environment(self):
        names = (ENV_SERVER_URL, ENV_TOKEN_ID, ENV_TOKEN_SECRET)
        self.saved_environment = {name: os.environ.get(name) for name in names}
        os.environ[ENV_SERVER_URL] = self.server.modal_url
        if not (os.environ.get(ENV_TOKEN_ID) and os.environ.get(ENV_TOKEN_SECRET)):
            # The SDK refuses to start without a token; a replay accepts any. Recording needs the real one (the
            # client's tokens are what serve forwards), so a configured profile is left to the SDK.
            if self.record_mode == "never" or not _profile_has_token():
                os.environ[ENV_TOKEN_ID] = PLACEHOLDER_TOKEN_ID
                os.environ[ENV_TOKEN_SECRET] = PLACEHOLDER_TOKEN_SECRET

    def _restore_environment(self):
        if self.saved_environment is None:
            return
        for name, value in self.saved_environment.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self.saved_environment = None

    def stats(self) -> Dict[str, int]:
        if self.server is None:
            if self.final is not None:
                return dict(self.final)
            raise SandboxVCRError("the Modal server is not running (the sandbox_vcr_modal fixture starts it)")
        counters = self.server.request("GET", "/stats").get("modal") or {}
        return {key: int(counters.get(key, 0)) for key in sorted(set(COUNTERS) | set(counters))}

    def misses_now(self) -> int:
        """The misses so far (0 before the serve started)."""
        if self.server is None:
            return self.final.get("misses", 0) if self.final else 0
        return self.stats()["misses"]

    def new_miss_lines(self) -> List[str]:
        """serve's log lines of the misses logged since the last call."""
        if self.log_path is None:
            return []
        try:
            with open(self.log_path, "rb") as log:
                log.seek(self._log_offset)
                data = log.read()
        except OSError:
            return []
        end = data.rfind(b"\n") + 1
        self._log_offset += end
        lines = [_miss_line(line) for line in data[:end].decode("utf-8", "replace").splitlines()
                 if MISS_LOG_MARKER in line]
        self.miss_lines += lines
        return lines

    def finish(self):
        """Reads the final counts, stops serve (SIGTERM: it commits the recordings) and restores the environment."""
        self._restore_environment()
        if self.server is None:
            return
        try:
            self.final = self.stats()
        except SandboxVCRError as error:
            self.problems.append(f"could not read the Modal counts: {error}")
        status = self.server.stop()
        self.server = None
        self.new_miss_lines()
        if status not in (0, None):
            self.problems.append(f"sandbox-vcr serve (Modal) exited with status {status}; its log:\n"
                                 f"{_tail(self.log_path)}")
        self._cleanup()

    def _cleanup(self):
        if self.temp_dir is not None:
            self.temp_dir.cleanup()
            self.temp_dir = None

    @property
    def unexplained_misses(self) -> int:
        return max(0, (self.final or {}).get("misses", 0) - self.misses_in_tests)

    def usage(self) -> Optional[Dict[str, Any]]:
        """This process's Modal counts, as plain data (what an xdist worker sends its controller)."""
        if self.final is None:
            return None
        return {"final": dict(self.final), "misses_in_tests": self.misses_in_tests, "miss_lines": list(self.miss_lines),
                "problems": list(self.problems), "upstream": self.upstream}

    def merge(self, usage: Optional[Dict[str, Any]]):
        if not usage:
            return
        final = self.final or {}
        for key, value in usage.get("final", {}).items():
            final[key] = final.get(key, 0) + value
        self.final = final
        self.misses_in_tests += usage.get("misses_in_tests", 0)
        self.miss_lines += usage.get("miss_lines", [])
        self.problems += usage.get("problems", [])
        self.upstream = self.upstream or usage.get("upstream")


def _cached_modal_client_url() -> Optional[str]:
    """The server URL of the client Modal's SDK already made for this process, if it made one."""
    client_module = sys.modules.get("modal.client")
    client_class = getattr(client_module, "_Client", None) if client_module is not None else None
    client = getattr(client_class, "_client_from_env", None) if client_class is not None else None
    return getattr(client, "server_url", "an earlier server") if client is not None else None


def _profile_has_token() -> bool:
    """Whether Modal's configuration (its profile file) holds a token; False when the SDK is not installed."""
    try:
        from modal.config import config  # type: ignore
        return bool(config.get("token_id") and config.get("token_secret"))
    except Exception:
        return False


def _miss_line(line: str) -> str:
    """`Modal replay miss: exec=... sandbox=... step=...` from serve's log line (without its time and labels)."""
    match = _LOG_LINE.match(line)
    if match is None:
        return line
    message, metadata = match.group("message"), match.group("metadata").strip()
    return f"{message}: {metadata}" if metadata else message


#: `2026-01-01T00:00:00+0000 warning sandbox-vcr.serve: exec=... sandbox=... step=1 [Module] Modal replay miss`
_LOG_LINE = re.compile(r"^\S+ \w+ [\w.-]+: (?P<metadata>.*?)\s*(?:\[\w+\] )?(?P<message>Modal replay miss.*)$")


def _tail(path: Optional[Path], lines: int = 40) -> str:
    try:
        text = path.read_text("utf-8", "replace") if path is not None else ""
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty)"
