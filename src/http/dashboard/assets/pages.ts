/**
 * The dashboard's two HTML pages. They load their script and style from the process itself
 * (/dashboard/app.js, /dashboard/app.css): no build step, no CDN, they work offline, and the
 * Content-Security-Policy allows no inline script or style.
 */

const escapeHtml = (text: string) =>
  text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c);

const head = (title: string) => `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<link rel="stylesheet" href="/dashboard/app.css">
</head>`;

/** The login form; the token goes in the POST body, never in a URL. `error` is shown above the button. */
export function loginPage(error: string | null): string {
  const alert = error === null ? '' : `<p id="login-error" class="error" role="alert">${escapeHtml(error)}</p>`;
  return `${head('agentd · log in')}
<body class="login">
<main>
<h1>agentd dashboard</h1>
<form id="login" method="post" action="/dashboard/login">
<label for="token">Admin token (ADMIN_TOKEN)</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
${alert}
<button type="submit">Log in</button>
<p class="hint">The session lasts 12 hours, in a cookie sent only to /dashboard.</p>
</form>
</main>
</body>
</html>
`;
}

const table = (id: string, headings: readonly string[]) =>
  `<table id="${id}"><thead><tr>${headings.map((h) => `<th>${h}</th>`).join('')}</tr></thead><tbody></tbody></table>`;

/** The live page; /dashboard/app.js fills it from /dashboard/api/snapshot every second. */
export const DASHBOARD_PAGE = `${head('agentd · dashboard')}
<body>
<header>
<h1>agentd</h1>
<span id="instance"></span>
<span id="connection" data-state="connecting">connecting…</span>
<form method="post" action="/dashboard/logout"><button id="logout" type="submit">Log out</button></form>
</header>
<main>
<section class="panel wide" id="why-panel">
<h2>Why is work waiting?</h2>
<ul id="why"></ul>
</section>
<section class="panel">
<h2>Run slots</h2>
<meter id="slots-gauge" min="0" max="1" value="0"></meter>
<dl>
<dt>In use / capacity</dt><dd id="slots-in-use">–</dd>
<dt>Queued / queue max</dt><dd id="slots-queued">–</dd>
<dt>Lingering agents</dt><dd id="slots-lingering">–</dd>
</dl>
</section>
<section class="panel">
<h2>Queue (waiting for a slot)</h2>
<ol id="queue"></ol>
<p id="queue-more" class="hint"></p>
</section>
<section class="panel">
<h2>Runs by status</h2>
${table('by-status', ['status', 'runs'])}
<p id="by-status-note" class="hint"></p>
</section>
<section class="panel">
<h2>Account leases</h2>
<p id="accounts-summary"></p>
${table('accounts', ['account', 'tier', 'leases / limit', 'queued', 'state'])}
</section>
<section class="panel">
<h2>LLM limiters</h2>
${table('llm', ['limiter', 'in flight / limit', 'waiting / max', 'state'])}
</section>
<section class="panel">
<h2>Database pool</h2>
<meter id="db-gauge" min="0" max="1" value="0"></meter>
<dl id="db"></dl>
</section>
<section class="panel">
<h2>Redis and event streams</h2>
<dl id="redis"></dl>
</section>
<section class="panel">
<h2>Instances</h2>
${table('instances', ['instance', 'alive', 'last beat', 'leases'])}
</section>
<section class="panel wide">
<h2>Newest runs (all accounts)</h2>
${table('runs', ['run', 'account', 'agent', 'status', 'instance', 'created', 'waiting for / error'])}
</section>
<section class="panel wide">
<h2>Run events</h2>
<p id="events-run" data-state="idle">Click a run to follow its events live.</p>
<ol id="events"></ol>
</section>
<section class="panel wide">
<h2>Sizing (each limit and where its value came from)</h2>
${table('limits', ['variable', 'value', 'source'])}
</section>
</main>
<script src="/dashboard/app.js"></script>
</body>
</html>
`;
