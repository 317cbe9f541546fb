"""Fixtures of the browser tests: the sandbox-vcr binary, a headless Chromium (Debian's, with its driver), servers
started on loopback with --ready-file, and the folder the screenshots go to (ignored by git)."""

import os
import pathlib
import subprocess
import tempfile
import time

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "Tools" / "browser-tests" / "screenshots"


@pytest.fixture(scope="session")
def binary():
    path = os.environ.get("SANDBOX_VCR_BIN") or str(ROOT / ".build" / "debug" / "sandbox-vcr")
    assert os.access(path, os.X_OK), f"no sandbox-vcr binary at {path}: build it, or set SANDBOX_VCR_BIN"
    return path


@pytest.fixture(scope="session")
def chromium():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,1000", "--no-first-run", "--disable-extensions"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    yield driver
    driver.quit()


@pytest.fixture
def browser(chromium):
    """The browser on a blank page, its console emptied (a page of an earlier test may have logged errors)."""
    chromium.get("about:blank")
    chromium.get_log("browser")
    yield chromium
    chromium.get("about:blank")


@pytest.fixture(scope="session")
def screenshots():
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


class Server:
    """A sandbox-vcr process serving on a loopback port, stopped with SIGTERM at the end of the test."""

    def __init__(self, binary, arguments, cwd=ROOT):
        self.folder = tempfile.TemporaryDirectory()
        ready = pathlib.Path(self.folder.name) / "ready"
        self.log = open(pathlib.Path(self.folder.name) / "log", "w+")
        self.process = subprocess.Popen([binary, *arguments, "--ready-file", str(ready)], cwd=cwd,
                                        stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 60
        while not ready.exists():
            if self.process.poll() is not None:
                self.log.seek(0)
                raise AssertionError(f"sandbox-vcr exited with {self.process.returncode}: {self.log.read()}")
            assert time.monotonic() < deadline, "sandbox-vcr did not write its ready file within 60 s"
            time.sleep(0.02)
        self.url = ready.read_text().splitlines()[0].strip().rstrip("/")

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()
        self.folder.cleanup()


@pytest.fixture
def start(binary):
    servers = []

    def start_server(*arguments, cwd=ROOT):
        server = Server(binary, list(arguments), cwd=cwd)
        servers.append(server)
        return server

    yield start_server
    for server in servers:
        server.stop()
