#!/usr/bin/env python3
"""A fake Modal API server for tests: loopback gRPC (cleartext HTTP/2) on Modal's own schema.

Built on the grpclib service base classes shipped in the modal==1.6.4 wheel (`modal_proto.api_grpc.ModalClientBase`
and `modal_proto.task_command_router_grpc.TaskCommandRouterBase`), so request paths and messages are Modal's.
Both services are served on one port: the command router URL handed to clients points back to this server.
Install with Tools/setup (modal==1.6.4 into Tools/.venv), run with Tools/.venv/bin/python.

Usage:
    Tools/.venv/bin/python Tools/fake_modal_server.py --port 0 --ready-file /tmp/ready --stats-file /tmp/stats.json \
        [--token-id ak-test --token-secret as-test] [--fault NAME ...] [--fault-rpcs Name,Name] [--exit-on-stdin-eof] \
        [--router-scheme https]

With --exit-on-stdin-eof the server also stops when its standard input closes: a test that starts it with a pipe
as stdin never leaves it running, even if the test process dies.

Startup: prints exactly one line to stdout, `fake-modal: listening on http://127.0.0.1:PORT`, and writes that URL
(no newline) to --ready-file (atomically). Stops on SIGTERM/SIGINT: kills every command, removes sandbox folders.
Listens on 127.0.0.1 only.

RPCs implemented (everything else answers UNIMPLEMENTED):
    modal.client.ModalClient: AppGetOrCreate, EnvironmentGetOrCreate, ImageGetOrCreate, ImageJoinStreaming (stream),
        AuthTokenGet, SandboxCreateV2, SandboxGetTaskIdV2, SandboxGetCommandRouterAccess, SandboxTerminateV2,
        SandboxWaitV2, and V1: SandboxCreate, SandboxGetTaskId, TaskGetCommandRouterAccess, SandboxTerminate,
        SandboxWait.
    modal.task_command_router.TaskCommandRouter: TaskExecStart, TaskExecStdinWrite, TaskExecStdioRead (stream),
        TaskExecWait, TaskExecPoll.

Authentication:
    Control plane (ModalClient): `x-modal-token-id` / `x-modal-token-secret` must equal --token-id / --token-secret,
    else UNAUTHENTICATED. V2 sandbox calls (SandboxCreateV2, SandboxGetTaskIdV2, SandboxGetCommandRouterAccess,
    SandboxTerminateV2, SandboxWaitV2) also need `x-modal-auth-token`: a JWT from AuthTokenGet, not expired.
    Router (TaskCommandRouter): `authorization: Bearer <jwt>` with the JWT from command_router_access for that task
    (HS256-signed, `exp` = now + --router-jwt-ttl), else UNAUTHENTICATED.

Ids: V1 sandbox ids are `sb-` + 22 alphanumerics; V2 sandbox ids and V2 task ids end in `V` (the SDK chooses the
    backend of `Sandbox.from_id` by the id's shape, and looks the sandbox up with SandboxWait / SandboxWaitV2 timeout 0).

Commands: each sandbox gets a temporary root folder; a command runs as a local subprocess (its command_args, e.g.
    `bash -lc CMD`) in its own process group, with env HOME=<root>, SANDBOX_ROOT=<root>, PATH, LANG plus the request's
    env and the inline env of its secret_sources (how the SDK sends `exec(env=...)`). Absolute paths that start with a mapped prefix (--map-prefix, default /workspace) are rewritten to
    <root>/<prefix> in every command argument and in workdir, so `/workspace/x` lands inside the sandbox root; other
    absolute paths (/tmp, /usr...) are the host's. Unset workdir = the sandbox root. A workdir that does not exist
    answers TaskExecStart with INVALID_ARGUMENT. `pwd` prints the real (rewritten) folder.
    stdout/stderr are buffered whole; TaskExecStdioRead streams from the request's offset and ends (status OK) once
    the stream is at EOF. When the command's main process exits, its process group is killed (background children
    do not outlive it). timeout_secs kills the group with SIGKILL: TaskExecWait then answers signal 9.
    TaskExecStdinWrite takes offsets: bytes before the already-received offset are skipped (idempotent retries), a
    gap answers OUT_OF_RANGE. TaskExecStart with an exec_id already started is a no-op (idempotent retries).
    A terminated sandbox: router calls for its task answer NOT_FOUND (in-flight streams and waits too), access RPCs
    FAILED_PRECONDITION, SandboxGetTaskId a task_result without task_id, SandboxWait result TERMINATED (exitcode -1),
    or TIMEOUT when definition.timeout_secs ran out. SandboxCreate(V2) with a repeated x-idempotency-key returns the
    first answer.

Fault switches (--fault, repeatable; --fault-rpcs limits faults to the listed method names, default all):
    unavailable-once       the first call of each RPC answers UNAVAILABLE, later calls work.
    throttle               the first call of each RPC answers RESOURCE_EXHAUSTED with grpc-status-details-bin holding
                           an RPCStatus whose details carry type.modal.com/modal.client.RPCRetryPolicy
                           (retry_after_secs = --throttle-secs, default 0.05).
    unauthenticated        every control-plane (ModalClient) call answers UNAUTHENTICATED.
    router-unauthenticated-once  the first router call of each task answers UNAUTHENTICATED (JWT refresh path).
    terminate-mid-command  a command still running --terminate-after seconds (default 0.5) after it started gets its
                           sandbox terminated (status TERMINATED): quick commands are unaffected.
    terminate-mid-command-once  as terminate-mid-command, for the first such command only (one sandbox dies, the
                           next ones live): a pool's retry on a fresh sandbox succeeds.
    ignore-exec-timeouts   timeout_secs is ignored: commands run until they end or their sandbox does (as Modal's own
                           test server does); a client must enforce exec timeouts itself.
    stdio-break-once       the first TaskExecStdioRead stream of each exec and file descriptor fails with UNAVAILABLE
                           right after its first data message: the client must reconnect with offset = bytes received.
    slow-streams           TaskExecStdioRead sends --slow-chunk bytes (default 7) per message, --slow-delay seconds
                           (default 0.01) apart.
    reject-before-read     credential and fault errors are answered before the request body is read (as real gRPC
                           servers may on header-level rejections; the case where libcurl 7.88 loses the status with
                           HTTP/2 error 92). Without it the request is always read first.
    drop-status            every call answers in full (headers and messages) but ends its HTTP/2 stream without the
                           trailers that carry grpc-status, as libcurl before 8.1 delivers an answer whose trailers it
                           dropped on a multiplexed connection. Use with --fault-rpcs.
    drop-status-once       as drop-status, for the first call of each RPC only.
    Faults are checked after credentials (a call with bad credentials is refused, not faulted).

Router URLs (--router-scheme, default http): with `https` the command router URL handed out is
`https://127.0.0.1:PORT` while the port still speaks cleartext HTTP/2, as a local Modal test server may; a client
must dial it in cleartext because the API server is on loopback (as Modal's Go SDK does).

Stats (--stats-file PATH): a JSON object rewritten atomically (temp file + rename) before the answer of every call
that changes it, so a test that got an answer reads a file that already includes that call:
    {"sandboxes_created": int, "sandboxes_alive": int, "max_alive": int, "sandboxes_terminated": int,
     "created_at": [unix seconds, ...], "terminated_at": [unix seconds, ...],
     "execs_started": int, "faults_injected": int,
     "calls": {"/modal.client.ModalClient/AppGetOrCreate": count, ...},      # every call, faulted ones included
     "call_log": [{"path": str, "idempotency_key": str|null, "retry_attempt": str|null, "outcome": "OK"|STATUS|"OK, status dropped"}, ...]
                 (the last 1000 calls; never tokens),
     "images": [{"image_id": str, "dockerfile_commands": [str], "base_images": [str]}],
     "apps": {"env/name": "ap-..."}}
"""

