import Foundation
import Testing

@testable import SandboxVCR

/// The conversions between `Duration` and the numbers at the edges (`Duration+Seconds.swift`): none traps, and a
/// time limit survives the trip through a cassette's `Double` exactly.
@Suite struct DurationSecondsTests {
    static let year = Duration.seconds(365 * 24 * 60 * 60)

    @Test(arguments: [
        (Double.nan, Duration.zero), (-Double.nan, .zero), (-1, .zero), (-0.0, .zero), (-.infinity, .zero),
        (0, .zero), (-1e300, .zero), (1e16, year), (1e300, year), (.infinity, year), (9.3e18, year),
        (31_536_000, year), (31_535_999.5, .milliseconds(31_535_999_500)), (2.5, .milliseconds(2500)),
        (10, .seconds(10)), (0.001, .milliseconds(1)), (.leastNonzeroMagnitude, .zero),
    ])
    func secondsAreClamped(seconds: Double, expected: Duration) {
        #expect(Duration(secondsClamped: seconds) == expected)
        #expect(Duration.maximumTimeLimit == Self.year)
    }

    /// Double → Duration → Double gives the same bits, for the values requests carry and many more.
    @Test func roundTripIsExact() {
        var values: [Double] = [10, 0.5, 2.5, 1e-3, 0.1, 0.2, 0.3, 1.0 / 3, 7.8, 10.9, 59.99, 3600, 86_400, 1e-6, 1e-9]
        values += (0...10_000).map { Double($0) / 1000 }  // 0.000 … 10.000 by milliseconds
        values += (0...3_000).map { Double($0) / 100 }  // 0.00 … 30.00 by hundredths
        values += (0...86_400).map(Double.init)  // whole seconds up to a day
        values += [31_535_999.999, 31_536_000, 123.456_789, 0.123_456_789]
        var generator = SystemRandomNumberGenerator()
        values += (0..<10_000).map { _ in (Double.random(in: 0..<1000, using: &generator) * 1e6).rounded() / 1e6 }
        values += (0..<10_000).map { _ in (Double.random(in: 0..<31_536_000, using: &generator) * 1e3).rounded() / 1e3 }
        values += (0..<10_000).map { _ in Double.random(in: 0.01..<31_536_000, using: &generator) }  // 17 digits
        for value in values {
            let duration = Duration(secondsClamped: value)
            #expect(duration.inSeconds == value, "\(value) came back as \(duration.inSeconds)")
            #expect(Duration(secondsClamped: duration.inSeconds) == duration, "\(value)")
        }
    }

    /// Below a second, any attosecond count converts as the decimal text of it would (rounded once).
    @Test func subsecondDurationsConvertAsTheirDecimalText() {
        var generator = SystemRandomNumberGenerator()
        var counts: [Int64] = [1, 999_999_999_999_999_999, 500_000_000_000_000_000, 123_456_789_000_000_000]
        counts += (0..<20_000).map { _ in Int64.random(in: 1..<1_000_000_000_000_000_000, using: &generator) }
        counts += (0..<20_000).map { _ in Int64.random(in: 1..<1_000_000_000, using: &generator) * 1_000_000_000 }
        for count in counts {
            let digits = String(count)
            let text = "0." + String(repeating: "0", count: 18 - digits.count) + digits
            #expect(Duration(attoseconds: Int128(count)).inSeconds == Double(text)!, "\(text)")
            #expect(Duration(attoseconds: -Int128(count)).inSeconds == -Double(text)!, "-\(text)")
        }
    }

