// sandbox-vcr-bench: runs benchmark suites and prints their figures.
//
//     sandbox-vcr-bench [suite ...] [--json] [--requests N]
//
// With no suite named, every suite in `benchmarkSuites` (BenchmarkSuites.swift) runs, in name order.
import Foundation

let options = BenchOptions.current
if options.wantsHelp {
    print(BenchOptions.usage)
    exit(0)
}
let names = options.suites.isEmpty ? benchmarkSuites.keys.sorted() : options.suites
for name in names where benchmarkSuites[name] == nil {
    FileHandle.standardError.write(Data("unknown suite \"\(name)\"\n\(BenchOptions.usage)\n".utf8))
    exit(64)
}
var figures: [BenchFigure] = []
for name in names {
    guard let suite = benchmarkSuites[name] else { continue }
    if !options.json { print("== \(name)") }
    let produced = try await suite()
    if !options.json { for figure in produced { print(figure.line) } }
    figures += produced
}
if options.json {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    print(String(decoding: try encoder.encode(figures), as: UTF8.self))
}
