/// The conversions between `Duration` and the numbers at the edges: `Double` seconds (SandboxFusion's JSON,
/// cassettes, JSON Lines exports, Modal's protobuf fields) and whole milliseconds or seconds (curl, `poll`,
/// `grpc-timeout`). None of them traps: every `Double` and every `Duration` maps to a value.
extension Duration {
    /// The longest time limit a number of seconds converts to: one year (365 days).
    ///
    /// Larger values (SandboxFusion accepts `"run_timeout": 1e300`) are clamped to it, so adding a margin or
    /// converting to milliseconds never overflows.
    public static let maximumTimeLimit: Duration = .seconds(365 * 24 * 60 * 60)

    private static let attosecondsPerSecond: Int128 = 1_000_000_000_000_000_000

    /// A time limit given in seconds at an edge (a JSON field, a cassette record, a command-line option).
    ///
    /// The value is read as the decimal the `Double` prints as (`10.9`, not 10.9000000000000003552…) and rounded to
    /// the nearest attosecond, so ``inSeconds`` gives the very same `Double` back for every value whose shortest
    /// decimal form has at most 18 digits after the point (all values from 0.01 s up, and `1e-3`, `1e-6`…): a
    /// request read from a cassette equals the one recorded, and hashes to the same key. (`Duration.seconds(_:)`
    /// rounds `seconds × 10¹⁸` in floating point: `.seconds(2363.0)` comes back as 2363.0000000000005.) NaN and
    /// negative values become zero; larger values and infinity become ``maximumTimeLimit``.
    ///
    /// - Parameter seconds: the number of seconds.
    package init(secondsClamped seconds: Double) {
        if seconds.isNaN || seconds <= 0 {
            self = .zero
        } else if seconds >= Duration.maximumTimeLimit.inSeconds {
            self = .maximumTimeLimit
        } else if seconds == seconds.rounded(.towardZero) {
            self = .seconds(Int64(seconds))
        } else {
            self = Duration(attoseconds: Self.attoseconds(decimal: seconds.description))
        }
    }

    /// The duration in seconds, as a `Double` (what cassettes store and SandboxFusion's JSON carries).
    ///
    /// The `Double` nearest to the exact number of attoseconds (rounded once, by the standard library's decimal
    /// parser): the inverse of ``init(secondsClamped:)``.
    package var inSeconds: Double {
        // Whole seconds (most timeouts), or under a second with an attosecond count a `Double` holds exactly (any
        // with nanosecond precision): one division of exact values is rounded once, as the decimal parser would.
        let (wholeSeconds, attosecondsPart) = components
        if attosecondsPart == 0 { return Double(wholeSeconds) }
        if wholeSeconds == 0, let exact = Double(exactly: attosecondsPart) { return exact / 1e18 }
        let (seconds, fraction) = attoseconds.quotientAndRemainder(dividingBy: Self.attosecondsPerSecond)
        let digits = String(fraction.magnitude)
        let decimal =
            (attoseconds < 0 ? "-" : "") + "\(seconds.magnitude)." + String(repeating: "0", count: 18 - digits.count)
            + digits
        return Double(decimal) ?? Double(attoseconds) / 1e18
    }

    /// The attoseconds in a decimal number of seconds as Swift prints a positive `Double` (`10.9`, `1e-06`,
    /// `1.5e-07`), rounded half up to a whole attosecond.
    private static func attoseconds(decimal: String) -> Int128 {
        let parts = decimal.split(separator: "e", maxSplits: 1)
        let exponent = parts.count == 2 ? Int(parts[1]) ?? 0 : 0
        let mantissa = parts.first.map(String.init) ?? ""
        let point = mantissa.firstIndex(of: ".") ?? mantissa.endIndex
        let digits = mantissa.filter(\.isNumber).drop { $0 == "0" }
        // value = digits × 10^scale, in attoseconds
        let fractionDigits =
            mantissa.distance(from: point, to: mantissa.endIndex) - (point == mantissa.endIndex ? 0 : 1)
        let scale = 18 + exponent - fractionDigits
        guard !digits.isEmpty, digits.count <= 36, scale > -38 else { return 0 }
        var value = Int128(String(digits)) ?? 0
        if scale >= 0 {
            for _ in 0..<min(scale, 38) { value = value.multipliedReportingOverflow(by: 10).partialValue }
            return value
        }
        var divisor: Int128 = 1
        for _ in 0..<(-scale) { divisor *= 10 }
        let (quotient, remainder) = value.quotientAndRemainder(dividingBy: divisor)
        return remainder * 2 >= divisor ? quotient + 1 : quotient
    }

