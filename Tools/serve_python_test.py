#!/usr/bin/env python3
"""Replays recorded SandboxFusion exchanges through the official `sandbox-fusion` client (PyPI) against a
running `sandbox-vcr serve`, and checks that every answer has the recorded status and output.

Usage: Tools/.venv/bin/python Tools/serve_python_test.py --endpoint http://127.0.0.1:PORT \
           [--exchanges Fixtures/grading-demo/exchanges.jsonl]

Exits 0 when every exchange matches, 1 on any mismatch (each one printed), 2 on bad usage.
"""
import argparse
import json
import sys
from pathlib import Path

from sandbox_fusion import RunCodeRequest, run_code, set_endpoint


def outputs(result):
    """The fields compared: status, and each step's status, return code, stdout and stderr."""
    def step(value):
        if value is None:
            return None
        get = value.get if isinstance(value, dict) else lambda key: getattr(value, key)
        status = get("status")
        return (getattr(status, "value", status), get("return_code"), get("stdout"), get("stderr"))

    get = result.get if isinstance(result, dict) else lambda key: getattr(result, key)
    status = get("status")
    return {
        "status": getattr(status, "value", status),
        "compile": step(get("compile_result")),
        "run": step(get("run_result")),
    }


def main():
    root = Path(__file__).resolve().parent.parent
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True, help="the serve URL, e.g. http://127.0.0.1:8080")
    parser.add_argument("--exchanges", default=str(root / "Fixtures/grading-demo/exchanges.jsonl"))
    args = parser.parse_args()

    set_endpoint(args.endpoint)
    total = 0
    mismatches = []
    with open(args.exchanges, encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            exchange = json.loads(line)
            if exchange["request"]["path"] != "/run_code":
                continue
            total += 1
            expected = outputs(exchange["response"])
            try:
                # One attempt: a replay either has the answer or it does not; retrying cannot help.
                answer = run_code(RunCodeRequest(**exchange["request"]["body"]), max_attempts=1)
                actual = outputs(answer)
            except Exception as error:  # the client raises on non-200 answers and on SandboxError
                actual = {"error": str(error)}
            if actual != expected:
                mismatches.append((number, expected, actual))

    for number, expected, actual in mismatches:
        print(f"line {number}: expected {expected}\n         got      {actual}", file=sys.stderr)
    print(f"serve_python_test: {total - len(mismatches)}/{total} exchanges matched through the official "
          f"sandbox-fusion client")
    return 1 if mismatches or total == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
