#!/usr/bin/env python3
"""Modal's Python SDK (modal==1.6.4) across per-test cassettes of one `sandbox-vcr serve --control --modal-port`.

What it is for: the tests of `serve --control --modal-port`. It does what the pytest plugin does around the tests of
one process: the SDK's client is made once (it keeps MODAL_SERVER_URL for the process), and the control API makes
each "test"'s cassette current in turn. A warm sandbox is created in the first test and used first in the second,
as a session-scoped pool would.

Usage:
    MODAL_SERVER_URL=http://127.0.0.1:PORT MODAL_TOKEN_ID=... MODAL_TOKEN_SECRET=... \\
        Tools/.venv/bin/python Tools/modal_per_test_client.py --control http://127.0.0.1:HTTP_PORT \\
        --mode never|missing|all CASSETTE_A CASSETTE_B [--variant N]

Output: one JSON line per step ({"step", "stdout", "stderr", "returncode"} or {"step", "error"}) and one per test's
report ({"report": TEST, "modal": {...}}). `--variant N` changes one command of test B (to make a miss).
Exits 0 when the flow ran to its end (errors are results and are printed).
"""

import argparse
import json
import sys
import urllib.request

import modal


def parse_args():
    parser = argparse.ArgumentParser(description="The Modal SDK across two per-test cassettes.")
    parser.add_argument("--control", required=True, help="serve's HTTP URL (its /sandbox-vcr/ control API)")
    parser.add_argument("--mode", default="never", choices=["never", "missing", "all", "live"])
    parser.add_argument("--variant", type=int, default=0, help="changes one command of test B")
    parser.add_argument("cassettes", nargs=2, help="the two tests' cassettes (absolute .sqlite paths)")
    return parser.parse_args()


def control(url, method, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url + "/sandbox-vcr/cassette", data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.loads(answer.read())


def emit(step, **fields):
    print(json.dumps({"step": step, **fields}, sort_keys=True), flush=True)


def run(sandbox, step, command):
    try:
        process = sandbox.exec("bash", "-lc", command, timeout=30)
        stdout = process.stdout.read()
        stderr = process.stderr.read()
        emit(step, stdout=stdout, stderr=stderr, returncode=process.wait())
    except Exception as error:  # a miss is a result here
        emit(step, error={"type": type(error).__name__, "message": str(error)})


def main():
    args = parse_args()
    cassette_a, cassette_b = args.cassettes
    app = modal.App.lookup("sandbox-vcr-per-test", create_if_missing=True)
    image = modal.Image.debian_slim()

    control(args.control, "POST", {"path": cassette_a, "mode": args.mode, "test": "test_a"})
    first = modal.Sandbox.create(app=app, image=image, timeout=600)
    warm = modal.Sandbox.create(app=app, image=image, timeout=600)  # made in test A, first used in test B
    run(first, "a.echo", "echo alpha; echo to-stderr >&2")
    run(first, "a.exit", "exit 4")
    first.terminate()
    print(json.dumps({"report": "test_a", "modal": control(args.control, "DELETE")["closed"].get("modal")},
                     sort_keys=True), flush=True)

    control(args.control, "POST", {"path": cassette_b, "mode": args.mode, "test": "test_b"})
    run(warm, "b.echo", "echo beta" if args.variant == 0 else f"echo beta-{args.variant}")
    run(warm, "b.math", "echo $((6 * 7))")
    warm.terminate()
    print(json.dumps({"report": "test_b", "modal": control(args.control, "DELETE")["closed"].get("modal")},
                     sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
