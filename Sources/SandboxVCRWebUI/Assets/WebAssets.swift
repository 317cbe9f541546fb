/// The pages `serve` (`GET /`) and `cassette browse` serve: one HTML shell, one style sheet and one script, all in
/// the binary (no CDN, no build step). The shell holds no data and no inline script: the script fetches JSON from
/// `/ui/api/...` and shows every value with `textContent`, and ``contentSecurityPolicy`` lets only the served
/// script run.
public enum WebAssets {
    /// Scripts and styles from this server only; no inline script, no plugins, no frames, no forms.
    public static let contentSecurityPolicy =
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
        + "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

    /// What a page shows.
    public enum Mode: String, Sendable {
        /// `serve`'s live dashboard: requests as they are answered.
        case live
        /// `cassette browse`: a cassette's interactions, read-only.
        case cassette
    }

    /// The HTML of the page (no data in it: the script asks for it).
    public static func shell(_ mode: Mode) -> String {
        let outcomes: [(String, String)] =
            switch mode {
            case .live:
                [
                    ("", "all"), ("hit", "hit"), ("miss", "miss"), ("recorded", "recorded"), ("live", "live"),
                    ("fake", "fake"), ("error", "error"), ("rejected", "rejected"),
                ]
            case .cassette:
                [
                    ("", "all"), ("never-replayed", "never replayed"), ("replayed", "replayed"),
                    ("error", "recorded failures"), ("session", "in a session"),
                ]
            }
        let options = outcomes.map { #"<option value="\#($0.0)">\#($0.1)</option>"# }.joined()
        let sort =
            mode == .cassette
            ? #"""
            <label>Sort <select id="sort"><option value="time-asc">oldest first</option>\#
            <option value="time-desc">newest first</option><option value="size-desc">largest first</option>\#
            <option value="size-asc">smallest first</option></select></label>
            """# : ""
        return #"""
            <!doctype html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>sandbox-vcr</title>
            <link rel="stylesheet" href="/ui/app.css">
            </head>
            <body data-mode="\#(mode.rawValue)">
            <header>
            <h1 id="title">sandbox-vcr</h1>
            <span id="connection" class="connection"></span>
            <div id="counters" class="counters"></div>
            </header>
            <nav id="toolbar">
            <label>Outcome <select id="outcome">\#(options)</select></label>
            <label>Search <input id="search" type="search" placeholder="code, stdin, key, endpoint" autocomplete="off"></label>
            \#(sort)
            <button id="prev" type="button" title="previous page">&#9664;</button>
            <span id="page-info" class="page-info"></span>
            <button id="next" type="button" title="next page">&#9654;</button>
            <span id="notice" class="notice"></span>
            </nav>
            <main>
            <div class="list-wrap"><table id="list"><thead><tr id="list-head"></tr></thead><tbody id="rows"></tbody></table>
            <p id="empty" class="empty" hidden>Nothing to show yet.</p></div>
            <section id="detail" class="detail" hidden></section>
            </main>
            <script src="/ui/app.js"></script>
            </body>
            </html>

            """#
    }
}
