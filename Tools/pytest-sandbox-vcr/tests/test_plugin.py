"""The plugin, through pytest's own `pytester`: real inner pytest runs (subprocesses), the real `sandbox-vcr` binary,
the official `sandbox-fusion` client and an aiohttp client shaped like tinker-cookbook's, a fake upstream that is
itself a loopback `sandbox-vcr serve --rules`, and real SQLite cassettes on disk. The Modal tests run Modal's own
Python SDK (modal==1.6.4) against `Tools/fake_modal_server.py` to record, and with it stopped to replay."""

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


def test_a_cassette_opened_ahead_for_a_test_that_skips_counts_nowhere(pytester, upstream, monkeypatch):
    """The server opens the next test's cassette while the current one ends; a next test that skips before its
    cassette is active (here in a module fixture) leaves no trace: no unused recordings, no other test's answers."""
    module = """
        import os
        import pytest
        from sandbox_fusion import RunCodeRequest, run_code

        pytestmark = pytest.mark.sandbox_vcr

        def call(code):
            return run_code(RunCodeRequest(code=code, language="python"), max_attempts=1).run_result.stdout

        @pytest.fixture(scope="module")
        def gate():
            if os.environ.get("SKIP_B"):
                pytest.skip("b is skipped in this run")

        def test_a():
            assert call("print(3 + 4)") == "7\\n"

        def test_b(gate):
            assert call("print(2 * 21)") == "42\\n"

        def test_c():
            assert call("print(3 + 4)") == "7\\n"
    """
    pytester.makepyfile(test_ahead=module)
    pytester.runpytest_subprocess(f"--sandbox-upstream={upstream.url}").assert_outcomes(passed=3)
    upstream.stop()
    result = pytester.runpytest_subprocess("--sandbox-record-mode=never")
    result.assert_outcomes(passed=3)
    monkeypatch.setenv("SKIP_B", "1")
    result = pytester.runpytest_subprocess("--sandbox-record-mode=never", "-rs")
    result.assert_outcomes(passed=2, skipped=1)
    assert "no test of this session used" not in result.stdout.str()
    assert "test_b.sqlite" not in result.stdout.str()


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
            assert sandbox_vcr.modal_url.startswith("http://127.0.0.1:")
            assert os.environ["MODAL_SERVER_URL"] == sandbox_vcr.modal_url
            assert os.environ["MODAL_TOKEN_ID"] == "ak-sandbox-vcr-replay"
            assert sandbox_vcr.cassette.name == "test_1_marked.sqlite"
            assert sandbox_vcr.cassette.parent.name == "test_env"
            assert sandbox_vcr.record_mode == "never"

        def test_2_after():
            after = (os.environ["SANDBOX_URL"], os.environ.get("SANDBOX_FUSION_ENDPOINT"), config.SANDBOX_ENDPOINT)
            assert after == BEFORE == ("http://before.invalid/run_code", None, "http://localhost:8080")
            assert "MODAL_SERVER_URL" not in os.environ and "MODAL_TOKEN_ID" not in os.environ
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


#: Tests written with Modal's Python SDK, unchanged for SandboxVCR: a module-scoped app (made before any test, so
#: the session's Modal server must already be up), a sandbox per test, a random work folder as pools make, and
#: concurrent execs in one sandbox.
MODAL_TESTS = """
import asyncio
import json
import os
import secrets

import modal
import pytest

pytestmark = pytest.mark.sandbox_vcr_modal


@pytest.fixture(scope="module")
def app():
    return modal.App.lookup("pytest-sandbox-vcr", create_if_missing=True)


def run(sandbox, command, **options):
    process = sandbox.exec("bash", "-lc", command, **options)
    return process.stdout.read(), process.stderr.read(), process.wait()


def test_echo_and_exit_codes(app, sandbox_vcr_modal):
    assert os.environ["MODAL_SERVER_URL"] == sandbox_vcr_modal.url
    with open("seen.json", "w") as out:
        json.dump({"url": sandbox_vcr_modal.url, "token": os.environ["MODAL_TOKEN_ID"],
                   "cassette": str(sandbox_vcr_modal.cassette), "mode": sandbox_vcr_modal.record_mode}, out)
    sandbox = modal.Sandbox.create(app=app, image=modal.Image.debian_slim(), timeout=60)
    try:
        assert run(sandbox, "echo hello") == ("hello\\n", "", 0)
        assert run(sandbox, "echo partial; echo failing >&2; exit 3") == ("partial\\n", "failing\\n", 3)
    finally:
        sandbox.terminate()


def test_a_random_workdir_and_concurrent_execs(app):
    async def main():
        sandbox = await modal.Sandbox.create.aio(app=app, image=modal.Image.debian_slim(), timeout=60)
        workdir = "/workspace/" + secrets.token_hex(6)
        process = await sandbox.exec.aio("bash", "-lc", f"mkdir -p {workdir} && cat > {workdir}/n.txt")
        process.stdin.write(b"6\\n")
        process.stdin.write_eof()
        await process.stdin.drain.aio()
        assert await process.wait.aio() == 0

        async def square(k):
            process = await sandbox.exec.aio("bash", "-lc", f"echo $(( $(cat n.txt) * {k} ))", workdir=workdir)
            return (await process.stdout.read.aio()).strip()

        answers = await asyncio.gather(*(square(k) for k in range(1, 6)))
        await sandbox.terminate.aio()
        return answers

    assert asyncio.run(main()) == ["6", "12", "18", "24", "30"]
"""

