/** The dashboard's style sheet, served as /dashboard/app.css. */
export const DASHBOARD_STYLE = `
:root { color-scheme: light dark; --line: #8884; --warn: #c77d00; --bad: #c0392b; --good: #2e8b57; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.4 system-ui, sans-serif; }
header { display: flex; gap: 1rem; align-items: center; padding: 0.5rem 1rem; border-bottom: 1px solid var(--line); }
header h1 { font-size: 1.2rem; margin: 0; }
header form { margin-left: auto; }
#connection[data-state='error'] { color: var(--bad); }
#connection[data-state='live'] { color: var(--good); }
main { display: grid; grid-template-columns: repeat(auto-fill, minmax(22rem, 1fr)); gap: 1rem; padding: 1rem; }
.panel { border: 1px solid var(--line); border-radius: 6px; padding: 0.5rem 0.75rem; min-width: 0; overflow: auto; }
.panel.wide { grid-column: 1 / -1; }
h2 { font-size: 1rem; margin: 0.25rem 0 0.5rem; }
meter { width: 100%; height: 1.2rem; }
dl { display: grid; grid-template-columns: auto 1fr; gap: 0.1rem 1rem; margin: 0.5rem 0; }
dt { opacity: 0.75; }
dd { margin: 0; font-variant-numeric: tabular-nums; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 0.15rem 0.5rem 0.15rem 0; border-bottom: 1px solid var(--line); white-space: nowrap; }
td { font-variant-numeric: tabular-nums; }
.hint { opacity: 0.7; font-size: 0.9em; }
#why li { margin: 0.2rem 0; }
#why li.ok { color: var(--good); }
#why li[data-kind='slots'], #why li[data-kind='llm'] { color: var(--warn); }
#why li[data-kind='account'], #why li[data-kind='session'] { color: var(--bad); }
tr[data-state='at_limit'], tr[data-state='saturated'], tr[data-state='dead'] { color: var(--bad); }
tr[data-state='near_limit'] { color: var(--warn); }
tr[data-status='queued'] td:nth-child(4) { color: var(--warn); }
tr[data-status='failed'] td:nth-child(4), tr[data-status='timed_out'] td:nth-child(4), tr[data-status='interrupted'] td:nth-child(4) { color: var(--bad); }
tr.followed { outline: 2px solid var(--good); }
.run-link { font: inherit; font-family: ui-monospace, monospace; background: none; border: 0; padding: 0; color: LinkText; text-decoration: underline; cursor: pointer; }
#events { font-family: ui-monospace, monospace; font-size: 12px; max-height: 24rem; overflow: auto; margin: 0; padding-left: 0; list-style: none; }
#events li { display: grid; grid-template-columns: 12rem 5rem 1fr; gap: 0.5rem; border-bottom: 1px solid var(--line); }
.event-data { overflow-wrap: anywhere; }
#events li[data-type='error'] { color: var(--bad); }
#events li[data-type='end'] { font-weight: bold; }
body.login main { display: block; max-width: 24rem; margin: 10vh auto; }
body.login form { display: grid; gap: 0.5rem; }
body.login input, body.login button { font: inherit; padding: 0.4rem; }
.error { color: var(--bad); margin: 0; }
`;
