/// An error that carries a code from an open set of names, such as ``ExecutionError`` (`connectionRefused`) or
/// ``CassetteError`` (`miss`).
///
/// When an executor throws instead of answering, the grade report names the error by its type and code
/// (`CassetteError.miss`, see ``GradeReport/Test/errorCode``). Conform your executor's errors to have their code
/// in the report too; other errors are named by their type only.
///
/// ```swift
/// struct QuotaError: CodedError {
///     var code: String  // "dailyLimit" is reported as `QuotaError.dailyLimit`
/// }
/// ```
public protocol CodedError: Error {
    /// The type of ``code``; its description is the code's name.
    associatedtype Code: CustomStringConvertible
    /// What went wrong, as a name a program can compare.
    var code: Code { get }
}

extension ExecutionError: CodedError {}
extension CassetteError: CodedError {}
extension GradingError: CodedError {}
/// SQLite's primary result code (`5` is `SQLITE_BUSY`), should one escape a cassette unwrapped.
