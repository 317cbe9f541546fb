@_exported public import SandboxVCR