#: Records what the environment looks like once the session is over (after every fixture's teardown).
ENVIRONMENT_PROBE = """
import json, os

def pytest_unconfigure(config):
    with open("after.json", "w") as out:
        json.dump({name: os.environ.get(name) for name in ("MODAL_SERVER_URL", "MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET")},
                  out)
"""


def forget_modal_credentials(monkeypatch):
    """The environment CI has: no Modal server URL and no tokens (and no profile: see conftest.py)."""
    for name in ("MODAL_SERVER_URL", "MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET"):
        monkeypatch.delenv(name, raising=False)


def test_modal_records_through_the_fake_then_replays_with_it_gone(pytester, fake_modal, monkeypatch):
    pytester.makepyfile(test_modal=MODAL_TESTS)
    pytester.makeconftest(ENVIRONMENT_PROBE)
    # `all` needs no --sandbox-upstream: Modal's upstream is $MODAL_SERVER_URL (the fake) at the session's start.
    recorded = pytester.runpytest_subprocess("--sandbox-record-mode=all")
    recorded.assert_outcomes(passed=2)
    cassette = pytester.path / "cassettes" / "modal.sqlite"
    assert cassette.is_file()
    assert fake_modal.stats()["sandboxes_created"] == 2
    recorded.stdout.fnmatch_lines([
        "*- sandbox-vcr -*",
        "Modal (cassettes/modal.sqlite, record mode all): 2 sandbox(es), 0 exec(s) replayed, 8 recorded, 8 forwarded, 0 missed"])
    seen = json.loads((pytester.path / "seen.json").read_text())
    assert seen["token"] == "ak-pluginTESTtoken" and seen["mode"] == "all" and seen["cassette"] == str(cassette)
    after = json.loads((pytester.path / "after.json").read_text())
    assert after == {"MODAL_SERVER_URL": fake_modal.url, "MODAL_TOKEN_ID": "ak-pluginTESTtoken",
                     "MODAL_TOKEN_SECRET": "as-pluginTESTsecret"}
    before = digest_tree(pytester.path / "cassettes")

    # CI: the fake is gone, and there are no credentials.
    fake_modal.stop()
    forget_modal_credentials(monkeypatch)
    replayed = pytester.runpytest_subprocess("--sandbox-record-mode=never")
    replayed.assert_outcomes(passed=2)
    replayed.stdout.fnmatch_lines([
        "Modal (cassettes/modal.sqlite, record mode never): 2 sandbox(es), 8 exec(s) replayed, 0 recorded, "
        "0 forwarded, 0 missed"])
    seen = json.loads((pytester.path / "seen.json").read_text())
    assert seen["token"] == "ak-sandbox-vcr-replay" and seen["url"].startswith("http://127.0.0.1:")
    # The environment is back as it was: nothing set.
    assert json.loads((pytester.path / "after.json").read_text()) == dict.fromkeys(
        ("MODAL_SERVER_URL", "MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET"))
    assert digest_tree(pytester.path / "cassettes") == before


