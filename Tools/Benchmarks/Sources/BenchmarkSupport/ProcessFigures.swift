import CHeapFigures
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Figures about this process read from the kernel.
public enum ProcessFigures {
    /// User plus system CPU time of every thread of the process so far.
    public static func cpuTime() -> Duration {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let microseconds =
            (Int64(usage.ru_utime.tv_sec) + Int64(usage.ru_stime.tv_sec)) * 1_000_000
            + Int64(usage.ru_utime.tv_usec) + Int64(usage.ru_stime.tv_usec)
        return .microseconds(microseconds)
    }

    /// Resident memory (the second field of Linux's `/proc/self/statm`, in pages) in KiB, or 0 where unreadable.
    public static func residentKiB() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE))) / 1024
    }

    /// Resident memory in KiB once the allocator has given its free memory back to the system (`malloc_trim(0)`):
    /// what live allocations hold, without the free space malloc keeps for reuse. Where there is no `malloc_trim`,
    /// the same as ``residentKiB()``.
    public static func residentKiBAfterTrim() -> Int {
        typealias Trim = @convention(c) (Int) -> Int32
        if let symbol = dlsym(nil, "malloc_trim") { _ = unsafeBitCast(symbol, to: Trim.self)(0) }
        return residentKiB()
    }

    /// The bytes allocated and not yet freed (glibc's `mallinfo2`: every arena and mmapped chunk) in KiB, or 0 where
    /// there is no such count: what live objects hold, whatever the allocator keeps free or the pages it touched.
    /// Growth here is memory the program still references; growth of resident memory without it is the allocator's.
    public static func heapInUseKiB() -> Int {
        Int(heap_figures_bytes_in_use() / 1024)
    }

    /// Peak resident memory since the process started (`VmHWM` of Linux's `/proc/self/status`) in KiB, or 0 where
    /// unreadable.
    public static func peakResidentKiB() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
            let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
            let kib = line.split(whereSeparator: \.isWhitespace).dropFirst().first.flatMap({ Int($0) })
        else { return 0 }
        return kib
    }
}

extension Duration {
    /// The duration in whole nanoseconds.
    public var nanoseconds: Int {
        Int(components.seconds) * 1_000_000_000 + Int(components.attoseconds / 1_000_000_000)
    }

    /// The duration in seconds.
    public var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}

/// What went wrong in a benchmark (an unexpected answer, a probe that printed nothing).
public struct BenchmarkFailure: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