    /// The duration in whole milliseconds, clamped to `range` (curl, `poll`, `grpc-timeout`).
    ///
    /// Rounded up by default: a timeout never fires early, and a positive remainder never becomes a zero timeout.
    ///
    /// - Parameters:
    ///   - range: the values the receiver accepts, e.g. `1...Int.max` for curl.
    ///   - rule: how a fraction of a millisecond is rounded.
    /// - Returns: the milliseconds, or the nearest bound of `range` for a duration outside it.
    package func milliseconds<Integer: FixedWidthInteger>(
        clampedTo range: ClosedRange<Integer>, rounding rule: FloatingPointRoundingRule = .up
    ) -> Integer {
        wholeUnits(of: 1_000_000_000_000_000, clampedTo: range, rounding: rule)
    }

    /// The duration in whole seconds, clamped to `range` (Modal's `timeout_secs` fields).
    ///
    /// - Parameters:
    ///   - range: the values the receiver accepts, e.g. `1...UInt32.max`.
    ///   - rule: how a fraction of a second is rounded; up by default.
    /// - Returns: the seconds, or the nearest bound of `range` for a duration outside it.
    package func wholeSeconds<Integer: FixedWidthInteger>(
        clampedTo range: ClosedRange<Integer>, rounding rule: FloatingPointRoundingRule = .up
    ) -> Integer {
        wholeUnits(of: Self.attosecondsPerSecond, clampedTo: range, rounding: rule)
    }

    /// The duration divided by a unit of `attosecondsPerUnit`, rounded by `rule`, clamped to `range`.
    ///
    /// Works on the `Int128` count of attoseconds (not `components`, which traps past `Int64.max` seconds).
    private func wholeUnits<Integer: FixedWidthInteger>(
        of attosecondsPerUnit: Int128, clampedTo range: ClosedRange<Integer>, rounding rule: FloatingPointRoundingRule
    ) -> Integer {
        let total = attoseconds
        let (quotient, remainder) = total.quotientAndRemainder(dividingBy: attosecondsPerUnit)
        let away: Int128 = total < 0 ? -1 : 1
        var units = quotient
        switch rule {
        case .towardZero: break
        case .up: if remainder > 0 { units += 1 }
        case .down: if remainder < 0 { units -= 1 }
        case .awayFromZero: if remainder != 0 { units += away }
        case .toNearestOrAwayFromZero: if remainder.magnitude * 2 >= attosecondsPerUnit.magnitude { units += away }
        case .toNearestOrEven:
            let twice = remainder.magnitude * 2
            if twice > attosecondsPerUnit.magnitude || (twice == attosecondsPerUnit.magnitude && quotient % 2 != 0) {
                units += away
            }
        @unknown default: if remainder > 0 { units += 1 }
        }
        if units <= Int128(range.lowerBound) { return range.lowerBound }
        if units >= Int128(range.upperBound) { return range.upperBound }
        return Integer(units)
    }

    /// The duration clamped between zero and ``maximumTimeLimit``, for a time limit a margin is added to.
    package var clampedToTimeLimit: Duration {
        min(max(self, .zero), .maximumTimeLimit)
    }

    /// `2s`, `0.5s`: the duration in seconds without a trailing `.0` (summaries and miss diagnostics).
    var formattedSeconds: String { inSeconds.formattedSeconds }
}