import argparse
import asyncio
import base64
import hashlib
import hmac
import itertools
import json
import os
import re
import secrets
import shutil
import signal
import sys
import tempfile
import time

from grpclib.const import Handler, Status
from grpclib.encoding.base import StatusDetailsCodecBase
from grpclib.exceptions import GRPCError
from grpclib.server import Server
from modal_proto import api_pb2
from modal_proto import task_command_router_pb2 as router_pb2
from modal_proto.api_grpc import ModalClientBase
from modal_proto.task_command_router_grpc import TaskCommandRouterBase

CONTROL_PREFIX = "/modal.client.ModalClient/"
ROUTER_PREFIX = "/modal.task_command_router.TaskCommandRouter/"
V2_AUTH_TOKEN_METHODS = {
    "SandboxCreateV2",
    "SandboxGetTaskIdV2",
    "SandboxGetCommandRouterAccess",
    "SandboxTerminateV2",
    "SandboxWaitV2",
}
FAULTS = {
    "unavailable-once",
    "throttle",
    "unauthenticated",
    "router-unauthenticated-once",
    "terminate-mid-command",
    "slow-streams",
    "reject-before-read",
    "stdio-break-once",
    "terminate-mid-command-once",
    "ignore-exec-timeouts",
    "drop-status",
    "drop-status-once",
}
BUILDER_VERSION = "2025.06"
READ_CHUNK = 64 * 1024


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_id(prefix):
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return prefix + "".join(secrets.choice(alphabet) for _ in range(22))


