import Foundation

/// The command line: suite names, `--json`, and options suites read.
struct BenchOptions: Sendable {
    var suites: [String] = []
    var json = false
    var wantsHelp = false
    /// Requests per measured run (`--requests N`); each suite picks its own default when `nil`.
    var requests: Int?
    /// Alternating rounds per measurement (`--rounds N`, the `record` suite); the suite's default when `nil`.
    var rounds: Int?

    static let usage = """
        usage: sandbox-vcr-bench [suite ...] [--json] [--requests N] [--rounds N]
        suites: \(benchmarkSuites.keys.sorted().joined(separator: ", ")) (all when none is named)
        """

    /// The options of this process.
    static let current = BenchOptions(arguments: Array(CommandLine.arguments.dropFirst()))

    init(arguments: [String]) {
        var iterator = arguments.makeIterator()
        while let argument = iterator.next() {
            switch argument {
            case "--json": json = true
            case "--help", "-h": wantsHelp = true
            case "--requests":
                guard let text = iterator.next(), let number = Int(text), number > 0 else {
                    FileHandle.standardError.write(Data("--requests needs a positive integer\n".utf8))
                    exit(64)
                }
                requests = number
            case "--rounds":
                guard let text = iterator.next(), let number = Int(text), number > 0 else {
                    FileHandle.standardError.write(Data("--rounds needs a positive integer\n".utf8))
                    exit(64)
                }
                rounds = number
            default: suites.append(argument)
            }
        }
    }
}

/// Process resource figures.
enum ProcessUsage {
    /// User plus system CPU time of the whole process so far, in seconds.
    static func cpuSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
            + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
    }

    /// Resident memory (`VmRSS` of /proc/self/status) in MiB, or 0 where it cannot be read.
    static func residentMiB() -> Double {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
            let kilobytes = Double(line.split(separator: " ").dropFirst().first ?? "")
        else { return 0 }
        return kilobytes / 1024
    }
}
