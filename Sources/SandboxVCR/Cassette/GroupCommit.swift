/// Group commit, as a state machine: which writes go into the next transaction, and when one may start. It does no
/// I/O and reads no clock; ``CassetteWriter`` performs the actions it returns, and its tests drive it directly.
///
/// One transaction runs at a time. A write that arrives while none runs starts one at once (a lone recording waits
/// for no timer); writes that arrive while one runs queue, and all of them (up to ``batchLimit``) go into the next.
/// So under load many recordings share one commit, and each waits for at most the commit in flight plus its own.
/// A closing write is the last one accepted: the ones queued before it still run, in order; later ones are refused.
struct GroupCommit<Write> {
    /// What the writer does next.
    enum Action {
        /// Nothing: the write waits for the transaction in flight.
        case none
        /// Run these writes, in order, in one transaction; then call ``commitFinished()``.
        case commit([Write])
        /// Refuse this write: the writer is closed.
        case reject(Write)
    }

    /// The most writes in one transaction.
    static var batchLimit: Int { 512 }

    private var queue: [Write] = []
    private var isCommitting = false
    private var isClosing = false

    /// Whether a transaction is in flight or writes are queued.
    var isBusy: Bool { isCommitting || !queue.isEmpty }

    /// A new write; `closes` makes it the last one accepted.
    mutating func submit(_ write: Write, closes: Bool = false) -> Action {
        guard !isClosing else { return .reject(write) }
        if closes { isClosing = true }
        guard !isCommitting else {
            queue.append(write)
            return .none
        }
        isCommitting = true
        return .commit([write])
    }

    /// The transaction in flight is done (committed or not): start the next one with what queued meanwhile.
    mutating func commitFinished() -> Action {
        precondition(isCommitting, "commitFinished() without a commit in flight")
        guard !queue.isEmpty else {
            isCommitting = false
            return .none
        }
        let batch = Array(queue.prefix(Self.batchLimit))
        queue.removeFirst(batch.count)
        return .commit(batch)
    }
}
