#!/usr/bin/env python3
"""A pool-shaped Modal Sandbox client, written with the Modal Python SDK's async API (modal==1.6.4).

What it is for: it loads a Modal endpoint (Modal itself, `sandbox-vcr serve --modal-port` recording through to it, or
a replay) the way RL / eval harnesses do, after tinker-cookbook's ModalSandboxPool: a warm pool of sandboxes created
ahead in the background, each request taking one sandbox, making a random work folder `/workspace/<token_hex(6)>`,
writing its files into it concurrently (`mkdir -p dir && cat > path`, content on stdin), running one command there
with `bash -lc`, and retiring the sandbox (one use each) while the pool refills. It is not changed for SandboxVCR.

Request i's files and command depend on i only, so a replay sends the same commands. The random work folder token
is replaced by `<workdir>` in the printed stdout/stderr (the folder's full path, as `pwd` prints it, by
`/workspace/<workdir>`): a record run and a replay run print identical lines, and a replay that answers with the
recorded token instead of this run's token is caught by the difference.

Configuration is the SDK's own: MODAL_SERVER_URL, MODAL_TOKEN_ID / MODAL_TOKEN_SECRET (or ~/.modal.toml).
`--backend v1` sets MODAL_SANDBOX_V2=0 before `modal` is imported (the SDK's only switch for it), v2 the default.

Usage:
    MODAL_SERVER_URL=http://127.0.0.1:PORT MODAL_TOKEN_ID=ak-test MODAL_TOKEN_SECRET=as-test \
        Tools/.venv/bin/python Tools/modal_pool_client.py [--requests 256] [--pool-size 32] [--creation-rate 0] \
        [--backend v1|v2]

Output (stdout): one JSON line per request, sorted by request index, then one summary line with counts. Elapsed
time and the number of sandboxes created (which depends on timing: the pool refills while requests remain) go to
stderr. Exits 0 when every request ran (failed commands are results), 1 when a request raised.
"""

import argparse
import asyncio
import hashlib
import json
import os
import re
import secrets
import shlex
import sys
import time


def parse_args():
    parser = argparse.ArgumentParser(description="A warm-pool Modal Sandbox client (one JSON line per request).")
    parser.add_argument("--requests", type=int, default=256, help="requests, all started at once (default 256)")
    parser.add_argument("--pool-size", type=int, default=int(os.environ.get("MODAL_POOL_SIZE", 32)))
    parser.add_argument(
        "--creation-rate",
        type=float,
        default=float(os.environ.get("MODAL_CREATION_RATE_LIMIT", 0)),
        help="sandbox creations started per second at most; 0 = unlimited (default 0)",
    )
    parser.add_argument("--backend", choices=["v1", "v2"], default="v2", help="sandbox backend (MODAL_SANDBOX_V2)")
    parser.add_argument("--app", default="sandbox-vcr-pool", help="app name for App.lookup")
    parser.add_argument("--sandbox-timeout", type=int, default=1200, help="Sandbox.create timeout= seconds")
    parser.add_argument("--command-timeout", type=int, default=60, help="exec timeout= seconds")
    return parser.parse_args()


ARGS = parse_args()
os.environ["MODAL_SANDBOX_V2"] = "1" if ARGS.backend == "v2" else "0"

import modal  # noqa: E402  (after MODAL_SANDBOX_V2 is set)

WORKSPACE = "/workspace"


class ModalSandboxPool:
    """Keeps up to `pool_size` sandboxes warm; each is used once and then terminated."""

    def __init__(self, app, image, pool_size, creation_rate, sandbox_timeout):
        self.app = app
        self.image = image
        self.pool_size = pool_size
        self.creation_interval = 1.0 / creation_rate if creation_rate > 0 else 0.0
        self.sandbox_timeout = sandbox_timeout
        self.ready = asyncio.Queue()
        self.creating = 0
        self.in_use = 0
        self.created = 0
        self.creation_failures = 0
        self.closed = False
        self.wakeup = asyncio.Event()
        self.tasks = set()
        self.filler = None

    def start(self):
        self.filler = asyncio.create_task(self._fill())

    async def _fill(self):
        """Starts creations whenever warm + creating sandboxes are fewer than pool_size, at most creation_rate/s."""
        last_start = 0.0
        while not self.closed:
            if self.ready.qsize() + self.creating >= self.pool_size:
                self.wakeup.clear()
                await self.wakeup.wait()
                continue
            if self.creation_interval:
                delay = last_start + self.creation_interval - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                    continue
            last_start = time.monotonic()
            self.creating += 1
            task = asyncio.create_task(self._create_one())
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _create_one(self):
        try:
            sandbox = await modal.Sandbox.create.aio(app=self.app, image=self.image, timeout=self.sandbox_timeout)
        except Exception as error:
            self.creation_failures += 1
            print(f"pool: sandbox creation failed: {type(error).__name__}", file=sys.stderr, flush=True)
            await asyncio.sleep(1)
            return
        finally:
            self.creating -= 1
            self.wakeup.set()
        self.created += 1
        if self.closed:
            await self._retire(sandbox)
        else:
            self.ready.put_nowait(sandbox)

    async def acquire(self):
        sandbox = await self.ready.get()
        self.in_use += 1
        self.wakeup.set()  # a slot opened: refill
        return sandbox

    async def release(self, sandbox):
        """Retires a used sandbox (one use each)."""
        self.in_use -= 1
        await self._retire(sandbox)

    async def _retire(self, sandbox):
        try:
            await sandbox.terminate.aio()
            await sandbox.wait.aio(raise_on_termination=False)
        except Exception as error:
            print(f"pool: retiring a sandbox failed: {type(error).__name__}", file=sys.stderr, flush=True)

    async def close(self):
        """Stops refilling, lets creations in flight finish, and terminates every warm sandbox."""
        self.closed = True
        self.wakeup.set()
        if self.filler is not None:
            await self.filler
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)
        warm = []
        while not self.ready.empty():
            warm.append(self.ready.get_nowait())
        await asyncio.gather(*(self._retire(sandbox) for sandbox in warm))


