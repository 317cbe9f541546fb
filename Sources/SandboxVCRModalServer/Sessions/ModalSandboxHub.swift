import Foundation
import GRPCCore
import Logging
import ModalProto
import SandboxVCR
import SandboxVCRModal
import SwiftProtobuf
import Synchronization

/// The state behind `serve --modal-port`: apps, images and live sandboxes with serve's own ids, and for each
/// sandbox whether it replays a recording or forwards to the upstream (and records).
///
/// Ids are deterministic: `ap-…` and `im-…` from names and image layers, `sb-vcr-N` / `ta-vcr-N` in creation order.
/// Replay answers every control-plane call locally; forwarding modes send app, image and auth-token calls upstream
/// with the client's credentials and create the upstream sandbox lazily, at its first exec.
///
/// The cassette is the run's (`--cassette`), or with `--control` each test's: a sandbox binds to the cassette term
/// current at its first exec (see ``CassetteTerm``).
final class ModalSandboxHub: Sendable {
    private struct State {
        var sandboxes: [String: LiveSandbox] = [:]
        var byTask: [String: LiveSandbox] = [:]
        var created = 0
        /// Image id handed out (canonical, or the upstream's) → its layers.
        var images: [String: ImageSpec] = [:]
        var routerURL = ""
        /// Recordings in flight (finalizing execs), so shutdown can wait for them.
        var pendingWrites = 0
        /// Ended sandboxes, oldest first: the oldest are forgotten beyond ``retainedEndedSandboxes``.
        var ended: [String] = []
        var endedStart = 0
        /// The test's cassette (`--control`), or the run's.
        var term: CassetteTerm?
        /// The builder version replays announce (the recordings', else Modal's current).
        var builderVersion = "2025.06"
    }

    let configuration: ModalServeConfiguration
    let upstream: UpstreamModal?
    let statistics: ModalServeStatistics
    let logger: Logger
    let normalizers: [ExecNormalizer]
    private let state = Mutex(State())
    private let writes = Pulse()
    /// How many ended sandboxes stay known (for late `SandboxWait` or `from_id` calls) before the oldest are dropped.
    static let retainedEndedSandboxes = 4_096

    /// - Parameter term: the run's cassette; `nil` with `--control`, until ``activate(_:)``.
    init(
        configuration: ModalServeConfiguration, term: CassetteTerm?, normalizers: [ExecNormalizer],
        upstream: UpstreamModal?, statistics: ModalServeStatistics, logger: Logger
    ) {
        self.configuration = configuration
        self.upstream = upstream
        self.statistics = statistics
        self.logger = logger
        self.normalizers = normalizers
        if let term { adopt(term) }
    }

    /// Makes `term` current: its recorded images become known, and its builder version the one announced.
    private func adopt(_ term: CassetteTerm) {
        state.withLock { state in
            state.term = term
            guard let library = term.library else { return }
            state.images.merge(library.images) { known, _ in known }
            if let version = library.images.values.lazy.compactMap(\.builderVersion).first {
                state.builderVersion = version
            }
        }
    }

    /// The cassette new bindings use now.
    var currentTerm: CassetteTerm? { state.withLock { $0.term } }

    private var builderVersion: String { state.withLock { $0.builderVersion } }

    // MARK: Per-test cassettes

    /// Makes a test's cassette current (`--control`): sandboxes bind to it at their first exec from now on.
    func activate(_ activation: ModalActivation) async throws {
        let term = try await CassetteTerm.activate(activation, normalizers: normalizers, logger: logger)
        adopt(term)
        logger.debug(
            "Modal cassette activated",
            metadata: ["path": "\(activation.path)", "mode": "\(activation.mode)", "test": "\(activation.test ?? "")"])
    }

