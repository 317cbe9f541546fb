#!/usr/bin/env python3
"""A grader-shaped Modal Sandbox flow, written with the plain Modal Python SDK (modal==1.6.4).

What it is for: it is the kind of script a user's grader runs, and it is not changed for SandboxVCR. Run it
once against Modal (or `sandbox-vcr serve --modal-port` recording through to Modal), then again against a
replay: both runs must print the same lines. It also documents which SDK calls the flow covers.

Configuration is the SDK's own: MODAL_SERVER_URL, MODAL_TOKEN_ID / MODAL_TOKEN_SECRET (or ~/.modal.toml),
MODAL_ENVIRONMENT. `--backend v1` selects the V1 sandbox backend the only way the SDK offers it, the config
setting `sandbox_v2` (environment variable MODAL_SANDBOX_V2=0, set here before `modal` is imported);
`--backend v2` (the default) forces MODAL_SANDBOX_V2=1.

Usage:
    MODAL_SERVER_URL=http://127.0.0.1:PORT MODAL_TOKEN_ID=ak-test MODAL_TOKEN_SECRET=as-test \
        Tools/.venv/bin/python Tools/modal_grader_flow.py [--backend v1|v2] [--app NAME]

Output: one JSON line per step ({"step": ..., then stdout / stderr / returncode, or "error": {"type", "message"}}).
Sandbox, task, app, image and exec ids, UUIDs and the host folder a test server runs commands in are replaced
by placeholders, so runs against servers that assign other ids print identical lines. Ids and tokens are never
printed. Exits 0 when the flow ran to its end (errors are results and are printed as such).
"""

import argparse
import json
import os
import re
import sys
import threading
import time


def parse_args():
    parser = argparse.ArgumentParser(description="A grader-shaped Modal Sandbox flow (prints one JSON line per step).")
    parser.add_argument("--backend", choices=["v1", "v2"], default="v2", help="sandbox backend (MODAL_SANDBOX_V2)")
    parser.add_argument("--app", default="sandbox-vcr-grader", help="app name for App.lookup")
    return parser.parse_args()


ARGS = parse_args()
os.environ["MODAL_SANDBOX_V2"] = "1" if ARGS.backend == "v2" else "0"

import modal  # noqa: E402  (after MODAL_SANDBOX_V2 is set: the SDK reads its config at import)

