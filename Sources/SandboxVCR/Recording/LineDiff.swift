/// A small unified line diff (longest common subsequence), for miss diagnostics.
enum LineDiff {
    /// A unified diff of two texts with `context` lines around each change, or `nil` when they are equal.
    ///
    /// Inputs longer than `maximumLines` lines are compared as a whole (one hunk replacing everything).
    static func unified(
        from old: String, to new: String, oldName: String = "recorded", newName: String = "requested",
        context: Int = 2, maximumLines: Int = 2000
    ) -> String? {
        guard old != new else { return nil }
        let a = old.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let b = new.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var edits: [(Character, String)] = []
        if a.count > maximumLines || b.count > maximumLines {
            edits = a.map { ("-", $0) } + b.map { ("+", $0) }
        } else {
            // LCS table from the end.
            let n = a.count
            let m = b.count
            var table = [[Int32]](repeating: [Int32](repeating: 0, count: m + 1), count: n + 1)
            for i in stride(from: n - 1, through: 0, by: -1) {
                for j in stride(from: m - 1, through: 0, by: -1) {
                    table[i][j] = a[i] == b[j] ? table[i + 1][j + 1] + 1 : max(table[i + 1][j], table[i][j + 1])
                }
            }
            var i = 0
            var j = 0
            while i < n || j < m {
                if i < n, j < m, a[i] == b[j] {
                    edits.append((" ", a[i]))
                    i += 1
                    j += 1
                } else if i < n, j == m || table[i + 1][j] >= table[i][j + 1] {
                    // On a tie the recorded line goes first: `-` lines before `+` lines, as `diff -u` shows them.
                    edits.append(("-", a[i]))
                    i += 1
                } else {
                    edits.append(("+", b[j]))
                    j += 1
                }
            }
        }
        // Group into hunks.
        var lines = ["--- \(oldName)", "+++ \(newName)"]
        var index = 0
        var oldLine = 1
        var newLine = 1
        var positions: [(old: Int, new: Int)] = []
        for edit in edits {
            positions.append((oldLine, newLine))
            if edit.0 != "+" { oldLine += 1 }
            if edit.0 != "-" { newLine += 1 }
        }
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
            for edit in hunk { lines.append("\(edit.0)\(edit.1)") }
            index = end
        }
        return lines.joined(separator: "\n")
    }
}
