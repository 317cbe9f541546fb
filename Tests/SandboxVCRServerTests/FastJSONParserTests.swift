import Foundation
import NIOCore
import SandboxVCR
import SandboxVCRTestSupport
import Testing

@testable import SandboxVCRServer

/// The request path's fast parser against the Python-compatible one: the same accept/reject and the same values.
@Suite("Fast JSON parser")
struct FastJSONParserTests {
    /// What the Python-compatible parser makes of `bytes`: the value, or `nil` for any rejection.
    private func pythonValue(_ bytes: [UInt8]) -> JSONValue? {
        (try? PythonJSONParser.parse(bytes)) ?? nil
    }

    private func expectSameAnswer(_ bytes: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) {
        let fast = FastJSONParser.parse(bytes)
        let python = pythonValue(bytes)
        #expect(
            fast == python, "\(String(decoding: bytes.prefix(200), as: UTF8.self))", sourceLocation: sourceLocation)
        // Equal values may still differ in what JSONValue's == treats alike (NaN): compare what the server sends.
        #expect(fast?.pythonJSONBytes == python?.pythonJSONBytes, sourceLocation: sourceLocation)
    }

    @Test(
        arguments: [
            #"{"code": "print('hello')", "language": "python", "stdin": "", "run_timeout": 2}"#,
            #"{"b": NaN, "a": [Infinity, -Infinity, -0, 1e2, 1E+2, 1.5e-3, 0.25, 1e400, -1e400], "b": 2}"#,
            #""\ud83d\ude00\n\u00e9\/\b\f\r\t\"\\""#,
            #""lone high \ud83d then text", "lone low \ude00", "high then non-low \ud83d\u0041""#,
            #"["\ud83d\ude0"]"#, #"["\ud83d\u"]"#, #""\ud83d\ude00""#, #""\ud83d""#,
            "\u{FEFF}{\"bom\": true}", " \t\r\n[ 1 , 2 ]\n ", "123456789012345678901234567890", "-0", "0", "-0.0",
            "[1.]", "[1e]", "[1e+]", "[-]", "[01]", "[.5]", "[+1]", "[1,]", #"{"a":1,}"#, #"{"a" 1}"#, "{'a':1}",
            "[tru]", "[nul]", "[NaN1]", "[-Inf]", "nulls", "\"a\u{01}\"", #""\q""#, #""\u12""#, "\"unterminated",
            #"{"é": "ü→✓", "tab\there": "\u00e9"}"#, "[]", "{}", "[[],{}]", "", "   ", "null", "\"\"",
            #"{"x": 1, "y": 2, "x": 3}"#, #"["é\n→\u00e9\ud83d\ude00 ✓\t", "\u2192 ascii \"escaped\" \\"]"#,
            #"["\n", "\\", "\u0000", "a\\"]"#,
        ])
    func sameAnswerAsPython(text: String) {
        expectSameAnswer(Array(text.utf8))
    }

    @Test func repeatedKeysInLargeObjectsKeepTheFirstPlaceAndTheLastValue() throws {
        let members = (0..<40).map { #""k\#($0 % 25)": \#($0)"# }.joined(separator: ",")
        let bytes = Array("{\(members)}".utf8)
        expectSameAnswer(bytes)
        let value = try #require(FastJSONParser.parse(bytes))
        guard case .object(let parsed) = value else { Issue.record("not an object"); return }
        #expect(parsed.count == 25)
        #expect(parsed.first.map { $0.0 } == "k0")
        #expect(parsed.first?.1 == .integer("25"))
    }

    /// Python compares keys by their code points: canonically equivalent keys stay two keys (Swift's `==` would
    /// merge them), in small objects and in large ones.
    @Test func canonicallyEquivalentKeysStayApart() throws {
        let composed = "\u{E9}"
        let decomposed = "e\u{301}"
        let padding = (0..<20).map { #""p\#($0)": 0"# }.joined(separator: ",")
        for prefix in ["", padding + ","] {
            let bytes = Array(#"{\#(prefix)"\#(composed)": 1, "\#(decomposed)": 2, "\#(composed)": 3}"#.utf8)
            expectSameAnswer(bytes)
            guard case .object(let members) = try #require(FastJSONParser.parse(bytes)) else {
                Issue.record("not an object")
                return
            }
            let keys = members.suffix(2)
            #expect(
                keys.map { Array($0.0.unicodeScalars) } == [
                    Array(composed.unicodeScalars), Array(decomposed.unicodeScalars),
                ])
            #expect(keys.map(\.1) == [.integer("3"), .integer("2")])
        }
    }

    @Test func bytesThatAreNotUTF8AreRejected() {
        let notUTF8: [[UInt8]] = [
            [0x22, 0xFF, 0x22], [0x22, 0xED, 0xA0, 0x80, 0x22], [0x22, 0xC3, 0x22], [0xFF],
            [0x22, 0x5C, 0x6E, 0xFF, 0x22],
            [0x22, 0xC3, 0x5C, 0x6E, 0xA9, 0x22],
        ]
        for bytes in notUTF8 {
            #expect(FastJSONParser.parse(bytes) == nil)
            expectSameAnswer(bytes)
        }
    }

    @Test func stringsOfEveryLengthAroundTheEightByteScan() {
        for length in 0..<40 {
            for stop in ["\"", "\\n", "\u{01}", "é", "\\"] {
                let text = "\"" + String(repeating: "a", count: length) + stop + "bc\""
                expectSameAnswer(Array(text.utf8))
            }
        }
    }

    @Test func escapesAtEveryOffsetOfTheEightByteCopy() {
        for offset in 0..<20 {
            for gap in 0..<12 {
                let a = String(repeating: "a", count: offset)
                let b = String(repeating: "b", count: gap)
                for text in [
                    #""\#(a)\n\#(b)\u00e9\#(b)\"\#(b)\ud83d\ude00\#(a)""#, #""\#(a)é\t\#(b)→\\\#(b)""#,
                    #""\#(a)\u2192\u2192\#(b)\/""#,
                ] {
                    expectSameAnswer(Array(text.utf8))
                    #expect(FastJSONParser.parse(Array(text.utf8)) != nil)
                }
            }
        }
    }

    /// Nesting up to the limit parses; one level more is Python's RecursionError (FastAPI: 400), and 50,000 levels
    /// neither crash nor recurse.
    @Test func nestingDepthIsBounded() throws {
        let limit = PythonJSONParser.maximumDepth
        let deepest = Array((String(repeating: "[", count: limit) + String(repeating: "]", count: limit)).utf8)
        #expect(FastJSONParser.parse(deepest) != nil)
        expectSameAnswer(deepest)
        let tooDeep = Array((String(repeating: "[", count: limit + 1) + String(repeating: "]", count: limit + 1)).utf8)
        #expect(FastJSONParser.parse(tooDeep) == nil)
        #expect(try PythonJSONParser.parse(tooDeep) == nil)
        for body in [String(repeating: "[", count: 50_000), String(repeating: #"{"a":"#, count: 100_000)] {
            do {
                _ = try SandboxFusionRequestValidator.runCodeBody(Array(body.utf8), contentType: "application/json")
                Issue.record("a body nested 50,000 deep was accepted")
            } catch {
                #expect(error.status == 400)
                #expect(error.body.pythonJSONText == #"{"detail":"There was an error parsing the body"}"#)
            }
        }
    }

    /// Every sample request body, and thousands of seeded random mutations of them: the parsers never disagree.
    @Test func mutationsOfTheSamplesGetTheSameAnswer() throws {
        let samples = try SandboxFusionSamples.fromRepository().samples.map { Array($0.requestBody) }
        #expect(samples.count > 20)
        var generator = SplitMix64(seed: 0x5EED)
        let alphabet =
            Array(#"{}[]",:\/ u0123456789abcdefnulltruefalseNaNInfinity-+.eE"#.utf8) + [0x00, 0x1F, 0xC3, 0xA9, 0xFF]
        var accepted = 0
        for body in samples where !body.isEmpty {
            expectSameAnswer(body)
            // The 1 MB sample is compared whole; mutating it 300 times would only make the test slow.
            for _ in 0..<(body.count > 8192 ? 0 : 300) {
                var mutated = body
                for _ in 0..<Int.random(in: 1...3, using: &generator) {
                    let position = Int.random(in: 0..<mutated.count, using: &generator)
                    switch Int.random(in: 0..<3, using: &generator) {
                    case 0: mutated[position] = alphabet.randomElement(using: &generator)!
                    case 1: mutated.insert(alphabet.randomElement(using: &generator)!, at: position)
                    default: if mutated.count > 1 { mutated.remove(at: position) }
                    }
                }
                if FastJSONParser.parse(mutated) != nil { accepted += 1 }
                expectSameAnswer(mutated)
            }
        }
        // The mutations must exercise both answers.
        #expect(accepted > 100)
    }
}

/// Answers are escaped as Python's `json.dumps(ensure_ascii=False)` does, across the writer's scratch buffer and
/// long-run boundaries, and parse back to the same text.
@Suite("Python-style JSON answers")
struct PythonJSONAnswerTests {
    /// The escapes one byte at a time: the reference the bulk writer must match.
    private func reference(_ text: String) -> [UInt8] {
        var output: [UInt8] = [UInt8(ascii: "\"")]
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): output += Array(#"\""#.utf8)
            case UInt8(ascii: "\\"): output += Array(#"\\"#.utf8)
            case 0x0A: output += Array(#"\n"#.utf8)
            case 0x0D: output += Array(#"\r"#.utf8)
            case 0x09: output += Array(#"\t"#.utf8)
            case 0x08: output += Array(#"\b"#.utf8)
            case 0x0C: output += Array(#"\f"#.utf8)
            case 0..<0x20: output += Array(String(format: "\\u%04x", byte).utf8)
            default: output.append(byte)
            }
        }
        return output + [UInt8(ascii: "\"")]
    }

    @Test func denseAndSparseEscapesOfEveryLength() throws {
        var generator = SplitMix64(seed: 42)
        let pieces = ["a", "bcdefgh", "\"", "\\", "\n", "\t", "\u{01}", "\u{1f}", "é", "→", "😀", "\u{7f}"]
        for length in [0, 1, 7, 8, 9, 100, 4095, 4096, 4097, 16_383, 16_384, 16_385, 70_000] {
            for density in [0, 1, 10, 100] {
                var text = ""
                while text.utf8.count < length {
                    let dense = density > 0 && Int.random(in: 0..<100, using: &generator) < density
                    text += dense ? pieces.randomElement(using: &generator)! : String(repeating: "x", count: 37)
                }
                let written = JSONValue.string(text).pythonJSONBytes
                #expect(written == reference(text), "length \(length), density \(density)")
                var buffer = JSONValue.string(text).pythonJSONBuffer()
                #expect(buffer.readBytes(length: buffer.readableBytes) == written)
                #expect(FastJSONParser.parse(written) == .string(text))
            }
        }
    }
}

/// A small seeded generator, so a failing mutation is found again on the next run.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var mixed = state
        mixed = (mixed ^ (mixed >> 30)) &* 0xBF58_476D_1CE4_E5B9
        mixed = (mixed ^ (mixed >> 27)) &* 0x94D0_49BB_1331_11EB
        return mixed ^ (mixed >> 31)
    }
}
