"""pytest-sandbox-vcr: cassettes for SandboxFusion calls, the way pytest-recording gives them for HTTP.

A test marked `@pytest.mark.sandbox_vcr` (or a class or module so marked, or a test using the `sandbox_vcr`
fixture) runs with `SANDBOX_URL`, `SANDBOX_FUSION_ENDPOINT` and the official `sandbox_fusion` client pointed at one
`sandbox-vcr serve --control` per session (per xdist worker), which answers from the test's cassette,
`cassettes/<module>/<test>.sqlite` beside the test module.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from .server import SandboxVCRError, ServeProcess, find_binary

RECORD_MODES = ("never", "missing", "all", "live")
MARKER = "sandbox_vcr"
#: The variables a marked test gets, each set to the server's base URL or its /run_code URL.
ENV_RUN_CODE_URL = "SANDBOX_URL"
ENV_ENDPOINT = "SANDBOX_FUSION_ENDPOINT"

_STATE = pytest.StashKey["_SessionState"]()
_ACTIVE = pytest.StashKey["SandboxVCR"]()


def pytest_addoption(parser):
    group = parser.getgroup("sandbox-vcr", "record and replay SandboxFusion calls (pytest-sandbox-vcr)")
    group.addoption(
        "--sandbox-record-mode", choices=RECORD_MODES, default=None,
        help="never: replay only, a missing recording fails the test; missing: record what is missing (needs "
             "--sandbox-upstream); all: re-record everything; live: call the upstream, record nothing. Default: "
             "$SANDBOX_VCR_RECORD, else never when $CI is set, else missing.")
    group.addoption(
        "--sandbox-upstream", metavar="URL", default=None,
        help="The real SandboxFusion to record from (its base or /run_code URL). Without it nothing is recorded.")
    group.addoption(
        "--sandbox-cassette-dir", metavar="DIR", default=None,
        help="Where cassettes live: DIR/<module>/<test>.sqlite. Default: cassettes/ beside each test module.")


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "sandbox_vcr(name=None, *, allow_misses=False): replay the test's SandboxFusion calls from "
        "cassettes/<module>/<name or test>.sqlite (pytest-sandbox-vcr)")
    config.stash[_STATE] = _SessionState(config, resolve_record_mode(config))


def resolve_record_mode(config) -> str:
    """--sandbox-record-mode, else $SANDBOX_VCR_RECORD, else `never` when $CI is set, else `missing`.

    Raises pytest.UsageError for an unknown $SANDBOX_VCR_RECORD and for `all` or `live` without an upstream.
    """
    mode = config.getoption("sandbox_record_mode")
    source = "--sandbox-record-mode"
    if mode is None:
        value = os.environ.get("SANDBOX_VCR_RECORD", "")
        if value:
            mode, source = value.lower(), "SANDBOX_VCR_RECORD"
            if mode not in RECORD_MODES:
                raise pytest.UsageError(
                    f"SANDBOX_VCR_RECORD={value!r} is not a record mode; use never, missing, all or live (or unset it)")
        elif _is_ci(os.environ):
            mode = "never"
        else:
            mode = "missing"
    if mode in ("all", "live") and not config.getoption("sandbox_upstream"):
        raise pytest.UsageError(
            f"{source}={mode} calls the real SandboxFusion for every request: give it with --sandbox-upstream URL")
    return mode


def _is_ci(environ) -> bool:
    value = environ.get("CI", "")
    return value != "" and value.lower() != "false" and value != "0"


class SandboxVCR:
    """What the `sandbox_vcr` fixture gives a test: where to send requests, the cassette, and the counts."""

    #: The Modal replay server's URL: `None` until `sandbox-vcr serve` replays Modal (a later release).
    modal_url: Optional[str] = None

    def __init__(self, state: "_SessionState", url: str, cassette: Path, record_mode: str, test: str,
                 allow_misses: bool):
        #: The server's base URL, e.g. http://127.0.0.1:PORT (the official client's endpoint).
        self.url = url
        #: The /run_code URL (what tinker-cookbook style clients read from SANDBOX_URL).
        self.run_code_url = f"{url}/run_code"
        #: The test's cassette file (it may not exist yet: it is written by the first recording).
        self.cassette = cassette
        self.record_mode = record_mode
        self.test = test
        self.allow_misses = allow_misses
        self._state = state
        #: Set once the test ended: the cassette is being closed, and `_final` gets the closing report.
        self._closing = False
        self._final: Optional[Dict[str, Any]] = None

    @property
    def report(self) -> Dict[str, Any]:
        """The server's counts for this test: requests, hits, misses, recorded, live, errors, miss_diagnostics,
        error_messages, used_recordings (the last filled once the test ended)."""
        if self._closing and self._final is None and self._state.server is not None:
            self._state.server.drain()
        if self._final is not None:
            return self._final
        if self._closing:
            raise SandboxVCRError(f"the report of {self.test} is not available: its cassette could not be closed")
        return self._state.current_report()

    hits = property(lambda self: self.report["hits"], doc="Requests replayed from the cassette.")
    misses = property(lambda self: self.report["misses"], doc="Requests with no recording.")
    recorded = property(lambda self: self.report["recorded"], doc="Requests recorded into the cassette.")
    live = property(lambda self: self.report["live"], doc="Requests passed through (mode `live`).")
    errors = property(lambda self: self.report["errors"], doc="Requests that failed otherwise.")

    def __repr__(self):
        return f"SandboxVCR(url={self.url!r}, cassette={str(self.cassette)!r}, record_mode={self.record_mode!r})"


class _SessionState:
    """The session's serve process (started by the first marked test), and what its tests used."""

    def __init__(self, config, record_mode: str):
        self.config = config
        self.record_mode = record_mode
        self.upstream: Optional[str] = config.getoption("sandbox_upstream")
        cassette_dir = config.getoption("sandbox_cassette_dir")
        self.cassette_dir = (Path(config.invocation_params.dir) / cassette_dir).resolve() if cassette_dir else None
        self.server: Optional[ServeProcess] = None
        self.start_error: Optional[str] = None
        self.temp_dir: Optional[tempfile.TemporaryDirectory] = None
        #: path -> ids of recordings some test used (from each test's final report).
        self.used: Dict[str, set] = {}
        #: path -> {id: request summary} of recordings the server says no test used.
        self.unused: Dict[str, Dict[int, str]] = {}
        self.totals = {"tests": 0, "hits": 0, "misses": 0, "recorded": 0, "live": 0, "errors": 0}
        #: What went wrong outside any test (shown in the summary).
        self.problems: List[str] = []

    def ensure_server(self) -> ServeProcess:
        if self.server is not None:
            return self.server
        if self.start_error is not None:
            pytest.fail(self.start_error, pytrace=False)
        try:
            binary = find_binary()
            self.temp_dir = tempfile.TemporaryDirectory(prefix="sandbox-vcr-")
            self.server = ServeProcess(binary, self.upstream, Path(self.temp_dir.name) / "serve.log")
        except SandboxVCRError as error:
            self.start_error = f"pytest-sandbox-vcr: {error}"
            pytest.fail(self.start_error, pytrace=False)
        return self.server

    def current_report(self) -> Dict[str, Any]:
        active = self.ensure_server().request("GET", "/sandbox-vcr/cassette")["active"]
        if active is None:
            raise SandboxVCRError("no cassette is active on the server")
        return active

    def begin(self, item, marker, config_overrides: Dict[str, Any]) -> SandboxVCR:
        server = self.ensure_server()
        cassette = cassette_path(item, marker, config_overrides.get("cassette_dir") or self.cassette_dir)
        allow_misses = bool(marker.kwargs.get("allow_misses", False)) if marker else False
        allow_misses = allow_misses or bool(config_overrides.get("allow_misses", False))
        try:
            server.request(
                "POST", "/sandbox-vcr/cassette",
                {"path": str(cassette), "mode": self.record_mode, "test": item.nodeid})
        except SandboxVCRError as error:
            pytest.fail(f"pytest-sandbox-vcr: {error}", pytrace=False)
        return SandboxVCR(self, server.url, cassette, self.record_mode, item.nodeid, allow_misses)

    def end(self, vcr: SandboxVCR):
        """Closes the test's cassette without waiting: the server commits and closes it while pytest goes on, and
        its report is read before the next control request (the next test's, or the session's end)."""
        vcr._closing = True
        self.ensure_server().send(
            "DELETE", "/sandbox-vcr/cassette", None, lambda answer, error: self._closed(vcr, answer, error))

    def _closed(self, vcr: SandboxVCR, answer: Any, error: Optional[Exception]):
        if error is not None:
            self.problems.append(f"the cassette {vcr.cassette} of {vcr.test} could not be closed: {error}")
            return
        report = answer["closed"] or {}
        vcr._final = report
        self.totals["tests"] += 1
        for key in ("hits", "misses", "recorded", "live", "errors"):
            self.totals[key] += report.get(key, 0)
        self.used.setdefault(report.get("path", str(vcr.cassette)), set()).update(report.get("used_recordings", []))
        for message in report.get("error_messages", []):
            if message.startswith("closing the cassette failed"):
                self.problems.append(f"{vcr.test}: {message}")

    def finish(self):
        """Asks the server which recordings no test used, then stops it."""
        if self.server is None:
            return
        try:
            for cassette in self.server.request("GET", "/sandbox-vcr/unused")["cassettes"]:
                entries = self.unused.setdefault(cassette["path"], {})
                for recording in cassette["unused"]:
                    entries[int(recording["id"])] = recording["request"]
        except SandboxVCRError as error:
            self.problems.append(f"could not ask which recordings were unused: {error}")
        finally:
            status = self.server.stop()
            self.server = None
            if self.temp_dir is not None:
                self.temp_dir.cleanup()
        if status not in (0, None):
            self.problems.append(f"sandbox-vcr serve exited with status {status}")

    def usage(self) -> Dict[str, Any]:
        """This process's usage, as plain data (what an xdist worker sends its controller)."""
        return {
            "used": {path: sorted(ids) for path, ids in self.used.items()},
            "unused": {path: {str(k): v for k, v in entries.items()} for path, entries in self.unused.items()},
            "totals": dict(self.totals),
            "problems": list(self.problems),
        }

    def merge(self, usage: Dict[str, Any]):
        """Adds an xdist worker's usage to this (the controller's) state."""
        for path, ids in usage.get("used", {}).items():
            self.used.setdefault(path, set()).update(ids)
        for path, entries in usage.get("unused", {}).items():
            self.unused.setdefault(path, {}).update({int(k): v for k, v in entries.items()})
        for key, value in usage.get("totals", {}).items():
            self.totals[key] = self.totals.get(key, 0) + value
        self.problems += usage.get("problems", [])

    def unused_by_cassette(self) -> Dict[str, List[tuple]]:
        """Per cassette, the recordings no test of the session used (by any worker)."""
        result = {}
        for path in sorted(self.unused):
            used = self.used.get(path, set())
            left = sorted((id, summary) for id, summary in self.unused[path].items() if id not in used)
            if left:
                result[path] = left
        return result


