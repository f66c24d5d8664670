/// The dashboard's stylesheet, served from `/assets/dashboard.css`: one column on a phone,
/// visible focus for keyboard use, and no inline styles anywhere (the CSP forbids them).
enum DashboardStyle {
    static let css = #"""
    :root { --fg: #1b1f24; --muted: #59636e; --line: #d0d7de; --bg: #ffffff; --panel: #f6f8fa; --accent: #0a5bd3; --danger: #b42318; --ok: #1a7f37; }
    @media (prefers-color-scheme: dark) {
      :root { --fg: #e6edf3; --muted: #9198a1; --line: #3d444d; --bg: #0d1117; --panel: #151b23; --accent: #4493f8; --danger: #f85149; --ok: #3fb950; }
    }
    * { box-sizing: border-box; }
    html { font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
    body { margin: 0; }
    a { color: var(--accent); }
    a:focus-visible, button:focus-visible, input:focus-visible, select:focus-visible, textarea:focus-visible, summary:focus-visible {
      outline: 3px solid var(--accent); outline-offset: 2px;
    }
    .skip { position: absolute; left: -9999px; }
    .skip:focus { left: 1rem; top: 1rem; background: var(--bg); padding: .5rem; z-index: 10; }
    .visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
    header.top { display: flex; flex-wrap: wrap; align-items: center; gap: .5rem 1.5rem; padding: .75rem 1rem; border-bottom: 1px solid var(--line); background: var(--panel); }
    .brand { font-weight: 700; font-size: 1.2rem; text-decoration: none; color: var(--fg); }
    header nav ul { list-style: none; display: flex; flex-wrap: wrap; gap: .25rem 1rem; margin: 0; padding: 0; }
    header nav a { text-decoration: none; padding: .25rem 0; }
    header nav a[aria-current="page"] { font-weight: 700; border-bottom: 2px solid var(--accent); }
    .signout { margin-left: auto; display: flex; align-items: center; gap: .5rem; }
    .who { color: var(--muted); }
    main { max-width: 72rem; margin: 0 auto; padding: 1rem; }
    h1 { font-size: 1.6rem; margin: .5rem 0 1rem; overflow-wrap: anywhere; }
    h2 { font-size: 1.2rem; margin: 1.5rem 0 .5rem; overflow-wrap: anywhere; }
    .crumbs ol { list-style: none; display: flex; flex-wrap: wrap; margin: 0; padding: 0; color: var(--muted); }
    .crumbs li + li::before { content: "/"; padding: 0 .4rem; }
    .meta, .hint { color: var(--muted); font-size: .9rem; }
    .actions { display: flex; flex-wrap: wrap; gap: .5rem 1rem; align-items: center; }
    .table-wrap { overflow-x: auto; }
    table { border-collapse: collapse; width: 100%; margin: .5rem 0; }
    caption { text-align: left; font-weight: 700; padding: .25rem 0; }
    th, td { text-align: left; padding: .4rem .6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
    td { overflow-wrap: anywhere; }
    th { font-size: .9rem; color: var(--muted); font-weight: 600; }
    /* Kind marks sit in their own aria-hidden span (inside the link they would join its
       name), drawn with borders so no emoji font is needed: filled for a folder, outlined
       for a file, dashed for a link. */
    .icon { display: inline-block; width: .8em; height: .65em; margin-right: .5em; border: 2px solid var(--muted); border-radius: 2px; }
    .icon.directory { background: var(--muted); }
    .icon.symlink { border-style: dashed; }
    button { font: inherit; padding: .35rem .8rem; border: 1px solid var(--line); border-radius: 6px; background: var(--panel); color: var(--fg); cursor: pointer; }
    button:hover { border-color: var(--accent); }
    button.danger { color: var(--danger); }
    button.primary, form.stack button[type="submit"] { background: var(--accent); color: #fff; border-color: var(--accent); }
    form.inline { display: inline; }
    form.row { display: flex; flex-wrap: wrap; gap: .5rem; align-items: end; margin: .5rem 0; }
    form.stack { display: grid; gap: .35rem; max-width: 32rem; margin: .5rem 0 1rem; }
    form.stack label.check { display: flex; gap: .5rem; align-items: center; }
    .buttons { display: flex; flex-wrap: wrap; gap: .5rem; }
    input, select, textarea { font: inherit; padding: .35rem .5rem; border: 1px solid var(--line); border-radius: 6px; background: var(--bg); color: var(--fg); max-width: 100%; }
    textarea { min-height: 6rem; }
    .signin { max-width: 22rem; margin: 3rem auto; }
    .error, .failed { color: var(--danger); }
    .done { color: var(--ok); }
    .notice { border: 1px solid var(--line); background: var(--panel); padding: .75rem 1rem; border-radius: 6px; }
    .notice code { overflow-wrap: anywhere; }
    pre.preview { background: var(--panel); border: 1px solid var(--line); padding: .75rem; overflow: auto; max-height: 32rem; white-space: pre-wrap; overflow-wrap: anywhere; }
    figure.preview img { max-width: 100%; height: auto; border: 1px solid var(--line); }
    .dropzone { border: 2px dashed var(--line); border-radius: 8px; padding: 1rem; display: none; gap: .5rem; }
    .dropzone.over { border-color: var(--accent); background: var(--panel); }
    html.js .dropzone { display: grid; grid-template-columns: minmax(0, 1fr); }
    html.js .nojs { display: none; }
    #upload-progress { list-style: none; padding: 0; }
    #upload-progress progress { width: 12rem; max-width: 60%; }
    .status-columns { display: grid; grid-template-columns: repeat(auto-fit, minmax(14rem, 1fr)); gap: 1rem; }
    .status-columns section { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: .5rem 1rem; }
    .status-columns ul { padding-left: 1.1rem; }
    article.conflict, section.webhook { border-top: 1px solid var(--line); padding-top: .5rem; }
    dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; }
    dl.facts dt { color: var(--muted); }
    dl.facts dd { margin: 0; }
    .bad { color: var(--danger); font-weight: 600; }
    .good { color: var(--ok); font-weight: 600; }
    @media (max-width: 40rem) {
      header.top { padding: .5rem; }
      .signout { margin-left: 0; }
      main { padding: .75rem; }
      th, td { padding: .35rem .4rem; }
      .hide-narrow { display: none; }
    }
    """#
}