    /// Ends the current test's cassette: saves what its sandboxes' execs did so far, waits until every recording is
    /// written, and returns what its calls did. Its sandboxes bind anew at their next exec.
    func deactivate() async -> ModalActivationReport? {
        let ending = state.withLock { state -> CassetteTerm? in
            defer { state.term = nil }
            return state.term
        }
        guard let term = ending else { return nil }
        let sandboxes = state.withLock { Array($0.sandboxes.values) }
        for sandbox in sandboxes where sandbox.term === term {
            for exec in sandbox.execs where exec.term === term { finalize(exec, in: sandbox, force: true) }
        }
        await waitForWrites()
        return term.close()
    }

    /// The URL command-router access points at (serve's own gRPC address).
    func setRouterURL(_ url: String) { state.withLock { $0.routerURL = url } }

    /// Whether control-plane calls are answered here (not forwarded): in mode `never`, and with `--control` when
    /// there is no upstream.
    private var replays: Bool { configuration.followsControl ? upstream == nil : configuration.mode == .never }

    // MARK: Apps, environments, images, tokens

    func appGetOrCreate(_ request: Modal_Client_AppGetOrCreateRequest, metadata: Metadata) async throws
        -> Modal_Client_AppGetOrCreateResponse
    {
        if let upstream, !replays {
            return try await upstream.unary(
                ModalRPC.ModalClient.appGetOrCreate, request, metadata: forwarded(metadata))
        }
        var response = Modal_Client_AppGetOrCreateResponse()
        let name = (request.environmentName.isEmpty ? "main" : request.environmentName) + "/" + request.appName
        response.appID = "ap-" + String(ContentHash.sha256(Data(name.utf8)).hex.prefix(20))
        return response
    }

    func environmentGetOrCreate(_ request: Modal_Client_EnvironmentGetOrCreateRequest, metadata: Metadata)
        async throws -> Modal_Client_EnvironmentGetOrCreateResponse
    {
        if let upstream, !replays {
            return try await upstream.unary(
                ModalRPC.ModalClient.environmentGetOrCreate, request, metadata: forwarded(metadata))
        }
        var response = Modal_Client_EnvironmentGetOrCreateResponse()
        response.environmentID = "en-vcr"
        response.metadata.name = request.deploymentName.isEmpty ? "main" : request.deploymentName
        response.metadata.settings.imageBuilderVersion = builderVersion
        return response
    }

    /// The layers of the image a request describes: its base image's layers (by the id handed out for it) and its
    /// own Dockerfile commands.
    private func spec(of request: Modal_Client_ImageGetOrCreateRequest) -> ImageSpec {
        var layers: [[String]] = []
        let known = state.withLock { $0.images }
        for base in request.image.baseImages {
            if let spec = known[base.imageID] {
                layers += spec.layers
            } else {
                layers.append(["FROM \(base.dockerTag.isEmpty ? base.imageID : base.dockerTag)"])
            }
        }
        var layer = request.image.dockerfileCommands
        if !request.builderVersion.isEmpty { layer.append(ImageSpec.builderVersionPrefix + request.builderVersion) }
        layers.append(layer)
        return ImageSpec(layers: layers)
    }

    func imageGetOrCreate(_ request: Modal_Client_ImageGetOrCreateRequest, metadata: Metadata) async throws
        -> Modal_Client_ImageGetOrCreateResponse
    {
        let spec = spec(of: request)
        if let upstream, !replays {
            let response = try await upstream.unary(
                ModalRPC.ModalClient.imageGetOrCreate, request, metadata: forwarded(metadata))
            state.withLock { $0.images[response.imageID] = spec }
            return response
        }
        let id = spec.canonicalID
        state.withLock { $0.images[id] = spec }
        var response = Modal_Client_ImageGetOrCreateResponse()
        response.imageID = id
        response.result.status = .success
        response.metadata.imageBuilderVersion = request.builderVersion.isEmpty ? builderVersion : request.builderVersion
        return response
    }

    func imageJoin(_ request: Modal_Client_ImageJoinStreamingRequest, metadata: Metadata) async throws
        -> [Modal_Client_ImageJoinStreamingResponse]
    {
        if let upstream, !replays {
            // Build logs are not recorded; the stream is handed on whole.
            let answer = try await upstream.stream(
                ModalRPC.ModalClient.imageJoinStreaming, request, metadata: forwarded(metadata))
            return answer
        }
        var response = Modal_Client_ImageJoinStreamingResponse()
        response.result.status = .success
        response.metadata.imageBuilderVersion = builderVersion
        response.entryID = "1"
        response.eof = true
        return [response]
    }

