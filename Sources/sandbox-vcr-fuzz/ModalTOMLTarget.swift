import Foundation
import SandboxVCR
import SandboxVCRModal

/// The `.modal.toml` reader (TOMLKit over toml++), through ``ModalConfiguration/fromEnvironment(_:)`` with the input
/// as the profile file: it throws only ``ExecutionError`` `configuration`, and a configuration it reads never shows
/// its token secret (``ModalConfiguration/description``, `debugDescription`, its mirror).
enum ModalTOMLTarget: FuzzTarget {
    static let name = "modal-toml"

    private static let file = FuzzScratch.folder.appendingPathComponent("modal.toml")

    static func run(_ input: [UInt8]) throws(FuzzFailure) {
        do {
            try Data(input).write(to: file)
        } catch {
            throw FuzzFailure("cannot write \(file.path): \(error)")
        }
        for profile in [nil, "default"] {
            var environment = ["MODAL_CONFIG_PATH": file.path]
            environment["MODAL_PROFILE"] = profile
            let configuration: ModalConfiguration
            do {
                configuration = try ModalConfiguration.fromEnvironment(environment)
            } catch let error as ExecutionError {
                guard error.code == .configuration else {
                    throw FuzzFailure("the reader threw \(error.code), not configuration; input: \(preview(input))")
                }
                continue
            } catch {
                throw FuzzFailure("the reader threw \(type(of: error)): \(error); input: \(preview(input))")
            }
            try checkSecretHidden(configuration, input: input)
        }
    }

    /// What a configuration shows does not depend on its secret.
    static func checkSecretHidden(_ configuration: ModalConfiguration, input: [UInt8]) throws(FuzzFailure) {
        var blank = configuration
        blank.tokenSecret = ""
        var dumped = ""
        var blankDumped = ""
        dump(configuration, to: &dumped)
        dump(blank, to: &blankDumped)
        guard configuration.description == blank.description,
            configuration.debugDescription == blank.debugDescription, dumped == blankDumped
        else {
            throw FuzzFailure(
                "the configuration shows its secret: \(configuration.description); input: \(preview(input))")
        }
    }

    // MARK: Seeds

    static func seeds(fixtures: URL) throws -> [FuzzSeed] {
        let files = [
            (
                "profiles",
                """
                # a comment
                top = "level"
                [default]
                token_id = "ak-1"   # trailing comment
                token_secret = 'as-#not-a-comment'
                active = true
                [other]
                token_id = "ak-\\"quoted\\""
                active = false
                port = 8080
                rate = 2.5
                [other.nested]
                skipped = "a nested table is not a profile value"
                """
            ),
            (
                "grammar",
                #"""
                ["my profile"]
                token_id = """
                ak-multi"""
                token_secret = "as-\u0041"
                environment = 'C:\not\an\escape'
                server_url = "http://127.0.0.1:8888"
                [inline]
                token_id = "ak-inline"
                extra = { a = 1, b = [1, 2.5, "x"], c = 1979-05-27T07:32:00Z }
                """#
            ),
            (
                "modal-cli",
                """
                [default]
                token_id = "ak-abcdefghijklmnop"
                token_secret = "as-abcdefghijklmnopqrstuv"
                environment = "main"
                active = true
                """
            ),
            ("malformed", "[a]\ntoken_secret = 123456789012345678901234567890\n[a\nk = \"open\n"),
        ]
        return files.map { FuzzSeed($0.0, Array($0.1.utf8)) }
    }
}
