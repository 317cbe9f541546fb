import Testing

@testable import SandboxVCR

/// The miss diagnostics' line diff: `diff -u`'s shape, and work and output bounded whatever the inputs.
@Suite("Line diff")
struct LineDiffTests {
    @Test func aChangedLineWithItsContext() {
        let diff = LineDiff.unified(from: "a\nb\nc\nd\ne\nf\ng", to: "a\nb\nc\nX\ne\nf\ng")
        #expect(diff == "--- recorded\n+++ requested\n@@ -2,5 +2,5 @@\n b\n c\n-d\n+X\n e\n f")
        #expect(LineDiff.unified(from: "same", to: "same") == nil)
    }

    @Test func insertionsAndDeletionsAreAligned() {
        let diff = LineDiff.unified(from: "1\n2\n3\n4", to: "1\n3\n4\n5")
        #expect(diff == "--- recorded\n+++ requested\n@@ -1,4 +1,4 @@\n 1\n-2\n 3\n 4\n+5")
    }

    /// One changed line in a million: the common lines are set aside, so the diff is small and points at it.
    @Test func oneChangeInAMillionLines() throws {
        let lines = (0..<1_000_000).map { "line \($0)" }
        var changed = lines
        changed[500_000] = "changed"
        let diff = try #require(
            LineDiff.unified(from: lines.joined(separator: "\n"), to: changed.joined(separator: "\n")))
        #expect(diff.contains("@@ -499999,5 +499999,5 @@"))
        #expect(diff.contains("-line 500000\n+changed"))
        #expect(diff.utf8.count < 500)
    }

    /// Two unrelated long texts: no alignment table, the first lines of each side, at most `maximumLines` lines.
    @Test func unrelatedLongTextsAreSummarised() throws {
        let old = (0..<100_000).map { "old \($0)" }.joined(separator: "\n")
        let new = (0..<200_000).map { "new \($0)" }.joined(separator: "\n")
        let diff = try #require(LineDiff.unified(from: old, to: new, maximumLines: 40))
        let lines = diff.split(separator: "\n")
        #expect(lines.count <= 41)
        #expect(diff.contains("@@ -1,100000 +1,200000 @@ (too many differing lines to align"))
        #expect(lines.contains("-old 0") && lines.contains("+new 0"))
    }

    @Test func longLinesAndLongDiffsAreCut() throws {
        let long = String(repeating: "x", count: 10_000)
        let diff = try #require(LineDiff.unified(from: long, to: long + "y"))
        #expect(diff.split(separator: "\n").allSatisfy { $0.count <= LineDiff.maximumLineLength + 1 })
        #expect(diff.contains("…"))
        let many = try #require(
            LineDiff.unified(
                from: (0..<300).map(String.init).joined(separator: "\n"),
                to: (0..<300).map { $0 % 2 == 0 ? "\($0)" : "odd" }.joined(separator: "\n"), maximumLines: 50))
        #expect(many.split(separator: "\n").count == 51)
        #expect(many.hasSuffix("more diff lines not shown)"))
    }

    @Test func messagesAreBoundedOnACharacterBoundary() {
        let text = String(repeating: "é", count: 20_000)
        let bounded = MissDiagnostics.bounded(text, maximumBytes: 1001)
        #expect(bounded.hasPrefix(String(repeating: "é", count: 500)))
        #expect(bounded.contains("more bytes of diagnostics not shown"))
        #expect(bounded.utf8.count < 1100)
        #expect(MissDiagnostics.bounded("short", maximumBytes: 100) == "short")
    }
}
