/**
 * The dashboard's browser script, served as /dashboard/app.js. Plain ES2017 run as it is
 * written (no build step): it polls /dashboard/api/snapshot once a second (the server computes
 * it at most once a second for every viewer), renders each panel with textContent only (no
 * HTML from data), and follows one run's events (every type, agents' own too) with fetch. On a 401 (the session
 * expired) it goes back to the login form.
 */
export const DASHBOARD_SCRIPT = String.raw`'use strict';
(function () {
  var POLL_MS = 1000;
  var HIDDEN_POLL_MS = 5000;
  var EVENTS_SHOWN = 300;
  var EVENT_TEXT_MAX = 400;
  var followed = null;
  var stopped = false;

  function $(id) {
    return document.getElementById(id);
  }

  function el(tag, text, className) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function time(iso) {
    return iso ? new Date(iso).toLocaleTimeString() : '–';
  }

  function bytes(n) {
    if (n < 1024) return n + ' B';
    if (n < 1048576) return (n / 1024).toFixed(1) + ' KiB';
    if (n < 1073741824) return (n / 1048576).toFixed(1) + ' MiB';
    return (n / 1073741824).toFixed(1) + ' GiB';
  }

  function plural(n, word) {
    return n + ' ' + word + (n === 1 ? '' : 's');
  }

  function runButton(id) {
    var button = el('button', id.slice(0, 8), 'run-link');
    button.type = 'button';
    button.title = 'Follow the events of run ' + id;
    button.dataset.runId = id;
    return button;
  }

  // Fills a table's body: one row per item, cells from cells(item), each a node or text.
  function fill(tableId, items, cells, decorate) {
    var body = $(tableId).tBodies[0];
    var rows = items.map(function (item) {
      var tr = document.createElement('tr');
      cells(item).forEach(function (cell) {
        var td = document.createElement('td');
        if (cell instanceof Node) td.appendChild(cell);
        else td.textContent = cell === null || cell === undefined ? '–' : String(cell);
        tr.appendChild(td);
      });
      if (decorate) decorate(tr, item);
      return tr;
    });
    body.replaceChildren.apply(body, rows);
  }

  function facts(listId, pairs) {
    var list = $(listId);
    var nodes = [];
    pairs.forEach(function (pair) {
      nodes.push(el('dt', pair[0]), el('dd', pair[1]));
    });
    list.replaceChildren.apply(list, nodes);
  }

  function gauge(id, used, max) {
    var meter = $(id);
    meter.max = Math.max(1, max);
    meter.high = 0.8 * Math.max(1, max);
    meter.low = 0.5 * Math.max(1, max);
    meter.optimum = 0;
    meter.value = used;
    meter.title = used + ' of ' + max;
  }

  function renderWhy(s) {
    var list = $('why');
    if (s.why_waiting.length === 0) {
      list.dataset.state = 'clear';
      list.replaceChildren(el('li', 'Nothing waits: run slots are free, no account is at its tier limit, no LLM limiter is saturated.', 'ok'));
      return;
    }
    list.dataset.state = 'waiting';
    list.replaceChildren.apply(
      list,
      s.why_waiting.map(function (reason) {
        var item = el('li', reason.text, 'reason');
        item.dataset.kind = reason.kind;
        return item;
      }),
    );
  }

  function renderSlots(s) {
    var slots = s.slots;
    gauge('slots-gauge', slots.in_use, slots.capacity);
    $('slots-in-use').textContent = slots.in_use + ' / ' + slots.capacity;
    $('slots-queued').textContent = slots.queued + ' / ' + slots.queue_max;
    $('slots-lingering').textContent = String(slots.lingering_agents);
    var queue = $('queue');
    queue.replaceChildren.apply(
      queue,
      slots.waiting.map(function (id) {
        var item = document.createElement('li');
        item.appendChild(runButton(id));
        return item;
      }),
    );
    var more = slots.queued - slots.waiting.length;
    $('queue-more').textContent = slots.queued === 0 ? 'No run waits for a slot.' : more > 0 ? 'and ' + more + ' more' : '';
  }

  function renderTenancy(s) {
    var a = s.accounts;
    $('accounts-summary').textContent =
      plural(a.active, 'account') + ' with runs here (' + plural(a.leases, 'lease') + '); at their limit: ' +
      plural(a.at_limit, 'account') + ', ' + plural(s.sessions.at_limit, 'session') + '.';
    fill(
      'accounts',
      a.listed,
      function (row) {
        return [row.name, row.tier, row.in_use + ' / ' + row.limit, row.queued, row.state.replace('_', ' ')];
      },
      function (tr, row) {
        tr.dataset.state = row.state;
        tr.title = row.id;
      },
    );
    fill(
      'llm',
      s.llm,
      function (l) {
        return [l.name, l.in_use + ' / ' + l.limit, l.queued + ' / ' + l.queue_max, l.saturated ? 'saturated' : 'ok'];
      },
      function (tr, l) {
        tr.dataset.state = l.saturated ? 'saturated' : 'ok';
      },
    );
  }

  function renderResources(s) {
    var pool = s.db_pool;
    gauge('db-gauge', pool.in_use, pool.max);
    facts('db', [
      ['kind', pool.kind],
      ['in use / max', pool.in_use + ' / ' + pool.max],
      ['idle', pool.idle],
      ['waiting', pool.waiting],
    ]);
    facts('redis', [
      ['connections', s.redis.connections],
      ['operations in flight', s.redis.in_flight_ops],
      ['events not yet written', s.redis.pending_events],
      ['events not yet archived', s.archive.pending_events + ' (' + bytes(s.archive.pending_bytes) + ')'],
      ['SSE listeners', s.sse.listeners + ' (' + s.sse.accounts + ' accounts)'],
    ]);
    fill(
      'instances',
      s.instances,
      function (i) {
        return [i.id, i.alive ? 'alive' : 'dead', time(i.last_beat_at), i.leases];
      },
      function (tr, i) {
        tr.dataset.state = i.alive ? 'alive' : 'dead';
      },
    );
  }

  function renderRuns(s) {
    var counts = s.runs_by_status.counts;
    fill('by-status', Object.keys(counts), function (status) {
      return [status, counts[status]];
    });
    $('by-status-note').textContent =
      'queued and running: now, on every instance; the others: ended in the last ' + Math.round(s.runs_by_status.finished_within_s / 60) + ' min.';
    fill(
      'runs',
      s.newest_runs,
      function (r) {
        return [runButton(r.id), r.account_name, r.agent, r.status, r.instance_id, time(r.created_at), r.waiting_for || r.error_code];
      },
      function (tr, r) {
        tr.dataset.runId = r.id;
        tr.dataset.status = r.status;
        if (followed && followed.id === r.id) tr.classList.add('followed');
      },
    );
    fill(
      'limits',
      s.limits,
      function (l) {
        return [l.name, l.value, l.source];
      },
      function (tr, l) {
        tr.dataset.source = l.source;
      },
    );
  }

  function render(s) {
    $('instance').textContent = 'instance ' + s.instance_id + ' · ' + s.detected.cpus + ' CPUs · ' + bytes(s.detected.memory_bytes);
    renderWhy(s);
    renderSlots(s);
    renderTenancy(s);
    renderResources(s);
    renderRuns(s);
  }

  function connection(state, text) {
    var node = $('connection');
    node.dataset.state = state;
    node.textContent = text;
  }

  function poll() {
    fetch('/dashboard/api/snapshot', { credentials: 'same-origin', cache: 'no-store' })
      .then(function (res) {
        if (res.status === 401) {
          stopped = true;
          window.location.assign('/dashboard');
          return null;
        }
        if (!res.ok) throw new Error('HTTP ' + res.status);
        return res.json();
      })
      .then(function (snapshot) {
        if (snapshot === null) return;
        render(snapshot);
        connection('live', 'live · ' + time(snapshot.generated_at));
      })
      .catch(function (error) {
        connection('error', 'no data: ' + error.message);
      })
      .then(function () {
        if (!stopped) setTimeout(poll, document.hidden ? HIDDEN_POLL_MS : POLL_MS);
      });
  }

  function eventState(state, text) {
    var node = $('events-run');
    node.dataset.state = state;
    node.textContent = text;
  }

  function addEvent(id, type, data) {
    var list = $('events');
    var item = document.createElement('li');
    item.dataset.type = type;
    item.appendChild(el('span', id, 'event-id'));
    item.appendChild(el('span', type, 'event-type'));
    item.appendChild(el('span', data.length > EVENT_TEXT_MAX ? data.slice(0, EVENT_TEXT_MAX) + '…' : data, 'event-data'));
    list.appendChild(item);
    while (list.childElementCount > EVENTS_SHOWN) list.firstElementChild.remove();
    list.scrollTop = list.scrollHeight;
  }

  // A run's events over fetch, not EventSource: an EventSource hears only the types it names, and
  // agents define their own. Reconnects after a break with Last-Event-ID, so nothing is lost or repeated.
  function follow(id) {
    if (followed) followed.controller.abort();
    $('events').replaceChildren();
    var state = { id: id, controller: new AbortController(), lastId: '' };
    followed = state;
    readEvents(state).catch(function () {
      // readEvents shows every failure itself; a superseded stream has nothing to show
    });
  }

  async function readEvents(state) {
    var label = 'Run ' + state.id + ': ';
    for (;;) {
      eventState('connecting', label + (state.lastId ? 'reconnecting…' : 'connecting…'));
      try {
        var headers = state.lastId ? { 'last-event-id': state.lastId } : {};
        var res = await fetch('/dashboard/api/runs/' + encodeURIComponent(state.id) + '/events', {
          headers: headers,
          signal: state.controller.signal,
        });
        if (res.status === 204) return eventState('ended', label + 'ended');
        if (!res.ok || !res.body) return eventState('closed', label + 'the stream closed (' + res.status + ')');
        eventState('live', label + 'following live');
        if (await readFrames(state, res.body.getReader())) return;
      } catch (error) {
        if (state.controller.signal.aborted) return;
      }
      await new Promise(function (resolve) {
        setTimeout(resolve, 1000);
      });
      if (state.controller.signal.aborted) return;
    }
  }

  /** Reads SSE frames until the run's end (true) or the connection breaks (false). */
  async function readFrames(state, reader) {
    var decoder = new TextDecoder();
    var buffer = '';
    var frame = {};
    for (;;) {
      var chunk = await reader.read();
      if (chunk.done) return false;
      buffer += decoder.decode(chunk.value, { stream: true });
      var nl;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        var line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        if (line === '') {
          if (frame.data !== undefined && frame.event) {
            state.lastId = frame.id || state.lastId;
            addEvent(frame.id || '', frame.event, frame.data);
            if (frame.event === 'end') {
              state.controller.abort();
              eventState('ended', 'Run ' + state.id + ': ended (' + JSON.parse(frame.data).status + ')');
              return true;
            }
          }
          frame = {};
        } else if (line.charAt(0) !== ':') {
          var colon = line.indexOf(':');
          frame[line.slice(0, colon)] = line.slice(colon + 1).replace(/^ /, '');
        }
      }
    }
  }

  document.addEventListener('click', function (event) {
    var target = event.target instanceof Element ? event.target.closest('button[data-run-id]') : null;
    if (target) follow(target.dataset.runId);
  });

  poll();
})();
`;
