import Foundation

/// The real SandboxFusion exchanges in `Fixtures/sandboxfusion/samples/*.json`.
enum SandboxFusionSampleFiles {
    struct Exchange {
        /// The file name without `.json`.
        var name: String
        var path: String
        /// The request body as sent: a raw text body as it is, an object as JSON.
        var requestBody: [UInt8]?
        /// The answer's body as JSON.
        var responseBody: [UInt8]?
        /// The whole file.
        var file: Data
    }

    static func exchanges(in fixtures: URL) throws -> [Exchange] {
        let folder = fixtures.appendingPathComponent("sandboxfusion/samples")
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.path)
            .filter { $0.hasSuffix(".json") }.sorted()
        var exchanges: [Exchange] = []
        for name in names {
            let file = try Data(contentsOf: folder.appendingPathComponent(name))
            guard file.count <= FuzzSeed.maximumSize,
                let object = try JSONSerialization.jsonObject(with: file) as? [String: Any],
                let request = object["request"] as? [String: Any]
            else { continue }
            exchanges.append(
                Exchange(
                    name: String(name.dropLast(5)), path: request["path"] as? String ?? "",
                    requestBody: json(request["body"]), responseBody: json(object["response"]), file: file))
        }
        return exchanges
    }

    /// A body as bytes: text as its UTF-8, anything else (but null) as JSON.
    static func json(_ value: Any?) -> [UInt8]? {
        switch value {
        case nil, is NSNull: return nil
        case let text as String: return Array(text.utf8)
        case let value?:
            guard JSONSerialization.isValidJSONObject(value),
                let data = try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys])
            else { return nil }
            return [UInt8](data)
        }
    }
}

/// The grading demo's exchanges, `Fixtures/grading-demo/exchanges.jsonl` (real SandboxFusion answers).
enum GradingDemoFiles {
    static func lines(in fixtures: URL) throws -> [Data] {
        let data = try Data(contentsOf: fixtures.appendingPathComponent("grading-demo/exchanges.jsonl"))
        return data.split(separator: UInt8(ascii: "\n")).map { Data($0) }
    }

    /// The part of each exchange that `pick` chooses, as JSON.
    private static func parts(in fixtures: URL, _ pick: ([String: Any]) -> Any?) throws -> [[UInt8]] {
        try lines(in: fixtures).compactMap { line in
            guard let object = try JSONSerialization.jsonObject(with: line) as? [String: Any] else { return nil }
            return SandboxFusionSampleFiles.json(pick(object))
        }
    }

    static func requestBodies(in fixtures: URL) throws -> [[UInt8]] {
        try parts(in: fixtures) { ($0["request"] as? [String: Any])?["body"] }
    }

    static func responseBodies(in fixtures: URL) throws -> [[UInt8]] {
        try parts(in: fixtures) { $0["response"] }
    }
}
