import Foundation
import Synchronization

/// A deterministic, programmable executor for unit tests of grading logic: no sandbox, no network.
///
/// Rules are tried in the order they were added; the first that matches answers. A request no rule matches
/// gets the default outcome, or fails loudly with an ``ExecutionError`` (code
/// ``ExecutionError/Code/unmatchedRequest``) that names the request and lists the rules. Every request is
/// recorded in ``requests``.
///
/// ```swift
/// let fake = FakeExecutor()
/// fake.on(.codeContains("a + b"), answer: .success(stdout: "7\n"))
/// fake.on(.codeContains("a - b"), answer: .wrongOutput(stdout: "-1\n"))
/// fake.on(.language(.python), answers: [.transportError(.connectionReset), .success(stdout: "7\n")])
/// let result = try await fake.execute(ExecutionRequest(code: "print(a + b)", language: .python))
/// #expect(fake.requestCount == 1)
/// ```
///
/// Simulated latency sleeps on an injectable clock; pass a ``ManualClock`` to control it from a test.
public final class FakeExecutor: SandboxExecutor, Sendable {
    struct State {
        var rules: [FakeRule] = []
        /// How many requests each rule has answered (same indices as `rules`).
        var answered: [Int] = []
        var defaultOutcome: FakeOutcome?
        var latency: Duration
        var requests: [ExecutionRequest] = []
        var requestCount = 0
        var isRecordingRequests = true
    }

    /// The decision for one request, taken under the lock and carried out outside it.
    enum Decision {
        case answer(FakeOutcome, latency: Duration)
        case fail(ExecutionError)
    }

    private let state: Mutex<State>
    private let clock: any Clock<Duration>

    /// An executor with these rules.
    ///
    /// - Parameters:
    ///   - rules: The rules, tried in order.
    ///   - default: The answer when no rule matches; `nil` (the default) makes unmatched requests throw.
    ///   - latency: Simulated latency before each answer (zero: answer at once, no sleeping).
    ///   - clock: The clock latency sleeps on; a ``ManualClock`` lets a test advance time itself.
    public init(
        rules: [FakeRule] = [],
        default defaultOutcome: FakeOutcome? = nil,
        latency: Duration = .zero,
        clock: any Clock<Duration> = ContinuousClock()
    ) {
        self.state = Mutex(
            State(
                rules: rules, answered: Array(repeating: 0, count: rules.count), defaultOutcome: defaultOutcome,
                latency: latency))
        self.clock = clock
    }

    // MARK: Programming

    /// Adds a rule, tried after the rules already added.
    @discardableResult
    public func add(_ rule: FakeRule) -> FakeExecutor {
        state.withLock {
            $0.rules.append(rule)
            $0.answered.append(0)
        }
        return self
    }

    /// Answers the requests `matcher` accepts with `answer`.
    @discardableResult
    public func on(_ matcher: FakeMatcher, answer: FakeOutcome, latency: Duration? = nil) -> FakeExecutor {
        add(FakeRule(matcher, answer: answer, latency: latency))
    }

    /// Answers the requests `matcher` accepts in turn: the nth such request gets `answers[n]`.
    ///
    /// - Parameter afterLast: What happens once every answer was given (default: repeat the last).
    @discardableResult
    public func on(
        _ matcher: FakeMatcher, answers: [FakeOutcome], afterLast: FakeRule.AfterLast = .repeatLast,
        latency: Duration? = nil
    ) -> FakeExecutor {
        add(FakeRule(matcher, answers: answers, afterLast: afterLast, latency: latency))
    }

    /// Answers the requests `matcher` accepts by calling `body`.
    @discardableResult
    public func on(
        _ matcher: FakeMatcher,
        respond body: @escaping @Sendable (ExecutionRequest) async throws -> ExecutionResult
    ) -> FakeExecutor {
        add(FakeRule(matcher, answer: .respond(body)))
    }

    /// Answers every request in turn, whatever it is: the nth call gets `answers[n]`. Shorthand for
    /// `on(.any, answers:afterLast:)`.
    @discardableResult
    public func script(_ answers: [FakeOutcome], afterLast: FakeRule.AfterLast = .repeatLast) -> FakeExecutor {
        on(.any, answers: answers, afterLast: afterLast)
    }

    /// The answer when no rule matches; `nil` makes unmatched requests throw.
    public var defaultOutcome: FakeOutcome? {
        get { state.withLock { $0.defaultOutcome } }
        set { state.withLock { $0.defaultOutcome = newValue } }
    }

    /// Simulated latency before each answer, for rules that set none.
    public var latency: Duration {
        get { state.withLock { $0.latency } }
        set { state.withLock { $0.latency = newValue } }
    }

