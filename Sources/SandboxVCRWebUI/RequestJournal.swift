public import Foundation
public import SandboxVCR
internal import Synchronization

/// What `serve` answered, request by request, for its dashboard (`GET /`).
///
/// A bounded history: the newest ``capacity`` requests as rows, and the full detail (request, result, miss
/// candidates) of the newest ``detailLimit`` of them, within ``detailBudget`` bytes; older details are dropped
/// first. Recording a request
/// takes a lock and an array store, no copy of its bytes and no formatting: the values are the ones `serve` already
/// holds, and everything shown is made when the page asks, redacted then (``Redactor/standard``).
public final class RequestJournal: Sendable {
    /// What a request asked and got: held while the journal's detail budget allows.
    public final class Detail: Sendable {
        public let request: ExecutionRequest?
        public let result: ExecutionResult?
        /// The error's message when there was no result (a miss: its diagnostics).
        public let error: String?
        /// For a miss: the nearest recordings, closest first.
        public let nearest: [Cassette.Interaction]
        /// Roughly the bytes it holds (code, stdin, files, outputs).
        let bytes: Int

        public init(
            request: ExecutionRequest?, result: ExecutionResult?, error: String? = nil,
            nearest: [Cassette.Interaction] = []
        ) {
            self.request = request
            self.result = result
            self.error = error
            self.nearest = nearest
            // What the values hold, and about 700 bytes of their own (objects, headers, dictionaries), measured as
            // resident memory per detail kept in a replay of the demo's small requests.
            var bytes = 700 + (error?.utf8.count ?? 0)
            if let request { bytes += request.byteSize }
            if let result { bytes += result.stdout.count + result.stderr.count + (result.compile?.stderr.count ?? 0) }
            for interaction in nearest { bytes += interaction.request.byteSize }
            self.bytes = bytes
        }
    }

    /// One answered request (a SandboxFusion endpoint or a Modal RPC).
    public struct Entry: Sendable {
        /// 1, 2, 3... in the order requests were answered.
        public internal(set) var id = 0
        public var time: Date
        /// `POST /run_code`, or a Modal RPC such as `modal ContainerExec`.
        public var endpoint: String
        /// `hit`, `miss`, `recorded`, `live`, `fake`, `error` or `rejected`.
        public var outcome: String
        public var durationSeconds: Double
        /// The HTTP status of the answer (SandboxFusion) or 0 (Modal).
        public var status: Int
        /// The cassette key, when a cassette was consulted.
        public var key: ContentHash?
        /// The Modal sandbox the request belongs to.
        public var sandbox: String?
        /// The language of a source-code request.
        public var language: Language?
        /// A short line: the request's kind and sizes, or what an entry with no request was (a rejected body).
        public var note: String?
        /// The request and its answer, until the detail budget drops it.
        public var detail: Detail? {
            didSet { if detail == nil, oldValue != nil { detailDropped = true } }
        }
        /// Whether ``detail`` was dropped (an old request; the row is still known).
        public private(set) var detailDropped = false

        public init(
            endpoint: String, outcome: String, duration: Duration, status: Int = 200, key: ContentHash? = nil,
            sandbox: String? = nil, note: String? = nil, detail: Detail? = nil
        ) {
            self.time = Date()
            self.endpoint = endpoint
            self.outcome = outcome
            self.durationSeconds = duration.inSeconds
            self.status = status
            self.key = key
            self.sandbox = sandbox
            self.note = note
            self.detail = detail
            if case .source(let language, _) = detail?.request?.program { self.language = language }
        }
    }

    /// How many requests are kept (the oldest are forgotten first).
    public let capacity: Int
    /// How many bytes of details are kept.
    public let detailBudget: Int
    /// How many requests keep their detail (the newest).
    public let detailLimit: Int