    func authTokenGet(_ request: Modal_Client_AuthTokenGetRequest, metadata: Metadata) async throws
        -> Modal_Client_AuthTokenGetResponse
    {
        if let upstream, !replays {
            return try await upstream.unary(ModalRPC.ModalClient.authTokenGet, request, metadata: forwarded(metadata))
        }
        var response = Modal_Client_AuthTokenGetResponse()
        response.token = LocalJWT.make(subject: "sandbox-vcr-auth")
        return response
    }

    // MARK: Sandboxes

    func createSandbox(
        appID: String, definition: Modal_Client_Sandbox, create: UpstreamSandbox.CreateRequest, metadata: Metadata
    ) throws -> LiveSandbox {
        let image =
            state.withLock { $0.images[definition.imageID] }
            ?? ImageSpec(layers: [["FROM \(definition.imageID)"]])
        let mode = configuration.mode
        var upstreamSandbox: UpstreamSandbox?
        if configuration.followsControl {
            upstreamSandbox = upstream.map {
                UpstreamSandbox(upstream: $0, create: create, metadata: forwarded(metadata))
            }
        } else if mode != .never {
            guard let upstream else {
                throw RPCError(
                    code: .failedPrecondition,
                    message: "sandbox-vcr serve: record mode `\(mode)` needs a Modal upstream to create sandboxes "
                        + "(--modal-upstream URL, credentials in MODAL_TOKEN_ID / MODAL_TOKEN_SECRET)")
            }
            upstreamSandbox = UpstreamSandbox(upstream: upstream, create: create, metadata: forwarded(metadata))
        }
        let term = configuration.followsControl ? nil : currentTerm
        if let term, mode == .never, term.library?.byImage[image.canonicalID] == nil {
            statistics.countMiss()
            let message = imageMissMessage(image, term: term)
            logger.warning(
                "Modal replay miss: no recorded sandbox of this image", metadata: ["image": "\(image.canonicalID)"])
            throw RPCError(code: .failedPrecondition, message: message)
        }
        let (id, taskID) = state.withLock { state in
            state.created += 1
            return ("sb-vcr-\(state.created)", "ta-vcr-\(state.created)")
        }
        let route: LiveSandbox.Route
        switch (term, mode) {
        case (nil, _): route = .undecided
        case (let term?, .never):
            route = .replay(ReplayBinder(liveID: id, imageID: image.canonicalID, library: term.library!))
        case (_, .missing): route = .undecided
        case (_, .all): route = .forward(upstreamSandbox!, session: ModalSessionCoding.newSessionID())
        default: route = .forward(upstreamSandbox!, session: nil)
        }
        let sandbox = LiveSandbox(
            id: id, taskID: taskID, appID: appID, image: image, timeoutSecs: definition.timeoutSecs, route: route,
            upstream: upstreamSandbox, term: term)
        state.withLock { state in
            state.sandboxes[id] = sandbox
            state.byTask[taskID] = sandbox
        }
        statistics.countSandbox()
        logger.info("Modal sandbox created", metadata: ["sandbox": "\(id)", "image": "\(image.canonicalID)"])
        return sandbox
    }

    func imageMissMessage(_ image: ImageSpec, term: CassetteTerm) -> String {
        var text =
            "sandbox-vcr: no recorded Modal sandbox uses this image (\(image.canonicalID)) in the cassette "
            + "\(term.path) (record mode `never`).\nRequested image layers:\n"
        for layer in image.layers { text += "   " + layer.joined(separator: " | ") + "\n" }
        if let library = term.library,
            let nearest = library.images.values.min(by: { $0.distance(to: image) < $1.distance(to: image) })
        {
            text += "Nearest recorded image (\(nearest.canonicalID)):\n"
            for layer in nearest.layers { text += "   " + layer.joined(separator: " | ") + "\n" }
        }
        text += "To record it, run serve with --record missing (or all) and a Modal upstream."
        return text
    }

