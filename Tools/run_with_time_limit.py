#!/usr/bin/env python3
"""Runs a command with a time limit and says what hung when it runs out.

Usage: Tools/run_with_time_limit.py SECONDS COMMAND [ARGUMENT...]

The command's output passes through unchanged. A command still running after SECONDS is hung: each of its
test processes (`*.xctest`) gets SIGQUIT, on which the Swift runtime prints every thread's backtrace; then the
Swift Testing tests that started and never ended are listed, every process of the command's tree is killed, and
this exits with 124. Otherwise it exits with the command's status.
"""

import os
import re
import signal
import subprocess
import sys
import threading
import time

BACKTRACE_SECONDS = 90
# Swift Testing's lines: "◇ Test NAME started.", "✔ Test NAME [with N test cases ]passed after …", "✘ … failed after …".
# The run's own lines ("◇ Test run started.") and those of single test cases ("◇ Test case passing …") are not tests.
STARTED = re.compile(r"◇ Test (?!run started|case passing)(.+) started\.$")
ENDED = re.compile(r"[✔✘] Test (?!run with|case passing)(.+?)(?: with \d+ test cases?)? (?:passed|failed) after ")


def descendants(root):
    """The pids of every process below `root`, from /proc's parent links."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                # pid (comm) state ppid ...: comm may hold spaces and parentheses, so split after the last ')'.
                ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, queue = [], [root]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def command_line(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return cmdline.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    limit = float(sys.argv[1])
    process = subprocess.Popen(sys.argv[2:], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    running = {}

    def relay():
        for raw in process.stdout:
            sys.stdout.buffer.write(raw)
            sys.stdout.buffer.flush()
            line = raw.decode(errors="replace").rstrip("\n")
            if started := STARTED.search(line):
                running[started.group(1)] = running.get(started.group(1), 0) + 1
            elif ended := ENDED.search(line):
                name = ended.group(1)
                if running.get(name, 0) > 1:
                    running[name] -= 1
                else:
                    running.pop(name, None)

    reader = threading.Thread(target=relay, daemon=True)
    reader.start()
    try:
        return process.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        pass
    print(f"\nrun_with_time_limit: `{' '.join(sys.argv[2:])}` still runs after {limit:.0f} s: it is hung.", flush=True)
    tree = descendants(process.pid)
    tests = [pid for pid in tree if ".xctest" in command_line(pid).split(" ")[0]]
    for pid in tests:
        print(f"run_with_time_limit: SIGQUIT to {command_line(pid)[:200]} (pid {pid}): its backtraces follow", flush=True)
        os.kill(pid, signal.SIGQUIT)
    deadline = time.monotonic() + BACKTRACE_SECONDS
    while tests and time.monotonic() < deadline and process.poll() is None:
        time.sleep(1)
    print("run_with_time_limit: tests started and never ended:", flush=True)
    for name in sorted(running) or ["(none seen)"]:
        print(f"    {name}", flush=True)
    # The whole tree as it was before the backtraces (the test process dies of SIGQUIT, and its children, the servers
    # it started, would be left running under init) and as it is now.
    for pid in [process.pid] + tree + descendants(process.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()
    reader.join(timeout=10)
    return 124


if __name__ == "__main__":
    sys.exit(main())