PLACEHOLDERS = [
    # A test server's per-sandbox folder (e.g. /tmp/fake-modal-xxxx/sb-xxxx) stands for the sandbox's /.
    (re.compile(r"/[^\s'\":]*?/sb-[A-Za-z0-9-]+(?=/|\b)"), "<sandbox-root>"),
    (re.compile(r"\bsb-[A-Za-z0-9-]+"), "<sandbox-id>"),
    (re.compile(r"\bta-[A-Za-z0-9-]+"), "<task-id>"),
    (re.compile(r"\bap-[A-Za-z0-9-]+"), "<app-id>"),
    (re.compile(r"\bim-[A-Za-z0-9-]+"), "<image-id>"),
    (re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"), "<uuid>"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), "<jwt>"),
]


def scrub(value):
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return value
    for pattern, placeholder in PLACEHOLDERS:
        value = pattern.sub(placeholder, value)
    return value


def emit(step, **fields):
    line = {"step": step}
    line.update({key: scrub(value) for key, value in fields.items()})
    print(json.dumps(line, sort_keys=False), flush=True)


def error_fields(error):
    return {"error": {"type": type(error).__name__, "message": scrub(str(error))}}


def run(sb, step, command, stdin=None, **exec_kwargs):
    """Runs `bash -lc command`, feeding `stdin` if given; prints stdout, stderr, returncode (or the error)."""
    try:
        p = sb.exec("bash", "-lc", command, **exec_kwargs)
        if stdin is not None:
            p.stdin.write(stdin)
            p.stdin.write_eof()
            p.stdin.drain()
        stdout = p.stdout.read()
        stderr = p.stderr.read()
        code = p.wait()
        emit(step, stdout=stdout, stderr=stderr, returncode=p.returncode, wait=code)
    except Exception as error:  # a grader records what went wrong and goes on
        emit(step, **error_fields(error))


def main():
    app = modal.App.lookup(ARGS.app, create_if_missing=True)
    emit("app.lookup", hydrated=app.app_id is not None)

    image = modal.Image.debian_slim()
    numpy_image = image.pip_install("numpy")

    sb = modal.Sandbox.create(app=app, image=image, timeout=600)
    emit("sandbox.create", poll=sb.poll())

    run(sb, "exec.echo", "echo hello from the sandbox")
    run(
        sb,
        "exec.stdin",
        'read -r name; echo "hello, $name"; echo "note for $name" >&2; tr a-z A-Z',
        stdin=b"grader\nthe rest of the input\nsecond line\n",
    )
    run(sb, "exec.nonzero", "echo partial; echo failing >&2; exit 3")
    run(sb, "exec.mkdir", "mkdir -p /workspace/proj/sub && echo made")
    run(sb, "exec.workdir", "pwd; ls", workdir="/workspace/proj")
    run(
        sb,
        "exec.write_file",
        "mkdir -p /workspace/files && cat > /workspace/files/data.txt",
        stdin="line one\nline two\nünïcödé\n",
    )
    run(sb, "exec.read_file", "cat /workspace/files/data.txt; wc -c < /workspace/files/data.txt")
    run(sb, "exec.missing_file", "cat /workspace/files/absent.txt")

    # p.poll() while the command waits for its stdin, then after it ends.
    try:
        p = sb.exec("bash", "-lc", "cat; echo closed")
        before = p.poll()
        p.stdin.write(b"polled\n")
        p.stdin.write_eof()
        p.stdin.drain()
        stdout = p.stdout.read()
        p.wait()
        emit("exec.poll", poll_before=before, poll_after=p.poll(), stdout=stdout, returncode=p.returncode)
    except Exception as error:
        emit("exec.poll", **error_fields(error))

    # A command killed by its exec timeout.
    started = time.monotonic()
    run(sb, "exec.timeout", "echo before-sleep; sleep 30; echo after-sleep", timeout=1)
    emit("exec.timeout.elapsed", under_10s=time.monotonic() - started < 10)

    # The same sandbox through Sandbox.from_id: poll, then a command on the new handle.
    try:
        again = modal.Sandbox.from_id(sb.object_id)
        emit("sandbox.from_id", same_id=again.object_id == sb.object_id, poll=again.poll(), returncode=again.returncode)
        run(again, "from_id.exec", "cat /workspace/files/data.txt | head -n 1")
    except Exception as error:
        emit("sandbox.from_id", **error_fields(error))

    # A second sandbox on the layered image, terminated while a command runs and the script waits on it.
    sb2 = modal.Sandbox.create(app=app, image=numpy_image, timeout=600)
    emit("sandbox2.create", poll=sb2.poll())
    try:
        p = sb2.exec("bash", "-lc", "echo started; sleep 30; echo finished")
        first = next(iter(p.stdout))  # the command is running once it printed its first line
        emit("sandbox2.exec.started", stdout=first)
        timer = threading.Timer(0.3, sb2.terminate)  # terminate while the main thread waits on the command
        timer.start()
        try:
            code = p.wait()
            emit("sandbox2.exec.wait", wait=code, returncode=p.returncode)
        except Exception as error:
            emit("sandbox2.exec.wait", **error_fields(error))
        timer.join()
        try:
            rest = p.stdout.read()
            emit("sandbox2.exec.read_after", stdout=rest)
        except Exception as error:
            emit("sandbox2.exec.read_after", **error_fields(error))
    except Exception as error:
        emit("sandbox2.exec", **error_fields(error))
    run(sb2, "sandbox2.exec_after_terminate", "echo too late")
    try:
        sb2.wait(raise_on_termination=False)
        emit("sandbox2.wait", returncode=sb2.returncode, poll=sb2.poll())
    except Exception as error:
        emit("sandbox2.wait", **error_fields(error))
    try:
        sb2.wait()
        emit("sandbox2.wait_raising", returncode=sb2.returncode)
    except Exception as error:
        emit("sandbox2.wait_raising", **error_fields(error))

    sb.terminate()
    sb.wait(raise_on_termination=False)
    emit("sandbox.wait", returncode=sb.returncode, poll=sb.poll())
    try:
        after = modal.Sandbox.from_id(sb.object_id)
        emit("sandbox.from_id_after_terminate", poll=after.poll(), returncode=after.returncode)
    except Exception as error:
        emit("sandbox.from_id_after_terminate", **error_fields(error))
    return 0


if __name__ == "__main__":
    sys.exit(main())
