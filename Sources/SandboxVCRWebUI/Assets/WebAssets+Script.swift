extension WebAssets {
    /// Helpers both scripts use: building elements (text only: values never become markup) and a line diff.
    static let commonScript = #"""
        "use strict";
        function el(tag, attributes, ...children) {
          const element = document.createElement(tag);
          for (const [name, value] of Object.entries(attributes || {})) {
            if (name === "class") element.className = value;
            else if (name === "id" || name === "title" || name === "colspan" || name.startsWith("data-")) element.setAttribute(name, String(value));
          }
          for (const child of children.flat(Infinity)) {
            if (child === null || child === undefined) continue;
            element.append(child instanceof Node ? child : document.createTextNode(String(child)));
          }
          return element;
        }
        function token(text) { return String(text).replace(/[^A-Za-z0-9_-]/g, "_"); }
        function formatBytes(bytes) {
          if (bytes < 1024) return bytes + " B";
          if (bytes < 1024 * 1024) return (bytes / 1024).toFixed(1) + " KiB";
          return (bytes / 1024 / 1024).toFixed(1) + " MiB";
        }
        function pre(text, id) { return el("pre", id ? { id: id } : {}, text); }
        function labeled(label, ...content) { return el("div", { class: "labeled" }, el("h3", {}, label), content); }
        // Side by side line diff (longest common subsequence); null when the texts are too long to compare.
        function lineDiff(before, after) {
          const left = before.split("\n"), right = after.split("\n");
          const n = left.length, m = right.length;
          if ((n + 1) * (m + 1) > 4000000) return null;
          const lcs = new Uint32Array((n + 1) * (m + 1));
          for (let i = n - 1; i >= 0; i--) {
            for (let j = m - 1; j >= 0; j--) {
              lcs[i * (m + 1) + j] = left[i] === right[j] ? lcs[(i + 1) * (m + 1) + j + 1] + 1
                : Math.max(lcs[(i + 1) * (m + 1) + j], lcs[i * (m + 1) + j + 1]);
            }
          }
          const rows = [];
          let i = 0, j = 0;
          while (i < n || j < m) {
            if (i < n && j < m && left[i] === right[j]) { rows.push([left[i], "same", right[j], "same"]); i++; j++; }
            else if (j >= m || (i < n && lcs[(i + 1) * (m + 1) + j] >= lcs[i * (m + 1) + j + 1])) {
              rows.push([left[i], "del", "", "pad"]); i++;
            } else { rows.push(["", "pad", right[j], "ins"]); j++; }
          }
          return rows;
        }
        function sideBySide(before, after, leftTitle, rightTitle) {
          const rows = lineDiff(before, after);
          if (rows === null) {
            return el("table", { class: "sbs" }, el("tr", {}, el("th", {}, leftTitle), el("th", {}, rightTitle)),
              el("tr", {}, el("td", {}, before), el("td", {}, after)));
          }
          return el("table", { class: "sbs" }, el("tr", {}, el("th", {}, leftTitle), el("th", {}, rightTitle)),
            rows.map(([a, aKind, b, bKind]) => el("tr", {}, el("td", { class: aKind }, a), el("td", { class: bKind }, b))));
        }

        """#

    /// The script of the served pages (`/ui/app.js`): the list, its filters and pages, the detail of a row, and in
    /// live mode the updates `/ui/api/events` announces.
    public static let appScript =
        commonScript + #"""
            (function () {
              const mode = document.body.dataset.mode;
              const pageSize = 100;
              const state = { offset: 0, outcome: "", query: "", sort: "time-asc", selected: null, lastID: null,
                loading: false, again: false };
              const $ = (id) => document.getElementById(id);
              const columns = mode === "live"
                ? [["time", "Time"], ["endpoint", "Endpoint / RPC"], ["outcome", "Outcome"], ["language", "Language"],
                   ["durationMilliseconds", "ms"], ["key", "Key"], ["summary", "Request"]]
                : [["id", "#"], ["time", "Recorded"], ["outcome", "Outcome"], ["language", "Language"], ["size", "Size"],
                   ["session", "Session"], ["summary", "Request"]];

              async function getJSON(url) {
                const response = await fetch(url, { headers: { "Accept": "application/json" } });
                if (!response.ok) throw new Error(url + " answered HTTP " + response.status);
                return response.json();
              }
              function notice(text) { $("notice").textContent = text; }

              function listURL() {
                // encodeURIComponent (not URLSearchParams, which writes a space as "+").
                const parameters = [["offset", state.offset], ["limit", pageSize]];
                if (state.outcome) parameters.push(["outcome", state.outcome]);
                if (state.query) parameters.push(["q", state.query]);
                if (mode === "cassette") parameters.push(["sort", state.sort]);
                return "/ui/api/list?" + parameters.map(([name, value]) => name + "=" + encodeURIComponent(String(value))).join("&");
              }
              async function loadList() {
                if (state.loading) { state.again = true; return; }
                state.loading = true;
                try {
                  if (state.query) notice("searching…");
                  renderRows(await getJSON(listURL()));
                  notice("");
                } catch (error) { notice(String(error.message || error)); }
                finally {
                  state.loading = false;
                  if (state.again) { state.again = false; loadList(); }
                }
              }
              function cell(row, key) {
                switch (key) {
                  case "time": return row.time.replace("T", " ").replace("Z", "");
                  case "durationMilliseconds":
                    return row.durationMilliseconds === undefined ? "" : row.durationMilliseconds.toFixed(2);
                  case "size": return row.size === undefined ? "" : formatBytes(row.size);
                  case "session": return row.session ? row.session + " #" + row.step : "";
                  case "endpoint": return row.sandbox ? row.endpoint + " (" + row.sandbox + ")" : row.endpoint;
                  default: return row[key] === undefined ? "" : row[key];
                }
              }
              function renderRows(page) {
                const rows = page.rows.map((row) => {
                  const tr = el("tr", { class: "row outcome-" + token(row.outcome), "data-id": row.id });
                  for (const [key] of columns) {
                    const td = el("td", { class: "col-" + key + (key === "outcome" ? " outcome" : "") }, cell(row, key));
                    if (key === "outcome" && row.neverReplayed) td.append(el("span", { class: "badge never" }, "never replayed"));
                    if (key === "outcome" && row.redacted) td.append(el("span", { class: "badge redacted" }, "redacted"));
                    if (key === "summary") td.title = row.summary;
                    tr.append(td);
                  }
                  if (state.selected === row.id) tr.classList.add("selected");
                  tr.addEventListener("click", () => openDetail(row.id));
                  return tr;
                });
                $("rows").replaceChildren(...rows);
                $("empty").hidden = rows.length > 0;
                $("page-info").textContent = page.total === 0 ? "0 rows"
                  : (page.offset + 1) + "–" + (page.offset + page.rows.length) + " of " + page.total;
                $("prev").disabled = page.offset === 0;
                $("next").disabled = page.offset + page.rows.length >= page.total;
              }

              async function openDetail(id) {
                state.selected = id;
                for (const tr of document.querySelectorAll("tr.row")) tr.classList.toggle("selected", tr.dataset.id === String(id));
                try { renderDetail(await getJSON("/ui/api/item?id=" + encodeURIComponent(id))); }
                catch (error) { notice(String(error.message || error)); }
              }
              function renderDetail(detail) {
                const close = el("button", { id: "close-detail", class: "close", title: "close" }, "×");
                close.addEventListener("click", () => { $("detail").hidden = true; state.selected = null; });
                const parts = [close, el("h2", { id: "detail-title" }, detail.title),
                  el("dl", { class: "facts" }, detail.facts.map(([name, value]) => [el("dt", {}, name), el("dd", {}, value)]))];
                if (detail.detailDropped) parts.push(el("p", { class: "notice" },
                  "The request and answer of this row are no longer kept (the dashboard keeps those of the newest requests)."));
                if (detail.request) parts.push(requestView(detail.request));
                if (detail.result) parts.push(resultView(detail.result));
                if (detail.error) parts.push(labeled(detail.nearest.length ? "Miss diagnostics" : "Error", pre(detail.error, "detail-error")));
                if (detail.nearest.length) parts.push(el("div", { id: "nearest" }, el("h3", {}, "Nearest recordings"), detail.nearest.map(nearestView)));
                if (detail.timeline.length) parts.push(timelineView(detail));
                $("detail").replaceChildren(...parts);
                $("detail").hidden = false;
              }
              function filesView(files, title) {
                if (!files.length) return null;
                return labeled(title, files.map((file) => el("div", {}, el("b", {}, file.name + " (" + formatBytes(file.bytes) + ")"), pre(file.text))));
              }
              function requestView(request) {
                return el("div", { id: "detail-request" }, el("h3", {}, "Request"),
                  request.code !== undefined ? labeled("Code (" + request.language + ")", pre(request.code, "detail-code"))
                    : labeled("Command" + (request.workdir ? " in " + request.workdir : ""), pre(request.argv.join(" "), "detail-code")),
                  labeled("stdin", pre(request.stdin, "detail-stdin")),
                  filesView(request.files, "Files"),
                  el("p", { class: "notice" }, "run timeout " + request.runTimeout + " s, compile timeout " + request.compileTimeout +
                    " s, memory " + (request.memoryLimitMB === undefined ? "no limit" : request.memoryLimitMB + " MB") +
                    (request.fetchFiles.length ? ", fetch " + request.fetchFiles.join(", ") : "")));
              }
              function resultView(result) {
                const facts = [["status", result.status]];
                if (result.exitCode !== undefined) facts.push(["exit code", String(result.exitCode)]);
                if (result.signal !== undefined) facts.push(["signal", String(result.signal)]);
                if (result.wallTime !== undefined) facts.push(["wall time", result.wallTime + " s"]);
                if (result.hints.length) facts.push(["hints", result.hints.join("; ")]);
                if (result.message) facts.push(["message", result.message]);
                return el("div", { id: "detail-result" }, el("h3", {}, "Result"),
                  el("dl", { class: "facts" }, facts.map(([name, value]) => [el("dt", {}, name), el("dd", {}, value)])),
                  result.compileStderr !== undefined ? labeled("compile stderr", pre(result.compileStderr)) : null,
                  labeled("stdout", pre(result.stdout, "detail-stdout")),
                  labeled("stderr", pre(result.stderr, "detail-stderr")),
                  filesView(result.files, "Files read back"));
              }
              function nearestView(nearest, index) {
                const rows = nearest.fields.map((field) => {
                  const multiline = !field.same && (field.recorded.includes("\n") || field.requested.includes("\n"));
                  if (multiline) {
                    return el("tr", { class: "differs" }, el("td", { class: "name" }, field.name),
                      el("td", { colspan: 2 }, sideBySide(field.recorded, field.requested, "recorded", "requested")));
                  }
                  return el("tr", { class: field.same ? "same" : "differs" }, el("td", { class: "name" }, field.name),
                    el("td", {}, field.recorded), el("td", {}, field.requested));
                });
                return el("div", { class: "nearest", "data-index": index },
                  el("p", {}, (index + 1) + ". recording #" + nearest.id + ", recorded " + nearest.recordedAt + ": " + nearest.summary),
                  el("table", { class: "pairs" }, el("tr", {}, el("th", {}, "field"), el("th", {}, "recorded"), el("th", {}, "requested")), rows));
              }
              function timelineView(detail) {
                return el("div", { id: "timeline" }, el("h3", {}, detail.timelineTitle || "Timeline"),
                  el("ol", { class: "timeline" }, detail.timeline.map((row) => {
                    const item = el("li", { class: row.id === detail.id ? "current" : "" },
                      cell(row, "time") + "  " + (row.endpoint || "") + "  " + row.outcome + "  " + row.summary);
                    item.addEventListener("click", () => openDetail(row.id));
                    return item;
                  })));
              }

              function renderCounters(counters) {
                $("counters").replaceChildren(...counters.map(([name, value]) =>
                  el("span", { class: "chip", id: "count-" + token(name) }, name, el("b", {}, String(value)))));
              }
              async function loadSummary() {
                try {
                  const summary = await getJSON("/ui/api/summary");
                  $("title").textContent = summary.title;
                  document.title = summary.title;
                  renderCounters(summary.counters);
                } catch (error) { notice(String(error.message || error)); }
              }

              function connect() {
                const events = new EventSource("/ui/api/events");
                events.addEventListener("open", () => { $("connection").textContent = "live"; $("connection").classList.add("on"); });
                events.addEventListener("error", () => { $("connection").textContent = "reconnecting…"; $("connection").classList.remove("on"); });
                events.addEventListener("update", (event) => {
                  const update = JSON.parse(event.data);
                  renderCounters(update.counters);
                  if (update.lastID !== state.lastID) {
                    state.lastID = update.lastID;
                    if (state.offset === 0) loadList();
                    else notice("new requests on the first page");
                  }
                });
              }

              $("list-head").replaceChildren(...columns.map(([, label]) => el("th", {}, label)));
              let searchTimer = null;
              $("search").addEventListener("input", () => {
                clearTimeout(searchTimer);
                searchTimer = setTimeout(() => { state.query = $("search").value; state.offset = 0; loadList(); }, 250);
              });
              $("outcome").addEventListener("change", () => { state.outcome = $("outcome").value; state.offset = 0; loadList(); });
              if ($("sort")) $("sort").addEventListener("change", () => { state.sort = $("sort").value; state.offset = 0; loadList(); });
              $("prev").addEventListener("click", () => { state.offset = Math.max(0, state.offset - pageSize); loadList(); });
              $("next").addEventListener("click", () => { state.offset += pageSize; loadList(); });
              document.addEventListener("keydown", (event) => { if (event.key === "Escape") $("detail").hidden = true; });
              loadSummary();
              loadList();
              if (mode === "live") connect();
            })();

            """#
}