_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-\[\]=+,@]+")


def default_cassette_name(item) -> str:
    """`test_name` (with its parameters), `TestClass.test_name` in a class; unsafe characters become `-`, and a
    name longer than 150 characters is cut and ends with a hash of the whole name."""
    name = item.name
    cls = getattr(item, "cls", None)
    if cls is not None:
        name = f"{cls.__name__}.{name}"
    safe = _UNSAFE.sub("-", name).strip(".-") or "test"
    if len(safe) > 150:
        safe = f"{safe[:140]}-{hashlib.sha256(name.encode('utf-8')).hexdigest()[:8]}"
    return safe


def cassette_path(item, marker, cassette_dir: Optional[Path]) -> Path:
    """`<dir>/<module>/<name>.sqlite`, where dir is `cassettes/` beside the test module unless configured."""
    name = marker.args[0] if marker is not None and marker.args else None
    if name is not None:
        if not isinstance(name, str) or not name or os.path.isabs(name) or ".." in Path(name).parts:
            pytest.fail(
                f"@pytest.mark.sandbox_vcr({name!r}): the cassette name must be a relative name without `..`",
                pytrace=False)
        name = name[: -len(".sqlite")] if name.endswith(".sqlite") else name
    else:
        name = default_cassette_name(item)
    module = getattr(item, "module", None)
    module_name = module.__name__.rsplit(".", 1)[-1] if module is not None else Path(str(item.path)).stem
    base = Path(cassette_dir) if cassette_dir else Path(str(item.path)).parent / "cassettes"
    return (base / module_name / f"{name}.sqlite").resolve()


