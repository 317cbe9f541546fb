import Foundation

/// The command line shared by both builds.
///
///     sandbox-vcr-fuzz TARGET PATH...          run every file (folders: every file inside) through TARGET
///     sandbox-vcr-fuzz seeds FIXTURES OUTPUT   write each target's seeds to OUTPUT/<target>/
///     sandbox-vcr-fuzz list                    print the targets' names
///
/// Built with `-DFUZZING -sanitize=fuzzer`, `sandbox-vcr-fuzz TARGET [LIBFUZZER-ARGUMENT...]` fuzzes TARGET (also
/// chosen by `SANDBOX_VCR_FUZZ_TARGET`); see `Tools/fuzz`.
enum FuzzCommand {
    static let usage = """
        usage: sandbox-vcr-fuzz TARGET PATH...         replay inputs (files, or folders of files) through TARGET
               sandbox-vcr-fuzz seeds FIXTURES OUTPUT  write each target's seeds to OUTPUT/<target>/
               sandbox-vcr-fuzz list                   print the targets
        targets: \(FuzzTargets.names.joined(separator: ", "))
        """

    static func main(_ arguments: [String]) -> Int32 {
        switch arguments.first {
        case "list":
            print(FuzzTargets.names.joined(separator: "\n"))
            return 0
        case "seeds" where arguments.count == 3:
            return writeSeeds(fixtures: URL(fileURLWithPath: arguments[1]), output: URL(fileURLWithPath: arguments[2]))
        case let name? where arguments.count >= 2:
            guard let target = FuzzTargets.named(name) else { break }
            return replay(target, paths: Array(arguments.dropFirst()))
        default: break
        }
        printError(usage)
        return 64
    }

    static func writeSeeds(fixtures: URL, output: URL) -> Int32 {
        for target in FuzzTargets.all {
            let folder = output.appendingPathComponent(target.name)
            do {
                try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
                let seeds = try target.seeds(fixtures: fixtures).filter { $0.bytes.count <= FuzzSeed.maximumSize }
                for seed in seeds { try Data(seed.bytes).write(to: folder.appendingPathComponent(seed.name)) }
                print("\(target.name): \(seeds.count) seeds, \(seeds.reduce(0) { $0 + $1.bytes.count }) bytes")
            } catch {
                printError("\(target.name): cannot make the seeds: \(error)")
                return 1
            }
        }
        return 0
    }

    /// Runs every input; prints each failure and a summary line.
    static func replay(_ target: any FuzzTarget.Type, paths: [String]) -> Int32 {
        var files: [URL] = []
        for path in paths {
            var isFolder: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) else {
                printError("\(path): no such file or folder")
                return 66
            }
            guard isFolder.boolValue else {
                files.append(URL(fileURLWithPath: path))
                continue
            }
            let folder = URL(fileURLWithPath: path)
            let names = (FileManager.default.subpaths(atPath: path) ?? []).sorted()
            for name in names where !name.split(separator: "/").contains(where: { $0.hasPrefix(".") }) {
                var isSubfolder: ObjCBool = false
                let url = folder.appendingPathComponent(name)
                if FileManager.default.fileExists(atPath: url.path, isDirectory: &isSubfolder), !isSubfolder.boolValue,
                    !name.hasSuffix(".md")
                {
                    files.append(url)
                }
            }
        }
        var failures = 0
        for file in files {
            let input: [UInt8]
            do {
                input = [UInt8](try Data(contentsOf: file))
            } catch {
                printError("\(file.path): cannot read: \(error)")
                return 66
            }
            do {
                try target.run(input)
            } catch {
                failures += 1
                print("FAIL \(file.path): \(error.description)")
            }
        }
        print("\(target.name): \(files.count) inputs, \(failures) failed")
        return failures == 0 ? 0 : 1
    }

    static func printError(_ text: String) {
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }
}

#if FUZZING
    /// libFuzzer's entry point when the program has its own `main` (libFuzzer's `FuzzerDriver.cpp`).
    @_silgen_name("LLVMFuzzerRunDriver")
    func runFuzzerDriver(
        _ argc: UnsafeMutablePointer<CInt>,
        _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
        _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
    ) -> CInt

    /// The environment variable naming the target (set from the first argument when it names one, so that
    /// libFuzzer's child processes, `-fork` and `-jobs`, fuzz the same target).
    let targetVariable = "SANDBOX_VCR_FUZZ_TARGET"

    /// The target being fuzzed.
    let selectedTarget: any FuzzTarget.Type = {
        let name = ProcessInfo.processInfo.environment[targetVariable] ?? ""
        guard let target = FuzzTargets.named(name) else {
            fatalError("\(targetVariable) is \"\(name)\", not one of \(FuzzTargets.names.joined(separator: ", "))")
        }
        return target
    }()

    /// The program's `main` (SwiftPM links an executable's entry point under this name): `list` and `seeds` as in
    /// the replayer; otherwise libFuzzer runs with the remaining arguments.
    @_cdecl("sandbox_vcr_fuzz_main")
    func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
        let arguments = (0..<Int(argc)).map { argv[$0].map { String(cString: $0) } ?? "" }
        if arguments.count > 1, ["list", "seeds", "help", "-h", "--help"].contains(arguments[1]) {
            return FuzzCommand.main(Array(arguments.dropFirst()))
        }
        var kept = Array(UnsafeBufferPointer(start: argv, count: Int(argc)))
        if arguments.count > 1, FuzzTargets.named(arguments[1]) != nil {
            setenv(targetVariable, arguments[1], 1)
            kept.remove(at: 1)
        }
        guard FuzzTargets.named(ProcessInfo.processInfo.environment[targetVariable] ?? "") != nil else {
            FuzzCommand.printError(
                "usage: sandbox-vcr-fuzz TARGET [LIBFUZZER-ARGUMENT...] (or set \(targetVariable))\n"
                    + "targets: \(FuzzTargets.names.joined(separator: ", "))")
            return 64
        }
        // libFuzzer keeps argv for the whole run (and may rewrite it): a buffer that is never freed.
        let newArgv = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>.allocate(capacity: kept.count + 1)
        newArgv.initialize(from: kept + [nil], count: kept.count + 1)
        var newArgc = CInt(kept.count)
        var newArgvPointer: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = newArgv
        return runFuzzerDriver(&newArgc, &newArgvPointer, fuzzerTestOneInput)
    }

    /// One input through the selected target; a failed check traps, so libFuzzer saves the input. (Also what the
    /// libFuzzer runtime's own `main` would call: it is linked, but ``fuzzerMain(_:_:)`` is the program's.)
    @_cdecl("LLVMFuzzerTestOneInput")
    func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
        let input = size > 0 && data != nil ? Array(UnsafeBufferPointer(start: data, count: size)) : []
        do {
            try selectedTarget.run(input)
        } catch {
            fatalError("\(selectedTarget.name): \(error.description)")
        }
        return 0
    }
#else
    @main
    struct SandboxVCRFuzz {
        static func main() {
            exit(FuzzCommand.main(Array(CommandLine.arguments.dropFirst())))
        }
    }
#endif