    @Test func wholeMillisecondsNeverTrap() {
        let huge = Duration(secondsComponent: .max, attosecondsComponent: 999_999_999_999_999_999)
        let tiny = Duration(secondsComponent: .min, attosecondsComponent: -999_999_999_999_999_999)
        #expect(huge.milliseconds(clampedTo: 1...Int.max) == .max)
        #expect(huge.milliseconds(clampedTo: 1...Int32.max) == .max)
        #expect(tiny.milliseconds(clampedTo: 1...Int.max) == 1)
        #expect(tiny.milliseconds(clampedTo: Int64.min...Int64.max) == .min)
        #expect(Duration.zero.milliseconds(clampedTo: 1...Int.max) == 1)
        #expect(Duration.seconds(1e16 as Double).milliseconds(clampedTo: 1...Int.max) == .max, "1e19 ms do not fit")
        #expect(Duration.seconds(1e15 as Double).milliseconds(clampedTo: 1...Int.max) == 1_000_000_000_000_000_000)
        #expect(huge.wholeSeconds(clampedTo: 1...UInt32.max) == .max)
        #expect(tiny.wholeSeconds(clampedTo: 1...UInt32.max) == 1)
        #expect(huge.inSeconds > 9e18)
    }

    @Test func rounding() {
        let value = Duration.microseconds(1500)  // 1.5 ms
        #expect(value.milliseconds(clampedTo: 0...Int.max) == 2, "up by default")
        #expect(value.milliseconds(clampedTo: 0...Int.max, rounding: .towardZero) == 1)
        #expect(value.milliseconds(clampedTo: 0...Int.max, rounding: .down) == 1)
        #expect(value.milliseconds(clampedTo: 0...Int.max, rounding: .toNearestOrEven) == 2)
        #expect(Duration.microseconds(2500).milliseconds(clampedTo: 0...Int.max, rounding: .toNearestOrEven) == 2)
        #expect(
            Duration.microseconds(2500).milliseconds(clampedTo: 0...Int.max, rounding: .toNearestOrAwayFromZero) == 3)
        #expect(Duration.microseconds(-1500).milliseconds(clampedTo: Int.min...Int.max) == -1)
        #expect(Duration.microseconds(-1500).milliseconds(clampedTo: Int.min...Int.max, rounding: .down) == -2)
        #expect(Duration.microseconds(-1500).milliseconds(clampedTo: Int.min...Int.max, rounding: .awayFromZero) == -2)
        #expect(Duration.seconds(10.9).wholeSeconds(clampedTo: 0...Int64.max, rounding: .towardZero) == 10)
        #expect(Duration.seconds(10.1).wholeSeconds(clampedTo: 0...UInt32.max) == 11)
        #expect(Duration.seconds(10).wholeSeconds(clampedTo: 0...UInt32.max) == 10)
    }

    /// Keys hash the timeouts as the `Double` seconds they always were, and a request read back from a record equals
    /// (and hashes like) the one written, whether its timeouts came from an edge or from `Duration.seconds(_:)`.
    @Test(arguments: [10, 0.5, 2.5, 1e-3, 7.8, 0.1, 59.99, 2362.5, 2363, 3600.5, 86_399.999, 15_767_999.999])
    func keysAndRecordsCarryTheSameDoubles(seconds: Double) throws {
        var requests = [
            ExecutionRequest(
                code: "print(1)", language: .python, runTimeout: Duration(secondsClamped: seconds),
                compileTimeout: Duration(secondsClamped: seconds * 2))
        ]
        // The standard library's conversion comes back as the same Double below 2363 s (see `secondsClamped`).
        if seconds < 2363 {
            requests.append(
                ExecutionRequest(
                    code: "print(1)", language: .python, runTimeout: .seconds(seconds),
                    compileTimeout: .seconds(seconds * 2)))
        }
        for request in requests {
            let bytes = RequestKeyEncoding.bytes(of: request, digests: nil)
            let tail = Array(bytes.suffix(2 * 8 + 2))  // run, compile, no memory limit, no fetched files
            let run = tail[0..<8].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            let compile = tail[8..<16].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            #expect([run, compile] == [seconds.bitPattern, (seconds * 2).bitPattern])

            var sink = BlobSink()
            let record = RecordCoding.encode(request, sink: &sink)
            let decoded = try RecordCoding.decodeRequest(record) { _ in Data() }
            #expect(decoded == request)
            #expect(decoded.hashValue == request.hashValue)
            #expect(RequestMatcher.exact.key(for: decoded) == RequestMatcher.exact.key(for: request))
        }
    }
}
