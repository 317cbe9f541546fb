import Foundation

/// A byte count as people read it: `512 B`, `3.4 KiB`, `12.0 MiB` (powers of 1,024).
package enum ByteCountText {
    package static func describing(_ count: Int64) -> String {
        if count < 1024 { return "\(count) B" }
        if count < 1 << 20 { return String(format: "%.1f KiB", Double(count) / 1024) }
        return String(format: "%.1f MiB", Double(count) / Double(1 << 20))
    }
}