class JWTIssuer:
    """Issues and checks HS256 JWTs with `sub` and `exp` claims."""

    def __init__(self):
        self._key = secrets.token_bytes(32)

    def issue(self, subject, ttl):
        header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
        claims = {"sub": subject, "exp": int(time.time() + ttl), "iat": int(time.time())}
        payload = b64url(json.dumps(claims, separators=(",", ":")).encode())
        signature = b64url(hmac.new(self._key, f"{header}.{payload}".encode(), hashlib.sha256).digest())
        return f"{header}.{payload}.{signature}"

    def check(self, token, subject):
        """Returns None when valid, else the reason (never the token)."""
        parts = token.split(".")
        if len(parts) != 3:
            return "not a JWT"
        expected = b64url(hmac.new(self._key, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(expected, parts[2]):
            return "bad signature"
        try:
            claims = json.loads(b64url_decode(parts[1]))
        except ValueError:
            return "unreadable claims"
        if claims.get("exp", 0) <= time.time():
            return "expired"
        if subject is not None and claims.get("sub") != subject:
            return "issued for another subject"
        return None


class Stats:
    """Counters a test can read from --stats-file."""

    def __init__(self, path):
        self.path = path
        self.data = {
            "sandboxes_created": 0,
            "sandboxes_alive": 0,
            "max_alive": 0,
            "sandboxes_terminated": 0,
            "created_at": [],
            "terminated_at": [],
            "execs_started": 0,
            "faults_injected": 0,
            "calls": {},
            "call_log": [],
            "images": [],
            "apps": {},
        }

    def write(self):
        if not self.path:
            return
        tmp = f"{self.path}.tmp"
        with open(tmp, "w") as handle:
            json.dump(self.data, handle, indent=1, sort_keys=True)
        os.replace(tmp, self.path)


class Exec:
    """One command: its process, its buffered output, its exit."""

    def __init__(self, exec_id, sandbox):
        self.exec_id = exec_id
        self.sandbox = sandbox
        self.process = None
        self.starting = None  # the task that spawns the process; shielded from the cancellation of its call
        self.stdout = bytearray()
        self.stderr = bytearray()
        self.stdout_eof = False
        self.stderr_eof = False
        self.exit = None  # ("code", n) or ("signal", n)
        self.broken_streams = set()  # file descriptors whose stream the stdio-break-once fault already broke
        self.timed_out = False
        self.stdin_offset = 0
        self.stdin_closed = False
        self.stdin_lock = asyncio.Lock()
        self.changed = asyncio.Condition()

    async def notify(self):
        async with self.changed:
            self.changed.notify_all()


class Sandbox:
    """One fake sandbox: a temporary root folder and the commands run in it."""

    def __init__(self, sandbox_id, task_id, app_id, root, version):
        self.sandbox_id = sandbox_id
        self.task_id = task_id
        self.app_id = app_id
        self.root = root
        self.version = version
        self.execs = {}
        self.result = None  # api_pb2.GenericResult once finished
        self.finished = asyncio.Event()
        self.timeout_handle = None
        self.router_auth_faulted = False

    @property
    def alive(self):
        return self.result is None


class FakeModal:
    """Shared state and behaviour of both services."""

    def __init__(self, args):
        self.args = args
        self.faults = set(args.fault or [])
        self.fault_rpcs = set(filter(None, (args.fault_rpcs or "").split(",")))
        self.stats = Stats(args.stats_file)
        self.jwt = JWTIssuer()
        self.url = None
        self.router_url = None  # self.url, with --router-scheme's scheme
        self.terminated_mid_command = False  # terminate-mid-command-once already killed a sandbox
        self.base_dir = tempfile.mkdtemp(prefix="fake-modal-")
        self.sandboxes = {}
        self.by_task = {}
        self.apps = {}
        self.images = {}
        self.idempotent_answers = {}
        self.faulted_once = {"unavailable-once": set(), "throttle": set(), "drop-status-once": set()}
        self.map_prefixes = args.map_prefix or ["/workspace"]
        self.app_counter = itertools.count()
        self.image_counter = itertools.count(1)

    # Call wrapper: credentials, faults, counters.

    def fault_applies(self, method):
        return not self.fault_rpcs or method in self.fault_rpcs

    def log_call(self, path, metadata, outcome):
        """Counts a call and appends it to the call log; returns the log entry (its outcome may change later)."""
        data = self.stats.data
        data["calls"][path] = data["calls"].get(path, 0) + 1
        entry = {
            "path": path,
            "idempotency_key": metadata.get("x-idempotency-key"),
            "retry_attempt": metadata.get("x-retry-attempt"),
            "outcome": outcome,
        }
        data["call_log"].append(entry)
        del data["call_log"][:-1000]
        return entry

    def check_call(self, path, metadata, request):
        """Raises the GRPCError a call must fail with, or returns None."""
        method = path.rsplit("/", 1)[-1]
        if path.startswith(CONTROL_PREFIX):
            token_id = metadata.get("x-modal-token-id")
            token_secret = metadata.get("x-modal-token-secret")
            if not token_id or not token_secret:
                raise GRPCError(Status.UNAUTHENTICATED, "missing x-modal-token-id / x-modal-token-secret")
            if token_id != self.args.token_id or not hmac.compare_digest(token_secret, self.args.token_secret):
                raise GRPCError(Status.UNAUTHENTICATED, "token id or secret not recognized")
            if method in V2_AUTH_TOKEN_METHODS:
                auth_token = metadata.get("x-modal-auth-token")
                if not auth_token:
                    raise GRPCError(Status.UNAUTHENTICATED, "missing x-modal-auth-token (call AuthTokenGet)")
                problem = self.jwt.check(auth_token, "auth")
                if problem:
                    raise GRPCError(Status.UNAUTHENTICATED, f"x-modal-auth-token rejected: {problem}")
        else:
            authorization = metadata.get("authorization", "")
            if not authorization.startswith("Bearer "):
                raise GRPCError(Status.UNAUTHENTICATED, "missing authorization: Bearer <jwt>")
            task_id = getattr(request, "task_id", None) if request is not None else None
            problem = self.jwt.check(authorization[len("Bearer "):], task_id)
            if problem:
                raise GRPCError(Status.UNAUTHENTICATED, f"router JWT rejected: {problem}")

        if not self.fault_applies(method):
            return
        if "unauthenticated" in self.faults and path.startswith(CONTROL_PREFIX):
            raise GRPCError(Status.UNAUTHENTICATED, "fake-modal fault: unauthenticated")
        if "router-unauthenticated-once" in self.faults and path.startswith(ROUTER_PREFIX):
            sandbox = self.by_task.get(getattr(request, "task_id", None))
            if sandbox is not None and not sandbox.router_auth_faulted:
                sandbox.router_auth_faulted = True
                raise GRPCError(Status.UNAUTHENTICATED, "fake-modal fault: router JWT refused once")
        if "unavailable-once" in self.faults and path not in self.faulted_once["unavailable-once"]:
            self.faulted_once["unavailable-once"].add(path)
            raise GRPCError(Status.UNAVAILABLE, "fake-modal fault: unavailable once")
        if "throttle" in self.faults and path not in self.faulted_once["throttle"]:
            self.faulted_once["throttle"].add(path)
            policy = api_pb2.RPCRetryPolicy(retry_after_secs=self.args.throttle_secs)
            raise GRPCError(Status.RESOURCE_EXHAUSTED, "fake-modal fault: throttled", [policy])

    def drops_status(self, path):
        """Whether this call's answer goes without its trailers (drop-status, drop-status-once)."""
        if not self.fault_applies(path.rsplit("/", 1)[-1]):
            return False
        if "drop-status" in self.faults:
            return True
        if "drop-status-once" in self.faults and path not in self.faulted_once["drop-status-once"]:
            self.faulted_once["drop-status-once"].add(path)
            return True
        return False

    def wrap(self, path, handler):
        """Wraps a handler: reads the request, checks credentials and faults, counts, then runs the implementation."""
        impl = handler.func

        async def wrapped(stream):
            metadata = stream.metadata
            request = None
            if "reject-before-read" not in self.faults:
                request = await stream.recv_message()
            try:
                self.check_call(path, metadata, request)
            except GRPCError as error:
                if (error.message or "").startswith("fake-modal fault"):
                    self.stats.data["faults_injected"] += 1
                self.log_call(path, metadata, error.status.name)
                self.stats.write()
                raise
            if request is None:
                request = await stream.recv_message()
            entry = self.log_call(path, metadata, "OK")
            self.stats.write()
            if self.args.verbose:
                print(f"fake-modal: {time.time():.3f} {path}", file=sys.stderr, flush=True)
            try:
                await impl(request, stream)
            except GRPCError as error:
                entry["outcome"] = error.status.name
                self.stats.write()
                raise
            if self.drops_status(path):
                # Counted first: the stats file is written before the answer ends.
                entry["outcome"] = "OK, status dropped"
                self.stats.data["faults_injected"] += 1
                self.stats.write()
                # End the stream with an empty DATA frame instead of the trailers (grpclib sends them on exit
                # unless they count as sent).
                if not stream._send_initial_metadata_done:
                    await stream.send_initial_metadata()
                await stream._stream.end()
                stream._send_trailing_metadata_done = True

        return Handler(wrapped, handler.cardinality, handler.request_type, handler.reply_type)

    # Sandboxes.

    def map_path(self, sandbox, text):
        for prefix in self.map_prefixes:
            pattern = r"(?<![\w./-])" + re.escape(prefix) + r"(?=/|$|[^\w.-])"
            text = re.sub(pattern, lambda _m, p=prefix: sandbox.root + p, text)
        return text

    def create_sandbox(self, app_id, definition, version):
        # The SDK picks the backend of Sandbox.from_id(id) by the id's shape: `sb-` + 22 alphanumerics is V1,
        # anything else V2. V2 ids carry a trailing `V`, as V2 task ids do.
        sandbox_id = new_id("sb-") + ("V" if version == 2 else "")
        task_id = new_id("ta-") + ("V" if version == 2 else "")
        root = os.path.join(self.base_dir, sandbox_id)
        os.makedirs(root)
        sandbox = Sandbox(sandbox_id, task_id, app_id, root, version)
        self.sandboxes[sandbox_id] = sandbox
        self.by_task[task_id] = sandbox
        data = self.stats.data
        data["sandboxes_created"] += 1
        data["sandboxes_alive"] += 1
        data["max_alive"] = max(data["max_alive"], data["sandboxes_alive"])
        data["created_at"].append(time.time())
        if definition.timeout_secs > 0:
            loop = asyncio.get_running_loop()
            sandbox.timeout_handle = loop.call_later(
                definition.timeout_secs,
                lambda: asyncio.ensure_future(self.finish_sandbox(sandbox, api_pb2.GenericResult.GENERIC_STATUS_TIMEOUT)),
            )
        return sandbox

    async def finish_sandbox(self, sandbox, status):
        """Ends a sandbox: kills its commands, records the result, wakes every waiter."""
        if not sandbox.alive:
            return
        sandbox.result = api_pb2.GenericResult(status=status, exitcode=-1)
        if sandbox.timeout_handle is not None:
            sandbox.timeout_handle.cancel()
        data = self.stats.data
        data["sandboxes_alive"] -= 1
        data["sandboxes_terminated"] += 1
        data["terminated_at"].append(time.time())
        self.stats.write()
        for execution in sandbox.execs.values():
            kill_group(execution.process)
        sandbox.finished.set()
        for execution in sandbox.execs.values():
            await execution.notify()
            # Router calls on a finished sandbox answer NOT_FOUND: its buffered output is no longer needed.
            execution.stdout = bytearray()
            execution.stderr = bytearray()
        shutil.rmtree(sandbox.root, ignore_errors=True)

    def lookup_sandbox(self, sandbox_id):
        sandbox = self.sandboxes.get(sandbox_id)
        if sandbox is None:
            raise GRPCError(Status.NOT_FOUND, f"sandbox {sandbox_id!r} not found")
        return sandbox

    def router_access(self, sandbox):
        if not sandbox.alive:
            raise GRPCError(Status.FAILED_PRECONDITION, f"sandbox {sandbox.sandbox_id} has finished")
        return self.jwt.issue(sandbox.task_id, self.args.router_jwt_ttl), self.router_url

    def router_exec(self, task_id, exec_id):
        sandbox = self.router_sandbox(task_id)
        execution = sandbox.execs.get(exec_id)
        if execution is None:
            raise GRPCError(Status.NOT_FOUND, f"exec {exec_id!r} not found in task {task_id}")
        return execution

    def router_sandbox(self, task_id):
        sandbox = self.by_task.get(task_id)
        if sandbox is None:
            raise GRPCError(Status.NOT_FOUND, f"task {task_id!r} not found")
        if not sandbox.alive:
            raise GRPCError(Status.NOT_FOUND, f"task {task_id} not found: its sandbox has terminated")
        return sandbox

    async def wait_result(self, sandbox, timeout):
        if sandbox.alive and timeout > 0:
            try:
                await asyncio.wait_for(sandbox.finished.wait(), timeout)
            except asyncio.TimeoutError:
                pass
        return sandbox.result

    # Commands.

    async def start_exec(self, request):
        sandbox = self.router_sandbox(request.task_id)
        existing = sandbox.execs.get(request.exec_id)
        if existing is not None:
            await asyncio.shield(existing.starting)  # a retried start: answers once the first start is done
            return
        if not request.command_args:
            raise GRPCError(Status.INVALID_ARGUMENT, "command_args is empty")
        args = [self.map_path(sandbox, arg) for arg in request.command_args]
        if request.HasField("workdir") and request.workdir:
            cwd = self.map_path(sandbox, request.workdir)
            if not os.path.isabs(cwd):
                cwd = os.path.join(sandbox.root, cwd)
        else:
            cwd = sandbox.root
        if not os.path.isdir(cwd):
            raise GRPCError(Status.INVALID_ARGUMENT, f"workdir {request.workdir!r} does not exist")
        env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "HOME": sandbox.root,
            "SANDBOX_ROOT": sandbox.root,
        }
        env.update(dict(request.env))
        for source in request.secret_sources:  # the SDK sends exec(env=...) as inline secret sources
            env.update(dict(source.env.contents))
        stdout = asyncio.subprocess.PIPE
        if request.stdout_config == router_pb2.TASK_EXEC_STDOUT_CONFIG_DEVNULL:
            stdout = asyncio.subprocess.DEVNULL
        stderr = asyncio.subprocess.PIPE
        if request.stderr_config == router_pb2.TASK_EXEC_STDERR_CONFIG_DEVNULL:
            stderr = asyncio.subprocess.DEVNULL
        elif request.stderr_config == router_pb2.TASK_EXEC_STDERR_CONFIG_STDOUT:
            stderr = asyncio.subprocess.STDOUT

        execution = Exec(request.exec_id, sandbox)
        sandbox.execs[request.exec_id] = execution
        # The process is spawned by a task of its own: a start whose call is cancelled (the client's connection
        # dropped) still completes, so the client's retried start and its stdin writes find the process.
        execution.starting = asyncio.ensure_future(self.spawn(execution, request, args, cwd, env, stdout, stderr))
        await asyncio.shield(execution.starting)

    async def spawn(self, execution, request, args, cwd, env, stdout, stderr):
        sandbox = execution.sandbox
        try:
            execution.process = await asyncio.create_subprocess_exec(
                *args,
                cwd=cwd,
                env=env,
                stdin=asyncio.subprocess.PIPE,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
            )
        except OSError as error:
            del sandbox.execs[request.exec_id]
            raise GRPCError(Status.INVALID_ARGUMENT, f"cannot start {request.command_args[0]!r}: {error.strerror}")
        self.stats.data["execs_started"] += 1
        self.stats.write()
        process = execution.process
        if not sandbox.alive:  # terminated while the process was being spawned
            kill_group(process)
        if process.stdout is None:
            execution.stdout_eof = True
        else:
            asyncio.ensure_future(self.pump(execution, process.stdout, execution.stdout, "stdout_eof"))
        if process.stderr is None:
            execution.stderr_eof = True
        else:
            asyncio.ensure_future(self.pump(execution, process.stderr, execution.stderr, "stderr_eof"))
        timeout_secs = request.timeout_secs if request.HasField("timeout_secs") else 0
        if "ignore-exec-timeouts" in self.faults and self.fault_applies("TaskExecStart"):
            timeout_secs = 0
        asyncio.ensure_future(self.reap(execution, timeout_secs))
        terminating = {"terminate-mid-command", "terminate-mid-command-once"} & self.faults
        if terminating and self.fault_applies("TaskExecStart"):
            asyncio.ensure_future(self.terminate_if_running(execution))

    async def pump(self, execution, reader, buffer, eof_flag):
        while True:
            chunk = await reader.read(READ_CHUNK)
            if not chunk:
                break
            buffer.extend(chunk)
            await execution.notify()
        setattr(execution, eof_flag, True)
        await execution.notify()

    async def reap(self, execution, timeout_secs):
        process = execution.process
        try:
            if timeout_secs > 0:
                await asyncio.wait_for(process.wait(), timeout_secs)
            else:
                await process.wait()
        except asyncio.TimeoutError:
            execution.timed_out = True
            kill_group(process)
            await process.wait()
        kill_group(process)  # background children do not outlive the command
        code = process.returncode
        execution.exit = ("signal", -code) if code < 0 else ("code", code)
        await execution.notify()

    async def terminate_if_running(self, execution):
        await asyncio.sleep(self.args.terminate_after)
        if execution.exit is None and execution.sandbox.alive:
            if "terminate-mid-command" not in self.faults:
                if self.terminated_mid_command:
                    return
                self.terminated_mid_command = True
            self.stats.data["faults_injected"] += 1
            await self.finish_sandbox(execution.sandbox, api_pb2.GenericResult.GENERIC_STATUS_TERMINATED)

    async def write_stdin(self, request):
        execution = self.router_exec(request.task_id, request.exec_id)
        await asyncio.shield(execution.starting)
        async with execution.stdin_lock:
            if request.offset > execution.stdin_offset:
                raise GRPCError(
                    Status.OUT_OF_RANGE,
                    f"stdin offset {request.offset} is past the {execution.stdin_offset} bytes received",
                )
            data = request.data[execution.stdin_offset - request.offset:]
            stdin = execution.process.stdin
            if data and not execution.stdin_closed:
                try:
                    stdin.write(data)
                    await stdin.drain()
                except (BrokenPipeError, ConnectionResetError):
                    execution.stdin_closed = True
            execution.stdin_offset = max(execution.stdin_offset, request.offset + len(request.data))
            if request.eof and not execution.stdin_closed:
                execution.stdin_closed = True
                stdin.close()

    async def stream_stdio(self, request, stream):
        execution = self.router_exec(request.task_id, request.exec_id)
        stderr = request.file_descriptor == router_pb2.TASK_EXEC_STDIO_FILE_DESCRIPTOR_STDERR
        buffer = execution.stderr if stderr else execution.stdout
        eof_flag = "stderr_eof" if stderr else "stdout_eof"
        offset = request.offset
        slow = "slow-streams" in self.faults and self.fault_applies("TaskExecStdioRead")
        chunk_size = self.args.slow_chunk if slow else READ_CHUNK
        break_once = (
            "stdio-break-once" in self.faults
            and self.fault_applies("TaskExecStdioRead")
            and request.file_descriptor not in execution.broken_streams
        )
        while True:
            if not execution.sandbox.alive:
                raise GRPCError(Status.NOT_FOUND, f"task {request.task_id} not found: its sandbox has terminated")
            if offset < len(buffer):
                chunk = bytes(buffer[offset:offset + chunk_size])
                offset += len(chunk)
                await stream.send_message(router_pb2.TaskExecStdioReadResponse(data=chunk))
                if break_once:
                    execution.broken_streams.add(request.file_descriptor)
                    self.stats.data["faults_injected"] += 1
                    self.stats.write()
                    raise GRPCError(Status.UNAVAILABLE, "fake-modal fault: stdio stream broken once")
                if slow:
                    await asyncio.sleep(self.args.slow_delay)
                continue
            if getattr(execution, eof_flag):
                return
            async with execution.changed:
                await execution.changed.wait_for(
                    lambda: len(buffer) > offset or getattr(execution, eof_flag) or not execution.sandbox.alive
                )

    async def wait_exec(self, request):
        execution = self.router_exec(request.task_id, request.exec_id)
        async with execution.changed:
            await execution.changed.wait_for(lambda: execution.exit is not None or not execution.sandbox.alive)
        if not execution.sandbox.alive:
            raise GRPCError(Status.NOT_FOUND, f"task {request.task_id} not found: its sandbox has terminated")
        return execution.exit

    async def shutdown(self):
        for sandbox in list(self.sandboxes.values()):
            for execution in sandbox.execs.values():
                kill_group(execution.process)
        shutil.rmtree(self.base_dir, ignore_errors=True)


class ModalStatusDetailsCodec(StatusDetailsCodecBase):
    """Encodes grpc-status-details-bin as Modal does: an RPCStatus whose details are Any with type.modal.com/ URLs."""

    def encode(self, status, message, details):
        proto = api_pb2.RPCStatus(code=status.value, message=message or "")
        for detail in details or []:
            proto.details.add().Pack(detail, type_url_prefix="type.modal.com/")
        return proto.SerializeToString()

    def decode(self, status, message, data):
        return list(api_pb2.RPCStatus.FromString(data).details)


def kill_group(process):
    if process is None:
        return
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def with_unimplemented(base):
    """A subclass of a grpclib base class whose abstract methods answer UNIMPLEMENTED."""

    def unimplemented(name):
        async def handler(self, request, stream):
            raise GRPCError(Status.UNIMPLEMENTED, f"fake-modal does not implement {name}")

        return handler

    namespace = {name: unimplemented(name) for name in base.__abstractmethods__}
    return type(f"Unimplemented{base.__name__}", (base,), namespace)


class WrappedService:
    """Mixin: routes every method through FakeModal.wrap; implementations take (request, stream)."""

    def __init__(self, fake):
        self.fake = fake

    def __mapping__(self):
        return {path: self.fake.wrap(path, handler) for path, handler in super().__mapping__().items()}


class FakeModalClient(WrappedService, with_unimplemented(ModalClientBase)):
    """modal.client.ModalClient: apps, environments, images, auth tokens, sandboxes (V1 and V2)."""

    async def AppGetOrCreate(self, request, stream):
        fake = self.fake
        key = f"{request.environment_name or 'main'}/{request.app_name}"
        if key not in fake.apps:
            if request.object_creation_type not in (
                api_pb2.OBJECT_CREATION_TYPE_CREATE_IF_MISSING,
                api_pb2.OBJECT_CREATION_TYPE_EPHEMERAL,
                api_pb2.OBJECT_CREATION_TYPE_ANONYMOUS_OWNED_BY_APP,
            ):
                raise GRPCError(Status.NOT_FOUND, f"app {request.app_name!r} not found")
            fake.apps[key] = f"ap-{next(fake.app_counter)}"
            fake.stats.data["apps"][key] = fake.apps[key]
            fake.stats.write()
        await stream.send_message(api_pb2.AppGetOrCreateResponse(app_id=fake.apps[key]))

    async def EnvironmentGetOrCreate(self, request, stream):
        metadata = api_pb2.EnvironmentMetadata(
            name=request.deployment_name or "main",
            settings=api_pb2.EnvironmentSettings(image_builder_version=BUILDER_VERSION),
        )
        await stream.send_message(api_pb2.EnvironmentGetOrCreateResponse(environment_id="en-1", metadata=metadata))

    async def ImageGetOrCreate(self, request, stream):
        fake = self.fake
        key = request.image.SerializeToString(deterministic=True)
        if key not in fake.images:
            image_id = f"im-{next(fake.image_counter)}"
            fake.images[key] = image_id
            fake.stats.data["images"].append(
                {
                    "image_id": image_id,
                    "dockerfile_commands": list(request.image.dockerfile_commands),
                    "base_images": [b.image_id for b in request.image.base_images],
                }
            )
            fake.stats.write()
        metadata = api_pb2.ImageMetadata(image_builder_version=request.builder_version or BUILDER_VERSION)
        # No result: the client joins the build with ImageJoinStreaming, as it does for a real build.
        await stream.send_message(api_pb2.ImageGetOrCreateResponse(image_id=fake.images[key], metadata=metadata))

    async def ImageJoinStreaming(self, request, stream):
        if request.image_id not in self.fake.images.values():
            raise GRPCError(Status.NOT_FOUND, f"image {request.image_id!r} not found")
        if request.last_entry_id != "1":
            logs = [
                api_pb2.TaskLogs(data="build starting\n", file_descriptor=api_pb2.FILE_DESCRIPTOR_INFO),
                api_pb2.TaskLogs(data="build finished\n", file_descriptor=api_pb2.FILE_DESCRIPTOR_INFO),
            ]
            await stream.send_message(api_pb2.ImageJoinStreamingResponse(task_logs=logs, entry_id="1"))
        result = api_pb2.GenericResult(status=api_pb2.GenericResult.GENERIC_STATUS_SUCCESS)
        metadata = api_pb2.ImageMetadata(image_builder_version=BUILDER_VERSION)
        await stream.send_message(
            api_pb2.ImageJoinStreamingResponse(result=result, metadata=metadata, entry_id="2", eof=True)
        )

    async def AuthTokenGet(self, request, stream):
        token = self.fake.jwt.issue("auth", self.fake.args.auth_token_ttl)
        await stream.send_message(api_pb2.AuthTokenGetResponse(token=token))

    async def _create(self, request, stream, version):
        fake = self.fake
        key = stream.metadata.get("x-idempotency-key")
        path = "SandboxCreateV2" if version == 2 else "SandboxCreate"
        if key and (path, key) in fake.idempotent_answers:
            await stream.send_message(fake.idempotent_answers[(path, key)])
            return
        sandbox = fake.create_sandbox(request.app_id, request.definition, version)
        metadata = api_pb2.SandboxHandleMetadata(app_id=request.app_id)
        if version == 2:
            jwt, url = fake.router_access(sandbox)
            answer = api_pb2.SandboxCreateV2Response(
                sandbox_id=sandbox.sandbox_id,
                task_id=sandbox.task_id,
                metadata=metadata,
                command_router_access=api_pb2.CommandRouterAccess(jwt=jwt, url=url),
            )
        else:
            answer = api_pb2.SandboxCreateResponse(sandbox_id=sandbox.sandbox_id, metadata=metadata)
        if key:
            fake.idempotent_answers[(path, key)] = answer
        fake.stats.write()
        await stream.send_message(answer)

    async def SandboxCreateV2(self, request, stream):
        await self._create(request, stream, 2)

    async def SandboxCreate(self, request, stream):
        await self._create(request, stream, 1)

    async def _get_task_id(self, request, stream):
        sandbox = self.fake.lookup_sandbox(request.sandbox_id)
        if sandbox.alive:
            answer = api_pb2.SandboxGetTaskIdResponse(task_id=sandbox.task_id)
        else:
            answer = api_pb2.SandboxGetTaskIdResponse(task_result=sandbox.result)
        await stream.send_message(answer)

    async def SandboxGetTaskIdV2(self, request, stream):
        await self._get_task_id(request, stream)

    async def SandboxGetTaskId(self, request, stream):
        await self._get_task_id(request, stream)

    async def SandboxGetCommandRouterAccess(self, request, stream):
        fake = self.fake
        if request.WhichOneof("target") == "task_id":
            sandbox = fake.by_task.get(request.task_id)
            if sandbox is None:
                raise GRPCError(Status.NOT_FOUND, f"task {request.task_id!r} not found")
        else:
            sandbox = fake.lookup_sandbox(request.sandbox_id)
        jwt, url = fake.router_access(sandbox)
        await stream.send_message(api_pb2.SandboxGetCommandRouterAccessResponse(jwt=jwt, url=url))

    async def TaskGetCommandRouterAccess(self, request, stream):
        sandbox = self.fake.by_task.get(request.task_id)
        if sandbox is None:
            raise GRPCError(Status.NOT_FOUND, f"task {request.task_id!r} not found")
        jwt, url = self.fake.router_access(sandbox)
        await stream.send_message(api_pb2.TaskGetCommandRouterAccessResponse(jwt=jwt, url=url))

    async def _terminate(self, request, stream):
        sandbox = self.fake.lookup_sandbox(request.sandbox_id)
        existing = sandbox.result
        await self.fake.finish_sandbox(sandbox, api_pb2.GenericResult.GENERIC_STATUS_TERMINATED)
        answer = api_pb2.SandboxTerminateResponse()
        if existing is not None:
            answer.existing_result.CopyFrom(existing)
        await stream.send_message(answer)

    async def SandboxTerminateV2(self, request, stream):
        await self._terminate(request, stream)

    async def SandboxTerminate(self, request, stream):
        await self._terminate(request, stream)

    async def _wait(self, request, stream):
        sandbox = self.fake.lookup_sandbox(request.sandbox_id)
        result = await self.fake.wait_result(sandbox, request.timeout)
        answer = api_pb2.SandboxWaitResponse(metadata=api_pb2.SandboxHandleMetadata(app_id=sandbox.app_id))
        if result is not None:
            answer.result.CopyFrom(result)
            answer.metadata.result.CopyFrom(result)
        await stream.send_message(answer)

    async def SandboxWaitV2(self, request, stream):
        await self._wait(request, stream)

    async def SandboxWait(self, request, stream):
        await self._wait(request, stream)


class FakeTaskCommandRouter(WrappedService, with_unimplemented(TaskCommandRouterBase)):
    """modal.task_command_router.TaskCommandRouter: commands as local subprocesses."""

    async def TaskExecStart(self, request, stream):
        await self.fake.start_exec(request)
        await stream.send_message(router_pb2.TaskExecStartResponse())

    async def TaskExecStdinWrite(self, request, stream):
        await self.fake.write_stdin(request)
        await stream.send_message(router_pb2.TaskExecStdinWriteResponse())

    async def TaskExecStdioRead(self, request, stream):
        await self.fake.stream_stdio(request, stream)

    async def TaskExecWait(self, request, stream):
        kind, value = await self.fake.wait_exec(request)
        await stream.send_message(router_pb2.TaskExecWaitResponse(**{kind: value}))

    async def TaskExecPoll(self, request, stream):
        execution = self.fake.router_exec(request.task_id, request.exec_id)
        answer = router_pb2.TaskExecPollResponse()
        if execution.exit is not None:
            kind, value = execution.exit
            setattr(answer, kind, value)
        await stream.send_message(answer)


def parse_args(argv):
    parser = argparse.ArgumentParser(description="A fake Modal API server for tests (loopback only).")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1; 0 picks a free one")
    parser.add_argument("--ready-file", help="file that receives the server URL once listening")
    parser.add_argument("--stats-file", help="JSON counters, rewritten on every change")
    parser.add_argument("--token-id", default="ak-test", help="expected x-modal-token-id")
    parser.add_argument("--token-secret", default="as-test", help="expected x-modal-token-secret")
    parser.add_argument("--fault", action="append", choices=sorted(FAULTS), help="fault switch (repeatable)")
    parser.add_argument("--fault-rpcs", help="comma-separated method names the faults apply to (default all)")
    parser.add_argument("--throttle-secs", type=float, default=0.05, help="retry_after_secs sent by --fault throttle")
    parser.add_argument("--terminate-after", type=float, default=0.5, help="seconds before terminate-mid-command")
    parser.add_argument("--slow-chunk", type=int, default=7, help="bytes per message with slow-streams")
    parser.add_argument("--slow-delay", type=float, default=0.01, help="seconds between messages with slow-streams")
    parser.add_argument("--auth-token-ttl", type=float, default=3600, help="lifetime of AuthTokenGet tokens")
    parser.add_argument("--router-jwt-ttl", type=float, default=3600, help="lifetime of router JWTs")
    parser.add_argument(
        "--map-prefix", action="append", help="absolute path prefix mapped into each sandbox root (default /workspace)"
    )
    parser.add_argument(
        "--router-scheme",
        choices=["http", "https"],
        default="http",
        help="scheme of the command router URLs handed out (the port serves cleartext either way)",
    )
    parser.add_argument("--exit-on-stdin-eof", action="store_true", help="stop when standard input closes")
    parser.add_argument("--verbose", action="store_true", help="log each call's path to stderr")
    args = parser.parse_args(argv)
    known = {name for base in (ModalClientBase, TaskCommandRouterBase) for name in base.__abstractmethods__}
    unknown = sorted(set(filter(None, (args.fault_rpcs or "").split(","))) - known)
    if unknown:
        parser.error(f"--fault-rpcs names unknown methods: {', '.join(unknown)}")
    return args


async def serve(args):
    fake = FakeModal(args)
    server = Server([FakeModalClient(fake), FakeTaskCommandRouter(fake)], status_details_codec=ModalStatusDetailsCodec())
    await server.start("127.0.0.1", args.port)
    port = server._server.sockets[0].getsockname()[1]
    fake.url = f"http://127.0.0.1:{port}"
    fake.router_url = f"{args.router_scheme}://127.0.0.1:{port}"
    # Ready for a stop before saying it listens: a SIGTERM sent right after the line must stop it, not kill it.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if args.exit_on_stdin_eof:
        loop.add_reader(sys.stdin.fileno(), lambda: stop.set() if not os.read(sys.stdin.fileno(), 4096) else None)
    fake.stats.write()
    if args.ready_file:
        tmp = f"{args.ready_file}.tmp"
        with open(tmp, "w") as handle:
            handle.write(fake.url)
        os.replace(tmp, args.ready_file)
    print(f"fake-modal: listening on {fake.url}", flush=True)
    await stop.wait()
    await fake.shutdown()
    server.close()
    await server.wait_closed()


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