    func sandbox(_ id: String) throws(RPCError) -> LiveSandbox {
        guard let sandbox = state.withLock({ $0.sandboxes[id] }) else {
            throw RPCError(code: .notFound, message: "sandbox \(id) not found")
        }
        return sandbox
    }

    func sandbox(task taskID: String) throws(RPCError) -> LiveSandbox {
        guard let sandbox = state.withLock({ $0.byTask[taskID] }) else {
            throw RPCError(code: .notFound, message: "task \(taskID) not found")
        }
        return sandbox
    }

    /// A router call's sandbox: `NOT_FOUND` once it ended, as Modal answers.
    func runningSandbox(task taskID: String) throws(RPCError) -> LiveSandbox {
        let sandbox = try sandbox(task: taskID)
        guard !sandbox.isTerminated else {
            throw RPCError(code: .notFound, message: "task \(taskID) not found: its sandbox has terminated")
        }
        return sandbox
    }

    func routerAccess(for sandbox: LiveSandbox) throws(RPCError) -> (jwt: String, url: String) {
        guard !sandbox.isTerminated else {
            throw RPCError(code: .failedPrecondition, message: "sandbox \(sandbox.id) has finished")
        }
        return (LocalJWT.make(subject: sandbox.taskID), state.withLock { $0.routerURL })
    }

    func terminate(_ sandbox: LiveSandbox) async {
        guard sandbox.finish(.terminated) else { return }
        if let upstream = sandbox.upstream, upstream.isCreated {
            do {
                try await upstream.terminate()
            } catch {
                logger.warning(
                    "could not terminate the upstream sandbox",
                    metadata: ["sandbox": "\(sandbox.id)", "error": "\(error)"])
            }
        }
        for exec in sandbox.execs {
            finalize(exec, in: sandbox, force: true)
            exec.changes.fire()
        }
        if case .replay(let binder) = sandbox.route { binder.release() }
        sandbox.dropExecs()
        retire(sandbox)
        logger.info("Modal sandbox terminated", metadata: ["sandbox": "\(sandbox.id)"])
    }

    /// Remembers an ended sandbox, forgetting the oldest ones beyond ``retainedEndedSandboxes``.
    private func retire(_ sandbox: LiveSandbox) {
        state.withLock { state in
            state.ended.append(sandbox.id)
            while state.ended.count - state.endedStart > Self.retainedEndedSandboxes {
                let oldest = state.ended[state.endedStart]
                state.endedStart += 1
                if let removed = state.sandboxes.removeValue(forKey: oldest) { state.byTask[removed.taskID] = nil }
            }
            if state.endedStart > 65_536 {
                state.ended.removeFirst(state.endedStart)
                state.endedStart = 0
            }
        }
    }

