internal import SandboxVCR