def test_a_modal_replay_that_deviates_reports_the_miss(pytester, fake_modal, monkeypatch):
    pytester.makepyfile(test_modal=MODAL_TESTS)
    pytester.runpytest_subprocess("--sandbox-record-mode=missing").assert_outcomes(passed=2)
    fake_modal.stop()
    forget_modal_credentials(monkeypatch)
    # One command changed, seen by a test that lets the SDK raise, one that swallows the error (a grader that
    # records what went wrong and goes on), and one that allows misses.
    pytester.makepyfile(test_modal=MODAL_TESTS.replace("echo hello", "echo hullo") + """

def test_swallows_the_error(app):
    sandbox = modal.Sandbox.create(app=app, image=modal.Image.debian_slim(), timeout=60)
    try:
        run(sandbox, "echo nobody recorded this")
    except Exception:
        pass


@pytest.mark.sandbox_vcr_modal(allow_misses=True)
def test_expects_a_miss(app, sandbox_vcr_modal):
    sandbox = modal.Sandbox.create(app=app, image=modal.Image.debian_slim(), timeout=60)
    with pytest.raises(modal.exception.ConflictError, match="no recording matches step 1"):
        run(sandbox, "echo never recorded")
""")
    result = pytester.runpytest_subprocess("--sandbox-record-mode=never")
    result.assert_outcomes(passed=2, failed=2)
    output = result.stdout.str()
    # The SDK's error: gRPC FAILED_PRECONDITION, with the step, the nearest recording, the diff and the bindings.
    result.stdout.fnmatch_lines([
        "*ConflictError: sandbox-vcr: no recording matches step 1 of Modal sandbox*modal.sqlite*never*",
        "*Requested: exec \"echo hullo\"*",
        "*Nearest recording: modal/* step 1, exec \"echo hello\"*",
        "*Bindings: *",
    ])
    result.stdout.fnmatch_lines([
        "*_ test_swallows_the_error _*",
        "sandbox-vcr: 1 Modal call(s) of this test have no recording in*modal.sqlite (record mode `never`):",
        '  Modal replay miss: exec=exec "echo nobody recorded this" sandbox=sb-vcr-* step=1',
    ])
    result.stdout.fnmatch_lines(["FAILED test_modal.py::test_swallows_the_error - Failed: sandbox-vcr: 1 Modal*"])
    assert "test_a_random_workdir_and_concurrent_execs" not in output.split("short test summary info")[-1]
    assert "To record them: pytest --sandbox-record-mode=missing with MODAL_TOKEN_ID / MODAL_TOKEN_SECRET" in output
    result.stdout.fnmatch_lines([
        "Modal (cassettes/modal.sqlite, record mode never): 4 sandbox(es), 6 exec(s) replayed, * 3 missed",
        "sandbox-vcr: 3 Modal miss(es):",
        '  Modal replay miss: exec=exec "echo hullo" sandbox=sb-vcr-* step=1',
    ])


def test_a_modal_miss_outside_any_test_fails_the_session(pytester, fake_modal, monkeypatch):
    module = """
        import modal, pytest

        @pytest.fixture(scope="session")
        def sandbox(sandbox_vcr_modal):
            app = modal.App.lookup("pytest-sandbox-vcr", create_if_missing=True)
            sandbox = modal.Sandbox.create(app=app, image=modal.Image.debian_slim(), timeout=60)
            yield sandbox
            try:  # a cleanup that swallows what goes wrong: its miss is in no test's setup or call
                sandbox.exec("bash", "-lc", "echo CLEANUP").wait()
            except Exception:
                pass
            sandbox.terminate()

        def test_uses_the_sandbox(sandbox):
            assert sandbox.exec("bash", "-lc", "echo 1").stdout.read() == "1\\n"
    """
    pytester.makepyfile(test_teardown=module.replace("CLEANUP", "cleanup 1"))
    pytester.runpytest_subprocess().assert_outcomes(passed=1)  # the local default, `missing`
    fake_modal.stop()
    forget_modal_credentials(monkeypatch)
    pytester.makepyfile(test_teardown=module.replace("CLEANUP", "cleanup 2"))
    result = pytester.runpytest_subprocess("--sandbox-record-mode=never")
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([
        "Modal (cassettes/modal.sqlite, record mode never): 1 sandbox(es), 1 exec(s) replayed, * 1 missed",
        "sandbox-vcr: 1 Modal miss(es), 1 outside any test's setup and call (this fails the session):",
        '  Modal replay miss: exec=exec "echo cleanup 2" sandbox=sb-vcr-1 step=2',
    ])


