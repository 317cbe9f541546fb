#!/usr/bin/env python3
"""Checks Tools/fake_modal_server.py with the real modal==1.6.4 Python SDK as its client.

Usage:
    Tools/.venv/bin/python Tools/fake_modal_server_selftest.py [SCENARIO ...]

Each scenario starts its own server (loopback, --port 0) with its fault switches, runs the SDK in a child process
(MODAL_SERVER_URL, MODAL_TOKEN_ID / MODAL_TOKEN_SECRET set, no profile file), checks what the SDK saw and the
server's --stats-file, then stops the server. Exits 0 when every scenario passed; the last line reads
"N passed, N failed". Scenarios: see SCENARIOS below (default: all).
"""

import asyncio
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
    "reject-before-read": (["--fault", "reject-before-read", "--fault", "unavailable-once"], {}),
    # The SDK does not retry ImageJoinStreaming on RESOURCE_EXHAUSTED: throttle the unary calls only.
    "throttle": (
        ["--fault", "throttle", "--fault-rpcs", "AppGetOrCreate,SandboxCreateV2,TaskExecStart,SandboxTerminateV2"],
        {},
    ),
    "router-unauthenticated-once": (["--fault", "router-unauthenticated-once"], {}),
    "slow-streams": (["--fault", "slow-streams"], {}),
    "stdio-break-once": (["--fault", "stdio-break-once", "--fault", "slow-streams", "--slow-delay", "0"], {}),
    "unauthenticated": (["--fault", "unauthenticated"], {}),
    "wrong-secret": ([], {"MODAL_TOKEN_SECRET": "as-wrong"}),
    "terminate-mid-command": (["--fault", "terminate-mid-command", "--terminate-after", "0.5"], {}),
    "exec-timeout": ([], {}),
    # Raw gRPC calls (grpclib stubs from the wheel), for behaviour the SDK does not show.
    "raw-protocol": (["--fault", "throttle", "--fault-rpcs", "EnvironmentGetOrCreate"], {}),
    "raw-concurrency": ([], {}),
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


def client_reject_before_read(stats_path):
    client_unavailable_once(stats_path)


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


def client_stdio_break_once(stats_path):
    stats = basic_flow(stats_path)
    reads = [e["outcome"] for e in stats["call_log"] if e["path"].endswith("/TaskExecStdioRead")]
    check(reads.count("UNAVAILABLE") >= 2 and reads.count("OK") >= 2, f"stdio read outcomes {reads}")


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


def client_raw_protocol(stats_path):
    asyncio.run(raw_protocol(os.environ["MODAL_SERVER_URL"], stats_path))


async def expect_status(status_name, call):
    from grpclib.exceptions import GRPCError

    try:
        await call
    except GRPCError as error:
        check(error.status.name == status_name, f"expected {status_name}, got {error.status.name}: {error.message}")
        return error
    raise AssertionError(f"expected {status_name}, the call succeeded")


