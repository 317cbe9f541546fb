"""The plugin, through pytest's own `pytester`: real inner pytest runs (subprocesses), the real `sandbox-vcr` binary,
the official `sandbox-fusion` client and an aiohttp client shaped like tinker-cookbook's, a fake upstream that is
itself a loopback `sandbox-vcr serve --rules`, and real SQLite cassettes on disk."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

OFFICIAL_CLIENT_TESTS = """
import os
import pytest
from sandbox_fusion import RunCodeRequest, run_code


@pytest.mark.sandbox_vcr
def test_sum(sandbox_vcr):
    result = run_code(RunCodeRequest(code="print(3 + 4)", language="python"), max_attempts=1)
    assert result.run_result.stdout == "7\\n"
    assert sandbox_vcr.hits + sandbox_vcr.recorded == 1


@pytest.mark.sandbox_vcr
class TestProducts:
    def test_product(self):
        result = run_code(RunCodeRequest(code="print(2 * 21)", language="python"), max_attempts=1)
        assert result.run_result.stdout == "42\\n"


def test_unmarked_test_sees_no_server():
    assert os.environ.get("SANDBOX_FUSION_ENDPOINT") is None
"""

#: A client shaped like tinker-cookbook's SandboxFusionClient: `run(code, files, timeout, language)` posts to
#: $SANDBOX_URL with aiohttp and returns (success, response).
TINKER_STYLE_TESTS = """
import asyncio
import base64
import os

import aiohttp
import pytest


class SandboxFusionClient:
    def __init__(self, url=None):
        self._url = url or os.getenv("SANDBOX_URL", "http://localhost:8080/run_code")

    async def run(self, code, files, timeout, language="python"):
        payload = {
            "code": code,
            "language": language,
            "run_timeout": int(timeout),
            "files": {name: base64.b64encode(text.encode()).decode() for name, text in files.items()},
        }
        async with aiohttp.ClientSession() as session:
            async with session.post(self._url, json=payload) as response:
                if response.status != 200:
                    return False, {"error": f"HTTP {response.status}: {await response.text()}"}
                data = await response.json()
        if data.get("status") == "SandboxError":
            return False, {"error": data.get("message", "SandboxError"), **data}
        return data.get("status") == "Success", data


@pytest.mark.sandbox_vcr
def test_reads_the_file():
    ok, answer = asyncio.run(
        SandboxFusionClient().run("print(open('data.txt').read(), end='')", {"data.txt": "x,y\\n1,2\\n"}, 5))
    assert ok, answer
    assert answer["run_result"]["stdout"] == "x,y\\n1,2\\n"


@pytest.mark.sandbox_vcr
def test_times_out():
    ok, answer = asyncio.run(SandboxFusionClient().run("while True: pass", {}, 1))
    assert not ok, answer
"""


def digest_tree(folder: Path) -> dict:
    """Every file under `folder` and the SHA-256 of its bytes."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*")) if path.is_file()
    }


def cassette_count(path: Path) -> int:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
        return connection.execute("SELECT count(*) FROM interactions").fetchone()[0]


def test_records_from_the_upstream_then_replays_with_it_gone(pytester, upstream):
    pytester.makepyfile(test_grader=OFFICIAL_CLIENT_TESTS)
    recorded = pytester.runpytest_subprocess(
        "--sandbox-record-mode=missing", f"--sandbox-upstream={upstream.url}")
    recorded.assert_outcomes(passed=3)
    cassettes = pytester.path / "cassettes" / "test_grader"
    assert sorted(path.name for path in cassettes.iterdir()) == ["TestProducts.test_product.sqlite", "test_sum.sqlite"]
    assert cassette_count(cassettes / "test_sum.sqlite") == 1
    assert upstream.run_code_calls() == 2
    recorded.stdout.fnmatch_lines(["*2 test(s) with cassettes (record mode missing): 0 replayed, 2 recorded*"])

    upstream.stop()
    replayed = pytester.runpytest_subprocess("--sandbox-record-mode=never")
    replayed.assert_outcomes(passed=3)
    replayed.stdout.fnmatch_lines(["*2 test(s) with cassettes (record mode never): 2 replayed, 0 recorded, 0 missed*"])


def test_an_aiohttp_client_shaped_like_tinker_cookbooks_records_and_replays(pytester, upstream):
    pytester.makepyfile(test_tinker=TINKER_STYLE_TESTS)
    pytester.runpytest_subprocess(f"--sandbox-upstream={upstream.url}").assert_outcomes(passed=2)
    assert upstream.run_code_calls() == 2
    upstream.stop()
    pytester.runpytest_subprocess("--sandbox-record-mode=never").assert_outcomes(passed=2)