async def run_command(sandbox, command, *, stdin=None, timeout=None):
    """`bash -lc command`; returns (stdout, stderr, returncode)."""
    process = await sandbox.exec.aio("bash", "-lc", command, timeout=timeout)
    if stdin is not None:
        process.stdin.write(stdin)
        process.stdin.write_eof()
        await process.stdin.drain.aio()
    stdout, stderr = await asyncio.gather(process.stdout.read.aio(), process.stderr.read.aio())
    returncode = await process.wait.aio()
    return stdout, stderr, returncode


async def write_file(sandbox, path, content):
    directory = os.path.dirname(path)
    stdout, stderr, returncode = await run_command(
        sandbox, f"mkdir -p {shlex.quote(directory)} && cat > {shlex.quote(path)}", stdin=content
    )
    if returncode != 0:
        raise RuntimeError(f"writing {os.path.basename(path)} failed with exit {returncode}: {stderr.strip()}")


MAIN_PY = """\
import sys

values = [int(line) for line in sys.stdin if line.strip()]
with open("data/values.txt") as handle:
    words = handle.read().split()
print(f"request {REQUEST}: {len(values)} values, sum {sum(values)}, max {max(values)}")
print("words:", " ".join(sorted(words)[:5]))
print(f"note: {len(words)} words", file=sys.stderr)
sys.exit(sum(values) % 3 if REQUEST % 4 == 2 else 0)
"""


def request_content(i):
    """Files and command of request i: a function of i only."""
    seed = hashlib.sha256(f"request-{i}".encode()).digest()
    values = [seed[k] * (k + 1) for k in range(3 + i % 5)]
    words = [hashlib.sha256(f"{i}-{k}".encode()).hexdigest()[:6] for k in range(4 + i % 7)]
    files = {
        "main.py": MAIN_PY.replace("REQUEST", str(i)),
        "input.txt": "".join(f"{v}\n" for v in values),
        "data/values.txt": "\n".join(words) + "\n",
    }
    variant = i % 4
    if variant == 0:
        command = "python3 main.py < input.txt"
    elif variant == 1:
        command = "LC_ALL=C sort data/values.txt | sha256sum && pwd && ls -R | LC_ALL=C sort"
    elif variant == 2:
        command = "python3 main.py < input.txt; status=$?; echo \"main.py exited $status\" >&2; exit $status"
    else:
        command = "pwd; wc -l input.txt data/values.txt; cat missing.txt"
    return files, command


def scrub(text, token):
    """Replaces this request's work folder (however prefixed) and token by placeholders."""
    text = re.sub(r"[^\s'\":]*" + re.escape(f"{WORKSPACE}/{token}"), f"{WORKSPACE}/<workdir>", text)
    return text.replace(token, "<workdir>")


async def handle_request(pool, i):
    files, command = request_content(i)
    sandbox = await pool.acquire()
    token = secrets.token_hex(6)
    workdir = f"{WORKSPACE}/{token}"
    try:
        _, stderr, returncode = await run_command(sandbox, f"mkdir -p {shlex.quote(workdir)}")
        if returncode != 0:
            raise RuntimeError(f"mkdir failed with exit {returncode}")
        await asyncio.gather(*(write_file(sandbox, f"{workdir}/{name}", body) for name, body in files.items()))
        stdout, stderr, returncode = await run_command(
            sandbox, f"cd {shlex.quote(workdir)} && {command}", timeout=ARGS.command_timeout
        )
        return {"request": i, "stdout": scrub(stdout, token), "stderr": scrub(stderr, token), "returncode": returncode}
    except Exception as error:
        message = scrub(str(error), token)
        message = re.sub(r"\b(sb|ta)-[A-Za-z0-9]+", r"<\1-id>", message)
        return {"request": i, "error": {"type": type(error).__name__, "message": message}}
    finally:
        await pool.release(sandbox)


async def main():
    started = time.monotonic()
    app = await modal.App.lookup.aio(ARGS.app, create_if_missing=True)
    image = modal.Image.debian_slim()
    pool = ModalSandboxPool(app, image, ARGS.pool_size, ARGS.creation_rate, ARGS.sandbox_timeout)
    pool.start()
    try:
        results = await asyncio.gather(*(handle_request(pool, i) for i in range(ARGS.requests)))
    finally:
        await pool.close()
    for result in sorted(results, key=lambda r: r["request"]):
        print(json.dumps(result), flush=True)
    errors = sum(1 for r in results if "error" in r)
    summary = {
        "summary": True,
        "requests": len(results),
        "completed": len(results) - errors,
        "nonzero_exit": sum(1 for r in results if r.get("returncode", 0) != 0),
        "errors": errors,
    }
    print(json.dumps(summary), flush=True)
    elapsed = time.monotonic() - started
    print(
        f"pool: {len(results)} requests in {elapsed:.2f} s, pool size {ARGS.pool_size}, "
        f"{pool.created} sandboxes created, {pool.creation_failures} creation failures",
        file=sys.stderr,
        flush=True,
    )
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
