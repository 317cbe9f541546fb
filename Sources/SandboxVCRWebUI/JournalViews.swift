internal import Foundation
internal import SandboxVCR

/// The dashboard's rows and details, from ``RequestJournal`` entries.
public enum JournalViews {
    public static func matches(_ entry: RequestJournal.Entry, _ text: TextQuery) -> Bool {
        if text.matches(entry.endpoint) || entry.key.map({ text.matches($0.hex) }) == true
            || entry.sandbox.map(text.matches) == true || entry.note.map(text.matches) == true
            || entry.language.map({ text.matches($0.rawValue) }) == true
        {
            return true
        }
        guard let detail = entry.detail else { return false }
        if let request = detail.request, text.matchesRedacted(request) { return true }
        if let result = detail.result, text.matches(result.stdout) {
            return text.matches(Redactor.scrub(result.stdout))
        }
        return false
    }

    public static func row(_ entry: RequestJournal.Entry) -> WebViews.Row {
        let summary =
            entry.detail?.request?.summary ?? entry.note
            ?? (entry.detailDropped ? "(detail no longer kept)" : "")
        return WebViews.Row(
            id: Int64(entry.id), time: WebViews.time(entry.time), endpoint: entry.endpoint, outcome: entry.outcome,
            language: entry.language?.rawValue, durationMilliseconds: (entry.durationSeconds * 1e5).rounded() / 100,
            key: entry.key.map { String($0.hex.prefix(12)) }, summary: summary,
            status: entry.status == 0 ? nil : entry.status, sandbox: entry.sandbox,
            redacted: entry.detail?.result.map { result in
                result.hints.contains { if case .redacted = $0 { true } else { false } }
            } ?? nil)
    }

    public static func detail(_ entry: RequestJournal.Entry, journal: RequestJournal) -> WebViews.Detail {
        var facts: [[String]] = [
            ["time", WebViews.time(entry.time)], ["endpoint", entry.endpoint], ["outcome", entry.outcome],
            ["duration", String(format: "%.3f ms", entry.durationSeconds * 1000)],
        ]
        if entry.status != 0 { facts.append(["HTTP status", "\(entry.status)"]) }
        if let key = entry.key { facts.append(["cassette key", key.hex]) }
        if let sandbox = entry.sandbox { facts.append(["sandbox", sandbox]) }
        if let note = entry.note { facts.append(["note", note]) }
        let detail = entry.detail
        let requested = detail?.request
        var timeline: [WebViews.Row] = []
        if let sandbox = entry.sandbox { timeline = journal.entries(ofSandbox: sandbox).map(Self.row) }
        return WebViews.Detail(
            id: Int64(entry.id), title: "#\(entry.id) \(entry.endpoint): \(entry.outcome)", facts: facts,
            request: requested.map(WebViews.request), result: detail?.result.map(WebViews.result),
            error: detail?.error.map { WebViews.cut(Redactor.scrub($0)) },
            nearest: requested.map { requested in
                (detail?.nearest ?? []).map { WebViews.nearest($0, requested: requested) }
            } ?? [],
            timeline: timeline, timelineTitle: entry.sandbox.map { "Sandbox \($0)" },
            detailDropped: entry.detailDropped)
    }

}
