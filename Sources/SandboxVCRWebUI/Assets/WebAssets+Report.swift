extension WebAssets {
    /// The grading report's script (inlined by ``GradeReportPage``): reads the JSON block, draws the summary, the
    /// problems × candidates matrix, the details of the chosen candidate and the time chart.
    public static let reportScript =
        commonScript + #"""
            (function () {
              const data = JSON.parse(document.getElementById("report-data").textContent);
              const root = document.getElementById("report");
              const verdicts = ["passed", "wrongOutput", "runtimeError", "compileError", "timeLimit", "killedBySignal",
                "sandboxError", "executionError", "failed"];
              // The worst verdict of a candidate's tests colours its cell.
              function worst(candidate) {
                let index = 0;
                for (const test of candidate.tests) index = Math.max(index, Math.max(0, verdicts.indexOf(test.verdict)));
                return candidate.tests.length ? verdicts[index] : "failed";
              }
              const candidates = data.problems.flatMap((problem) => problem.candidates.map((candidate) => ({ problem, candidate })));
              const tests = candidates.reduce((sum, { candidate }) => sum + candidate.testsTotal, 0);
              const rewards = candidates.reduce((sum, { candidate }) => sum + candidate.reward, 0);
              const met = candidates.filter(({ candidate }) => candidate.meetsExpectation).length;
              const errors = candidates.reduce((sum, { candidate }) => sum + candidate.tests.filter((t) => t.verdict === "executionError").length, 0);
              const chips = [["problems", data.problems.length], ["candidates", candidates.length], ["tests", tests],
                ["reward total", rewards.toFixed(1)], ["expectations met", met + "/" + candidates.length], ["execution errors", errors]];

              const width = Math.max(0, ...data.problems.map((problem) => problem.candidates.length));
              const detail = el("section", { id: "candidate-detail" }, el("p", { class: "notice" }, "Click a cell for its tests."));
              const matrix = el("table", { class: "matrix", id: "matrix" },
                el("tr", {}, el("th", {}, "problem"), Array.from({ length: width }, (_, i) => el("th", {}, "candidate " + (i + 1)))),
                data.problems.map((problem) => el("tr", { "data-problem": problem.id },
                  el("th", { title: problem.title }, problem.id + " " + problem.title),
                  problem.candidates.map((candidate) => {
                    const verdict = worst(candidate);
                    const td = el("td", { class: "cell v-" + token(verdict), "data-candidate": problem.id + "/" + candidate.id,
                      title: verdict }, el("div", {}, el("b", {}, candidate.id)),
                      el("div", {}, "reward " + candidate.reward.toFixed(1) + " · " + candidate.testsPassed + "/" + candidate.testsTotal),
                      el("div", { class: candidate.meetsExpectation ? "" : "unmet" },
                        candidate.intent ? (candidate.meetsExpectation ? "✓ " : "✗ ") + "expected " + candidate.intent : "no expectation"));
                    td.addEventListener("click", () => {
                      for (const cell of document.querySelectorAll("td.cell")) cell.classList.remove("selected");
                      td.classList.add("selected");
                      showCandidate(problem, candidate);
                    });
                    return td;
                  }))));

              function showCandidate(problem, candidate) {
                const parts = [el("h2", { id: "candidate-title" }, problem.id + " / " + candidate.id + " (" + candidate.language + ")"),
                  el("p", {}, "reward " + candidate.reward.toFixed(1) + ", " + candidate.testsPassed + " of " + candidate.testsTotal +
                    " tests passed" + (candidate.intent ? ", expected " + candidate.intent + (candidate.meetsExpectation ? " (met)" : " (NOT met)") : ""))];
                if (candidate.code !== undefined) parts.push(labeled("Code", pre(candidate.code, "candidate-code")));
                for (const test of candidate.tests) {
                  const facts = [["verdict", test.verdict]];
                  if (test.status !== undefined) facts.push(["status", test.status]);
                  if (test.exitCode !== undefined) facts.push(["exit code", String(test.exitCode)]);
                  if (test.signal !== undefined) facts.push(["signal", String(test.signal)]);
                  if (test.seconds !== undefined) facts.push(["time", test.seconds.toFixed(3) + " s"]);
                  parts.push(el("div", { class: "test", "data-test": test.index },
                    el("h3", { class: test.passed ? "verdict-passed" : "" }, "test " + (test.index + 1) + ": " + test.verdict),
                    el("dl", { class: "facts" }, facts.map(([name, value]) => [el("dt", {}, name), el("dd", {}, value)])),
                    test.input !== undefined ? labeled("input", pre(test.input)) : null,
                    test.expected !== undefined && test.stdout !== undefined
                      ? labeled("expected vs actual stdout", sideBySide(test.expected, test.stdout, "expected", "actual")) : null,
                    test.stderr ? labeled("stderr", pre(test.stderr)) : null,
                    test.error !== undefined ? labeled("error", pre(test.error)) : null));
                }
                detail.replaceChildren(...parts);
              }

              // Every execution, in report order; one with no reported time (an execution error) has no bar.
              const timed = candidates.flatMap(({ problem, candidate }) => candidate.tests
                .map((test) => ({ label: problem.id + "/" + candidate.id + " test " + (test.index + 1), seconds: test.seconds, verdict: test.verdict })));
              const longest = Math.max(0.000001, ...timed.filter((entry) => entry.seconds !== undefined).map((entry) => entry.seconds));
              const chart = el("ol", { class: "chart", id: "time-chart" }, timed.map((entry) => {
                const bar = el("div", { class: "bar v-" + token(entry.verdict) });
                bar.style.width = entry.seconds === undefined ? "0" : (100 * entry.seconds / longest).toFixed(2) + "%";
                return el("li", {}, el("span", { class: "label", title: entry.label }, entry.label), el("div", {}, bar),
                  el("span", {}, entry.seconds === undefined ? "no time" : entry.seconds.toFixed(3) + " s"));
              }));

              root.replaceChildren(
                el("h1", {}, "Grading report"),
                el("p", { class: "notice" }, "generated " + data.generatedAt),
                el("div", { class: "counters", id: "summary" }, chips.map(([name, value]) => el("span", { class: "chip" }, name, el("b", {}, String(value))))),
                el("p", { class: "legend" }, verdicts.map((verdict) => el("span", { class: "v-" + verdict }, verdict))),
                matrix, detail,
                el("h2", {}, "Time per execution"),
                timed.length ? chart : el("p", { class: "notice" }, "No execution reported a time."));
            })();

            """#
}