    private struct State {
        var entries: [Entry] = []
        /// Where the next entry goes once `entries` is full.
        var head = 0
        var lastID = 0
        var detailBytes = 0
        var detailCount = 0
        /// The id of the oldest entry that may still hold a detail.
        var oldestDetailID = 1
    }

    private let state = Mutex(State())

    public init(capacity: Int = 100_000, detailLimit: Int = 10_000, detailBudget: Int = 32 << 20) {
        self.capacity = max(1, capacity)
        self.detailLimit = max(0, detailLimit)
        self.detailBudget = max(0, detailBudget)
    }

    /// Adds an answered request.
    public func record(_ entry: Entry) {
        var entry = entry
        let bytes = entry.detail?.bytes ?? 0
        state.withLock { state in
            state.lastID += 1
            entry.id = state.lastID
            if entry.detail != nil {
                if bytes > detailBudget || detailLimit == 0 {
                    entry.detail = nil
                } else {
                    state.detailBytes += bytes
                    state.detailCount += 1
                }
            }
            if state.entries.count < capacity {
                state.entries.append(entry)
            } else {
                if let old = state.entries[state.head].detail {
                    state.detailBytes -= old.bytes
                    state.detailCount -= 1
                }
                state.entries[state.head] = entry
                state.head = (state.head + 1) % capacity
            }
            while state.detailBytes > detailBudget || state.detailCount > detailLimit,
                state.oldestDetailID < state.lastID
            {
                let id = state.oldestDetailID
                state.oldestDetailID += 1
                guard let index = Self.index(of: id, in: state, capacity: capacity),
                    let old = state.entries[index].detail
                else { continue }
                state.detailBytes -= old.bytes
                state.detailCount -= 1
                state.entries[index].detail = nil
            }
        }
    }

    private static func index(of id: Int, in state: State, capacity: Int) -> Int? {
        let count = state.entries.count
        let first = state.lastID - count + 1
        guard id >= first, id <= state.lastID else { return nil }
        let offset = id - first
        return count < capacity ? offset : (state.head + offset) % capacity
    }

    /// The id of the newest entry (0 before the first).
    public var lastID: Int { state.withLock { $0.lastID } }

    /// One entry, while it is kept.
    public func entry(id: Int) -> Entry? {
        state.withLock { state in Self.index(of: id, in: state, capacity: capacity).map { state.entries[$0] } }
    }

    /// The entries newest first that pass `include` (checked under the journal's lock: keep it cheap) and then
    /// `search` (checked outside it), skipping `offset` of them, at most `limit`; and how many pass.
    public func page(
        offset: Int, limit: Int, where include: (Entry) -> Bool, search: ((Entry) -> Bool)? = nil
    ) -> (total: Int, entries: [Entry]) {
        var total = 0
        var page: [Entry] = []
        var candidates: [Entry] = []
        state.withLock { state in
            let count = state.entries.count
            for step in 0..<count {
                let entry = state.entries[(state.head - 1 - step + 2 * count) % count]
                guard include(entry) else { continue }
                if search != nil {
                    candidates.append(entry)
                } else {
                    if total >= offset && page.count < limit { page.append(entry) }
                    total += 1
                }
            }
        }
        guard let search else { return (total, page) }
        for entry in candidates where search(entry) {
            if total >= offset && page.count < limit { page.append(entry) }
            total += 1
        }
        return (total, page)
    }

    /// The entries of a Modal sandbox, oldest first.
    public func entries(ofSandbox sandbox: String, limit: Int = 1_000) -> [Entry] {
        page(offset: 0, limit: limit) { $0.sandbox == sandbox }.entries.reversed()
    }
}

extension ExecutionRequest {
    /// Roughly the bytes the request holds.
    public var byteSize: Int {
        var bytes = stdin.count + files.values.reduce(0) { $0 + $1.count }
        switch program {
        case .source(_, let code): bytes += code.utf8.count
        case .command(let argv, _): bytes += argv.reduce(0) { $0 + $1.utf8.count }
        }
        return bytes
    }
}
