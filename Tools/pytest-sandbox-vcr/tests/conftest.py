"""Fixtures for the plugin's own tests: the built binary, and fake SandboxFusion and Modal upstreams to record from.

Run by Tools/test with SANDBOX_VCR_BIN pointing at the debug build:

    SANDBOX_VCR_BIN=.build/debug/sandbox-vcr Tools/.venv/bin/python -m pytest Tools/pytest-sandbox-vcr/tests
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from pytest_sandbox_vcr.server import READY_PREFIX, find_binary

pytest_plugins = ["pytester"]

#: What the fake upstream answers (`sandbox-vcr serve --rules`): a real loopback SandboxFusion-compatible server.
UPSTREAM_RULES = {
    "rules": [
        {"match": {"code": "print(3 + 4)"}, "result": {"kind": "success", "stdout": "7\n"}},
        {"match": {"code": "print(2 * 21)"}, "result": {"kind": "success", "stdout": "42\n"}},
        {"match": {"codeContains": "open('data.txt')", "files": {"data.txt": {"contains": "x,y"}}},
         "result": {"kind": "success", "stdout": "x,y\n1,2\n"}},
        {"match": {"codeContains": "while True"}, "result": {"kind": "timeLimit"}},
    ],
    "default": {"kind": "runtimeError", "exitCode": 1, "stderr": "the fake upstream has no rule for this\n"},
}


@pytest.fixture(scope="session")
def sandbox_vcr_bin() -> str:
    """The sandbox-vcr binary under test ($SANDBOX_VCR_BIN or PATH); the tests fail without one."""
    return find_binary()


class Upstream:
    """A `sandbox-vcr serve --rules` process: the SandboxFusion that recordings come from."""

    def __init__(self, binary: str, folder: Path):
        rules = folder / "rules.json"
        rules.write_text(json.dumps(UPSTREAM_RULES))
        self.process = subprocess.Popen(
            [binary, "serve", "--rules", str(rules), "--port", "0", "--log-level", "warning"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.process.stdout.readline()
        assert line.startswith(READY_PREFIX), f"the upstream did not start: {line!r}"
        self.url = line[len(READY_PREFIX):].strip()

    def run_code_calls(self) -> int:
        """How many /run_code requests it answered."""
        with urllib.request.urlopen(f"{self.url}/stats", timeout=30) as answer:
            return json.load(answer)["by_endpoint"].get("POST /run_code", 0)

    def stop(self):
        """Stops it for good: a replay afterwards proves nothing reached it."""
        if self.process.poll() is None:
            self.process.terminate()
            assert self.process.wait(timeout=30) == 0
        self.process.stdout.close()


@pytest.fixture
def upstream(sandbox_vcr_bin, tmp_path_factory):
    server = Upstream(sandbox_vcr_bin, tmp_path_factory.mktemp("upstream"))
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch, sandbox_vcr_bin):
    """The inner pytest runs see the binary, and no record mode, CI setting or Modal configuration from the outer
    environment (no ~/.modal.toml either)."""
    monkeypatch.setenv("SANDBOX_VCR_BIN", os.path.abspath(sandbox_vcr_bin))
    for name in ("SANDBOX_VCR_RECORD", "CI", "SANDBOX_URL", "SANDBOX_FUSION_ENDPOINT", "PYTEST_ADDOPTS",
                 "MODAL_SERVER_URL", "MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET", "MODAL_PROFILE", "MODAL_ENVIRONMENT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MODAL_CONFIG_PATH", "/nonexistent/pytest-sandbox-vcr-tests/.modal.toml")


#: The fake Modal API (Tools/fake_modal_server.py, modal==1.6.4's own gRPC schema) and the tokens it accepts.
FAKE_MODAL_SERVER = Path(__file__).resolve().parents[2] / "fake_modal_server.py"
FAKE_MODAL_TOKEN_ID = "ak-pluginTESTtoken"
FAKE_MODAL_TOKEN_SECRET = "as-pluginTESTsecret"


class FakeModal:
    """A `Tools/fake_modal_server.py` process: the Modal API recordings come from."""

    def __init__(self, folder: Path):
        ready, self.stats_file = folder / "ready", folder / "stats.json"
        self.process = subprocess.Popen(
            [sys.executable, str(FAKE_MODAL_SERVER), "--port", "0", "--ready-file", str(ready),
             "--stats-file", str(self.stats_file), "--token-id", FAKE_MODAL_TOKEN_ID,
             "--token-secret", FAKE_MODAL_TOKEN_SECRET, "--exit-on-stdin-eof"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.process.stdout.readline()
        assert line.startswith("fake-modal: listening on "), f"the fake Modal server did not start: {line!r}"
        self.url = line.split("listening on ", 1)[1].strip()

    def stats(self) -> dict:
        return json.loads(self.stats_file.read_text())

    def stop(self):
        """Stops it for good: a replay afterwards proves nothing reached it."""
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        self.process.stdin.close()
        self.process.stdout.close()


@pytest.fixture
def fake_modal(tmp_path_factory, monkeypatch):
    """A fake Modal API, and the environment a developer who records has: MODAL_SERVER_URL and the tokens."""
    server = FakeModal(tmp_path_factory.mktemp("fake-modal"))
    monkeypatch.setenv("MODAL_SERVER_URL", server.url)
    monkeypatch.setenv("MODAL_TOKEN_ID", FAKE_MODAL_TOKEN_ID)
    monkeypatch.setenv("MODAL_TOKEN_SECRET", FAKE_MODAL_TOKEN_SECRET)
    yield server
    server.stop()

