public import Foundation

/// The body of `POST /run_jupyter`: cells run one after another in one Jupyter kernel.
public struct SandboxFusionJupyterRequest: Hashable, Sendable, Encodable {
    /// The cells' source code, in order.
    public var cells: [String]
    /// How long each cell may take (zero: no per-cell limit). Server default zero.
    public var cellTimeout: Duration
    /// How long the whole notebook may take. Server default 45 seconds.
    public var totalTimeout: Duration
    /// Memory limit in MiB, `nil` for none.
    public var memoryLimitMB: Int?
    /// The kernel name. Server default `python3`.
    public var kernel: String
    /// Files written into the working folder before the first cell.
    public var files: [String: Data]
    /// Files to read back afterwards.
    public var fetchFiles: [String]

    public init(
        cells: [String],
        cellTimeout: Duration = .zero,
        totalTimeout: Duration = .seconds(45),
        memoryLimitMB: Int? = nil,
        kernel: String = "python3",
        files: [String: Data] = [:],
        fetchFiles: [String] = []
    ) {
        self.cells = cells
        self.cellTimeout = cellTimeout
        self.totalTimeout = totalTimeout
        self.memoryLimitMB = memoryLimitMB
        self.kernel = kernel
        self.files = files
        self.fetchFiles = fetchFiles
    }

    private enum CodingKeys: String, CodingKey {
        case cells, cellTimeout = "cell_timeout", totalTimeout = "total_timeout", memoryLimitMB = "memory_limit_MB",
            kernel, files, fetchFiles = "fetch_files"
    }

    /// Encodes the wire form; fields left at the server's default are left out.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(cells, forKey: .cells)
        if cellTimeout != .zero { try container.encode(cellTimeout.inSeconds, forKey: .cellTimeout) }
        if totalTimeout != .seconds(45) { try container.encode(totalTimeout.inSeconds, forKey: .totalTimeout) }
        try container.encodeIfPresent(memoryLimitMB, forKey: .memoryLimitMB)
        if kernel != "python3" { try container.encode(kernel, forKey: .kernel) }
        if !files.isEmpty { try container.encode(files.mapValues { $0.base64EncodedString() }, forKey: .files) }
        if !fetchFiles.isEmpty { try container.encode(fetchFiles, forKey: .fetchFiles) }
    }
}

/// The answer of `POST /run_jupyter`. `cells` is filled only when `status` is `Success`.
public struct SandboxFusionJupyterResponse: Hashable, Sendable, Decodable {
    /// One cell's outcome.
    public struct Cell: Hashable, Sendable, Decodable {
        public var stdout: String
        public var stderr: String
        /// Rich outputs, one MIME-type dictionary each (`{"text/plain": "123"}`).
        public var display: [[String: JSONValue]]
        public var error: [CellError]

        private enum CodingKeys: String, CodingKey { case stdout, stderr, display, error }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            stdout = try container.decodeIfPresent(String.self, forKey: .stdout) ?? ""
            stderr = try container.decodeIfPresent(String.self, forKey: .stderr) ?? ""
            display = try container.decodeIfPresent([[String: JSONValue]].self, forKey: .display) ?? []
            error = try container.decodeIfPresent([CellError].self, forKey: .error) ?? []
        }
    }

    /// An exception raised in a cell.
    public struct CellError: Hashable, Sendable, Decodable {
        public var ename: String
        public var evalue: String
        public var traceback: [String]
    }

    public var status: ExecutionStatus
    public var message: String
    /// The kernel driver process's outcome.
    public var driver: SandboxFusionWire.CommandRunResult?
    public var cells: [Cell]
    public var executorPodName: String?
    /// Fetched files, decoded from base64.
    public var files: [String: Data]

    private enum CodingKeys: String, CodingKey {
        case status, message, driver, cells, executorPodName = "executor_pod_name", files
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        status = try container.decode(ExecutionStatus.self, forKey: .status)
        message = try container.decodeIfPresent(String.self, forKey: .message) ?? ""
        driver = try container.decodeIfPresent(SandboxFusionWire.CommandRunResult.self, forKey: .driver)
        cells = try container.decodeIfPresent([Cell].self, forKey: .cells) ?? []
        executorPodName = try container.decodeIfPresent(String.self, forKey: .executorPodName)
        var files: [String: Data] = [:]
        for (path, text) in try container.decodeIfPresent([String: String].self, forKey: .files) ?? [:] {
            guard let data = Data(base64Encoded: text) else {
                throw DecodingError.dataCorruptedError(
                    forKey: .files, in: container, debugDescription: "file \"\(path)\" is not valid base64")
            }
            files[path] = data
        }
        self.files = files
    }
}
