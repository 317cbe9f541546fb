#!/usr/bin/env python3
"""How much time pytest-sandbox-vcr adds per test: a suite of N marked tests that each replay one /run_code call
from their own cassette, against the same N tests calling a stub SandboxFusion (a separate Python process that
answers at once), without the plugin.

Usage (from the repository root, after Tools/setup and `swift build --product sandbox-vcr`):

    SANDBOX_VCR_BIN=.build/debug/sandbox-vcr Tools/.venv/bin/python Tools/pytest-sandbox-vcr/bench/bench_overhead.py \
        [--tests 200] [--runs 7]

The cassettes are recorded once, from the stub, before timing. Each timed run is a fresh `python -m pytest`
process (collection and session start included, as a user sees it); the two suites alternate, and the figure per
test is the median over the pairs of runs of (time with the plugin - time with the stub) / N. Prints the figures;
exits 1 when that figure is 5 ms or more (the goal).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STUB = r'''
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        body = json.dumps({
            "status": "Success", "message": "", "compile_result": None,
            "run_result": {"status": "Finished", "execution_time": 0.01, "return_code": 0,
                           "stdout": request["code"][6:-1] + "\n", "stderr": ""},
            "executor_pod_name": None, "files": {}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
server.serve_forever()
'''

#: One test per index; each calls $SANDBOX_URL once, as a grader would.
TEST_MODULE = '''
import json, os, urllib.request
import pytest

{mark}

def call(code):
    request = urllib.request.Request(
        os.environ["SANDBOX_URL"], data=json.dumps({{"code": code, "language": "python"}}).encode(),
        headers={{"Content-Type": "application/json"}})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.load(answer)

@pytest.mark.parametrize("index", range({count}))
def test_replays(index):
    assert call(f"print({{index}})")["run_result"]["stdout"] == f"{{index}}\\n"
'''

#: The stub suite's conftest: the stub for the whole session, SANDBOX_URL pointing at it.
STUB_CONFTEST = '''
import os, subprocess, sys
import pytest

@pytest.fixture(scope="session", autouse=True)
def stub():
    process = subprocess.Popen([sys.executable, {stub!r}], stdout=subprocess.PIPE, text=True)
    os.environ["SANDBOX_URL"] = process.stdout.readline().strip() + "/run_code"
    yield
    process.terminate()
    process.wait()
'''


def run_pytest(folder: Path, *arguments: str, environment=None) -> float:
    """Runs pytest on `folder` in a new process; returns the wall time, failing loudly if a test failed."""
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", *arguments, str(folder)],
        capture_output=True, text=True, env=environment)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"pytest failed in {folder}:\n{result.stdout[-3000:]}\n{result.stderr[-2000:]}")
    return elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=200)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="sandbox-vcr-bench-") as temporary:
        root = Path(temporary)
        stub = root / "stub.py"
        stub.write_text(STUB)
        with_stub = root / "with_stub"
        with_plugin = root / "with_plugin"
        for folder, mark in ((with_stub, ""), (with_plugin, "pytestmark = pytest.mark.sandbox_vcr")):
            folder.mkdir()
            (folder / "test_bench.py").write_text(TEST_MODULE.format(mark=mark, count=args.tests))
        (with_stub / "conftest.py").write_text(STUB_CONFTEST.format(stub=str(stub)))

        # Record every cassette once, from the stub (as from a real SandboxFusion).
        upstream = subprocess.Popen([sys.executable, str(stub)], stdout=subprocess.PIPE, text=True)
        try:
            url = upstream.stdout.readline().strip()
            run_pytest(with_plugin, "--sandbox-record-mode=missing", f"--sandbox-upstream={url}")
        finally:
            upstream.terminate()
            upstream.wait()
        cassettes = list((with_plugin / "cassettes" / "test_bench").glob("*.sqlite"))
        assert len(cassettes) == args.tests, f"{len(cassettes)} cassettes recorded, expected {args.tests}"

        replay_environment = dict(os.environ, CI="true")  # replay only, as in CI
        stub_times, plugin_times = [], []
        for _ in range(args.runs):
            stub_times.append(run_pytest(with_stub, "-p", "no:sandbox_vcr"))
            plugin_times.append(run_pytest(with_plugin, environment=replay_environment))

    stub_median = statistics.median(stub_times)
    plugin_median = statistics.median(plugin_times)
    # Each plugin run is compared with the stub run just before it, so a machine that slows down for a while
    # (other work) moves both sides of a pair; the median of the pairs is the figure.
    per_test_ms = statistics.median(
        (plugin - stub) / args.tests * 1000 for stub, plugin in zip(stub_times, plugin_times))
    print(f"{args.tests} tests, {args.runs} runs each (wall time of a whole `python -m pytest` process):")
    print(f"  calling a stub, no plugin:  median {stub_median:.3f} s  (runs: {', '.join(f'{t:.2f}' for t in stub_times)})")
    print(f"  replaying with the plugin:  median {plugin_median:.3f} s  "
          f"(runs: {', '.join(f'{t:.2f}' for t in plugin_times)})")
    print(f"  added by the plugin: {per_test_ms:.2f} ms per test, median of the {args.runs} pairs (goal: under 5 ms)")
    return 0 if per_test_ms < 5 else 1


if __name__ == "__main__":
    sys.exit(main())
