"""pytest-sandbox-vcr: record and replay SandboxFusion calls in pytest, one cassette per test, and Modal sandboxes,
one cassette per session (see plugin.py)."""

from .modal_session import SandboxVCRModal
from .plugin import SandboxVCR
from .server import SandboxVCRError

__all__ = ["SandboxVCR", "SandboxVCRError", "SandboxVCRModal"]
