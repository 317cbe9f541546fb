"""pytest-sandbox-vcr: cassettes for SandboxFusion calls, the way pytest-recording gives them for HTTP.

A test marked `@pytest.mark.sandbox_vcr` (or a class or module so marked, or a test using the `sandbox_vcr`
fixture) runs with `SANDBOX_URL`, `SANDBOX_FUSION_ENDPOINT` and the official `sandbox_fusion` client pointed at one
`sandbox-vcr serve --control` per session (per xdist worker), which answers from the test's cassette,
`cassettes/<module>/<test>.sqlite` beside the test module.

Modal: the same serve also speaks Modal's API (`--modal-port`), and its Modal port follows the test's cassette: a
marked test gets `MODAL_SERVER_URL` (and placeholder tokens in replay), and its sandboxes are replayed from and
recorded into its own cassette. A sandbox binds to the cassette of the test that runs its first exec (so a warm pool
made ahead works), and again to the next test's cassette if it is used there too.

Alternatively, the session-scoped `sandbox_vcr_modal` fixture (or `@pytest.mark.sandbox_vcr_modal`) starts one
`sandbox-vcr serve --modal-port 0` with one cassette for the whole session (`cassettes/modal.sqlite` under the
rootdir) and sets `MODAL_SERVER_URL` to it until the session ends (see modal_session.py); while it runs, marked tests
leave `MODAL_SERVER_URL` to it.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from .modal_session import (PLACEHOLDER_TOKEN_ID, PLACEHOLDER_TOKEN_SECRET, ModalSessionState, SandboxVCRModal,
                            _profile_has_token)
from .server import SandboxVCRError, ServeProcess, find_binary

RECORD_MODES = ("never", "missing", "all", "live")
MARKER = "sandbox_vcr"
MODAL_MARKER = "sandbox_vcr_modal"
MODAL_FIXTURE = "sandbox_vcr_modal"
MODAL_CASSETTE_INI = "sandbox_modal_cassette"
#: The variables a marked test gets, each set to the server's base URL or its /run_code URL.
ENV_RUN_CODE_URL = "SANDBOX_URL"
ENV_ENDPOINT = "SANDBOX_FUSION_ENDPOINT"
ENV_MODAL_URL = "MODAL_SERVER_URL"
ENV_MODAL_TOKENS = ("MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET")
#: The Modal API serve records from when neither --sandbox-modal-upstream nor $MODAL_SERVER_URL names one.
DEFAULT_MODAL_UPSTREAM = "https://api.modal.com"

_STATE = pytest.StashKey["_SessionState"]()
_ACTIVE = pytest.StashKey["SandboxVCR"]()
#: The test that runs after an item (pytest's `nextitem`), whose cassette the server may open ahead.
_NEXT = pytest.StashKey[Optional[pytest.Item]]()
#: The cassette path computed when the test's cassette was prepared (see `_SessionState.prepare`).
_PREPARED_CASSETTE = pytest.StashKey[Path]()
_MODAL = pytest.StashKey[ModalSessionState]()
#: The Modal API recordings come from: --sandbox-modal-upstream, else $MODAL_SERVER_URL when pytest started.
_MODAL_UPSTREAM = pytest.StashKey[Optional[str]]()
#: A test's Modal miss count when its setup began.
_MODAL_BASELINE = pytest.StashKey[int]()


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
    group.addoption(
        "--sandbox-modal-cassette", metavar="FILE", default=None,
        help=f"The session's Modal cassette (the sandbox_vcr_modal fixture). Default: the {MODAL_CASSETTE_INI} ini "
             f"setting, else DIR/modal.sqlite with --sandbox-cassette-dir DIR, else cassettes/modal.sqlite under the "
             f"rootdir.")
    group.addoption(
        "--sandbox-modal-upstream", metavar="URL", default=None,
        help="The Modal API to record from. Default: $MODAL_SERVER_URL when the session's Modal server starts, else "
             "the Modal profile's server_url, else https://api.modal.com. Tokens: the client's own "
             "(MODAL_TOKEN_ID / MODAL_TOKEN_SECRET or ~/.modal.toml).")
    group.addoption(
        "--sandbox-modal-normalize", metavar="REGEX=REPLACEMENT", action="append", default=None,
        help="Rewrite each Modal exec's argv, workdir and stdin before matching (serve --normalize; repeatable), for "
             "values that change between runs and are not bound automatically. Added to the "
             "sandbox_modal_normalize ini lines.")
    parser.addini(
        "sandbox_modal_normalize", "REGEX=REPLACEMENT lines for the Modal server's --normalize (pytest-sandbox-vcr).",
        type="linelist", default=[])
    parser.addini(
        MODAL_CASSETTE_INI, "The session's Modal cassette, relative to the ini file (pytest-sandbox-vcr).",
        type="string", default="")


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "sandbox_vcr(name=None, *, allow_misses=False): replay the test's SandboxFusion calls from "
        "cassettes/<module>/<name or test>.sqlite (pytest-sandbox-vcr)")
    config.addinivalue_line(
        "markers",
        "sandbox_vcr_modal(*, allow_misses=False): use the session's Modal replay server (the sandbox_vcr_modal "
        "fixture: MODAL_SERVER_URL points at it from then on) (pytest-sandbox-vcr)")
    record_mode = resolve_record_mode(config)
    normalizers = list(config.getini("sandbox_modal_normalize")) + (config.getoption("sandbox_modal_normalize") or [])
    config.stash[_MODAL_UPSTREAM] = config.getoption("sandbox_modal_upstream") or os.environ.get(ENV_MODAL_URL) or None
    config.stash[_STATE] = _SessionState(config, record_mode, normalizers)
    config.stash[_MODAL] = ModalSessionState(
        config, record_mode, modal_cassette_path(config), config.getoption("sandbox_modal_upstream"),
        normalizers=normalizers)


def modal_cassette_path(config) -> Path:
    """--sandbox-modal-cassette (from the invocation folder), else the ini setting (from the ini file's folder),
    else `modal.sqlite` in --sandbox-cassette-dir, else `<rootdir>/cassettes/modal.sqlite`."""
    invocation = Path(config.invocation_params.dir)
    option = config.getoption("sandbox_modal_cassette")
    if option:
        return (invocation / option).resolve()
    ini = config.getini(MODAL_CASSETTE_INI)
    if ini:
        base = Path(config.inipath).parent if config.inipath else Path(config.rootpath)
        return (base / ini).resolve()
    cassette_dir = config.getoption("sandbox_cassette_dir")
    if cassette_dir:
        return (invocation / cassette_dir / "modal.sqlite").resolve()
    return (Path(config.rootpath) / "cassettes" / "modal.sqlite").resolve()


def resolve_record_mode(config) -> str:
    """--sandbox-record-mode, else $SANDBOX_VCR_RECORD, else `never` when $CI is set, else `missing`.

    Raises pytest.UsageError for an unknown $SANDBOX_VCR_RECORD (`all` or `live` without --sandbox-upstream is
    refused once the collected tests include SandboxFusion ones: Modal always has an upstream).
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
    config.stash[_MODE_SOURCE] = source
    return mode


_MODE_SOURCE = pytest.StashKey[str]()


def pytest_collection_modifyitems(session, config, items):
    state: Optional[_SessionState] = config.stash.get(_STATE, None)
    if state is None or state.record_mode not in ("all", "live") or state.upstream:
        return
    if config.getoption("sandbox_modal_upstream"):
        return  # recording Modal sandboxes only
    if any(item.get_closest_marker(MARKER) is not None or "sandbox_vcr" in getattr(item, "fixturenames", ())
           for item in items):
        raise pytest.UsageError(
            f"{config.stash[_MODE_SOURCE]}={state.record_mode} calls the real SandboxFusion for every request: give "
            f"it with --sandbox-upstream URL")


def _is_ci(environ) -> bool:
    value = environ.get("CI", "")
    return value != "" and value.lower() != "false" and value != "0"


class SandboxVCR:
    """What the `sandbox_vcr` fixture gives a test: where to send requests, the cassette, and the counts."""

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
        session_modal = state.config.stash.get(_MODAL, None)
        self.modal_url = (session_modal.server_url("modal_url") if session_modal is not None and session_modal.running
                          else state.server.modal_url if state.server is not None else None)

    @property
    def report(self) -> Dict[str, Any]:
        """The server's counts for this test: requests, hits, misses, recorded, live, errors, miss_diagnostics,
        error_messages, used_recordings (the last filled once the test ended), and `modal`: its Modal calls'
        sandboxes, replayed, recorded, forwarded, misses, errors, miss_diagnostics and error_messages."""
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
    modal = property(lambda self: self.report.get("modal") or {},
                     doc="What the test's Modal calls did: sandboxes, replayed, recorded, forwarded, misses, errors.")

    #: Modal's API answered from this test's cassette (MODAL_SERVER_URL during the test), e.g. http://127.0.0.1:PORT;
    #: the session's Modal server instead while the `sandbox_vcr_modal` fixture runs.
    modal_url: Optional[str] = None

    def __repr__(self):
        return f"SandboxVCR(url={self.url!r}, cassette={str(self.cassette)!r}, record_mode={self.record_mode!r})"


class _SessionState:
    """The session's serve process (started by the first marked test), and what its tests used."""

    def __init__(self, config, record_mode: str, modal_normalizers: Optional[List[str]] = None):
        self.config = config
        self.record_mode = record_mode
        self.modal_normalizers = list(modal_normalizers or [])
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
        self.totals = {"tests": 0, "hits": 0, "misses": 0, "recorded": 0, "live": 0, "errors": 0,
                       "modal_tests": 0, "modal_replayed": 0, "modal_recorded": 0, "modal_misses": 0}
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
            self.server = ServeProcess(
                binary, self.upstream, Path(self.temp_dir.name) / "serve.log", arguments=self.serve_arguments())
        except SandboxVCRError as error:
            self.start_error = f"pytest-sandbox-vcr: {error}"
            pytest.fail(self.start_error, pytrace=False)
        return self.server

    def serve_arguments(self) -> List[str]:
        """`serve --control` with the SandboxFusion upstream, and a Modal port that records (from the Modal upstream)
        unless the session only replays."""
        arguments = ["--control", "--port", "0", "--modal-port", "0"]
        if self.upstream:
            arguments += ["--url", self.upstream]
        if self.record_mode != "never":
            arguments += ["--modal-upstream", self.config.stash.get(_MODAL_UPSTREAM, None) or DEFAULT_MODAL_UPSTREAM]
        for rule in self.modal_normalizers:
            arguments += ["--normalize", rule]
        return arguments

    def current_report(self) -> Dict[str, Any]:
        active = self.ensure_server().request("GET", "/sandbox-vcr/cassette")["active"]
        if active is None:
            raise SandboxVCRError("no cassette is active on the server")
        return active

    def begin(self, item, marker, config_overrides: Dict[str, Any]) -> SandboxVCR:
        server = self.ensure_server()
        cassette_dir = config_overrides.get("cassette_dir")
        cassette = (item.stash.get(_PREPARED_CASSETTE, None) if cassette_dir is None else None) or cassette_path(
            item, marker, cassette_dir or self.cassette_dir)
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

    def prepare(self, item):
        """Asks the server, without waiting, to open `item`'s cassette ahead (`POST /sandbox-vcr/next`), so that its
        activation is quick; only when the cassette is sure to be the one `begin` will ask for: a marked test, not
        skipped by a marker, whose `sandbox_vcr_config` is the default. The server keeps it out of use until then,
        and drops it if another comes."""
        if item is None or self.server is None:
            return
        marker = item.get_closest_marker(MARKER)
        if marker is None and "sandbox_vcr" not in getattr(item, "fixturenames", ()):
            return
        if item.get_closest_marker("skip") is not None or item.get_closest_marker("skipif") is not None:
            return
        try:
            # The config fixture is requested at setup (not in the test's signature): ask which one the test sees.
            definitions = item.session._fixturemanager.getfixturedefs("sandbox_vcr_config", item)
        except Exception:
            return
        function = getattr(definitions[-1], "func", None) if definitions else None
        if getattr(function, "__module__", None) != __name__:
            return
        try:
            cassette = cassette_path(item, marker, self.cassette_dir)
        except (Exception, pytest.fail.Exception):
            return  # `begin` reports it
        item.stash[_PREPARED_CASSETTE] = cassette
        self.server.send(
            "POST", "/sandbox-vcr/next", {"path": str(cassette), "mode": self.record_mode, "test": item.nodeid},
            lambda answer, error: None)

    def _closed(self, vcr: SandboxVCR, answer: Any, error: Optional[Exception]):
        if error is not None:
            self.problems.append(f"the cassette {vcr.cassette} of {vcr.test} could not be closed: {error}")
            return
        report = answer["closed"] or {}
        vcr._final = report
        self.totals["tests"] += 1
        for key in ("hits", "misses", "recorded", "live", "errors"):
            self.totals[key] += report.get(key, 0)
        modal = report.get("modal") or {}
        if modal.get("sandboxes", 0) or modal.get("misses", 0):
            self.totals["modal_tests"] += 1
        for key in ("replayed", "recorded", "misses"):
            self.totals[f"modal_{key}"] += modal.get(key, 0)
        self.used.setdefault(report.get("path", str(vcr.cassette)), set()).update(report.get("used_recordings", []))
        for message in report.get("error_messages", []):
            if message.startswith("closing the cassette failed"):
                self.problems.append(f"{vcr.test}: {message}")

    def finish(self):
        """Asks the server which recordings no test used, then stops it."""
        if self.server is None:
            return
        try:
            # Modal execs that missed with no cassette active (outside marked tests: a session fixture, a
            # background task) are in no test's report; the replay still differs, so the session fails.
            modal_misses = int((self.server.request("GET", "/stats").get("modal") or {}).get("misses", 0))
            in_tests = self.totals["modal_misses"]
            if modal_misses > in_tests:
                self.problems.append(
                    f"{modal_misses - in_tests} Modal exec(s) ran outside any marked test and missed (no cassette "
                    f"was active): make the Modal calls in marked tests, or in fixtures they use")
        except (SandboxVCRError, ValueError, TypeError) as error:
            self.problems.append(f"could not read the Modal counts: {error}")
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
    """Points the environment, the official client and Modal's SDK at the server for one test, and puts them back."""

    def __init__(self, url: str, modal_url: Optional[str] = None, record_mode: str = "never",
                 sandbox_fusion: bool = True):
        self.url = url
        #: None: leave Modal's variables alone (the session's Modal server owns them, or there is no Modal port).
        self.modal_url = modal_url
        self.record_mode = record_mode
        #: False: Modal's variables only.
        self.sandbox_fusion = sandbox_fusion
        names = ((ENV_RUN_CODE_URL, ENV_ENDPOINT) if sandbox_fusion else ()) + (
            (ENV_MODAL_URL,) + ENV_MODAL_TOKENS if modal_url else ())
        self.saved = {name: os.environ.get(name) for name in names}
        self.client_config = sys.modules.get("sandbox_fusion.config")
        self.saved_client = (
            (self.client_config.SANDBOX_ENDPOINT, self.client_config.DATASET_ENDPOINT)
            if self.client_config is not None else None)

    def apply(self):
        if self.sandbox_fusion:
            os.environ[ENV_RUN_CODE_URL] = f"{self.url}/run_code"
            os.environ[ENV_ENDPOINT] = self.url
        if self.modal_url:
            os.environ[ENV_MODAL_URL] = self.modal_url
            if not all(os.environ.get(name) for name in ENV_MODAL_TOKENS):
                # The SDK refuses to start without a token and a replay accepts any; a recording forwards the
                # client's own, so a configured profile is left to the SDK then.
                if self.record_mode == "never" or not _profile_has_token():
                    os.environ["MODAL_TOKEN_ID"] = PLACEHOLDER_TOKEN_ID
                    os.environ["MODAL_TOKEN_SECRET"] = PLACEHOLDER_TOKEN_SECRET
        client = sys.modules.get("sandbox_fusion")
        if self.sandbox_fusion and client is not None and hasattr(client, "set_endpoint"):
            client.set_endpoint(self.url)

    def restore(self):
        for name, value in self.saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        config = sys.modules.get("sandbox_fusion.config")
        if config is None or not self.sandbox_fusion:
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
    session_modal: Optional[ModalSessionState] = request.config.stash.get(_MODAL, None)
    owns_modal = session_modal is None or not session_modal.running
    environment = _Environment(vcr.url, vcr.modal_url if owns_modal else None, vcr.record_mode)
    environment.apply()
    request.node.stash[_ACTIVE] = vcr
    try:
        yield vcr
    finally:
        environment.restore()
        del request.node.stash[_ACTIVE]
        state.end(vcr)
        state.prepare(request.node.stash.get(_NEXT, None))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    """Notes which test comes next (returns nothing, so pytest's own protocol runs the test)."""
    item.stash[_NEXT] = nextitem


@pytest.fixture
def sandbox_vcr(_sandbox_vcr_cassette) -> SandboxVCR:
    """The test's cassette and server: `.url`, `.run_code_url`, `.modal_url` (Modal's API from the same cassette),
    `.cassette`, `.record_mode`, its `.hits`, `.misses`, `.recorded` counts and `.modal` (its Modal counts). Using it
    marks the test."""
    return _sandbox_vcr_cassette


@pytest.fixture(scope="session")
def sandbox_vcr_modal(pytestconfig) -> SandboxVCRModal:
    """The session's Modal replay server: from the first use until the session ends, `MODAL_SERVER_URL` points at
    one `sandbox-vcr serve --modal-port` answering from the session's Modal cassette (placeholder tokens in mode
    `never` when none are set). `.url`, `.cassette`, `.record_mode`, `.upstream`, `.stats` (serve's Modal counters)
    and `.misses`, `.replayed`, `.recorded`, `.sandboxes`. Use it before the first Modal call of the process."""
    state: ModalSessionState = pytestconfig.stash[_MODAL]
    handle = state.start()
    try:
        yield handle
    finally:
        state.finish()


@pytest.fixture(scope="session", autouse=True)
def _sandbox_vcr_modal_autostart(request):
    """Starts the Modal server before the session's first test when any selected test uses it (the fixture or the
    marker): Modal's SDK keeps the first client it makes, so MODAL_SERVER_URL must be set before any fixture (of
    any scope) or earlier test calls Modal. If it cannot start, only the tests that use it fail."""
    if any(item.get_closest_marker(MODAL_MARKER) is not None or MODAL_FIXTURE in getattr(item, "fixturenames", ())
           for item in request.session.items):
        try:
            request.getfixturevalue(MODAL_FIXTURE)
        except pytest.fail.Exception:
            pass


@pytest.fixture(scope="session", autouse=True)
def _sandbox_vcr_modal_environment(request):
    """Points Modal's SDK at the per-test cassettes' serve for the whole session, before any fixture of any scope
    runs, when the session imported `modal` and selected marked tests: the SDK makes its client once, at the first
    Modal call (a session-scoped warm pool, say), with the server URL of that moment. Without `modal`, each marked
    test sets MODAL_SERVER_URL for itself."""
    items = request.session.items
    session_modal: Optional[ModalSessionState] = request.config.stash.get(_MODAL, None)
    uses_session_modal = any(
        item.get_closest_marker(MODAL_MARKER) is not None or MODAL_FIXTURE in getattr(item, "fixturenames", ())
        for item in items)
    marked = any(item.get_closest_marker(MARKER) is not None or "sandbox_vcr" in getattr(item, "fixturenames", ())
                 for item in items)
    if uses_session_modal or not marked or "modal" not in sys.modules or session_modal is None:
        yield
        return
    state: _SessionState = request.config.stash[_STATE]
    try:
        server = state.ensure_server()
    except pytest.fail.Exception:
        # The marked tests fail with the reason; Modal calls made before them go wherever the SDK's settings say.
        warnings.warn(pytest.PytestWarning(f"Modal is not pointed at sandbox-vcr: {state.start_error}"))
        yield
        return
    environment = _Environment(server.url, server.modal_url, state.record_mode, sandbox_fusion=False)
    environment.apply()
    try:
        yield
    finally:
        environment.restore()


@pytest.fixture(autouse=True)
def _sandbox_vcr_modal_marker(request):
    if request.node.get_closest_marker(MODAL_MARKER) is not None:
        request.getfixturevalue(MODAL_FIXTURE)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_setup(item):
    modal: Optional[ModalSessionState] = item.config.stash.get(_MODAL, None)
    if modal is not None and (modal.running or modal.final is None):
        try:
            item.stash[_MODAL_BASELINE] = modal.misses_now()
        except SandboxVCRError:
            pass
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    vcr = item.stash.get(_ACTIVE, None)
    modal = item.config.stash.get(_MODAL, None)
    if vcr is None and (modal is None or not modal.running):
        return (yield)
    try:
        result = yield
    except BaseException as error:
        if isinstance(error, (Exception, pytest.fail.Exception)):
            messages = [_miss_message(vcr, shown=str(error)) if vcr is not None and not vcr.allow_misses else None,
                        _modal_miss_message(item, shown=str(error))]
            for message in filter(None, messages):
                if hasattr(error, "add_note"):
                    error.add_note(message)
                else:
                    item.add_report_section("call", "sandbox-vcr", message)
        raise
    messages = [_miss_message(vcr) if vcr is not None and not vcr.allow_misses else None, _modal_miss_message(item)]
    messages = [message for message in messages if message]
    if messages:
        pytest.fail("\n\n".join(messages), pytrace=False)
    return result


def _modal_miss_message(item, shown: str = "") -> Optional[str]:
    """The failure text for a test during whose setup and call the session's Modal server counted misses, or None
    (also when its `sandbox_vcr_modal` marker allows misses)."""
    modal: Optional[ModalSessionState] = item.config.stash.get(_MODAL, None)
    if modal is None or not modal.running:
        return None
    try:
        misses = modal.misses_now() - item.stash.get(_MODAL_BASELINE, 0)
    except SandboxVCRError as error:
        return f"pytest-sandbox-vcr: {error}"
    if misses <= 0:
        return None
    modal.misses_in_tests += misses
    lines = modal.new_miss_lines()
    marker = item.get_closest_marker(MODAL_MARKER)
    if marker is not None and marker.kwargs.get("allow_misses", False):
        return None
    shown_elsewhere = "no recording matches" in shown or "sandbox-vcr serve: record mode" in shown
    text = [
        f"sandbox-vcr: {misses} Modal call(s) of this test have no recording in {modal.cassette} (record mode "
        f"`{modal.record_mode}`){' (the diagnostics are in the error above)' if shown_elsewhere else ''}:"]
    text += [f"  {line}" for line in lines[-10:]]
    text.append(_modal_record_hint(modal))
    return "\n".join(text)


def _modal_record_hint(modal: ModalSessionState) -> str:
    return ("To record them: pytest --sandbox-record-mode=missing with MODAL_TOKEN_ID / MODAL_TOKEN_SECRET set "
            "(upstream: --sandbox-modal-upstream, else $MODAL_SERVER_URL, else Modal), then commit the cassette.")


def _miss_message(vcr: SandboxVCR, shown: str = "") -> Optional[str]:
    """The failure text for a test whose requests missed its cassette, or None. Diagnostics already in `shown`
    (the test's error: the official client raises with the server's message) are referred to, not repeated."""
    try:
        report = vcr.report
    except SandboxVCRError as error:
        return f"pytest-sandbox-vcr: {error}"
    lines: List[str] = []
    misses = report.get("misses", 0)
    if misses:
        lines += _miss_lines(
            f"{misses} SandboxFusion request(s) of this test have no recording", misses,
            report.get("miss_diagnostics", []), vcr, shown)
        if vcr.record_mode in ("never", "missing") and not vcr._state.upstream:
            lines += ["", "To record them: pytest --sandbox-record-mode=missing --sandbox-upstream "
                          "http://SANDBOXFUSION:8080 (then commit the cassette)."]
    modal = report.get("modal") or {}
    modal_misses = modal.get("misses", 0)
    if modal_misses:
        if lines:
            lines.append("")
        lines += _miss_lines(
            f"{modal_misses} Modal exec(s) of this test have no recording", modal_misses,
            modal.get("miss_diagnostics", []), vcr, shown)
        if vcr.record_mode in ("never", "missing"):
            lines += ["", "To record them: pytest --sandbox-record-mode=missing with MODAL_TOKEN_ID / "
                          "MODAL_TOKEN_SECRET set (upstream: --sandbox-modal-upstream, else $MODAL_SERVER_URL, else "
                          "Modal), then commit the cassette."]
    return "\n".join(lines) if lines else None


def _miss_lines(headline: str, misses: int, diagnostics: List[str], vcr: SandboxVCR, shown: str) -> List[str]:
    lines = [f"sandbox-vcr: {headline} in {vcr.cassette} (record mode `{vcr.record_mode}`):"]
    for number, text in enumerate(diagnostics, start=1):
        lines += ["", f"--- miss {number} ---", "(in the error above)" if text in shown else text]
    if misses > len(diagnostics):
        lines += ["", f"(and {misses - len(diagnostics)} more)"]
    return lines


def pytest_sessionfinish(session):
    state: Optional[_SessionState] = session.config.stash.get(_STATE, None)
    if state is None:
        return
    state.finish()
    modal: ModalSessionState = session.config.stash[_MODAL]
    modal.finish()  # normally done by the fixture's teardown already
    if (state.problems or modal.problems or modal.unexplained_misses) and session.exitstatus == pytest.ExitCode.OK:
        # A cassette that could not be closed may be incomplete on disk, and a Modal miss no test failed for (in
        # a teardown, a background task) still means the replay differs: the run must not look green.
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["sandbox_vcr"] = state.usage()
        workeroutput["sandbox_vcr_modal"] = modal.usage()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    usage = getattr(node, "workeroutput", {}).get("sandbox_vcr")
    state: Optional[_SessionState] = node.config.stash.get(_STATE, None)
    if usage and state is not None:
        state.merge(usage)
    modal: Optional[ModalSessionState] = node.config.stash.get(_MODAL, None)
    if modal is not None:
        modal.merge(getattr(node, "workeroutput", {}).get("sandbox_vcr_modal"))


def pytest_terminal_summary(terminalreporter, config):
    if hasattr(config, "workerinput"):
        return
    state: Optional[_SessionState] = config.stash.get(_STATE, None)
    if state is None:
        return
    modal: ModalSessionState = config.stash[_MODAL]
    if not state.totals.get("tests") and modal.final is None:
        return
    terminalreporter.write_sep("-", "sandbox-vcr")
    if modal.final is not None:
        _modal_summary(terminalreporter, config, modal)
    if not state.totals.get("tests"):
        return
    totals = state.totals
    terminalreporter.write_line(
        f"{totals['tests']} test(s) with cassettes (record mode {state.record_mode}): {totals['hits']} replayed, "
        f"{totals['recorded']} recorded, {totals['misses']} missed, {totals['live']} live, {totals['errors']} "
        f"failed")
    if totals.get("modal_tests"):
        terminalreporter.write_line(
            f"Modal in {totals['modal_tests']} of them: {totals['modal_replayed']} exec(s) replayed, "
            f"{totals['modal_recorded']} recorded, {totals['modal_misses']} missed")
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


def _modal_summary(terminalreporter, config, modal: ModalSessionState):
    counts = modal.final or {}
    root = Path(str(config.rootpath))
    shown = modal.cassette.relative_to(root) if modal.cassette.is_relative_to(root) else modal.cassette
    terminalreporter.write_line(
        f"Modal ({shown}, record mode {modal.record_mode}): {counts.get('sandboxes', 0)} sandbox(es), "
        f"{counts.get('replayed', 0)} exec(s) replayed, {counts.get('recorded', 0)} recorded, "
        f"{counts.get('forwarded', 0)} forwarded, {counts.get('misses', 0)} missed")
    for problem in modal.problems:
        terminalreporter.write_line(f"pytest-sandbox-vcr: {problem}", red=True)
    misses = counts.get("misses", 0)
    if not misses:
        return
    unexplained = modal.unexplained_misses
    terminalreporter.write_line(
        f"sandbox-vcr: {misses} Modal miss(es)"
        + (f", {unexplained} outside any test's setup and call (this fails the session)" if unexplained else "")
        + ":", red=True)
    for line in modal.miss_lines[-20:]:
        terminalreporter.write_line(f"  {line}", red=True)
    terminalreporter.write_line(_modal_record_hint(modal), red=True)
