/// A small unified line diff (longest common subsequence), for miss diagnostics.
///
/// Its work and its output are bounded whatever the inputs: the common first and last lines are set aside in
/// linear time, the subsequence table covers at most ``maximumCells`` pairs of the lines left (beyond that the
/// first lines of each side are shown without alignment), at most `maximumLines` diff lines are written, and each
/// is cut to ``maximumLineLength`` characters. A one-million-line request costs a linear scan, not minutes.
enum LineDiff {
    /// The most pairs of differing lines aligned by the subsequence table (a 500 × 500 middle).
    static let maximumCells = 250_000
    /// Longer lines are cut, with `…` at the end.
    static let maximumLineLength = 240

    /// A unified diff of two texts with `context` lines around each change, or `nil` when they are equal.
    static func unified(
        from old: String, to new: String, oldName: String = "recorded", newName: String = "requested",
        context: Int = 2, maximumLines: Int = 80
    ) -> String? {
        guard old != new else { return nil }
        let a = old.split(separator: "\n", omittingEmptySubsequences: false)
        let b = new.split(separator: "\n", omittingEmptySubsequences: false)
        var prefix = 0
        while prefix < a.count, prefix < b.count, a[prefix] == b[prefix] { prefix += 1 }
        var suffix = 0
        while suffix < a.count - prefix, suffix < b.count - prefix, a[a.count - 1 - suffix] == b[b.count - 1 - suffix] {
            suffix += 1
        }
        let oldMiddle = a[prefix..<(a.count - suffix)]
        let newMiddle = b[prefix..<(b.count - suffix)]
        let leading = min(prefix, context)
        let trailing = min(suffix, context)
        var lines = ["--- \(oldName)", "+++ \(newName)"]
        if oldMiddle.count * newMiddle.count > maximumCells {
            // Too many differing lines to align: say where they start and show the first of each side.
            let shown = max(1, (maximumLines - 4) / 2)
            lines.append(
                "@@ -\(prefix + 1),\(oldMiddle.count) +\(prefix + 1),\(newMiddle.count) @@ (too many differing lines "
                    + "to align; the first \(shown) of each side)")
            lines += oldMiddle.prefix(shown).map { "-" + cut($0) }
            lines += newMiddle.prefix(shown).map { "+" + cut($0) }
            return bounded(lines, maximumLines: maximumLines)
        }
        var edits: [(Character, Substring)] = a[(prefix - leading)..<prefix].map { (" ", $0) }
        edits += alignedEdits(Array(oldMiddle), Array(newMiddle))
        edits += a[(a.count - suffix)..<(a.count - suffix + trailing)].map { (" ", $0) }
        lines += hunks(edits, firstOldLine: prefix - leading + 1, firstNewLine: prefix - leading + 1, context: context)
        return bounded(lines, maximumLines: maximumLines)
    }

    /// The edits that turn `a` into `b`, from a longest-common-subsequence table.
    private static func alignedEdits(_ a: [Substring], _ b: [Substring]) -> [(Character, Substring)] {
        let n = a.count
        let m = b.count
        var table = [Int32](repeating: 0, count: (n + 1) * (m + 1))
        func cell(_ i: Int, _ j: Int) -> Int32 { table[i * (m + 1) + j] }
        for i in stride(from: n - 1, through: 0, by: -1) {
            for j in stride(from: m - 1, through: 0, by: -1) {
                table[i * (m + 1) + j] = a[i] == b[j] ? cell(i + 1, j + 1) + 1 : max(cell(i + 1, j), cell(i, j + 1))
            }
        }
        var edits: [(Character, Substring)] = []
        var i = 0
        var j = 0
        while i < n || j < m {
            if i < n, j < m, a[i] == b[j] {
                edits.append((" ", a[i]))
                i += 1
                j += 1
            } else if i < n, j == m || cell(i + 1, j) >= cell(i, j + 1) {
                // On a tie the recorded line goes first: `-` lines before `+` lines, as `diff -u` shows them.
                edits.append(("-", a[i]))
                i += 1
            } else {
                edits.append(("+", b[j]))
                j += 1
            }
        }
        return edits
    }

    /// The edits grouped into hunks with `context` lines around each change.
    private static func hunks(
        _ edits: [(Character, Substring)], firstOldLine: Int, firstNewLine: Int, context: Int
    ) -> [String] {
        var lines: [String] = []
        var positions: [(old: Int, new: Int)] = []
        var oldLine = firstOldLine
        var newLine = firstNewLine
        for edit in edits {
            positions.append((oldLine, newLine))
            if edit.0 != "+" { oldLine += 1 }
            if edit.0 != "-" { newLine += 1 }
        }
        var index = 0
        while index < edits.count {
            guard edits[index].0 != " " else {
                index += 1
                continue
            }
            let start = max(0, index - context)
            var end = index
            var lastChange = index
            while end < edits.count {
                if edits[end].0 != " " { lastChange = end }
                if end - lastChange > 2 * context { break }
                end += 1
            }
            end = min(edits.count, lastChange + context + 1)
            let hunk = edits[start..<end]
            let oldCount = hunk.filter { $0.0 != "+" }.count
            let newCount = hunk.filter { $0.0 != "-" }.count
            lines.append("@@ -\(positions[start].old),\(oldCount) +\(positions[start].new),\(newCount) @@")
            for edit in hunk { lines.append("\(edit.0)\(cut(edit.1))") }
            index = end
        }
        return lines
    }

    private static func cut(_ line: Substring) -> Substring {
        line.utf8.count <= maximumLineLength ? line : line.prefix(maximumLineLength - 1) + "…"
    }

    private static func bounded(_ lines: [String], maximumLines: Int) -> String {
        guard lines.count > maximumLines else { return lines.joined(separator: "\n") }
        return (lines.prefix(maximumLines) + ["… (\(lines.count - maximumLines) more diff lines not shown)"])
            .joined(separator: "\n")
    }
}