def test_a_miss_fails_the_test_with_the_diagnostics(pytester, upstream):
    pytester.makepyfile(test_grader=OFFICIAL_CLIENT_TESTS)
    pytester.runpytest_subprocess(f"--sandbox-upstream={upstream.url}").assert_outcomes(passed=3)
    upstream.stop()
    # The same tests, one of them now sending other code: its recording no longer matches.
    pytester.makepyfile(test_grader=OFFICIAL_CLIENT_TESTS.replace("print(3 + 4)", "print(3 + 5)"))
    result = pytester.runpytest_subprocess("--sandbox-record-mode=never")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines([
        "*test_sum*",
        "*sandbox-vcr: 1 SandboxFusion request(s) of this test have no recording in*test_sum.sqlite*never*",
        "*--sandbox-record-mode=missing --sandbox-upstream*",
    ])
    # The miss diagnostics name the nearest recording, with a diff of the code.
    assert "print(3 + 4)" in result.stdout.str()
    assert "print(3 + 5)" in result.stdout.str()


def test_a_miss_the_client_swallows_still_fails_the_test(pytester, upstream):
    pytester.makepyfile(test_tinker=TINKER_STYLE_TESTS)
    pytester.runpytest_subprocess(f"--sandbox-upstream={upstream.url}").assert_outcomes(passed=2)
    upstream.stop()
    # The timeout test asserts only `not ok`, which a miss (a SandboxError answer) also satisfies.
    pytester.makepyfile(test_tinker=TINKER_STYLE_TESTS.replace("while True: pass", "while True: continue"))
    result = pytester.runpytest_subprocess("--sandbox-record-mode=never")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["FAILED test_tinker.py::test_times_out - Failed: sandbox-vcr: 1 SandboxFusion*"])


def test_allow_misses_lets_a_test_that_expects_them_pass(pytester):
    pytester.makepyfile(test_misses="""
        import urllib.request, json, pytest

        @pytest.mark.sandbox_vcr(allow_misses=True)
        def test_expects_a_miss(sandbox_vcr):
            request = urllib.request.Request(
                sandbox_vcr.run_code_url, data=json.dumps({"code": "print(1)", "language": "python"}).encode(),
                headers={"Content-Type": "application/json"})
            answer = json.load(urllib.request.urlopen(request))
            assert answer["status"] == "SandboxError"
            assert "no cassette at" in answer["message"]
            assert (sandbox_vcr.misses, sandbox_vcr.hits, sandbox_vcr.recorded) == (1, 0, 0)
    """)
    pytester.runpytest_subprocess("--sandbox-record-mode=never").assert_outcomes(passed=1)
    assert not (pytester.path / "cassettes").exists()


def test_a_replay_leaves_the_cassettes_byte_for_byte_unchanged(pytester, upstream):
    pytester.makepyfile(test_grader=OFFICIAL_CLIENT_TESTS, test_tinker=TINKER_STYLE_TESTS)
    pytester.runpytest_subprocess(f"--sandbox-upstream={upstream.url}").assert_outcomes(passed=5)
    upstream.stop()
    before = digest_tree(pytester.path / "cassettes")
    assert len(before) == 4 and all(name.endswith(".sqlite") for name in before)
    # `never` (CI) and the local default `missing`: neither writes a replayed cassette, nor leaves -wal/-shm.
    pytester.runpytest_subprocess("--sandbox-record-mode=never").assert_outcomes(passed=5)
    assert digest_tree(pytester.path / "cassettes") == before
    pytester.runpytest_subprocess().assert_outcomes(passed=5)
    assert digest_tree(pytester.path / "cassettes") == before


def test_ci_forces_never_even_with_an_upstream(pytester, upstream, monkeypatch):
    pytester.makepyfile(test_grader=OFFICIAL_CLIENT_TESTS)
    monkeypatch.setenv("CI", "true")
    result = pytester.runpytest_subprocess(f"--sandbox-upstream={upstream.url}")
    # Nothing is recorded on CI: the two marked tests miss (the official client raises on the SandboxError).
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(["*no cassette at*test_sum.sqlite*", "*record mode never*"])
    assert upstream.run_code_calls() == 0
    assert not (pytester.path / "cassettes").exists()
    # An explicit mode still wins over CI, as SANDBOX_VCR_RECORD does.
    pytester.runpytest_subprocess(
        "--sandbox-record-mode=missing", f"--sandbox-upstream={upstream.url}").assert_outcomes(passed=3)
    monkeypatch.setenv("SANDBOX_VCR_RECORD", "all")
    pytester.runpytest_subprocess(f"--sandbox-upstream={upstream.url}").assert_outcomes(passed=3)
    assert upstream.run_code_calls() == 4