class _Environment:
    """Points the environment and the official client at the server for one test, and puts them back."""

    def __init__(self, url: str):
        self.url = url
        self.saved = {name: os.environ.get(name) for name in (ENV_RUN_CODE_URL, ENV_ENDPOINT)}
        self.client_config = sys.modules.get("sandbox_fusion.config")
        self.saved_client = (
            (self.client_config.SANDBOX_ENDPOINT, self.client_config.DATASET_ENDPOINT)
            if self.client_config is not None else None)

    def apply(self):
        os.environ[ENV_RUN_CODE_URL] = f"{self.url}/run_code"
        os.environ[ENV_ENDPOINT] = self.url
        client = sys.modules.get("sandbox_fusion")
        if client is not None and hasattr(client, "set_endpoint"):
            client.set_endpoint(self.url)

    def restore(self):
        for name, value in self.saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        config = sys.modules.get("sandbox_fusion.config")
        if config is None:
            return
        if self.saved_client is not None and config is self.client_config:
            config.SANDBOX_ENDPOINT, config.DATASET_ENDPOINT = self.saved_client
        else:
            # Imported during the test (so it read our endpoint at import): give it what it reads without us.
            config.SANDBOX_ENDPOINT = os.environ.get(ENV_ENDPOINT, "http://localhost:8080")
            config.DATASET_ENDPOINT = os.environ.get("SANDBOX_FUSION_DATASET_ENDPOINT", config.SANDBOX_ENDPOINT)


@pytest.fixture
def sandbox_vcr_config() -> Dict[str, Any]:
    """Override (in a conftest.py or a module) to configure the marked tests it covers: `cassette_dir` (a path)
    and `allow_misses` (a miss does not fail the test)."""
    return {}