def test_without_a_modal_cassette_only_the_modal_tests_fail(pytester):
    pytester.makepyfile(test_mixed="""
        import os, pytest

        @pytest.mark.sandbox_vcr_modal
        def test_modal():
            pass

        def test_plain():
            pass
    """)
    result = pytester.runpytest_subprocess("--sandbox-record-mode=never", "--sandbox-modal-cassette=recorded/m.sqlite")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines([
        "*the Modal server: sandbox-vcr serve did not start*",
        "*recorded/m.sqlite*no cassette at this path*"])
    assert not (pytester.path / "recorded").exists()
    assert not (pytester.path / "cassettes").exists()


def test_the_modal_ini_settings_and_a_client_made_too_early(pytester, fake_modal, monkeypatch):
    pytester.makeini("""
        [pytest]
        sandbox_modal_cassette = recorded/modal-sessions.sqlite
        sandbox_modal_normalize = seed-[0-9]+=seed-N
    """)
    pytester.makepyfile(test_early="""
        import modal, pytest

        # Modal's SDK makes (and keeps) its client at the first call: here, at import, before the fixture.
        APP = modal.App.lookup("made-too-early", create_if_missing=True)

        def test_modal(sandbox_vcr_modal):
            pass
    """)
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*Modal's client was already made (for http://127.0.0.1:*) before sandbox_vcr_modal*"])
    pytester.makepyfile(test_early="""
        import os, modal

        def test_modal(sandbox_vcr_modal):
            assert sandbox_vcr_modal.cassette.name == "modal-sessions.sqlite"
            assert sandbox_vcr_modal.cassette.parent.name == "recorded"
            app = modal.App.lookup("made-in-time", create_if_missing=True)
            sandbox = modal.Sandbox.create(app=app, image=modal.Image.debian_slim(), timeout=60)
            process = sandbox.exec("bash", "-lc", f"echo started; : seed-{os.environ['SEED']}")
            assert process.stdout.read() == "started\\n"
            sandbox.terminate()
    """)
    monkeypatch.setenv("SEED", "123")
    pytester.runpytest_subprocess().assert_outcomes(passed=1)
    assert (pytester.path / "recorded" / "modal-sessions.sqlite").is_file()
    fake_modal.stop()
    forget_modal_credentials(monkeypatch)
    # Another seed: the normalized command still matches its recording.
    monkeypatch.setenv("SEED", "456")
    result = pytester.runpytest_subprocess("--sandbox-record-mode=never")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["Modal (recorded/modal-sessions.sqlite, record mode never): 1 sandbox(es), 1 exec(s) *"
                                 "0 missed"])


#: Per-test Modal cassettes: marked tests, a warm sandbox made by a session-scoped fixture before any test and used
#: first by the second test (as a pool made ahead is), and a sandbox per test.
MODAL_PER_TEST = """
import json
import os

import modal
import pytest

pytestmark = pytest.mark.sandbox_vcr


@pytest.fixture(scope="session")
def app():
    return modal.App.lookup("pytest-sandbox-vcr-per-test", create_if_missing=True)


@pytest.fixture(scope="session")
def warm(app):
    sandbox = modal.Sandbox.create(app=app, image=modal.Image.debian_slim(), timeout=60)
    yield sandbox
    sandbox.terminate()


def run(sandbox, command):
    process = sandbox.exec("bash", "-lc", command)
    return process.stdout.read(), process.stderr.read(), process.wait()


def test_fresh_sandbox(app, warm, sandbox_vcr):
    # `warm` was made now, before this test's cassette became current; it is first used by the next test.
    assert os.environ["MODAL_SERVER_URL"] == sandbox_vcr.modal_url
    sandbox = modal.Sandbox.create(app=app, image=modal.Image.debian_slim(), timeout=60)
    try:
        assert run(sandbox, "echo hello") == ("hello\\n", "", 0)
        assert run(sandbox, "echo partial; echo failing >&2; exit 3") == ("partial\\n", "failing\\n", 3)
    finally:
        sandbox.terminate()
    with open(f"report-{sandbox_vcr.record_mode}.json", "w") as out:
        json.dump(sandbox_vcr.modal, out)


def test_warm_sandbox(warm, sandbox_vcr):
    assert run(warm, "echo $((6 * 7))") == ("42\\n", "", 0)
"""