async def raw_protocol(url, stats_path):
    import base64

    from grpclib.client import Channel
    from modal_proto import api_pb2
    from modal_proto import task_command_router_pb2 as router_pb2
    from modal_proto.api_grpc import ModalClientStub
    from modal_proto.task_command_router_grpc import TaskCommandRouterStub

    sys.path.insert(0, HERE)
    from fake_modal_server import ModalStatusDetailsCodec

    port = int(url.rsplit(":", 1)[1])
    channel = Channel("127.0.0.1", port, status_details_codec=ModalStatusDetailsCodec())
    api = ModalClientStub(channel)
    router = TaskCommandRouterStub(channel)
    creds = {"x-modal-token-id": TOKEN_ID, "x-modal-token-secret": TOKEN_SECRET}

    # Throttling carries an RPCRetryPolicy in grpc-status-details-bin; the retry works.
    error = await expect_status("RESOURCE_EXHAUSTED", api.EnvironmentGetOrCreate(api_pb2.EnvironmentGetOrCreateRequest(), metadata=creds))
    detail = error.details[0]
    check(detail.type_url == "type.modal.com/modal.client.RPCRetryPolicy", f"detail type {detail.type_url}")
    policy = api_pb2.RPCRetryPolicy()
    detail.Unpack(policy)
    check(abs(policy.retry_after_secs - 0.05) < 1e-6, f"retry_after_secs {policy.retry_after_secs}")
    env = await api.EnvironmentGetOrCreate(api_pb2.EnvironmentGetOrCreateRequest(), metadata=creds)
    check(env.metadata.settings.image_builder_version == "2025.06", "builder version")

    await expect_status("UNAUTHENTICATED", api.AppGetOrCreate(api_pb2.AppGetOrCreateRequest(app_name="raw")))
    await expect_status("NOT_FOUND", api.AppGetOrCreate(api_pb2.AppGetOrCreateRequest(app_name="raw"), metadata=creds))
    app = await api.AppGetOrCreate(
        api_pb2.AppGetOrCreateRequest(app_name="raw", object_creation_type=api_pb2.OBJECT_CREATION_TYPE_CREATE_IF_MISSING),
        metadata=creds,
    )
    check(app.app_id.startswith("ap-"), "app id")

    image = await api.ImageGetOrCreate(
        api_pb2.ImageGetOrCreateRequest(app_id=app.app_id, image=api_pb2.Image(dockerfile_commands=["FROM base"])),
        metadata=creds,
    )
    check(not image.HasField("result"), "image result unset: join the build")
    joined = [m async for m in _stream(api.ImageJoinStreaming, api_pb2.ImageJoinStreamingRequest(image_id=image.image_id, timeout=55, last_entry_id="1"), creds)]
    check(len(joined) == 1 and joined[0].result.status == api_pb2.GenericResult.GENERIC_STATUS_SUCCESS, "join after entry 1")

    definition = api_pb2.Sandbox(image_id=image.image_id, timeout_secs=600)
    create = api_pb2.SandboxCreateV2Request(app_id=app.app_id, definition=definition)
    await expect_status("UNAUTHENTICATED", api.SandboxCreateV2(create, metadata=creds))
    token = (await api.AuthTokenGet(api_pb2.AuthTokenGetRequest(), metadata=creds)).token
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    check(claims["exp"] > time.time() + 60, "auth token exp")
    v2 = dict(creds, **{"x-modal-auth-token": token, "x-idempotency-key": "create-1"})
    first = await api.SandboxCreateV2(create, metadata=v2)
    again = await api.SandboxCreateV2(create, metadata=v2)
    check(first.sandbox_id == again.sandbox_id, "a repeated idempotency key returns the same sandbox")
    check(
        first.task_id.endswith("V") and len(first.task_id) == len("ta-") + 23 and first.command_router_access.url == url,
        "V2 task id and router URL",
    )
    check(read_stats(stats_path)["sandboxes_created"] == 1, "one sandbox for one idempotency key")
    task = first.task_id
    bearer = {"authorization": f"Bearer {first.command_router_access.jwt}"}

    def start(exec_id, script, **fields):
        request = router_pb2.TaskExecStartRequest(
            task_id=task,
            exec_id=exec_id,
            command_args=["bash", "-lc", script],
            stdout_config=router_pb2.TASK_EXEC_STDOUT_CONFIG_PIPE,
            stderr_config=fields.pop("stderr_config", router_pb2.TASK_EXEC_STDERR_CONFIG_PIPE),
            **fields,
        )
        return router.TaskExecStart(request, metadata=bearer)

    async def output(exec_id, offset=0, fd=router_pb2.TASK_EXEC_STDIO_FILE_DESCRIPTOR_STDOUT):
        request = router_pb2.TaskExecStdioReadRequest(task_id=task, exec_id=exec_id, offset=offset, file_descriptor=fd)
        return b"".join([m.data async for m in _stream(router.TaskExecStdioRead, request, bearer)])

    async def wait(exec_id):
        answer = await router.TaskExecWait(router_pb2.TaskExecWaitRequest(task_id=task, exec_id=exec_id), metadata=bearer)
        return answer.WhichOneof("exit_status"), getattr(answer, answer.WhichOneof("exit_status"))

    bad = {"authorization": "Bearer not.a.jwt"}
    await expect_status("UNAUTHENTICATED", router.TaskExecStart(router_pb2.TaskExecStartRequest(task_id=task, exec_id="x", command_args=["true"]), metadata=bad))
    await expect_status("INVALID_ARGUMENT", start("e0", "true", workdir="/workspace/missing"))

    # stdin offsets: overlap skipped, gap refused; output readable from any offset.
    await start("e1", "cat; echo err 1>&2")
    await start("e1", "cat; echo err 1>&2")  # a retried start is a no-op
    write = router.TaskExecStdinWrite
    await write(router_pb2.TaskExecStdinWriteRequest(task_id=task, exec_id="e1", offset=0, data=b"abc"), metadata=bearer)
    await write(router_pb2.TaskExecStdinWriteRequest(task_id=task, exec_id="e1", offset=1, data=b"bcdef"), metadata=bearer)
    await expect_status("OUT_OF_RANGE", write(router_pb2.TaskExecStdinWriteRequest(task_id=task, exec_id="e1", offset=10, data=b"z"), metadata=bearer))
    await write(router_pb2.TaskExecStdinWriteRequest(task_id=task, exec_id="e1", offset=6, eof=True), metadata=bearer)
    check(await output("e1") == b"abcdef", "stdin bytes once each, in order")
    check(await output("e1", offset=3) == b"def", "read from an offset")
    check(await output("e1", fd=router_pb2.TASK_EXEC_STDIO_FILE_DESCRIPTOR_STDERR) == b"err\n", "stderr")
    check(await wait("e1") == ("code", 0), "exit code 0 is reported as code")
    poll = await router.TaskExecPoll(router_pb2.TaskExecPollRequest(task_id=task, exec_id="e1"), metadata=bearer)
    check(poll.WhichOneof("exit_status") == "code", "poll after exit")

    await start("e2", "echo out; echo err 1>&2", stderr_config=router_pb2.TASK_EXEC_STDERR_CONFIG_STDOUT)
    check(await output("e2") == b"out\nerr\n", "stderr merged into stdout")
    await start("e3", "kill -TERM $$")
    check(await wait("e3") == ("signal", 15), "killed by a signal")
    await start("e4", "echo started; sleep 30", timeout_secs=1)
    check(await wait("e4") == ("signal", 9), "timeout kills with SIGKILL")
    check(await output("e4") == b"started\n", "output before the timeout")
    await start("e5", "mkdir -p /workspace/a && cd /workspace/a && pwd && echo $HOME")
    lines = (await output("e5")).decode().split()
    check(lines[0] == lines[1] + "/workspace/a", f"/workspace mapped under the sandbox root: {lines}")

    # 10 MB through stdin in 2 MiB chunks, read back whole.
    big = os.urandom(10 * 1024 * 1024)
    await start("e7", "mkdir -p /workspace/big && cat > /workspace/big/blob")
    chunk = 2 * 1024 * 1024
    for offset in range(0, len(big), chunk):
        piece = big[offset:offset + chunk]
        last = offset + chunk >= len(big)
        request = router_pb2.TaskExecStdinWriteRequest(task_id=task, exec_id="e7", offset=offset, data=piece, eof=last)
        await write(request, metadata=bearer)
    check(await wait("e7") == ("code", 0), "big write")
    await start("e8", "cat /workspace/big/blob")
    check(await output("e8") == big, "10 MB read back")

    # Termination: router NOT_FOUND (also for calls in flight), access FAILED_PRECONDITION, wait TERMINATED.
    await start("e6", "sleep 30")
    pending = asyncio.ensure_future(wait("e6"))
    terminate = dict(v2)
    terminate.pop("x-idempotency-key")
    await api.SandboxTerminateV2(api_pb2.SandboxTerminateRequest(sandbox_id=first.sandbox_id), metadata=terminate)
    await expect_status("NOT_FOUND", pending)
    await expect_status("NOT_FOUND", output("e1"))
    ids = await api.SandboxGetTaskIdV2(api_pb2.SandboxGetTaskIdRequest(sandbox_id=first.sandbox_id), metadata=terminate)
    check(not ids.HasField("task_id") and ids.task_result.status == api_pb2.GenericResult.GENERIC_STATUS_TERMINATED, "task id after terminate")
    await expect_status("FAILED_PRECONDITION", api.SandboxGetCommandRouterAccess(api_pb2.SandboxGetCommandRouterAccessRequest(sandbox_id=first.sandbox_id), metadata=terminate))
    waited = await api.SandboxWaitV2(api_pb2.SandboxWaitRequest(sandbox_id=first.sandbox_id, timeout=10), metadata=terminate)
    check(waited.result.status == api_pb2.GenericResult.GENERIC_STATUS_TERMINATED, "wait after terminate")

    # V1 with a sandbox timeout: SandboxWait reports TIMEOUT.
    v1 = await api.SandboxCreate(
        api_pb2.SandboxCreateRequest(app_id=app.app_id, definition=api_pb2.Sandbox(image_id=image.image_id, timeout_secs=1)),
        metadata=creds,
    )
    v1_task = (await api.SandboxGetTaskId(api_pb2.SandboxGetTaskIdRequest(sandbox_id=v1.sandbox_id), metadata=creds)).task_id
    # A V1 id is "ta-" and 22 random characters (any of which may be "V"); a V2 id adds a "V" after them.
    check(v1_task.startswith("ta-") and len(v1_task) == len("ta-") + 22, f"V1 task id {v1_task}")
    access = await api.TaskGetCommandRouterAccess(api_pb2.TaskGetCommandRouterAccessRequest(task_id=v1_task), metadata=creds)
    check(access.url == url and access.jwt.count(".") == 2, "V1 router access")
    polled = await api.SandboxWait(api_pb2.SandboxWaitRequest(sandbox_id=v1.sandbox_id, timeout=0), metadata=creds)
    check(not polled.HasField("result") or polled.result.status == 0, "timeout 0 polls")
    waited = await api.SandboxWait(api_pb2.SandboxWaitRequest(sandbox_id=v1.sandbox_id, timeout=10), metadata=creds)
    check(waited.result.status == api_pb2.GenericResult.GENERIC_STATUS_TIMEOUT, "sandbox timeout")

    stats = read_stats(stats_path)
    check(stats["sandboxes_created"] == 2 and stats["sandboxes_alive"] == 0 and stats["max_alive"] == 1, f"stats {stats}")
    check(stats["execs_started"] == 8, f"execs {stats['execs_started']}")
    channel.close()