    /// Waits until the sandbox ends or `timeout` passes.
    func wait(_ sandbox: LiveSandbox, timeout: Duration) async -> Modal_Client_GenericResult? {
        if let result = sandbox.result { return result }
        guard timeout > .zero else { return nil }
        return await withTaskGroup(of: Modal_Client_GenericResult?.self) { group in
            group.addTask {
                while !Task.isCancelled {
                    let seen = sandbox.changes.version
                    if let result = sandbox.result { return result }
                    await sandbox.changes.wait(after: seen)
                }
                return nil
            }
            group.addTask {
                try? await CancellableSleep.sleep(for: timeout)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first ?? sandbox.result
        }
    }

    // MARK: Execs

    /// The route of a sandbox's exec: an undecided sandbox is bound by its first exec, to the current cassette
    /// (mode `missing`: replayed when that exec has a recording, else recorded). A sandbox whose test's cassette was
    /// replaced binds anew, as a new session.
    ///
    /// - Throws: a miss (`FAILED_PRECONDITION`) when nothing can answer the sandbox's execs.
    func route(of sandbox: LiveSandbox, first call: ExecCall) throws(RPCError) -> LiveSandbox.Route {
        if let bound = sandbox.term, bound.isClosed, let old = sandbox.unbind(from: bound) {
            if case .replay(let binder) = old { binder.release() }
            logger.debug("Modal sandbox binds to the next cassette", metadata: ["sandbox": "\(sandbox.id)"])
        }
        let candidate = sandbox.term ?? currentTerm
        return try sandbox.decide { () throws(RPCError) -> (LiveSandbox.Route, CassetteTerm?) in
            guard let term = candidate else {
                throw miss(
                    "sandbox-vcr: no cassette is active on this serve --control, so nothing replays Modal sandbox "
                        + "\(sandbox.id)'s exec \(Redactor.scrub(call.summary)); make one current with POST "
                        + "/sandbox-vcr/cassette (the pytest plugin does it for each test marked "
                        + "@pytest.mark.sandbox_vcr: was this exec run outside one?)", sandbox: sandbox, term: nil)
            }
            func binder(_ library: ReplayLibrary) -> ReplayBinder {
                ReplayBinder(liveID: sandbox.id, imageID: sandbox.image.canonicalID, library: library)
            }
            func upstream() throws(RPCError) -> UpstreamSandbox {
                guard let upstream = sandbox.upstream else {
                    throw RPCError(
                        code: .failedPrecondition,
                        message: "sandbox-vcr serve: record mode `\(term.mode)` needs a Modal upstream to record "
                            + "sandboxes (--modal-upstream URL; the pytest plugin: --sandbox-modal-upstream)")
                }
                return upstream
            }
            term.count { $0.sandboxes += 1 }
            switch term.mode {
            case .never:
                guard let library = term.library, library.byImage[sandbox.image.canonicalID] != nil else {
                    let message =
                        term.library == nil
                        ? "sandbox-vcr: no cassette at \(term.path) (record mode `never`), so nothing replays Modal "
                            + "sandbox \(sandbox.id)'s exec \(Redactor.scrub(call.summary)); record it with record "
                            + "mode `missing` and a Modal upstream (the pytest plugin: --sandbox-record-mode=missing "
                            + "--sandbox-modal-upstream URL)"
                        : imageMissMessage(sandbox.image, term: term)
                    throw miss(message, sandbox: sandbox, term: term)
                }
                return (.replay(binder(library)), term)
            case .missing:
                if let library = term.library, binder(library).couldBind(call) {
                    logger.debug("Modal sandbox replays", metadata: ["sandbox": "\(sandbox.id)"])
                    return (.replay(binder(library)), term)
                }
                let upstream = try upstream()
                logger.info(
                    "Modal sandbox records (its first exec has no recording)", metadata: ["sandbox": "\(sandbox.id)"])
                return (.forward(upstream, session: ModalSessionCoding.newSessionID()), term)
            case .all: return (.forward(try upstream(), session: ModalSessionCoding.newSessionID()), term)
            default: return (.forward(try upstream(), session: nil), term)
            }
        }
    }

    /// Counts and logs a sandbox that nothing can answer; returns the error its exec gets.
    private func miss(_ message: String, sandbox: LiveSandbox, term: CassetteTerm?) -> RPCError {
        statistics.countMiss()
        term?.countMiss(message)
        logger.warning(
            "Modal replay miss: nothing answers this sandbox",
            metadata: ["sandbox": "\(sandbox.id)", "cassette": "\(term?.path ?? "none")"])
        return RPCError(code: .failedPrecondition, message: message)
    }

    /// Writes the session's step 0 once, when its upstream sandbox exists.
    func recordSandboxOnce(_ sandbox: LiveSandbox, session: String, term: CassetteTerm?) {
        guard let term, sandbox.claimSessionWrite() else { return }
        let interaction = ModalSessionCoding.sandboxInteraction(
            session: session, image: sandbox.image, timeoutSecs: sandbox.timeoutSecs, at: Date())
        write([interaction], to: term)
    }

    /// Saves an exec of a recording sandbox once its exit is known and its streams ended; reads what the client did
    /// not read from the upstream first. `force` saves what is known now (the sandbox ended, or serve stops).
    func finalize(_ exec: LiveExec, in sandbox: LiveSandbox, force: Bool = false) {
        guard case .forward(let upstream, let session?) = exec.route, let term = exec.term,
            let orphaned = exec.beginFinalizing(force: force)
        else { return }
        state.withLock { $0.pendingWrites += 1 }
        writes.fire()
        Task {
            if !force {
                for stream in orphaned {
                    await self.drain(stream, of: exec, upstream: upstream)
                }
            }
            let recorded = exec.recorded()
            let redacted = Self.redact(recorded)
            let duration = (ContinuousClock.now - exec.startedAt).inSeconds
            self.recordSandboxOnce(sandbox, session: session, term: term)
            self.write(
                [ModalSessionCoding.execInteraction(session: session, exec: redacted, at: Date(), duration: duration)],
                to: term)
            self.statistics.countRecorded()
            term.count { $0.recorded += 1 }
            self.journalExec(
                recorded.call, sandbox: sandbox, outcome: "recorded", duration: .now - exec.startedAt,
                stdout: recorded.stdout, stderr: recorded.stderr, exit: recorded.exit)
            self.logger.info(
                "Modal exec recorded",
                metadata: [
                    "sandbox": "\(sandbox.id)", "step": "\(exec.step)",
                    "exec": "\(Redactor.scrub(recorded.call.summary))",
                ])
            self.state.withLock { $0.pendingWrites -= 1 }
            self.writes.fire()
        }
    }

    /// Reads the rest of a stream nobody read, for the recording.
    private func drain(_ stream: LiveExec.Stream, of exec: LiveExec, upstream: UpstreamSandbox) async {
        exec.beginReading(stream)
        let offset = exec.recordedOffset[stream.rawValue]
        var request = Modal_TaskCommandRouter_TaskExecStdioReadRequest()
        request.execID = exec.execID
        request.offset = offset
        request.fileDescriptor = stream == .stdout ? .stdout : .stderr
        let received = Mutex<UInt64>(offset)
        do {
            let status = try await upstream.routerStream(
                path: ModalRPC.TaskCommandRouter.taskExecStdioRead.path, timeout: .seconds(60),
                onMessage: { message in
                    guard
                        let data = try? Modal_TaskCommandRouter_TaskExecStdioReadResponse(serializedBytes: message).data
                    else { return }
                    let at = received.withLock { value in
                        defer { value += UInt64(data.count) }
                        return value
                    }
                    exec.record(data, at: at, of: stream)
                }
            ) { handle in
                var request = request
                request.taskID = handle.taskID
                return request
            }
            _ = exec.endReading(stream, failure: status.map(RecordedStatus.init), complete: true)
        } catch {
            _ = exec.endReading(
                stream, failure: RecordedStatus(code: 14, message: "sandbox-vcr could not read the stream: \(error)"),
                complete: true)
        }
    }

    private static func redact(_ exec: RecordedExec) -> RecordedExec {
        var exec = exec
        exec.call.argv = exec.call.argv.map(Redactor.scrub)
        exec.call.workdir = exec.call.workdir.map(Redactor.scrub)
        exec.call.stdin = Redactor.scrub(exec.call.stdin)
        exec.stdout.chunks = exec.stdout.chunks.map(Redactor.scrub)
        exec.stderr.chunks = exec.stderr.chunks.map(Redactor.scrub)
        return exec
    }

    private func write(_ interactions: [Cassette.NewInteraction], to term: CassetteTerm) {
        state.withLock { $0.pendingWrites += 1 }
        Task {
            do {
                try await term.cassetteForWriting().record(interactions)
            } catch {
                term.countError("could not record a Modal session step: \(error)")
                self.logger.error("could not record a Modal session step", metadata: ["error": "\(error)"])
            }
            self.state.withLock { $0.pendingWrites -= 1 }
            self.writes.fire()
        }
    }

    /// Saves every exec still open and waits until every recording is written (at shutdown).
    func finishRecordings() async {
        let sandboxes = state.withLock { Array($0.sandboxes.values) }
        for sandbox in sandboxes {
            for exec in sandbox.execs { finalize(exec, in: sandbox, force: true) }
        }
        await waitForWrites()
    }

    /// Waits until no recording is being written.
    private func waitForWrites() async {
        while true {
            let seen = writes.version
            if state.withLock({ $0.pendingWrites }) == 0 { return }
            await writes.wait(after: seen)
        }
    }

    /// Waits until every forwarded exec in flight has its exit (so its client got its answer and the recording is
    /// saved), or `deadline` passes: what shutdown grants the calls of a sandbox before the server stops.
    func drainExecs(until deadline: ContinuousClock.Instant) async {
        func pending() -> Int {
            let sandboxes = state.withLock { Array($0.sandboxes.values) }
            var count = 0
            for sandbox in sandboxes where !sandbox.isTerminated {
                count +=
                    sandbox.execs.filter { exec in
                        guard case .forward = exec.route else { return false }
                        return !exec.isFinalizing
                    }.count
            }
            return count
        }
        while ContinuousClock.now < deadline {
            let seen = writes.version
            let left = pending()
            if left == 0 { return }
            logger.notice("waiting for \(left) Modal exec(s) in flight before the Modal port stops")
            await writes.wait(after: seen, until: deadline)
        }
    }

    /// Terminates every upstream sandbox serve created (at shutdown).
    func terminateUpstreamSandboxes() async {
        let sandboxes = state.withLock { Array($0.sandboxes.values) }
        await withTaskGroup(of: Void.self) { group in
            for sandbox in sandboxes where sandbox.upstream?.isCreated == true && !sandbox.isTerminated {
                group.addTask { await self.terminate(sandbox) }
            }
        }
    }

    // MARK: Metadata

    /// The client's metadata to send upstream: Modal's own headers (credentials included), with the configured
    /// credentials when the client sent none.
    func forwarded(_ metadata: Metadata) -> HTTPHeaders {
        var headers = HTTPHeaders()
        for (key, value) in metadata {
            guard case .string(let text) = value else { continue }
            let name = key.lowercased()
            guard
                name.hasPrefix("x-modal-") || name == "x-idempotency-key" || name == "x-retry-attempt"
                    || name == "x-throttle-retry-attempt"
            else { continue }
            headers.add(name: name, value: text)
        }
        if headers["x-modal-token-id"].isEmpty, let id = configuration.fallbackTokenID,
            let secret = configuration.fallbackTokenSecret
        {
            headers.add(name: "x-modal-token-id", value: id)
            headers.add(name: "x-modal-token-secret", value: secret)
        }
        return headers
    }
}

extension ImageSpec {
    /// The line a layer ends with to name its builder version.
    static let builderVersionPrefix = "# image builder "

    /// The builder version the layers name, if any.
    var builderVersion: String? {
        for layer in layers.reversed() {
            if let line = layer.last, line.hasPrefix(Self.builderVersionPrefix) {
                return String(line.dropFirst(Self.builderVersionPrefix.count))
            }
        }
        return nil
    }

    /// How many layer lines differ (for the nearest recorded image).
    func distance(to other: ImageSpec) -> Int {
        let mine = Set(layers.flatMap { $0 })
        let theirs = Set(other.layers.flatMap { $0 })
        return mine.symmetricDifference(theirs).count
    }
}

/// Tokens serve hands out itself: JWT-shaped (some clients read `exp`), unsigned, valid for 30 days.
enum LocalJWT {
    static func make(subject: String) -> String {
        func encode(_ text: String) -> String {
            Data(text.utf8).base64EncodedString().replacingOccurrences(of: "+", with: "-")
                .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
        }
        let expiry = Int(Date().timeIntervalSince1970) + 30 * 86_400
        return encode(#"{"alg":"none","typ":"JWT"}"#) + "." + encode(#"{"sub":"\#(subject)","exp":\#(expiry)}"#)
            + ".sandbox-vcr"
    }
}
