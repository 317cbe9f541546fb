/// A programming language a sandbox can run source code in.
///
/// An open set of names (new languages can be added without breaking anyone): use the static members for the
/// languages SandboxFusion knows, or `Language(rawValue:)` for anything else. Names are exact and case-sensitive,
/// as on the SandboxFusion wire (`"python"`, `"cpp"`, `"R"`, `"D_ut"`).
public struct Language: OpenStringValue, ExpressibleByStringLiteral, Comparable {
    public let rawValue: String

    public init(rawValue: String) { self.rawValue = rawValue }
    public init(_ rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { self.rawValue = value }

    public static func < (lhs: Language, rhs: Language) -> Bool { lhs.rawValue < rhs.rawValue }

    public static let python: Language = "python"
    public static let cpp: Language = "cpp"
    public static let nodejs: Language = "nodejs"
    public static let go: Language = "go"
    public static let goTest: Language = "go_test"
    public static let java: Language = "java"
    public static let php: Language = "php"
    public static let csharp: Language = "csharp"
    public static let bash: Language = "bash"
    public static let typescript: Language = "typescript"
    public static let sql: Language = "sql"
    public static let rust: Language = "rust"
    public static let cuda: Language = "cuda"
    public static let lua: Language = "lua"
    public static let r: Language = "R"
    public static let perl: Language = "perl"
    public static let dUnitTest: Language = "D_ut"
    public static let ruby: Language = "ruby"
    public static let scala: Language = "scala"
    public static let julia: Language = "julia"
    public static let pytest: Language = "pytest"
    public static let junit: Language = "junit"
    public static let kotlinScript: Language = "kotlin_script"
    public static let jest: Language = "jest"
    public static let verilog: Language = "verilog"
    public static let pythonGPU: Language = "python_gpu"
    public static let lean: Language = "lean"
    public static let swift: Language = "swift"
    public static let racket: Language = "racket"

    /// Every language the SandboxFusion server accepts, in the order its validation message lists them.
    public static let sandboxFusionLanguages: [Language] = [
        .python, .cpp, .nodejs, .go, .goTest, .java, .php, .csharp, .bash, .typescript, .sql, .rust, .cuda, .lua,
        .r, .perl, .dUnitTest, .ruby, .scala, .julia, .pytest, .junit, .kotlinScript, .jest, .verilog, .pythonGPU,
        .lean, .swift, .racket,
    ]
}
