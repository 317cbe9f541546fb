"""pytest-sandbox-vcr: record and replay SandboxFusion calls in pytest, one cassette per test (see plugin.py)."""

from .plugin import SandboxVCR
from .server import SandboxVCRError

__all__ = ["SandboxVCR", "SandboxVCRError"]
