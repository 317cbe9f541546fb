"""Fixtures for the plugin's own tests: the built binary, and a fake SandboxFusion upstream to record from.

Run by Tools/test with SANDBOX_VCR_BIN pointing at the debug build:

    SANDBOX_VCR_BIN=.build/debug/sandbox-vcr Tools/.venv/bin/python -m pytest Tools/pytest-sandbox-vcr/tests
"""

from __future__ import annotations

import json
import os
import subprocess
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
    """The inner pytest runs see the binary, and no record mode or CI setting from the outer environment."""
    monkeypatch.setenv("SANDBOX_VCR_BIN", os.path.abspath(sandbox_vcr_bin))
    for name in ("SANDBOX_VCR_RECORD", "CI", "SANDBOX_URL", "SANDBOX_FUSION_ENDPOINT", "PYTEST_ADDOPTS"):
        monkeypatch.delenv(name, raising=False)
