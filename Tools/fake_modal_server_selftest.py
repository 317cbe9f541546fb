#!/usr/bin/env python3
"""Checks Tools/fake_modal_server.py with the real modal==1.6.4 Python SDK as its client.

Usage:
    Tools/.venv/bin/python Tools/fake_modal_server_selftest.py [SCENARIO ...]

Each scenario starts its own server (loopback, --port 0) with its fault switches, runs the SDK in a child process
(MODAL_SERVER_URL, MODAL_TOKEN_ID / MODAL_TOKEN_SECRET set, no profile file), checks what the SDK saw and the
server's --stats-file, then stops the server. Exits 0 when every scenario passed; the last line reads
"N passed, N failed". Scenarios: see SCENARIOS below (default: all).
"""

import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(HERE, "fake_modal_server.py")
TOKEN_ID = "ak-selftest"
TOKEN_SECRET = "as-selftest-secret"

# name: (server flags, extra client env)
SCENARIOS = {
    "flow-v2": ([], {}),
    "flow-v1": ([], {"MODAL_SANDBOX_V2": "0"}),
    "unavailable-once": (["--fault", "unavailable-once"], {}),
    # The SDK does not retry ImageJoinStreaming on RESOURCE_EXHAUSTED: throttle the unary calls only.
    "throttle": (
        ["--fault", "throttle", "--fault-rpcs", "AppGetOrCreate,SandboxCreateV2,TaskExecStart,SandboxTerminateV2"],
        {},
    ),
    "router-unauthenticated-once": (["--fault", "router-unauthenticated-once"], {}),
    "slow-streams": (["--fault", "slow-streams"], {}),
    "unauthenticated": (["--fault", "unauthenticated"], {}),
    "wrong-secret": ([], {"MODAL_TOKEN_SECRET": "as-wrong"}),
    "terminate-mid-command": (["--fault", "terminate-mid-command", "--terminate-after", "0.5"], {}),
    "exec-timeout": ([], {}),
}


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def read_stats(path):
    with open(path) as handle:
        return json.load(handle)


# Client side: runs in a child process with the MODAL_* environment set before modal is imported.


def basic_flow(stats_path, v1=False):
    import modal

    app = modal.App.lookup("selftest-app", create_if_missing=True)
    sandbox = modal.Sandbox.create(app=app, timeout=600)
    process = sandbox.exec(
        "bash", "-lc", "echo hi; echo oops 1>&2; read x; echo got:$x; exit 3", workdir="/tmp", timeout=60
    )
    process.stdin.write(b"hello-from-stdin\n")
    process.stdin.write_eof()
    process.stdin.drain()
    stdout = process.stdout.read()
    stderr = process.stderr.read()
    code = process.wait()
    check(stdout == "hi\ngot:hello-from-stdin\n", f"stdout {stdout!r}")
    check(stderr == "oops\n", f"stderr {stderr!r}")
    check(code == 3, f"exit code {code}")

    # /workspace is mapped into the sandbox root; files written there read back.
    writer = sandbox.exec("bash", "-lc", "mkdir -p /workspace/w1 && cat > /workspace/w1/f.txt", timeout=60)
    payload = "x" * 100_000 + "\n"
    writer.stdin.write(payload.encode())
    writer.stdin.write_eof()
    writer.stdin.drain()
    check(writer.wait() == 0, "write exit code")
    reader = sandbox.exec("bash", "-lc", "wc -c < f.txt; echo $SANDBOX_ROOT", workdir="/workspace/w1", timeout=60)
    lines = reader.stdout.read().split("\n")
    check(reader.wait() == 0, "read exit code")
    check(lines[0].strip() == str(len(payload)), f"wc says {lines[0]!r}")
    check(lines[1].startswith("/"), f"SANDBOX_ROOT {lines[1]!r}")

    stats = read_stats(stats_path)
    check(stats["sandboxes_alive"] == 1, f"alive before terminate: {stats['sandboxes_alive']}")
    sandbox.terminate()
    sandbox.wait(raise_on_termination=False)
    check(sandbox.returncode is not None, "sandbox has a return code after terminate")
    stats = read_stats(stats_path)
    check(stats["sandboxes_created"] == 1, f"created {stats['sandboxes_created']}")
    check(stats["sandboxes_alive"] == 0, f"alive after terminate {stats['sandboxes_alive']}")
    check(stats["max_alive"] == 1, f"max alive {stats['max_alive']}")
    check(len(stats["created_at"]) == 1, "one creation timestamp")
    create = "/modal.client.ModalClient/SandboxCreate" if v1 else "/modal.client.ModalClient/SandboxCreateV2"
    check(stats["calls"].get(create, 0) >= 1, f"{create} was called: {sorted(stats['calls'])}")
    check(stats["images"] and stats["images"][0]["dockerfile_commands"], "an image definition was recorded")
    return stats


