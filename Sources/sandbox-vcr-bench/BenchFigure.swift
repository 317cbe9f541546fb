import Foundation

/// One measured number.
struct BenchFigure: Codable, Sendable {
    /// The suite that measured it, e.g. `client`.
    var suite: String
    /// What was measured, e.g. `throughput c=64`.
    var name: String
    var value: Double
    /// `req/s`, `us`, `MiB`, …
    var unit: String
    /// Context: request counts, what is included.
    var note: String?

    var line: String {
        let number = value >= 100 ? String(format: "%.0f", value) : String(format: "%.2f", value)
        return "\(name.padding(toLength: 34, withPad: " ", startingAt: 0)) \(number) \(unit)"
            + (note.map { "   (\($0))" } ?? "")
    }
}