def test_bad_settings_are_usage_errors(pytester, monkeypatch):
    pytester.makepyfile(test_grader=OFFICIAL_CLIENT_TESTS)
    monkeypatch.setenv("SANDBOX_VCR_RECORD", "sometimes")
    result = pytester.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*SANDBOX_VCR_RECORD='sometimes' is not a record mode*"])
    monkeypatch.delenv("SANDBOX_VCR_RECORD")
    result = pytester.runpytest_subprocess("--sandbox-record-mode=all")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--sandbox-record-mode=all calls the real SandboxFusion*--sandbox-upstream URL*"])


def test_unused_recordings_are_reported_per_cassette_at_the_end(pytester, upstream):
    shared = """
        import pytest
        from sandbox_fusion import RunCodeRequest, run_code

        pytestmark = pytest.mark.sandbox_vcr("shared")

        def test_sum():
            assert run_code(RunCodeRequest(code="print(3 + 4)", language="python"), max_attempts=1).run_result.stdout == "7\\n"
    """
    pytester.makepyfile(test_shared=shared + """
        def test_product():
            assert run_code(RunCodeRequest(code="print(2 * 21)", language="python"), max_attempts=1).run_result.stdout == "42\\n"
    """)
    pytester.runpytest_subprocess(f"--sandbox-upstream={upstream.url}").assert_outcomes(passed=2)
    cassette = pytester.path / "cassettes" / "test_shared" / "shared.sqlite"
    assert cassette_count(cassette) == 2
    upstream.stop()
    # Every recording used: no report.
    result = pytester.runpytest_subprocess("--sandbox-record-mode=never")
    result.assert_outcomes(passed=2)
    assert "no test of this session used" not in result.stdout.str()
    # test_product removed: its recording is reported, under its cassette.
    pytester.makepyfile(test_shared=shared)
    result = pytester.runpytest_subprocess("--sandbox-record-mode=never")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([
        "*1 recording(s) no test of this session used*",
        "  cassettes/test_shared/shared.sqlite:",
        '    #* python code (13 bytes: "print(2 * 21)")*',
    ])


def test_xdist_workers_each_get_their_own_server(pytester, upstream, monkeypatch):
    tests = """
        import os, pytest
        from sandbox_fusion import RunCodeRequest, run_code

        @pytest.mark.parametrize("index", range(6))
        @pytest.mark.sandbox_vcr
        def test_sum(index, sandbox_vcr):
            code = "print(3 + 4)" if index % 2 == 0 else "print(2 * 21)"
            answer = run_code(RunCodeRequest(code=code, language="python"), max_attempts=1)
            assert answer.run_result.stdout in ("7\\n", "42\\n")
            with open(os.path.join(os.environ["URLS_DIR"], f"{os.environ['PYTEST_XDIST_WORKER']}-{index}"), "w") as f:
                f.write(sandbox_vcr.url)
    """
    pytester.makepyfile(test_parallel=tests)
    urls = pytester.mkdir("urls")
    monkeypatch.setenv("URLS_DIR", str(urls))
    pytester.runpytest_subprocess("-n", "2", f"--sandbox-upstream={upstream.url}").assert_outcomes(passed=6)
    assert upstream.run_code_calls() == 6
    upstream.stop()
    for path in urls.iterdir():
        path.unlink()
    result = pytester.runpytest_subprocess("-n", "2", "--sandbox-record-mode=never")
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(["*6 test(s) with cassettes (record mode never): 6 replayed, 0 recorded, 0 missed*"])
    servers = {}
    for path in urls.iterdir():
        servers.setdefault(path.name.split("-")[0], set()).add(path.read_text())
    # Two workers, each with one server of its own.
    assert len(servers) == 2, servers
    assert all(len(worker_urls) == 1 for worker_urls in servers.values())
    assert len(set.union(*servers.values())) == 2
    assert len(list((pytester.path / "cassettes" / "test_parallel").iterdir())) == 6