def test_modal_per_test_cassettes_record_through_the_fake_then_replay_with_it_gone(pytester, fake_modal, monkeypatch):
    pytester.makepyfile(test_modal_per_test=MODAL_PER_TEST)
    pytester.makeconftest(ENVIRONMENT_PROBE)
    # `all` needs no --sandbox-upstream with a Modal upstream: $MODAL_SERVER_URL (the fake) when pytest started.
    recorded = pytester.runpytest_subprocess("--sandbox-record-mode=all", "--sandbox-modal-upstream", fake_modal.url)
    recorded.assert_outcomes(passed=2)
    folder = pytester.path / "cassettes" / "test_modal_per_test"
    fresh, warm = folder / "test_fresh_sandbox.sqlite", folder / "test_warm_sandbox.sqlite"
    assert fresh.is_file() and warm.is_file()
    assert fake_modal.stats()["sandboxes_created"] == 2
    assert b"6 * 7" in fresh.read_bytes() + warm.read_bytes()
    assert b"6 * 7" not in fresh.read_bytes() and b"echo hello" not in warm.read_bytes()
    report = json.loads((pytester.path / "report-all.json").read_text())
    assert report["recorded"] == 2 and report["misses"] == 0
    recorded.stdout.fnmatch_lines(["Modal in 2 of them: 0 exec(s) replayed, 3 recorded, 0 missed"])
    after = json.loads((pytester.path / "after.json").read_text())
    assert after == {"MODAL_SERVER_URL": fake_modal.url, "MODAL_TOKEN_ID": "ak-pluginTESTtoken",
                     "MODAL_TOKEN_SECRET": "as-pluginTESTsecret"}
    before = digest_tree(pytester.path / "cassettes")

    # CI: the fake is gone, and there are no credentials.
    fake_modal.stop()
    forget_modal_credentials(monkeypatch)
    monkeypatch.setenv("CI", "true")
    replayed = pytester.runpytest_subprocess()
    replayed.assert_outcomes(passed=2)
    replayed.stdout.fnmatch_lines(["Modal in 2 of them: 3 exec(s) replayed, 0 recorded, 0 missed"])
    report = json.loads((pytester.path / "report-never.json").read_text())
    assert report["replayed"] == 2 and report["forwarded"] == 0 and report["misses"] == 0
    assert json.loads((pytester.path / "after.json").read_text()) == dict.fromkeys(
        ("MODAL_SERVER_URL", "MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET"))
    assert digest_tree(pytester.path / "cassettes") == before

    # One command changed: that test fails with the miss diagnostics of its own cassette; the other passes.
    pytester.makepyfile(test_modal_per_test=MODAL_PER_TEST.replace("6 * 7", "6 * 8").replace("42", "48"))
    changed = pytester.runpytest_subprocess()
    changed.assert_outcomes(passed=1, failed=1)
    changed.stdout.fnmatch_lines([
        "*ConflictError: sandbox-vcr: no recording matches step 1 of Modal sandbox*test_warm_sandbox.sqlite*never*",
        "*Requested: exec \"echo $((6 * 8))\"*",
    ])
    changed.stdout.fnmatch_lines([
        "sandbox-vcr: 1 Modal exec(s) of this test have no recording in*test_warm_sandbox.sqlite (record mode `never`):",
    ])
    assert digest_tree(pytester.path / "cassettes") == before


def test_a_modal_exec_outside_marked_tests_fails_the_session(pytester, monkeypatch):
    forget_modal_credentials(monkeypatch)
    pytester.makepyfile(test_outside="""
        import modal
        import pytest

        @pytest.mark.sandbox_vcr
        def test_marked(sandbox_vcr):
            assert sandbox_vcr.modal_url

        def test_unmarked_swallows_the_miss():
            app = modal.App.lookup("outside", create_if_missing=True)
            sandbox = modal.Sandbox.create(app=app, image=modal.Image.debian_slim(), timeout=60)
            with pytest.raises(modal.exception.ConflictError, match="no cassette is active"):
                sandbox.exec("bash", "-lc", "echo outside").wait()
    """)
    result = pytester.runpytest_subprocess("--sandbox-record-mode=never")
    result.assert_outcomes(passed=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([
        "pytest-sandbox-vcr: 1 Modal exec(s) ran outside any marked test and missed (no cassette was active)*"])
