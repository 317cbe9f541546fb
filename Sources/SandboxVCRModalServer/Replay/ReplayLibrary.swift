import Foundation
import SandboxVCR
import Synchronization

/// A user's rewrite of exec values before matching (`--normalize REGEX=REPLACEMENT`), for what bindings cannot see.
package struct ExecNormalizer: Sendable {
    package let pattern: String
    package let replacement: String
    private let regex: NSRegularExpression

    /// Parses `REGEX=REPLACEMENT` (the last `=` splits, so a regex may hold `=`; `$1`… refer to groups).
    ///
    /// - Throws: ``ModalServeError`` with code ``ModalServeError/Code/configuration`` when the regex is invalid.
    package init(_ text: String) throws(ModalServeError) {
        guard let split = text.lastIndex(of: "=") else {
            throw ModalServeError(
                code: .configuration,
                message: "--normalize \(text): expected REGEX=REPLACEMENT, e.g. 'run-[0-9]+=run-N'")
        }
        pattern = String(text[..<split])
        replacement = String(text[text.index(after: split)...])
        do {
            regex = try NSRegularExpression(pattern: pattern)
        } catch {
            throw ModalServeError(
                code: .configuration, message: "--normalize \(text): the regex does not compile (\(error))")
        }
    }

    func apply(_ text: String) -> String {
        regex.stringByReplacingMatches(
            in: text, range: NSRange(text.startIndex..., in: text), withTemplate: replacement)
    }

    /// `call` with every normalizer applied to its argv, workdir and (UTF-8) stdin.
    static func apply(_ normalizers: [ExecNormalizer], to call: ExecCall) -> ExecCall {
        guard !normalizers.isEmpty else { return call }
        var call = call
        for normalizer in normalizers {
            call.argv = call.argv.map(normalizer.apply)
            call.workdir = call.workdir.map(normalizer.apply)
            if let text = String(data: call.stdin, encoding: .utf8) { call.stdin = Data(normalizer.apply(text).utf8) }
        }
        return call
    }
}

/// The recorded sandboxes of a cassette, indexed by image and by the shape of each exec, and which of them live
/// sandboxes have claimed.
package final class ReplayLibrary: Sendable {
    package let sandboxes: [RecordedSandbox]
    /// Each recorded exec after the normalizers, by sandbox and exec index.
    let calls: [[ExecCall]]
    /// Each recorded exec's shape, by sandbox and exec index.
    let shapes: [[ContentHash]]
    /// Each recorded exec's shape without its stdin (what is known when an exec starts).
    let startShapes: [[ContentHash]]
    /// Canonical image id → the sandboxes made from it, oldest first.
    let byImage: [String: [Int]]
    let normalizers: [ExecNormalizer]
    private let claims = Mutex<[Int: String]>([:])

    package init(sandboxes: [RecordedSandbox], normalizers: [ExecNormalizer] = []) {
        self.sandboxes = sandboxes
        self.normalizers = normalizers
        let calls = sandboxes.map { $0.execs.map { ExecNormalizer.apply(normalizers, to: $0.call) } }
        self.calls = calls
        self.shapes = calls.map { $0.map(Self.shape) }
        self.startShapes = calls.map { $0.map(Self.startShape) }
        var byImage: [String: [Int]] = [:]
        for (index, sandbox) in sandboxes.enumerated() { byImage[sandbox.image.canonicalID, default: []].append(index) }
        self.byImage = byImage
    }

    /// How many execs the library holds.
    package var execCount: Int { sandboxes.reduce(0) { $0 + $1.execs.count } }

    /// The recorded images by canonical id.
    package var images: [String: ImageSpec] {
        var images: [String: ImageSpec] = [:]
        for sandbox in sandboxes { images[sandbox.image.canonicalID] = sandbox.image }
        return images
    }

    /// What must be equal for two calls to match under some bindings.
    static func shape(_ call: ExecCall) -> ContentHash {
        var bytes: [UInt8] = []
        for argument in call.argv {
            TokenBindings.shape(argument.utf8, into: &bytes)
            bytes.append(1)
        }
        bytes.append(2)
        if let workdir = call.workdir { TokenBindings.shape(workdir.utf8, into: &bytes) }
        bytes.append(2)
        bytes.append(contentsOf: Array(String(call.timeoutSecs).utf8))
        bytes.append(2)
        TokenBindings.shape(call.stdin, into: &bytes)
        return ContentHash.sha256(bytes)
    }

    /// The shape of a call without its stdin.
    static func startShape(_ call: ExecCall) -> ContentHash {
        var call = call
        call.stdin = Data()
        return shape(call)
    }

    /// Who claimed a recorded sandbox (a live sandbox id), if anyone.
    func claimant(of index: Int) -> String? { claims.withLock { $0[index] } }

    /// Claims a recorded sandbox for a live one; false when another live sandbox holds it.
    func claim(_ index: Int, for live: String) -> Bool {
        claims.withLock { claims in
            if let holder = claims[index], holder != live { return false }
            claims[index] = live
            return true
        }
    }

    /// Gives a recorded sandbox back (its live sandbox ended), so a later run can replay it again.
    func release(_ index: Int, from live: String) {
        claims.withLock { claims in
            if claims[index] == live { claims[index] = nil }
        }
    }

    /// How many recorded sandboxes are claimed.
    package var claimedCount: Int { claims.withLock { $0.count } }
}