    /// The rules, in the order they are tried.
    public var rules: [FakeRule] { state.withLock { $0.rules } }

    // MARK: Request log

    /// Every request received, in arrival order (matched or not).
    public var requests: [ExecutionRequest] { state.withLock { $0.requests } }

    /// How many requests were received.
    public var requestCount: Int { state.withLock { $0.requestCount } }

    /// Whether received requests are kept in ``requests`` (default `true`). Turn it off for a long-lived fake
    /// (e.g. behind `sandbox-vcr serve`) so memory does not grow; ``requestCount`` still counts.
    public var isRecordingRequests: Bool {
        get { state.withLock { $0.isRecordingRequests } }
        set { state.withLock { $0.isRecordingRequests = newValue } }
    }

    /// The received requests `matcher` accepts, in arrival order.
    public func requests(matching matcher: FakeMatcher) -> [ExecutionRequest] {
        requests.filter(matcher.matches)
    }

    /// Forgets the received requests and restarts every script from its first answer; rules stay.
    public func reset() {
        state.withLock {
            $0.requests.removeAll()
            $0.requestCount = 0
            $0.answered = Array(repeating: 0, count: $0.rules.count)
        }
    }

    // MARK: Executing

    /// Answers `request` from the rules, after the simulated latency.
    ///
    /// - Throws: the rule's error for error outcomes; ``ExecutionError/Code/unmatchedRequest`` when no rule
    ///   matches and there is no default, or a script is used up with ``FakeRule/AfterLast/fail``;
    ///   ``ExecutionError/Code/cancelled`` when the task is cancelled during the latency.
    public func execute(_ request: ExecutionRequest) async throws -> ExecutionResult {
        let decision = state.withLock { Self.decide(request, state: &$0) }
        switch decision {
        case .fail(let error):
            throw error
        case .answer(let outcome, let latency):
            if latency > .zero {
                do {
                    try await clock.sleep(for: latency)
                } catch {
                    throw ExecutionError(
                        code: .cancelled,
                        message: "the task was cancelled while FakeExecutor simulated \(latency) of latency")
                }
            }
            return try await outcome.answer(to: request)
        }
    }

    /// Records `request` and picks its answer: the pure part of ``execute(_:)``.
    static func decide(_ request: ExecutionRequest, state: inout State) -> Decision {
        state.requestCount += 1
        if state.isRecordingRequests { state.requests.append(request) }
        let number = state.requestCount
        for index in state.rules.indices {
            let rule = state.rules[index]
            guard rule.matcher.matches(request) else { continue }
            let given = state.answered[index]
            if given < rule.answers.count {
                state.answered[index] += 1
                return .answer(rule.answers[given], latency: rule.latency ?? state.latency)
            }
            switch rule.afterLast {
            case .fallThrough:
                continue
            case .fail:
                state.answered[index] += 1
                return .fail(
                    ExecutionError(
                        code: .unmatchedRequest,
                        message: "FakeExecutor rule #\(index) (\(rule)) has given all \(rule.answers.count) of its "
                            + "answers, and request #\(number) (\(request.summary)) is call \(given + 1) to it; "
                            + "add answers to the script, or use afterLast .repeatLast or .fallThrough"))
            case .repeatLast:
                state.answered[index] += 1
                return .answer(rule.answers[rule.answers.count - 1], latency: rule.latency ?? state.latency)
            }
        }
        if let outcome = state.defaultOutcome {
            return .answer(outcome, latency: state.latency)
        }
        return .fail(unmatched(request, number: number, rules: state.rules))
    }

    static func unmatched(_ request: ExecutionRequest, number: Int, rules: [FakeRule]) -> ExecutionError {
        var message = "FakeExecutor has no rule for request #\(number): \(request.summary)"
        if let code = request.code {
            message += "; code: " + FakeOutcome.quote(Data(code.utf8), limit: 300)
        } else if let argv = request.argv {
            message += "; argv: \(argv)"
        }
        if !request.stdin.isEmpty { message += "; stdin: " + FakeOutcome.quote(request.stdin, limit: 120) }
        if rules.isEmpty {
            message += ". It has no rules at all."
        } else {
            message += ". Its rules (\(rules.count)), none of which matched (or their scripts were used up):"
            for (index, rule) in rules.enumerated() { message += "\n  #\(index) \(rule)" }
        }
        message +=
            "\nAdd a rule that matches this request (e.g. fake.on(.codeContains(...), answer: ...)) or set a "
            + "default outcome."
        return ExecutionError(code: .unmatchedRequest, message: message)
    }
}
