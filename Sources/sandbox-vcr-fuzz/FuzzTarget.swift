import Foundation

/// One fuzz target: a function of arbitrary bytes that must not crash, and whose checks hold for every input.
///
/// The same function serves libFuzzer (a failure traps, so libFuzzer saves the input) and the corpus replayer (a
/// failure is printed and the run exits non-zero), so a saved input reproduces with a normal build.
protocol FuzzTarget: SendableMetatype {
    /// The name on the command line and the folder of its regression inputs, `Fixtures/fuzz/<name>/`.
    static var name: String { get }

    /// Runs one input.
    ///
    /// - Throws: ``FuzzFailure`` when a check fails (a crash in the code under test crashes the process instead).
    static func run(_ input: [UInt8]) throws(FuzzFailure)

    /// The starting corpus, made from the package's `Fixtures/` folder.
    static func seeds(fixtures: URL) throws -> [FuzzSeed]
}

/// A check that failed on an input: what was expected and what happened.
struct FuzzFailure: Error, CustomStringConvertible {
    var description: String

    init(_ description: String) { self.description = description }
}

/// A seed input and the file name it is saved under.
struct FuzzSeed {
    var name: String
    var bytes: [UInt8]

    init(_ name: String, _ bytes: [UInt8]) {
        self.name = name
        self.bytes = bytes
    }

    init(_ name: String, _ data: Data) { self.init(name, [UInt8](data)) }

    /// Seeds larger than this are left out (libFuzzer mutates small inputs best; the committed corpus stays small).
    static let maximumSize = 64 * 1024
}

/// Every target, in the order `Tools/fuzz` runs them.
enum FuzzTargets {
    static let all: [any FuzzTarget.Type] = [
        JSONParsersTarget.self,
        SandboxFusionResponseTarget.self,
        GRPCFramesTarget.self,
        ModalTOMLTarget.self,
        CassetteRecordsTarget.self,
        CassetteImportTarget.self,
    ]

    static func named(_ name: String) -> (any FuzzTarget.Type)? { all.first { $0.name == name } }

    static var names: [String] { all.map { $0.name } }
}

/// A short, printable preview of bytes for failure messages.
func preview(_ bytes: some Collection<UInt8>, limit: Int = 120) -> String {
    let text = String(decoding: bytes.prefix(limit), as: UTF8.self).debugDescription
    return bytes.count > limit ? "\(text)… (\(bytes.count) bytes)" : text
}
