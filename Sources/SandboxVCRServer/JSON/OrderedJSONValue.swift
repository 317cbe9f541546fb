// The server's API speaks SandboxVCR's types (executors, results, ``SandboxVCR/JSONValue``): re-exported, so a file
// of this module, or a client, needs no second import.
@_exported public import SandboxVCR

/// The server's old name for ``SandboxVCR/JSONValue``, now the package's one JSON value type.
///
/// Transitional: files under `Server/` still say `OrderedJSONValue`; once they say `JSONValue`, delete this.
public typealias OrderedJSONValue = JSONValue
