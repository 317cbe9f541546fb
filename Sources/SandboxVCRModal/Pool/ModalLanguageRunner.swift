import SandboxVCR

/// How a source-code request runs in a sandbox: the file it is written to, an optional compile command, the run
/// command (all relative to the run's folder).
struct ModalLanguageRunner: Hashable, Sendable {
    var fileName: String
    var compile: String?
    var run: String

    /// The runner for a language, or `nil` when the Modal backend cannot run it.
    static func runner(for language: Language) -> ModalLanguageRunner? {
        switch language {
        case .python: ModalLanguageRunner(fileName: "main.py", run: "python3 main.py")
        case .bash: ModalLanguageRunner(fileName: "main.sh", run: "bash main.sh")
        case .nodejs: ModalLanguageRunner(fileName: "main.js", run: "node main.js")
        case .ruby: ModalLanguageRunner(fileName: "main.rb", run: "ruby main.rb")
        case .perl: ModalLanguageRunner(fileName: "main.pl", run: "perl main.pl")
        case .php: ModalLanguageRunner(fileName: "main.php", run: "php main.php")
        case .lua: ModalLanguageRunner(fileName: "main.lua", run: "lua main.lua")
        case .cpp:
            ModalLanguageRunner(fileName: "main.cpp", compile: "g++ -O2 -std=c++17 -o main main.cpp", run: "./main")
        case .go: ModalLanguageRunner(fileName: "main.go", compile: "go build -o main main.go", run: "./main")
        case .rust: ModalLanguageRunner(fileName: "main.rs", compile: "rustc -O -o main main.rs", run: "./main")
        default: nil
        }
    }

    /// The languages ``runner(for:)`` knows.
    static let supported: [Language] = [.python, .bash, .nodejs, .ruby, .perl, .php, .lua, .cpp, .go, .rust]
}
