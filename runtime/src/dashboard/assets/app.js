// The Ensemble dashboard: one frame a second over Server-Sent Events, drawn with the DOM and
// plain SVG. Every value from the server is written with textContent, never parsed as HTML.
'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  const SVGNS = 'http://www.w3.org/2000/svg';
  const KEEP = 120; // history samples kept (two minutes)
  const SORT_KEY = 'ensemble.dashboard.sort';

  // ---- guards: every key of a frame may be missing or null
  const obj = (x) => (x !== null && typeof x === 'object' && !Array.isArray(x) ? x : null);
  const arr = (x) => (Array.isArray(x) ? x : []);
  const objs = (x) => arr(x).map(obj).filter(Boolean);
  const num = (x) => (typeof x === 'number' && Number.isFinite(x) ? x : null);
  const str = (x) => (x === null || x === undefined ? '' : String(x));
  const cls = (x) => str(x).toLowerCase().replace(/[^a-z0-9_]/g, '') || 'unknown';

  // ---- formatting
  const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  function bytes(n) {
    n = num(n);
    if (n === null) return '—';
    let i = 0;
    while (Math.abs(n) >= 1024 && i < UNITS.length - 1) { n /= 1024; i++; }
    if (i === 0) return `${Math.round(n)} B`;
    return `${n.toFixed(n < 10 ? 2 : n < 100 ? 1 : 0)} ${UNITS[i]}`;
  }
  function fixed(n) {
    n = num(n);
    if (n === null) return '—';
    const a = Math.abs(n);
    return n.toFixed(a < 10 ? 2 : a < 100 ? 1 : 0);
  }
  const int = (n) => (num(n) === null ? '—' : String(Math.round(n)));
  const pct = (r, d = 1) => (num(r) === null ? '—' : `${(r * 100).toFixed(d)}%`);
  function human(s) {
    s = num(s);
    if (s === null) return '—';
    s = Math.max(0, Math.floor(s));
    const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600);
    const m = Math.floor((s % 3600) / 60), sec = s % 60;
    if (d) return `${d} d ${h} h`;
    if (h) return `${h} h ${m} min`;
    if (m) return `${m} min ${sec} s`;
    return `${sec} s`;
  }
  function span(ms) {
    ms = num(ms);
    if (ms === null) return '—';
    ms = Math.max(0, ms);
    if (ms < 1000) return `${Math.round(ms)} ms`;
    if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
    return human(ms / 1000);
  }
  function ago(ms) {
    ms = num(ms);
    if (ms === null) return '';
    ms = Math.max(0, ms);
    return ms < 60000 ? `${Math.round(ms / 1000)} s ago` : `${human(ms / 1000)} ago`;
  }
  const pad = (n) => String(n).padStart(2, '0');
  function clock(ms) {
    ms = num(ms);
    if (!ms) return '—';
    const d = new Date(ms);
    return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }
  const iso = (ms) => (num(ms) ? new Date(ms).toISOString() : null);

  // ---- DOM building (text only)
  function build(e, attrs, kids) {
    if (attrs) {
      for (const k of Object.keys(attrs)) {
        const v = attrs[k];
        if (v === null || v === undefined || v === false) continue;
        if (k === 'text') e.textContent = str(v);
        else e.setAttribute(k, v === true ? '' : str(v));
      }
    }
    for (const c of kids.flat(3)) {
      if (c === null || c === undefined || c === false) continue;
      e.append(c instanceof Node ? c : str(c));
    }
    return e;
  }
  const h = (tag, attrs, ...kids) => build(document.createElement(tag), attrs, kids);
  const s = (tag, attrs, ...kids) => build(document.createElementNS(SVGNS, tag), attrs, kids);
  const muted = (text) => h('p', { class: 'muted', text });
  function setText(el, text) {
    if (el && el.textContent !== text) el.textContent = text;
  }

  // Badge tones: ok (green), warn (amber), bad (red), run (blue), idle (grey).
  const TONE = {
    running: 'ok', up: 'ok', closed: 'ok', normal: 'ok', completed: 'ok', started: 'ok',
    restarting: 'warn', half_open: 'warn', read_only: 'warn', suspect: 'warn',
    restart_scheduled: 'warn', interrupted: 'warn', exited: 'idle',
    stopped: 'bad', failed: 'bad', open: 'bad', lockdown: 'bad', down: 'bad', gave_up: 'bad',
  };
  // Workflow runs and steps: running is in progress (blue), completed is green.
  const tone = (state, flow) => (flow && state === 'running' ? 'run' : TONE[state] || 'idle');
  function badge(state, flow) {
    const st = str(state);
    return h('span', { class: `badge t-${tone(st, flow)}`, 'data-state': st, text: st ? st.replace(/_/g, ' ') : '?' });
  }
  function stats(pairs) {
    return h('dl', { class: 'stats' }, pairs.filter(Boolean).map(([k, v, hot]) =>
      h('div', null, h('dt', { text: k }), h('dd', { class: hot ? 'hot' : null, title: v, text: v }))));
  }
  function table(heads, rows, numeric, rowAttrs) {
    const isNum = (i) => numeric && numeric.includes(i);
    return h('div', { class: 'scroll' }, h('table', { class: 'tbl' },
      h('thead', null, h('tr', null, heads.map((t, i) => h('th', { class: isNum(i) ? 'num' : null, text: t })))),
      h('tbody', null, rows.map((r, ri) => h('tr', rowAttrs ? rowAttrs[ri] : null,
        r.map((c, i) => h('td', { class: isNum(i) ? 'num' : null }, c)))))));
  }

  // Points of a sparkline: values right-aligned to KEEP slots, scaled from zero (or, with
  // `zero` false, from their minimum) to their maximum.
  function points(vals, w, ht, zero = true) {
    let m = 0, lo = Infinity;
    for (const v of vals) {
      if (v === null) continue;
      if (v > m) m = v;
      if (v < lo) lo = v;
    }
    const base = zero || lo === Infinity ? 0 : lo;
    const range = m - base > 0 ? m - base : Math.abs(m) || 1;
    const step = w / (KEEP - 1), off = KEEP - vals.length, out = [];
    vals.forEach((v, i) => {
      if (v === null) return;
      const y = m - base > 0 ? ht - 1 - ((v - base) / range) * (ht - 2) : (zero && !m ? ht - 1 : ht / 2);
      out.push(`${((off + i) * step).toFixed(1)},${y.toFixed(1)}`);
    });
    return { pts: out.join(' '), max: m, min: lo === Infinity ? null : lo };
  }

  // ---- client state
  const st = {
    paused: false, es: null, frames: 0, lastAt: 0, started: null, last: null,
    hist: [], retry: 0, timer: 0, dropped: false, refilling: null, memo: {}, opened: false,
  };

  function lite(x) {
    const rates = new Map();
    for (const t of objs(x.tools)) rates.set(str(t.tool), num(t.rate));
    const p = obj(x.process) || {};
    return { at: num(x.at_ms) || 0, rates, rss: num(p.rss_bytes), cpu: num(p.cpu_ratio) };
  }
  function pushHist(l) {
    const last = st.hist[st.hist.length - 1];
    if (last && last.at >= l.at) return;
    st.hist.push(l);
    while (st.hist.length > KEEP) st.hist.shift();
  }

  // ---- connection
  const CONN_TEXT = { live: 'live', paused: 'paused', reconnecting: 'reconnecting…' };
  function connState() {
    const c = $('conn');
    if (!c) return;
    const state = st.paused ? 'paused' : st.es && st.es.readyState === 1 ? 'live' : 'reconnecting';
    if (state === 'live') st.opened = true;
    c.dataset.state = state;
    setText(c, state === 'reconnecting' && !st.opened ? 'connecting…' : CONN_TEXT[state]);
  }
  function notice(text) {
    const n = $('notice');
    if (!n) return;
    n.hidden = !text;
    setText(n, text || '');
  }

  // With HTTP authentication on, the page is opened as /#token=TOKEN (a bearer token or an
  // API key). The fragment never reaches a server or its logs; the token is kept for this tab
  // only and sent in the Authorization header.
  const TOKEN_KEY = 'ensemble.dashboard.token';
  let token = null;
  try {
    const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
    if (m) {
      sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
      history.replaceState(null, '', location.pathname + location.search);
    }
    token = sessionStorage.getItem(TOKEN_KEY);
  } catch (_) { /* storage refused: no token */ }
  function authHeaders(extra) {
    return token ? Object.assign({ Authorization: `Bearer ${token}` }, extra) : extra;
  }

  // EventSource cannot send an Authorization header: with a token the stream is read with
  // fetch, behind the same interface, reconnecting as EventSource does.
  class FetchSource {
    constructor(url) {
      this.readyState = 0;
      this.onopen = null;
      this.onerror = null;
      this.handlers = [];
      this.ctrl = new AbortController();
      this.run(url);
    }
    addEventListener(type, fn) { if (type === 'frame') this.handlers.push(fn); }
    close() { this.readyState = 2; this.ctrl.abort(); }
    async run(url) {
      while (this.readyState !== 2) {
        try {
          const r = await fetch(url, {
            headers: authHeaders({ Accept: 'text/event-stream' }), signal: this.ctrl.signal, cache: 'no-store',
          });
          if (!r.ok || !r.body) {
            const t = await r.text();
            notice(t.trim() || `HTTP ${r.status}`);
            this.readyState = 2;
            if (this.onerror) this.onerror();
            return;
          }
          this.readyState = 1;
          if (this.onopen) this.onopen();
          const reader = r.body.getReader();
          const dec = new TextDecoder();
          let buf = '';
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            buf += dec.decode(value, { stream: true });
            let i;
            while ((i = buf.indexOf('\n\n')) >= 0) {
              const msg = buf.slice(0, i);
              buf = buf.slice(i + 2);
              let ev = 'message';
              const data = [];
              for (const line of msg.split('\n')) {
                if (line.startsWith('event:')) ev = line.slice(6).trim();
                else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
              }
              if (ev === 'frame' && data.length) this.handlers.forEach((fn) => fn({ data: data.join('\n') }));
            }
          }
        } catch (_) {
          if (this.readyState === 2) return;
        }
        if (this.readyState === 2) return;
        this.readyState = 0;
        if (this.onerror) this.onerror();
        await new Promise((res) => setTimeout(res, 1000));
      }
    }
  }

  function connect() {
    clearTimeout(st.timer);
    if (st.es) st.es.close();
    st.es = null;
    if (typeof EventSource !== 'function') {
      notice('This browser lacks EventSource; polling instead.');
      st.timer = setInterval(() => { if (!st.paused) refill(); }, 1000);
      return;
    }
    let es;
    try {
      es = token ? new FetchSource('/dashboard/events') : new EventSource('/dashboard/events');
    } catch (_) { schedule(); return; }
    st.es = es;
    es.addEventListener('frame', (ev) => {
      if (es !== st.es || st.paused) return;
      let f = null;
      try { f = JSON.parse(ev.data); } catch (_) { return; }
      apply(f);
    });
    es.onopen = () => {
      if (es !== st.es) return;
      st.retry = 0;
      connState();
      if (st.dropped) {
        st.dropped = false;
        if (!st.paused) refill();
      }
    };
    es.onerror = () => {
      if (es !== st.es) return;
      st.dropped = true;
      // CLOSED: the browser gave up (an HTTP error); try again ourselves, backing off.
      if (es.readyState === 2) schedule();
      connState();
    };
    connState();
  }
  function schedule() {
    clearTimeout(st.timer);
    const delay = Math.min(15000, 1000 * 2 ** Math.min(st.retry++, 4));
    st.timer = setTimeout(connect, delay);
  }

  // The latest frame and the history before it, after a start, a reconnect or a resume.
  function refill() {
    if (st.refilling) return st.refilling;
    st.refilling = fetch('/dashboard/state', { cache: 'no-store', headers: authHeaders({ Accept: 'application/json' }) })
      .then((r) => (r.ok ? r.json() : r.text().then((t) => { throw new Error(t.trim() || `HTTP ${r.status}`); })))
      .then((snap) => {
        notice(null);
        if (!st.paused) load(snap);
      })
      .catch((e) => notice(`could not load /dashboard/state: ${e && e.message ? e.message : e}`))
      .finally(() => { st.refilling = null; });
    return st.refilling;
  }
  function load(snap) {
    const f = obj(snap && snap.frame);
    if (!f || !num(f.at_ms)) return;
    const same = st.started !== null && f.started_ms === st.started;
    const newer = same ? st.hist.filter((l) => l.at > f.at_ms) : [];
    st.hist = [];
    for (const l of objs(snap.history)) {
      const x = lite(l);
      if (x.at && x.at < f.at_ms) pushHist(x);
    }
    pushHist(lite(f));
    newer.forEach(pushHist);
    st.started = f.started_ms;
    if (!same || f.at_ms > st.lastAt) show(f);
    else if (st.last) draw(st.last); // the refilled history, with the frame already shown
  }
  function apply(f) {
    f = obj(f);
    if (!f || !num(f.at_ms)) return; // the empty frame before the first sample
    if (st.started !== null && f.started_ms !== st.started) {
      // The server restarted: its history starts again.
      st.hist = [];
      st.lastAt = 0;
      st.memo = {};
      refill();
    }
    st.started = f.started_ms;
    if (f.at_ms <= st.lastAt) return;
    pushHist(lite(f));
    show(f);
  }
  function show(f) {
    st.lastAt = f.at_ms;
    st.last = f;
    st.frames++;
    draw(f);
  }

  // ---- drawing
  function panel(id, key, fn) {
    const body = $(id);
    if (!body) return;
    if (key !== undefined && st.memo[id] === key) return;
    st.memo[id] = key;
    let nodes;
    try {
      nodes = arr(fn()).filter(Boolean);
    } catch (e) {
      st.memo[id] = undefined;
      nodes = [muted(`could not draw this panel: ${e && e.message ? e.message : e}`)];
    }
    body.replaceChildren(...nodes);
  }
  function guard(fn) {
    try { fn(); } catch (_) { /* one panel's trouble never stops the others */ }
  }

  function draw(f) {
    for (const el of [document.body, $('conn')]) {
      if (!el) continue;
      el.dataset.frames = String(st.frames);
      el.dataset.at = String(f.at_ms);
    }
    if (f.version) setText($('version'), str(f.version));
    const up = $('updated');
    if (up) {
      setText(up, clock(f.at_ms));
      const when = iso(f.at_ms);
      if (when) up.setAttribute('datetime', when);
    }
    const at = f.at_ms;
    const supJson = JSON.stringify([f.supervision, f.events]);
    const timed = /"last_failure":\{|"next_restart_ms":\d/.test(supJson);
    panel('supervision-body', `${supJson}|${timed ? at : ''}`, () => drawSupervision(f));
    panel('events-body', JSON.stringify(f.events === undefined ? null : f.events), () => drawEvents(f));
    guard(() => drawTools(f));
    panel('tasks-body', JSON.stringify(f.tasks === undefined ? null : f.tasks), () => drawTasks(f));
    const wf = obj(f.workflows);
    const ticking = wf && objs(wf.runs).some((r) => num(r.finished_at_ms) === null);
    panel('workflows-body', `${JSON.stringify(f.workflows === undefined ? null : f.workflows)}|${ticking ? at : ''}`, () => drawWorkflows(f));
    panel('learners-body', JSON.stringify(f.learners === undefined ? null : f.learners), () => drawLearners(f));
    panel('retrieval-body', JSON.stringify(f.retrieval === undefined ? null : f.retrieval), () => drawRetrieval(f));
    panel('taxonomy-body', JSON.stringify(f.taxonomy === undefined ? null : f.taxonomy), () => drawTaxonomy(f));
    panel('governance-body', JSON.stringify(f.governance === undefined ? null : f.governance), () => drawGovernance(f));
    panel('cluster-body', JSON.stringify(f.cluster === undefined ? null : f.cluster), () => drawCluster(f));
    guard(() => drawProcess(f));
  }

  // 1. Supervision
  function drawSupervision(f) {
    const sup = obj(f.supervision);
    const sups = objs(sup && sup.supervisors);
    if (!sup || (!sup.root && !sups.length)) return [muted('supervision not running')];
    const now = num(f.at_ms);
    const items = sups.map((sv) => {
      const kids = objs(sv.children).map((c) => drawChild(c, now));
      const r = num(sv.restarts) || 0;
      return h('li', { class: 'sup', 'data-name': str(sv.name), 'data-state': str(sv.state) },
        h('div', { class: 'node' },
          h('span', { class: 'name', text: str(sv.name) || '?' }), badge(sv.state),
          r ? h('span', { class: 'dim', text: `restarted ${r}×` }) : null),
        kids.length ? h('ul', null, kids) : null);
    });
    return [h('ul', { class: 'tree' },
      h('li', { class: 'root', 'data-name': str(sup.root) },
        h('div', { class: 'node' }, h('span', { class: 'name', text: str(sup.root) || 'root' }), sup.state ? badge(sup.state) : null),
        items.length ? h('ul', null, items) : muted('no supervisors')))];
  }
  function drawChild(c, now) {
    const status = str(c.status);
    const r = num(c.restarts) || 0;
    const next = num(c.next_restart_ms);
    const wait = next !== null && now !== null ? Math.max(0, next - now) : null;
    const li = h('li', { class: 'child', 'data-name': str(c.name), 'data-status': status, 'data-restarts': String(r) },
      h('div', { class: 'node' },
        h('span', { class: 'name', text: str(c.name) || '?' }), badge(status),
        h('span', { class: r ? 'restarts hot' : 'restarts dim', text: `${r} restart${r === 1 ? '' : 's'}` }),
        wait !== null ? h('span', { class: 'next', 'data-next-restart-ms': String(Math.round(wait)), text: `next restart in ${span(wait)}` }) : null));
    const fail = obj(c.last_failure);
    if (fail) {
      const when = num(fail.at_ms);
      li.append(h('div', { class: 'failure' },
        h('span', { class: 'reason', text: str(fail.reason) || 'failed' }),
        when !== null && now !== null ? h('span', { class: 'dim', title: iso(when), text: ` · ${ago(now - when)}` }) : null));
    }
    return li;
  }
  function drawEvents(f) {
    if (!Array.isArray(f.events)) return [muted('no events')];
    const evs = objs(f.events).slice(-20).reverse();
    if (!evs.length) return [muted('no events yet')];
    return [h('ol', { class: 'events' }, evs.map((e) =>
      h('li', { 'data-kind': str(e.kind) },
        h('time', { class: 'dim', datetime: iso(e.at_ms), text: clock(e.at_ms) }),
        h('span', { class: 'who', text: `${str(e.supervisor)}/${str(e.child)}` }),
        badge(e.kind),
        e.detail ? h('span', { class: 'detail', text: str(e.detail) }) : null)))];
  }

  // 2. Tools
  const COLS = { tool: 's', calls: 'n', rate: 'n', error_rate: 'n', p50_ms: 'n', p99_ms: 'n', inflight: 'n', breaker: 's' };
  const tools = { rows: new Map(), sort: loadSort() };
  function loadSort() {
    try {
      const v = JSON.parse(window.localStorage.getItem(SORT_KEY) || 'null');
      if (v && COLS[v.col] && (v.dir === 1 || v.dir === -1)) return { col: v.col, dir: v.dir };
    } catch (_) { /* storage may be off */ }
    return { col: 'rate', dir: -1 };
  }
  function saveSort() {
    try { window.localStorage.setItem(SORT_KEY, JSON.stringify(tools.sort)); } catch (_) { /* storage may be off */ }
  }
  function sortHeaders() {
    for (const th of document.querySelectorAll('#tools-table th[data-sort]')) {
      const on = th.dataset.sort === tools.sort.col;
      th.classList.toggle('sorted', on);
      th.dataset.dir = on ? (tools.sort.dir > 0 ? 'asc' : 'desc') : '';
      th.setAttribute('aria-sort', on ? (tools.sort.dir > 0 ? 'ascending' : 'descending') : 'none');
    }
  }
  function compare(a, b) {
    const { col, dir } = tools.sort;
    let x = a[col], y = b[col];
    if (COLS[col] === 's') {
      x = x === null || x === undefined ? null : str(x);
      y = y === null || y === undefined ? null : str(y);
    } else {
      x = num(x);
      y = num(y);
    }
    if (x === null && y === null) return str(a.tool).localeCompare(str(b.tool));
    if (x === null) return 1; // nulls last, whichever the direction
    if (y === null) return -1;
    const c = typeof x === 'string' ? x.localeCompare(y) : x - y;
    return c ? c * dir : str(a.tool).localeCompare(str(b.tool));
  }
  function toolRow(name) {
    const td = (c) => h('td', { class: c });
    const row = {
      tool: h('td', { class: 'tool', text: name, title: name }),
      calls: td('num calls'), rate: td('num rate'), err: td('num err'), p50: td('num p50'),
      p99: td('num p99'), inflight: td('num inflight'), breaker: td('breaker'), trend: td('trend'),
      line: s('polyline', { points: '' }), brk: null,
    };
    row.trend.append(s('svg', { class: 'spark', viewBox: '0 0 90 20', preserveAspectRatio: 'none', 'aria-hidden': 'true' }, row.line));
    row.tr = h('tr', { 'data-tool': name }, row.tool, row.calls, row.rate, row.err, row.p50, row.p99, row.inflight, row.breaker, row.trend);
    return row;
  }
  function fillRow(row, t, name) {
    setText(row.calls, int(t.calls));
    setText(row.rate, fixed(t.rate));
    setText(row.err, t.error_rate === null || t.error_rate === undefined ? '—' : pct(t.error_rate));
    row.err.classList.toggle('hot', (num(t.error_rate) || 0) > 0);
    row.err.title = num(t.errors) === null ? '' : `${int(t.errors)} failed since the start`;
    setText(row.p50, fixed(t.p50_ms));
    setText(row.p99, fixed(t.p99_ms));
    setText(row.inflight, int(t.inflight));
    const brk = t.breaker === null || t.breaker === undefined ? '' : str(t.breaker);
    if (row.brk !== brk) {
      row.brk = brk;
      row.breaker.replaceChildren(brk ? badge(brk) : h('span', { class: 'dim', text: '—' }));
    }
    const { pts } = points(st.hist.map((l) => (l.rates.has(name) ? l.rates.get(name) || 0 : 0)), 90, 20);
    if (row.line.getAttribute('points') !== pts) row.line.setAttribute('points', pts);
  }
  function drawTools(f) {
    const list = Array.isArray(f.tools) ? objs(f.tools).filter((t) => str(t.tool)) : null;
    const empty = $('tools-empty'), table = $('tools-table'), body = $('tools-rows');
    if (!empty || !table || !body) return;
    if (!list || !list.length) {
      setText(empty, list ? 'no tool calls yet' : 'tools not running');
      empty.hidden = false;
      table.hidden = true;
      for (const row of tools.rows.values()) row.tr.remove();
      tools.rows.clear();
      return;
    }
    empty.hidden = true;
    table.hidden = false;
    list.sort(compare);
    const seen = new Set();
    for (const t of list) {
      const name = str(t.tool);
      if (seen.has(name)) continue;
      seen.add(name);
      let row = tools.rows.get(name);
      if (!row) {
        row = toolRow(name);
        tools.rows.set(name, row);
      }
      fillRow(row, t, name);
      body.append(row.tr); // moves an existing row into sorted place
    }
    for (const [name, row] of tools.rows) {
      if (!seen.has(name)) {
        row.tr.remove();
        tools.rows.delete(name);
      }
    }
    sortHeaders();
  }

  // 3. Tasks and workflows
  function drawTasks(f) {
    const t = obj(f.tasks);
    if (!t) return [muted('task executor not running')];
    return [stats([
      ['queue depth', int(t.queue_depth)],
      ['running', int(t.running)],
      ['completed', int(t.completed)],
      ['failed', int(t.failed), (num(t.failed) || 0) > 0],
      ['cancelled', int(t.cancelled)],
      ['cache hits', pct(t.cache_hit_ratio)],
      ['policy', str(t.policy) || '—'],
    ])];
  }
  function drawWorkflows(f) {
    const w = obj(f.workflows);
    if (!w) return [muted('workflow engine not running')];
    const runs = objs(w.runs);
    return [
      h('p', { class: 'line' }, h('b', { text: int(w.active) }), ' active · ', h('b', { text: fixed(w.steps_rate) }), ' steps/s'),
      runs.length ? h('ul', { class: 'runs' }, runs.slice(0, 12).map((r) => drawRun(r, num(f.at_ms)))) : muted('no runs yet'),
    ];
  }
  function drawRun(r, now) {
    const created = num(r.created_at_ms), fin = num(r.finished_at_ms);
    const end = fin !== null ? fin : now;
    const took = created !== null && end !== null ? end - created : null;
    const id = str(r.run_id);
    return h('li', { class: 'run', 'data-run': id, 'data-state': str(r.state) },
      h('div', { class: 'node' },
        h('code', { class: 'id', title: id, text: id || '?' }),
        h('span', { class: 'tmpl', text: r.template === null || r.template === undefined ? '—' : str(r.template) }),
        badge(r.state, true),
        h('span', { class: 'dim dur', text: span(took) })),
      dag(objs(r.steps).slice(0, 80)));
  }
  function stepTitle(id, step) {
    return s('title', { text: `${id} · ${str(step.tool) || '?'} · ${str(step.state) || '?'}` });
  }
  function dag(steps) {
    if (!steps.length) return null;
    const byId = new Map();
    steps.forEach((step, i) => {
      const id = str(step.id) || `#${i + 1}`;
      if (!byId.has(id)) byId.set(id, step);
    });
    const ids = [...byId.keys()];
    const deps = (id) => arr(byId.get(id).after).map(str).filter((a) => a !== id && byId.has(a));
    const wrap = (svg) => h('div', { class: 'dag' }, svg);
    if (!ids.some((id) => deps(id).length)) {
      const B = 14, G = 4, w = ids.length * (B + G) - G;
      return wrap(s('svg', { class: 'steps', width: w, height: B, viewBox: `0 0 ${w} ${B}`, role: 'img', 'aria-label': `${ids.length} steps` },
        ids.map((id, i) => {
          const step = byId.get(id);
          return s('rect', { x: i * (B + G), y: 0, width: B, height: B, rx: 3, class: `st st-${cls(step.state)}`, 'data-step': id }, stepTitle(id, step));
        })));
    }
    // Column = longest path from a root; a cycle is cut where it is found.
    const depth = new Map(), visiting = new Set();
    const depthOf = (id) => {
      if (depth.has(id)) return depth.get(id);
      if (visiting.has(id)) return 0;
      visiting.add(id);
      let d = 0;
      for (const a of deps(id)) d = Math.max(d, depthOf(a) + 1);
      visiting.delete(id);
      depth.set(id, d);
      return d;
    };
    const cols = [];
    for (const id of ids) {
      const d = depthOf(id);
      (cols[d] = cols[d] || []).push(id);
    }
    const BW = 86, BH = 20, GX = 18, GY = 6, P = 2;
    const pos = new Map();
    let rows = 0;
    cols.forEach((col, x) => {
      if (!col) return;
      col.forEach((id, y) => pos.set(id, { x: P + x * (BW + GX), y: P + y * (BH + GY) }));
      rows = Math.max(rows, col.length);
    });
    const W = P * 2 + cols.length * (BW + GX) - GX, H = P * 2 + rows * (BH + GY) - GY;
    const svg = s('svg', { class: 'graph', width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': `${ids.length} steps` });
    const edges = s('g', { class: 'edges' });
    for (const id of ids) {
      const b = pos.get(id);
      for (const a of deps(id)) {
        const p = pos.get(a);
        if (!p || !b) continue;
        const x1 = p.x + BW, y1 = p.y + BH / 2, x2 = b.x, y2 = b.y + BH / 2, mx = (x1 + x2) / 2;
        edges.append(s('path', { d: `M${x1} ${y1}C${mx} ${y1} ${mx} ${y2} ${x2} ${y2}` }));
      }
    }
    svg.append(edges);
    for (const id of ids) {
      const b = pos.get(id), step = byId.get(id);
      if (!b) continue;
      const label = id.length > 11 ? `${id.slice(0, 10)}…` : id;
      svg.append(s('g', { class: `st st-${cls(step.state)}`, 'data-step': id },
        stepTitle(id, step),
        s('rect', { x: b.x, y: b.y, width: BW, height: BH, rx: 4 }),
        s('text', { x: b.x + 6, y: b.y + 14, text: label })));
    }
    return wrap(svg);
  }

  // 4. Learners
  function bar(r) {
    const w = r === null ? 0 : Math.max(0, Math.min(1, r)) * 100;
    const t = r === null ? 'idle' : r > 0.9 ? 'bad' : r > 0.75 ? 'warn' : 'ok';
    return s('svg', { class: `bar t-${t}`, viewBox: '0 0 100 6', preserveAspectRatio: 'none', 'aria-hidden': 'true' },
      s('rect', { class: 'track', x: 0, y: 0, width: 100, height: 6 }),
      s('rect', { class: 'fill', x: 0, y: 0, width: w.toFixed(2), height: 6 }));
  }
  function drawLearners(f) {
    if (!Array.isArray(f.learners)) return [muted('learners not running')];
    const ls = objs(f.learners);
    if (!ls.length) return [muted('no learners running')];
    return [h('ul', { class: 'learners' }, ls.map((l) => {
      const mem = num(l.memory_bytes), bud = num(l.budget_bytes);
      const r = mem !== null && bud ? mem / bud : null;
      return h('li', { class: 'learner', 'data-name': str(l.name) },
        h('div', { class: 'node' }, h('span', { class: 'name', text: str(l.name) || '?' })),
        stats([
          ['observations', int(l.observations)],
          ['queries', int(l.queries)],
          ['patterns', int(l.patterns)],
          ['accuracy', l.accuracy === null || l.accuracy === undefined ? '—' : pct(l.accuracy)],
        ]),
        h('div', { class: 'mem' }, bar(r),
          h('span', { class: 'dim num', text: `${bytes(mem)} of ${bud ? bytes(bud) : 'no budget'}${r === null ? '' : ` · ${pct(r, 0)}`}` })));
    }))];
  }

  // 5. Retrieval and taxonomy
  function drawRetrieval(f) {
    const r = obj(f.retrieval);
    if (!r) return [muted('retrieval not running')];
    const cs = objs(r.collections);
    return [
      stats([
        ['searches', int(r.searches)],
        ['searches/s', fixed(r.search_rate)],
        ['p50 ms', fixed(r.p50_ms)],
        ['p99 ms', fixed(r.p99_ms)],
      ]),
      cs.length
        ? table(['collection', 'documents'], cs.map((c) => [str(c.name), int(c.documents)]), [1], cs.map((c) => ({ 'data-collection': str(c.name) })))
        : muted('no collections'),
    ];
  }
  function drawTaxonomy(f) {
    const t = obj(f.taxonomy);
    if (!t) return [muted('taxonomy not running')];
    const ss = objs(t.schemes);
    return [ss.length
      ? table(['scheme', 'concepts'], ss.map((x) => [h('span', { class: 'uri', title: str(x.scheme), text: str(x.scheme) }), int(x.concepts)]), [1], ss.map((x) => ({ 'data-scheme': str(x.scheme) })))
      : muted('no concept schemes')];
  }

  // 6. Governance
  function counts(list, what) {
    const xs = objs(list);
    if (!xs.length) return muted(`no ${what}`);
    return h('ul', { class: 'counts' }, xs.map((x) =>
      h('li', { 'data-identity': str(x.identity) }, h('span', { class: 'who', text: str(x.identity) || '?' }), h('b', { class: 'num', text: int(x.count) }))));
  }
  function drawGovernance(f) {
    const g = obj(f.governance);
    if (!g || g.governed === false) {
      const out = [muted('governance off: every caller is anonymous')];
      if (g && g.mode && g.mode !== 'normal') out.unshift(h('p', { class: 'line' }, 'mode ', badge(g.mode)));
      return out;
    }
    const a = obj(g.audit);
    const auth = num(g.auth_failures) || 0;
    const audit = !a ? [['audit', 'off']] : [
      ['audit entries', int(a.entries)],
      'checkpoints' in a ? ['checkpoints', int(a.checkpoints)]
        : ['checkpoint', a.checkpoint === null || a.checkpoint === undefined ? 'none yet' : `at ${int(a.checkpoint)}`],
      ['audit failures', int(a.failures), (num(a.failures) || 0) > 0],
      a.head ? ['chain head', str(a.head)] : null,
    ];
    const sessions = objs(g.sessions);
    return [
      h('p', { class: 'line mode' }, 'mode ', badge(g.mode || 'normal')),
      stats([['auth failures', String(auth), auth > 0], ...audit]),
      h('div', { class: 'two' },
        h('div', null, h('h4', { text: 'Denied' }), counts(g.denials, 'denials')),
        h('div', null, h('h4', { text: 'Rate-limited' }), counts(g.rate_limited, 'rate limiting'))),
      h('h4', { text: 'Sessions' }),
      sessions.length
        ? table(['session', 'client', 'identity', 'calls'],
          sessions.map((x) => [h('code', { title: str(x.id), text: str(x.id).slice(0, 12) }), str(x.client) || '—', str(x.identity) || '—', int(x.calls)]),
          [3], sessions.map((x) => ({ 'data-session': str(x.id) })))
        : muted('no sessions'),
    ];
  }

  // 7. Cluster
  function drawCluster(f) {
    const c = obj(f.cluster);
    if (!c) return [muted('single node')];
    const ms = objs(c.members);
    if (!ms.length) return [muted('no members')];
    return [table(['node', 'state', 'heartbeat', 'engines'],
      ms.map((m) => [str(m.node) || '?', badge(m.state), span(m.heartbeat_age_ms), arr(m.engines).map(str).join(', ') || '—']),
      [2], ms.map((m) => ({ 'data-node': str(m.node), 'data-state': str(m.state) })))];
  }

  // 8. Process
  function drawProcess(f) {
    const p = obj(f.process) || {};
    const none = $('process-none');
    if (none) none.hidden = !!obj(f.process);
    setText($('proc-uptime'), human(f.uptime_s));
    setText($('proc-rss'), bytes(p.rss_bytes));
    setText($('proc-cpu'), pct(p.cpu_ratio));
    const open = num(p.open_fds), max = num(p.max_fds);
    setText($('proc-fds'), open === null ? '—' : max === null ? int(open) : `${int(open)} / ${int(max)}`);
    setText($('proc-threads'), int(p.threads));
    setText($('proc-store'), num(p.store_bytes) === null ? 'in memory' : bytes(p.store_bytes));
    const rss = points(st.hist.map((l) => l.rss), 240, 36, false);
    const cpu = points(st.hist.map((l) => l.cpu), 240, 36);
    const rl = $('proc-rss-line'), cl = $('proc-cpu-line');
    if (rl) rl.setAttribute('points', rss.pts);
    if (cl) cl.setAttribute('points', cpu.pts);
    const seen = (k) => st.hist.some((l) => l[k] !== null);
    setText($('proc-rss-max'), seen('rss') ? `${bytes(rss.min)} – ${bytes(rss.max)}` : '');
    setText($('proc-cpu-max'), seen('cpu') ? `max ${pct(cpu.max)}` : '');
  }

  // ---- controls
  function togglePause() {
    st.paused = !st.paused;
    const b = $('pause');
    if (b) {
      b.textContent = st.paused ? 'Resume' : 'Pause';
      b.setAttribute('aria-pressed', String(st.paused));
    }
    document.body.classList.toggle('is-paused', st.paused);
    connState();
    if (!st.paused) {
      refill();
      if (typeof EventSource === 'function' && (!st.es || st.es.readyState === 2)) connect();
    }
  }
  function onSort(ev) {
    const th = ev.target instanceof Element ? ev.target.closest('th[data-sort]') : null;
    if (!th || !COLS[th.dataset.sort]) return;
    const col = th.dataset.sort;
    tools.sort = col === tools.sort.col ? { col, dir: -tools.sort.dir } : { col, dir: COLS[col] === 's' ? 1 : -1 };
    saveSort();
    sortHeaders();
    if (st.last) guard(() => drawTools(st.last));
  }

  function start() {
    const b = $('pause');
    if (b) b.addEventListener('click', togglePause);
    const head = document.querySelector('#tools-table thead');
    if (head) head.addEventListener('click', onSort);
    sortHeaders();
    connState();
    refill().finally(() => { if (!st.es) connect(); });
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