def client_flow_v2(stats_path):
    stats = basic_flow(stats_path)
    check("/modal.client.ModalClient/AuthTokenGet" in stats["calls"], "AuthTokenGet used")


def client_flow_v1(stats_path):
    stats = basic_flow(stats_path, v1=True)
    check("/modal.client.ModalClient/TaskGetCommandRouterAccess" in stats["calls"], "V1 router access used")


def retried_paths(stats):
    """Paths whose first answer was a fault and whose retry reused the idempotency key."""
    first = {}
    reused = set()
    for entry in stats["call_log"]:
        path = entry["path"]
        if path not in first:
            first[path] = entry
        elif first[path]["outcome"] != "OK" and entry["outcome"] == "OK":
            key = first[path]["idempotency_key"]
            if key is None or key == entry["idempotency_key"]:
                reused.add(path)
    return reused


def client_unavailable_once(stats_path):
    stats = basic_flow(stats_path)
    check(stats["faults_injected"] >= 5, f"faults injected {stats['faults_injected']}")
    reused = retried_paths(stats)
    for path in ("/modal.client.ModalClient/AppGetOrCreate", "/modal.client.ModalClient/SandboxCreateV2"):
        check(path in reused, f"{path} retried with the same idempotency key: {sorted(reused)}")


def client_throttle(stats_path):
    stats = basic_flow(stats_path)
    check(stats["faults_injected"] == 4, f"faults injected {stats['faults_injected']}")
    reused = retried_paths(stats)
    for path in ("/modal.client.ModalClient/AppGetOrCreate", "/modal.client.ModalClient/SandboxCreateV2"):
        check(path in reused, f"{path} retried with the same idempotency key: {sorted(reused)}")


def client_router_unauthenticated_once(stats_path):
    stats = basic_flow(stats_path)
    # The SDK retries once; it skips fetching a new JWT while its current one is far from expiry.
    router = [e["outcome"] for e in stats["call_log"] if "TaskCommandRouter" in e["path"]]
    check(router[:2] == ["UNAUTHENTICATED", "OK"], f"router outcomes {router[:4]}")


def client_slow_streams(stats_path):
    import modal

    app = modal.App.lookup("selftest-app", create_if_missing=True)
    sandbox = modal.Sandbox.create(app=app)
    process = sandbox.exec("bash", "-lc", "seq 1 400", timeout=60)
    stdout = process.stdout.read()
    check(process.wait() == 0, "exit code")
    check(stdout == "".join(f"{i}\n" for i in range(1, 401)), "slow stream delivered every byte in order")
    sandbox.terminate()


def expect_auth_error():
    import modal
    import modal.exception

    try:
        modal.App.lookup("selftest-app", create_if_missing=True)
    except modal.exception.AuthError as error:
        return str(error)
    raise AssertionError("App.lookup succeeded with refused credentials")


def client_unauthenticated(stats_path):
    message = expect_auth_error()
    check("unauthenticated" in message.lower() or "fault" in message, f"error {message!r}")
    check(read_stats(stats_path)["sandboxes_created"] == 0, "nothing created")


def client_wrong_secret(stats_path):
    message = expect_auth_error()
    check("not recognized" in message, f"error {message!r}")
    check("as-wrong" not in message, "the secret is not echoed")