@pytest.fixture(autouse=True)
def _sandbox_vcr_cassette(request):
    marker = request.node.get_closest_marker(MARKER)
    if marker is None and "sandbox_vcr" not in request.fixturenames:
        yield None
        return
    state: _SessionState = request.config.stash[_STATE]
    overrides = request.getfixturevalue("sandbox_vcr_config")
    vcr = state.begin(request.node, marker, overrides)
    environment = _Environment(vcr.url)
    environment.apply()
    request.node.stash[_ACTIVE] = vcr
    try:
        yield vcr
    finally:
        environment.restore()
        del request.node.stash[_ACTIVE]
        state.end(vcr)


@pytest.fixture
def sandbox_vcr(_sandbox_vcr_cassette) -> SandboxVCR:
    """The test's cassette and server: `.url`, `.run_code_url`, `.modal_url` (None for now), `.cassette`,
    `.record_mode`, and its `.hits`, `.misses`, `.recorded` counts. Using it marks the test."""
    return _sandbox_vcr_cassette


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    vcr = item.stash.get(_ACTIVE, None)
    if vcr is None:
        return (yield)
    try:
        result = yield
    except BaseException as error:
        if isinstance(error, (Exception, pytest.fail.Exception)) and not vcr.allow_misses:
            message = _miss_message(vcr, shown=str(error))
            if message and hasattr(error, "add_note"):
                error.add_note(message)
            elif message:
                item.add_report_section("call", "sandbox-vcr", message)
        raise
    if not vcr.allow_misses:
        message = _miss_message(vcr)
        if message:
            pytest.fail(message, pytrace=False)
    return result


def _miss_message(vcr: SandboxVCR, shown: str = "") -> Optional[str]:
    """The failure text for a test whose requests missed its cassette, or None. Diagnostics already in `shown`
    (the test's error: the official client raises with the server's message) are referred to, not repeated."""
    try:
        report = vcr.report
    except SandboxVCRError as error:
        return f"pytest-sandbox-vcr: {error}"
    misses = report.get("misses", 0)
    if not misses:
        return None
    diagnostics = report.get("miss_diagnostics", [])
    lines = [
        f"sandbox-vcr: {misses} SandboxFusion request(s) of this test have no recording in {vcr.cassette} "
        f"(record mode `{vcr.record_mode}`):"]
    for number, text in enumerate(diagnostics, start=1):
        lines += ["", f"--- miss {number} ---", "(in the error above)" if text in shown else text]
    if misses > len(diagnostics):
        lines += ["", f"(and {misses - len(diagnostics)} more)"]
    if vcr.record_mode in ("never", "missing") and not vcr._state.upstream:
        lines += ["", "To record them: pytest --sandbox-record-mode=missing --sandbox-upstream "
                      "http://SANDBOXFUSION:8080 (then commit the cassette)."]
    return "\n".join(lines)


def pytest_sessionfinish(session):
    state: Optional[_SessionState] = session.config.stash.get(_STATE, None)
    if state is None:
        return
    state.finish()
    if state.problems and session.exitstatus == pytest.ExitCode.OK:
        # A cassette that could not be closed may be incomplete on disk: the run must not look green.
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["sandbox_vcr"] = state.usage()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    usage = getattr(node, "workeroutput", {}).get("sandbox_vcr")
    state: Optional[_SessionState] = node.config.stash.get(_STATE, None)
    if usage and state is not None:
        state.merge(usage)


def pytest_terminal_summary(terminalreporter, config):
    if hasattr(config, "workerinput"):
        return
    state: Optional[_SessionState] = config.stash.get(_STATE, None)
    if state is None or not state.totals.get("tests"):
        return
    totals = state.totals
    terminalreporter.write_sep("-", "sandbox-vcr")
    terminalreporter.write_line(
        f"{totals['tests']} test(s) with cassettes (record mode {state.record_mode}): {totals['hits']} replayed, "
        f"{totals['recorded']} recorded, {totals['misses']} missed, {totals['live']} live, {totals['errors']} "
        f"failed")
    for problem in state.problems:
        terminalreporter.write_line(f"pytest-sandbox-vcr: {problem}", red=True)
    unused = state.unused_by_cassette()
    if unused:
        count = sum(len(entries) for entries in unused.values())
        terminalreporter.write_line(
            f"{count} recording(s) no test of this session used (to drop them, delete the cassette and record it "
            f"again):", yellow=True)
        root = Path(str(config.rootpath))
        for path, entries in unused.items():
            shown = Path(path)
            shown = shown.relative_to(root) if shown.is_relative_to(root) else shown
            terminalreporter.write_line(f"  {shown}:")
            for id, summary in entries:
                terminalreporter.write_line(f"    #{id} {summary}")