def client_raw_concurrency(stats_path):
    asyncio.run(raw_concurrency(os.environ["MODAL_SERVER_URL"], stats_path))


async def raw_concurrency(url, stats_path):
    """8 sandboxes, 64 commands at once (8 each), on one HTTP/2 connection."""
    from grpclib.client import Channel
    from modal_proto import api_pb2
    from modal_proto import task_command_router_pb2 as router_pb2
    from modal_proto.api_grpc import ModalClientStub
    from modal_proto.task_command_router_grpc import TaskCommandRouterStub

    channel = Channel("127.0.0.1", int(url.rsplit(":", 1)[1]))
    api = ModalClientStub(channel)
    router = TaskCommandRouterStub(channel)
    creds = {"x-modal-token-id": TOKEN_ID, "x-modal-token-secret": TOKEN_SECRET}
    token = (await api.AuthTokenGet(api_pb2.AuthTokenGetRequest(), metadata=creds)).token
    v2 = dict(creds, **{"x-modal-auth-token": token})
    app = await api.AppGetOrCreate(
        api_pb2.AppGetOrCreateRequest(app_name="c", object_creation_type=api_pb2.OBJECT_CREATION_TYPE_CREATE_IF_MISSING),
        metadata=creds,
    )
    request = api_pb2.SandboxCreateV2Request(app_id=app.app_id, definition=api_pb2.Sandbox(timeout_secs=600))
    sandboxes = await asyncio.gather(*(api.SandboxCreateV2(request, metadata=v2) for _ in range(8)))

    async def run(index):
        sandbox = sandboxes[index % 8]
        bearer = {"authorization": f"Bearer {sandbox.command_router_access.jwt}"}
        exec_id = f"c{index}"
        task = sandbox.task_id
        await router.TaskExecStart(
            router_pb2.TaskExecStartRequest(
                task_id=task,
                exec_id=exec_id,
                command_args=["bash", "-lc", f"echo {index}"],
                stdout_config=router_pb2.TASK_EXEC_STDOUT_CONFIG_PIPE,  # 0 is DEVNULL
            ),
            metadata=bearer,
        )
        read = router_pb2.TaskExecStdioReadRequest(task_id=task, exec_id=exec_id)
        data = b"".join([m.data async for m in _stream(router.TaskExecStdioRead, read, bearer)])
        waited = await router.TaskExecWait(router_pb2.TaskExecWaitRequest(task_id=task, exec_id=exec_id), metadata=bearer)
        return data, waited.code

    results = await asyncio.gather(*(run(i) for i in range(64)))
    expected = [(f"{i}\n".encode(), 0) for i in range(64)]
    wrong = [(i, r) for i, r in enumerate(results) if r != expected[i]]
    check(not wrong, f"64 concurrent commands; wrong: {wrong[:5]}")
    for sandbox in sandboxes:
        await api.SandboxTerminateV2(api_pb2.SandboxTerminateRequest(sandbox_id=sandbox.sandbox_id), metadata=v2)
    stats = read_stats(stats_path)
    check(stats["max_alive"] == 8 and stats["sandboxes_alive"] == 0 and stats["execs_started"] == 64, "stats")
    channel.close()


async def _stream(method, request, metadata):
    async with method.open(metadata=metadata) as stream:
        await stream.send_message(request, end=True)
        async for message in stream:
            yield message


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
