extension WebAssets {
    /// The style sheet of the served pages (`/ui/app.css`), also inlined in the grading report.
    public static let css = #"""
        :root { --hit: #1a7f37; --miss: #cf222e; --recorded: #0969da; --live: #8250df; --fake: #6e7781;
          --error: #bc4c00; --rejected: #57606a; --bg: #ffffff; --fg: #1f2328; --muted: #656d76; --line: #d0d7de;
          --panel: #f6f8fa; --del: #ffebe9; --ins: #dafbe1; font-family: system-ui, sans-serif; font-size: 14px; }
        body { margin: 0; color: var(--fg); background: var(--bg); }
        header { display: flex; flex-wrap: wrap; align-items: center; gap: 12px; padding: 10px 16px;
          border-bottom: 1px solid var(--line); background: var(--panel); }
        h1 { font-size: 18px; margin: 0; }
        h2 { font-size: 16px; margin: 8px 0; overflow-wrap: anywhere; }
        h3 { font-size: 14px; margin: 12px 0 4px; }
        .counters { display: flex; flex-wrap: wrap; gap: 6px; }
        .chip { border: 1px solid var(--line); border-radius: 12px; padding: 2px 10px; background: var(--bg); }
        .chip b { margin-left: 4px; }
        .connection { font-size: 12px; color: var(--muted); }
        .connection.on { color: var(--hit); }
        nav { display: flex; flex-wrap: wrap; align-items: center; gap: 10px; padding: 8px 16px;
          border-bottom: 1px solid var(--line); }
        nav input[type=search] { width: 260px; }
        .notice { color: var(--muted); }
        main { display: flex; align-items: flex-start; }
        .list-wrap { flex: 1 1 55%; overflow-x: auto; }
        table { border-collapse: collapse; width: 100%; }
        th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
        th { background: var(--panel); position: sticky; top: 0; }
        tr.row { cursor: pointer; }
        tr.row:hover { background: var(--panel); }
        tr.selected { outline: 2px solid var(--recorded); }
        td.col-summary { max-width: 420px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
        .outcome { font-weight: 600; }
        .outcome-hit .outcome, .verdict-passed { color: var(--hit); }
        .outcome-miss .outcome { color: var(--miss); }
        .outcome-recorded .outcome { color: var(--recorded); }
        .outcome-live .outcome { color: var(--live); }
        .outcome-fake .outcome { color: var(--fake); }
        .outcome-error .outcome { color: var(--error); }
        .outcome-rejected .outcome { color: var(--rejected); }
        .badge { display: inline-block; font-size: 11px; border-radius: 8px; padding: 0 6px; margin-left: 6px;
          background: var(--panel); border: 1px solid var(--line); font-weight: normal; color: var(--fg); }
        .badge.never { background: #fff8c5; }
        .badge.redacted { background: #ffebe9; }
        .empty { color: var(--muted); padding: 16px; }
        .detail { flex: 1 1 45%; border-left: 1px solid var(--line); padding: 8px 16px; max-height: calc(100vh - 110px);
          overflow: auto; position: sticky; top: 0; }
        .close { float: right; font-size: 18px; }
        dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 0; }
        dl.facts dt { color: var(--muted); }
        dl.facts dd { margin: 0; overflow-wrap: anywhere; }
        pre { background: var(--panel); border: 1px solid var(--line); padding: 6px 8px; margin: 4px 0;
          white-space: pre-wrap; overflow-wrap: anywhere; max-height: 420px; overflow: auto; font-size: 12px; }
        pre.error { border-color: var(--miss); }
        table.pairs td { width: 40%; }
        table.pairs td.name { width: 20%; color: var(--muted); }
        table.pairs tr.differs td.name { color: var(--miss); font-weight: 600; }
        table.sbs { table-layout: fixed; font-family: ui-monospace, monospace; font-size: 12px; }
        table.sbs td { white-space: pre-wrap; overflow-wrap: anywhere; border: none; padding: 0 4px; }
        table.sbs td.del { background: var(--del); }
        table.sbs td.ins { background: var(--ins); }
        table.sbs td.pad { background: var(--panel); }
        .timeline li.current { font-weight: 600; }
        .timeline li { cursor: pointer; }
        .matrix td.cell { cursor: pointer; min-width: 120px; border: 2px solid var(--bg); color: #fff; }
        .matrix td.cell.selected { outline: 3px solid var(--fg); }
        .v-passed { background: var(--hit); }
        .v-wrongOutput { background: var(--miss); }
        .v-runtimeError { background: #a40e26; }
        .v-compileError { background: #6639ba; }
        .v-timeLimit { background: var(--error); }
        .v-killedBySignal { background: #953800; }
        .v-sandboxError, .v-executionError, .v-failed { background: var(--rejected); }
        .legend span { display: inline-block; padding: 2px 8px; margin: 2px; color: #fff; border-radius: 4px; }
        .unmet { background: #fff8c5; color: var(--fg); border-radius: 4px; padding: 0 4px; }
        .chart { list-style: none; padding: 0; margin: 0; }
        .chart li { display: grid; grid-template-columns: 260px 1fr 80px; gap: 8px; align-items: center; }
        .chart .bar { height: 10px; min-width: 1px; }
        /* The colour of a bar whose verdict has none; :where() leaves its specificity at 0, so a verdict's wins. */
        :where(.chart .bar) { background: var(--recorded); }
        .chart .label { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; font-size: 12px; }
        .report { padding: 8px 16px; }
        """#
}