def test_the_environment_points_at_serve_during_a_marked_test_only(pytester, monkeypatch):
    monkeypatch.setenv("SANDBOX_URL", "http://before.invalid/run_code")
    pytester.makepyfile(test_env="""
        import os, pytest
        import sandbox_fusion
        from sandbox_fusion import config

        BEFORE = (os.environ["SANDBOX_URL"], os.environ.get("SANDBOX_FUSION_ENDPOINT"), config.SANDBOX_ENDPOINT)

        def test_1_marked(sandbox_vcr):
            assert sandbox_vcr.url.startswith("http://127.0.0.1:")
            assert os.environ["SANDBOX_URL"] == sandbox_vcr.url + "/run_code" == sandbox_vcr.run_code_url
            assert os.environ["SANDBOX_FUSION_ENDPOINT"] == sandbox_vcr.url
            assert config.SANDBOX_ENDPOINT == config.DATASET_ENDPOINT == sandbox_vcr.url
            assert sandbox_vcr.modal_url is None
            assert sandbox_vcr.cassette.name == "test_1_marked.sqlite"
            assert sandbox_vcr.cassette.parent.name == "test_env"
            assert sandbox_vcr.record_mode == "never"

        def test_2_after():
            after = (os.environ["SANDBOX_URL"], os.environ.get("SANDBOX_FUSION_ENDPOINT"), config.SANDBOX_ENDPOINT)
            assert after == BEFORE == ("http://before.invalid/run_code", None, "http://localhost:8080")
    """)
    pytester.runpytest_subprocess("--sandbox-record-mode=never").assert_outcomes(passed=2)


def test_the_cassette_folder_option_and_named_cassettes(pytester, upstream):
    pytester.makepyfile(test_named="""
        import pytest
        from sandbox_fusion import RunCodeRequest, run_code

        @pytest.mark.sandbox_vcr("sums/three-four")
        def test_sum(sandbox_vcr):
            assert run_code(RunCodeRequest(code="print(3 + 4)", language="python"), max_attempts=1).run_result.stdout == "7\\n"
    """)
    pytester.runpytest_subprocess(
        f"--sandbox-upstream={upstream.url}", "--sandbox-cassette-dir=recorded").assert_outcomes(passed=1)
    assert (pytester.path / "recorded" / "test_named" / "sums" / "three-four.sqlite").is_file()
    assert not (pytester.path / "cassettes").exists()


def test_a_missing_binary_is_a_clear_error_for_marked_tests_only(pytester, monkeypatch):
    pytester.makepyfile(test_grader=OFFICIAL_CLIENT_TESTS)
    monkeypatch.setenv("SANDBOX_VCR_BIN", str(pytester.path / "no-such-binary"))
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1, errors=2)
    result.stdout.fnmatch_lines([
        "*SANDBOX_VCR_BIN=*no-such-binary* is not an executable file*swift build -c release --product sandbox-vcr*"])
    monkeypatch.delenv("SANDBOX_VCR_BIN")
    monkeypatch.setenv("PATH", str(pytester.path))
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1, errors=2)
    result.stdout.fnmatch_lines(["*the sandbox-vcr binary was not found: set SANDBOX_VCR_BIN=*"])


def test_the_control_api_report_matches_the_cassette(pytester, upstream):
    """The used-recording ids the server reports are the cassette's own rows."""
    pytester.makepyfile(test_ids="""
        import json, pytest
        from sandbox_fusion import RunCodeRequest, run_code

        @pytest.mark.sandbox_vcr
        def test_twice(sandbox_vcr, request):
            for code in ("print(3 + 4)", "print(2 * 21)"):
                run_code(RunCodeRequest(code=code, language="python"), max_attempts=1)
            request.config._sandbox_vcr_seen = sandbox_vcr

        def test_report(request):
            seen = request.config._sandbox_vcr_seen
            with open("report.json", "w") as out:
                json.dump(seen.report, out)
    """)
    pytester.runpytest_subprocess(f"--sandbox-upstream={upstream.url}").assert_outcomes(passed=2)
    report = json.loads((pytester.path / "report.json").read_text())
    assert (report["recorded"], report["hits"], report["misses"]) == (2, 0, 0)
    cassette = pytester.path / "cassettes" / "test_ids" / "test_twice.sqlite"
    with sqlite3.connect(f"file:{cassette}?mode=ro", uri=True) as connection:
        ids = sorted(row[0] for row in connection.execute("SELECT id FROM interactions"))
    assert report["used_recordings"] == ids and len(ids) == 2


def test_the_config_fixture_sets_the_folder_and_allows_misses(pytester):
    pytester.makeconftest("""
        import pytest

        @pytest.fixture
        def sandbox_vcr_config(tmp_path_factory):
            return {"cassette_dir": str(tmp_path_factory.getbasetemp() / "elsewhere"), "allow_misses": True}
    """)
    pytester.makepyfile(test_configured="""
        import pytest
        from sandbox_fusion import RunCodeRequest, run_code

        @pytest.mark.sandbox_vcr
        def test_misses_quietly(sandbox_vcr):
            assert sandbox_vcr.cassette.parent.parent.name == "elsewhere"
            with pytest.raises(Exception, match="no cassette at"):
                run_code(RunCodeRequest(code="print(3 + 4)", language="python"), max_attempts=1)
            assert sandbox_vcr.misses == 1
    """)
    pytester.runpytest_subprocess("--sandbox-record-mode=never").assert_outcomes(passed=1)
