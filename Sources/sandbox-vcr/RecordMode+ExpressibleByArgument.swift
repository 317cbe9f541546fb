public import ArgumentParser
import SandboxVCR

/// `--record MODE`: one of ``RecordMode/allModes``; any other value is an argument error, never a silent default.
extension RecordMode: ExpressibleByArgument {
    /// Parses `never`, `missing`, `all` or `live` (any case).
    init?(argument: String) {
        self.init(argument)
    }

    static var allValueStrings: [String] { allModes.map(\.rawValue) }
}