def client_terminate_mid_command(stats_path):
    import modal

    app = modal.App.lookup("selftest-app", create_if_missing=True)
    sandbox = modal.Sandbox.create(app=app)
    quick = sandbox.exec("bash", "-lc", "true", timeout=60)
    check(quick.wait() == 0, "a quick command is unaffected")
    slow = sandbox.exec("bash", "-lc", "sleep 30", timeout=60)
    started = time.monotonic()
    failed = None
    try:
        slow.stdout.read()
        slow.wait()
    except Exception as error:  # the SDK surfaces the router's NOT_FOUND
        failed = error
    check(time.monotonic() - started < 20, "the command did not run to completion")
    sandbox.wait(raise_on_termination=False)
    check(sandbox.returncode is not None, "sandbox finished")
    stats = read_stats(stats_path)
    check(stats["sandboxes_alive"] == 0 and stats["sandboxes_terminated"] == 1, f"stats {stats['sandboxes_alive']}")
    outcomes = {e["outcome"] for e in stats["call_log"] if "TaskCommandRouter" in e["path"]}
    check(failed is not None or "NOT_FOUND" in outcomes, f"router answered NOT_FOUND: {outcomes}, {failed!r}")


def client_exec_timeout(stats_path):
    import modal

    app = modal.App.lookup("selftest-app", create_if_missing=True)
    sandbox = modal.Sandbox.create(app=app)
    process = sandbox.exec("bash", "-lc", "echo before; sleep 30", timeout=1)
    started = time.monotonic()
    code = None
    try:
        process.stdout.read()
        code = process.wait()
    except Exception:  # the SDK may raise its own ExecTimeoutError
        pass
    check(time.monotonic() - started < 20, "the command was stopped by its timeout")
    check(code in (None, 137, -1), f"exit code after timeout {code}")
    # The server's own view: TaskExecPoll-equivalent via a second exec still works in the sandbox.
    check(sandbox.exec("bash", "-lc", "true", timeout=60).wait() == 0, "sandbox still usable")
    sandbox.terminate()


def run_client(name, stats_path):
    globals()["client_" + name.replace("-", "_")](stats_path)


# Driver side.


def run_scenario(name, workdir):
    flags, client_env = SCENARIOS[name]
    stats_path = os.path.join(workdir, f"{name}.stats.json")
    ready_path = os.path.join(workdir, f"{name}.ready")
    server = subprocess.Popen(
        [
            sys.executable,
            SERVER,
            "--port",
            "0",
            "--ready-file",
            ready_path,
            "--stats-file",
            stats_path,
            "--token-id",
            TOKEN_ID,
            "--token-secret",
            TOKEN_SECRET,
            *flags,
            *(["--verbose"] if os.environ.get("FAKE_MODAL_VERBOSE") else []),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = server.stdout.readline().strip()
        prefix = "fake-modal: listening on "
        if not line.startswith(prefix):
            return f"server did not start: {line!r}"
        url = line[len(prefix):]
        with open(ready_path) as handle:
            if handle.read() != url:
                return "ready file does not hold the URL"
        env = {k: v for k, v in os.environ.items() if not k.startswith("MODAL_")}
        env.update(
            {
                "MODAL_SERVER_URL": url,
                "MODAL_TOKEN_ID": TOKEN_ID,
                "MODAL_TOKEN_SECRET": TOKEN_SECRET,
                "MODAL_CONFIG_PATH": os.path.join(workdir, "no-such-modal.toml"),
            }
        )
        env.update(client_env)
        try:
            client = subprocess.run(
                [sys.executable, __file__, "--client", name, stats_path],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
        except subprocess.TimeoutExpired:
            return "client timed out after 120 s"
        if client.returncode != 0:
            return (client.stderr or client.stdout).strip()[-3000:]
        return None
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


def main(argv):
    if argv[:1] == ["--client"]:
        run_client(argv[1], argv[2])
        return 0
    names = argv or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        print(f"unknown scenarios {unknown}; known: {', '.join(SCENARIOS)}", file=sys.stderr)
        return 2
    passed = failed = 0
    with tempfile.TemporaryDirectory(prefix="fake-modal-selftest-") as workdir:
        for name in names:
            started = time.monotonic()
            problem = run_scenario(name, workdir)
            elapsed = time.monotonic() - started
            if problem is None:
                passed += 1
                print(f"PASS {name} ({elapsed:.1f} s)", flush=True)
            else:
                failed += 1
                print(f"FAIL {name} ({elapsed:.1f} s)\n{problem}", flush=True)
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
