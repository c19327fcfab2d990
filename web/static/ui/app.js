// govs dashboard: polls the control API every second and renders the
// virtual services, their real servers, VRRP and health transitions.
// Plain JavaScript, no dependencies, no build step. Rates are computed here
// from the counters of successive polls; the charts keep two minutes.
//
// The page holds no secret. When the API answers 401 (the TCP listener
// wants its bearer token) the page asks for the token once and keeps it in
// sessionStorage: this tab only, gone when the tab closes.
'use strict';

(() => {
  const POLL_MS = 1000;
  const HISTORY = 120; // samples kept per series: two minutes
  const SHARE_WINDOW = 10; // samples a real server's share is computed over
  const MAX_EVENTS = 100;
  const TIMEOUT_MS = 4000;
  const TOKEN_KEY = 'govs.token';

  const $ = (id) => document.getElementById(id);
  const SVGNS = 'http://www.w3.org/2000/svg';

  // h builds an element: h('td', {class: 'num', text: '3'}, child...).
  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'text') el.textContent = v;
      else if (k === 'class') el.className = v;
      else el.setAttribute(k, v === true ? '' : v);
    }
    for (const kid of kids) {
      if (kid === null || kid === undefined) continue;
      el.append(kid);
    }
    return el;
  }

  function setText(el, s) {
    s = String(s);
    if (el.textContent !== s) el.textContent = s;
  }

  // ---- formatting ----

  function fmtNum(n) {
    if (n === null || n === undefined || !isFinite(n)) return '–';
    const a = Math.abs(n);
    if (a >= 1e9) return (n / 1e9).toFixed(a >= 1e10 ? 0 : 1) + 'G';
    if (a >= 1e6) return (n / 1e6).toFixed(a >= 1e7 ? 0 : 1) + 'M';
    if (a >= 1e4) return (n / 1e3).toFixed(a >= 1e5 ? 0 : 1) + 'k';
    if (a >= 100 || Number.isInteger(n)) return Math.round(n).toLocaleString('en-US');
    return n.toFixed(1);
  }

  // fmtBytes gives [value, unit], SI units (kB = 1000 B) as ipvsadm's rates.
  function fmtBytes(n) {
    if (n === null || n === undefined || !isFinite(n)) return ['–', 'B'];
    const units = ['B', 'kB', 'MB', 'GB', 'TB'];
    let i = 0;
    while (Math.abs(n) >= 1000 && i < units.length - 1) { n /= 1000; i++; }
    const digits = i === 0 ? 0 : Math.abs(n) < 10 ? 2 : Math.abs(n) < 100 ? 1 : 0;
    return [n.toFixed(digits), units[i]];
  }
  const bytesText = (n, suffix) => { const [v, u] = fmtBytes(n); return v + ' ' + u + (suffix || ''); };

  function fmtDur(sec) {
    if (!isFinite(sec) || sec < 0) return '–';
    sec = Math.floor(sec);
    const pad = (x) => String(x).padStart(2, '0');
    if (sec < 60) return sec + 's';
    if (sec < 3600) return Math.floor(sec / 60) + 'm ' + pad(sec % 60) + 's';
    if (sec < 86400) return Math.floor(sec / 3600) + 'h ' + pad(Math.floor(sec / 60) % 60) + 'm';
    return Math.floor(sec / 86400) + 'd ' + Math.floor(sec / 3600) % 24 + 'h';
  }

  function fmtLatency(s) {
    if (s === null || s === undefined || !isFinite(s)) return '–';
    if (s < 0.001) return (s * 1000).toFixed(2) + ' ms';
    if (s < 0.1) return (s * 1000).toFixed(1) + ' ms';
    if (s < 1) return Math.round(s * 1000) + ' ms';
    return s.toFixed(2) + ' s';
  }

  const fmtClock = (d) => d.toLocaleTimeString('en-GB', { hour12: false });

  // ---- API ----

  class Unauthorized extends Error {}

  async function api(path) {
    const headers = { Accept: 'application/json' };
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = 'Bearer ' + token;
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), TIMEOUT_MS);
    try {
      // Relative paths: the page also works behind a proxy under a prefix.
      const res = await fetch(path, { headers, signal: ctl.signal, cache: 'no-store', credentials: 'omit' });
      if (res.status === 401) throw new Unauthorized('unauthorized');
      if (!res.ok) {
        let msg = res.status + ' ' + res.statusText;
        try { msg = (await res.json()).error || msg; } catch (_) { /* not JSON */ }
        throw new Error(msg);
      }
      return await res.json();
    } catch (e) {
      if (e.name === 'AbortError') throw new Error('no answer within ' + TIMEOUT_MS / 1000 + ' s');
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  // ---- history and rates ----

  // A ring of the last HISTORY samples; null marks a gap.
  class Series {
    constructor() { this.v = []; }
    push(x) { this.v.push(x); if (this.v.length > HISTORY) this.v.shift(); }
    last() { return this.v.length ? this.v[this.v.length - 1] : null; }
    sumLast(n) { let s = 0; for (const x of this.v.slice(-n)) s += x || 0; return s; }
  }

  const history = new Map(); // key -> {conn, in, out, act}
  const counters = new Map(); // key -> {t, stats}

  function seriesOf(key) {
    let s = history.get(key);
    if (!s) { s = { conn: new Series(), in: new Series(), out: new Series(), act: new Series(), agent: new Series() }; history.set(key, s); }
    return s;
  }

  // sample records the rates of key from its counters (stats) at time t,
  // in ms. The first sample of a key takes the server's own estimate.
  function sample(key, t, stats, serverRates, active) {
    const s = seriesOf(key);
    const prev = counters.get(key);
    counters.set(key, { t, stats });
    let r = null;
    if (prev && t - prev.t >= 200) {
      const dt = (t - prev.t) / 1000;
      const d = (a, b) => (a >= b ? (a - b) / dt : null); // a zeroed counter: no rate this time
      r = { cps: d(stats.connections, prev.stats.connections), in: d(stats.in_bytes, prev.stats.in_bytes), out: d(stats.out_bytes, prev.stats.out_bytes) };
    } else if (!prev && serverRates) {
      r = { cps: serverRates.cps, in: serverRates.in_bps, out: serverRates.out_bps };
    }
    if (r) {
      s.conn.push(r.cps); s.in.push(r.in); s.out.push(r.out); s.act.push(active);
    }
    return s;
  }

  function forget(live) {
    for (const k of [...history.keys()]) if (!live.has(k)) { history.delete(k); counters.delete(k); }
  }

  // ---- sparklines: SVG, scaled to the box, newest sample on the right ----

  function spark(classes) {
    const svg = document.createElementNS(SVGNS, 'svg');
    svg.setAttribute('class', 'spark');
    svg.setAttribute('viewBox', `0 0 ${HISTORY - 1} 100`);
    svg.setAttribute('preserveAspectRatio', 'none');
    svg.setAttribute('aria-hidden', 'true');
    svg._paths = classes.map((c) => {
      const g = document.createElementNS(SVGNS, 'g');
      g.setAttribute('class', c);
      const area = document.createElementNS(SVGNS, 'path');
      area.setAttribute('class', 'area');
      const line = document.createElementNS(SVGNS, 'path');
      line.setAttribute('class', 'line');
      g.append(area, line);
      svg.append(g);
      return { area, line };
    });
    return svg;
  }

  function drawSpark(svg, seriesList) {
    let max = 0;
    for (const s of seriesList) for (const x of s.v) if (x > max) max = x;
    max = max > 0 ? max * 1.12 : 1;
    seriesList.forEach((s, i) => {
      const n = s.v.length;
      let line = '', area = '';
      const x0 = HISTORY - n;
      for (let j = 0; j < n; j++) {
        const x = x0 + j;
        const y = (100 - ((s.v[j] || 0) / max) * 100).toFixed(1);
        line += (j ? 'L' : 'M') + x + ' ' + y;
      }
      if (n > 1) area = line + `L${HISTORY - 1} 100L${x0} 100Z`;
      const p = svg._paths[i];
      if (p.line.getAttribute('d') !== line) p.line.setAttribute('d', line || 'M0 100');
      p.area.setAttribute('d', area || 'M0 100');
    });
    svg.dataset.points = String(Math.max(0, ...seriesList.map((s) => s.v.length)));
  }

  // ---- events: health and VRRP transitions ----

  const events = [];
  const eventKeys = new Set();
  let eventsDirty = false;
  let firstPoll = true;
  const prevHealth = new Map(); // backend key -> {state, since}
  const prevVRRP = new Map(); // instance name -> {state, since}

  function addEvent(ev) {
    const k = [ev.who, ev.to, ev.at.getTime()].join('|');
    if (eventKeys.has(k)) return;
    eventKeys.add(k);
    ev.fresh = !firstPoll;
    events.push(ev);
    events.sort((a, b) => b.at - a.at);
    while (events.length > MAX_EVENTS) {
      const old = events.pop();
      eventKeys.delete([old.who, old.to, old.at.getTime()].join('|'));
    }
    eventsDirty = true;
  }

  function trackHealth(svcName, rsKey, addr, hl, now) {
    const prev = prevHealth.get(rsKey);
    const since = hl.since ? new Date(hl.since) : null;
    const cur = { state: hl.state, since: since ? since.getTime() : 0 };
    prevHealth.set(rsKey, cur);
    const who = svcName + ' ' + addr;
    if (!prev) {
      if (firstPoll) {
        // What happened before the page opened: the last transition.
        if (since) addEvent({ at: since, who, svc: svcName, addr, from: null, to: hl.state, why: hl.reason || '' });
      } else {
        addEvent({ at: now, who, svc: svcName, addr, from: null, to: 'added', why: 'real server added (' + hl.state + ')' });
      }
      return;
    }
    if (prev.state !== cur.state || (cur.since && prev.since !== cur.since)) {
      addEvent({ at: since || now, who, svc: svcName, addr, from: prev.state, to: hl.state, why: hl.reason || '' });
    }
  }

  function trackVRRP(inst, now) {
    const prev = prevVRRP.get(inst.name);
    const since = inst.since ? new Date(inst.since) : null;
    const cur = { state: inst.state, since: since ? since.getTime() : 0 };
    prevVRRP.set(inst.name, cur);
    const who = 'VRRP ' + inst.name;
    const why = inst.state === 'MASTER' ? 'priority ' + inst.priority : inst.master ? 'master ' + inst.master + ' (priority ' + inst.master_priority + ')' : '';
    if (!prev) {
      if (firstPoll && since) addEvent({ at: since, who, vrrp: inst.name, from: null, to: inst.state.toLowerCase(), why });
      return;
    }
    if (prev.state !== cur.state) {
      addEvent({ at: since || now, who, vrrp: inst.name, from: prev.state.toLowerCase(), to: inst.state.toLowerCase(), why: (inst.faults || []).join(', ') || why });
    }
  }

  // ---- rendering ----

  const cards = new Map(); // service key -> card

  function kpiTile(id, label, sparkClasses) {
    const value = h('div', { class: 'value', 'data-kpi': id });
    const sub = h('div', { class: 'sub' });
    const tile = h('div', { class: 'kpi' }, h('div', { class: 'label', text: label }), value, sub);
    let sp = null;
    if (sparkClasses) { sp = spark(sparkClasses); tile.append(sp); }
    $('kpis').append(tile);
    return { tile, value, sub, spark: sp };
  }

  let kpis = null;
  const totals = { conn: new Series(), in: new Series(), out: new Series(), act: new Series() };

  function valueWithUnit(el, v, unit) {
    if (el._v === v && el._u === unit) return;
    el._v = v; el._u = unit;
    el.replaceChildren(v, h('span', { class: 'unit', text: unit }));
  }

  function renderKPIs(model) {
    if (!kpis) {
      kpis = {
        cps: kpiTile('cps', 'New connections', ['c-conn']),
        bytes: kpiTile('bytes', 'Throughput', ['c-in', 'c-out']),
        active: kpiTile('active', 'Connections', ['c-act']),
        reals: kpiTile('reals', 'Real servers', null),
      };
      kpis.reals.strip = h('div', { class: 'strip' });
      kpis.reals.tile.append(kpis.reals.strip);
    }
    let cps = 0, inb = 0, outb = 0, act = 0, inact = 0, conns = 0, any = false;
    for (const s of model.services) {
      const hs = seriesOf(s.key);
      if (hs.conn.v.length) any = true;
      cps += hs.conn.last() || 0; inb += hs.in.last() || 0; outb += hs.out.last() || 0;
      act += s.active; inact += s.inactive; conns += s.stats.connections;
    }
    if (any) { totals.conn.push(cps); totals.in.push(inb); totals.out.push(outb); totals.act.push(act); }
    valueWithUnit(kpis.cps.value, fmtNum(cps), '/s');
    setText(kpis.cps.sub, fmtNum(conns) + ' scheduled in total');
    drawSpark(kpis.cps.spark, [totals.conn]);
    const [tv, tu] = fmtBytes(inb + outb);
    valueWithUnit(kpis.bytes.value, tv, tu + '/s');
    kpis.bytes.sub.replaceChildren(h('span', { class: 'legend in' }, h('span', { text: 'in ' + bytesText(inb, '/s') })),
      h('span', { class: 'legend out' }, h('span', { text: 'out ' + bytesText(outb, '/s') })));
    drawSpark(kpis.bytes.spark, [totals.in, totals.out]);
    valueWithUnit(kpis.active.value, fmtNum(act), 'active');
    setText(kpis.active.sub, fmtNum(inact) + ' inactive (ipvsadm InActConn)');
    drawSpark(kpis.active.spark, [totals.act]);

    let up = 0, total = 0;
    const down = [];
    const strip = [];
    for (const s of model.services) for (const r of s.reals) {
      total++;
      if (r.up) up++; else down.push(r.addr);
      strip.push(h('i', { class: 'b-' + r.state, title: s.name + ' ' + r.addr + ': ' + r.state }));
    }
    valueWithUnit(kpis.reals.value, up + ' / ' + total, 'up');
    kpis.reals.value.className = 'value ' + (total === 0 ? '' : up === total ? 'good' : up === 0 ? 'bad' : 'warn');
    setText(kpis.reals.sub, down.length ? 'down: ' + down.slice(0, 3).join(', ') + (down.length > 3 ? ' +' + (down.length - 3) : '') : total ? 'all in service' : 'none configured');
    kpis.reals.strip.replaceChildren(...strip);
  }

  function newCard(s) {
    const el = h('article', { class: 'card', 'data-service': s.key });
    const refs = {};
    refs.title = h('span', { class: 'title' });
    refs.vip = h('span', { class: 'vip' });
    refs.tags = h('span', { class: 'tags' });
    refs.health = h('span', { class: 'pill health' });
    el.append(h('div', { class: 'card-head' }, h('span', { class: 'proto', text: s.protocol.toUpperCase() }), refs.title, refs.vip, refs.tags, refs.health));

    refs.cps = h('div', { class: 'value', 'data-field': 'cps' });
    refs.cpsSpark = spark(['c-conn']);
    refs.inb = h('span', { class: 'value', 'data-field': 'inbps' });
    refs.outb = h('span', { class: 'value', 'data-field': 'outbps' });
    refs.bytesSpark = spark(['c-in', 'c-out']);
    refs.active = h('span', { class: 'value', 'data-field': 'active' });
    refs.inactive = h('span', { class: 'value', 'data-field': 'inactive' });
    refs.total = h('div', { class: 'errs' });
    refs.forecast = h('div', { class: 'errs', 'data-field': 'forecast', title: 'the connection rate the service\'s model expects (docs/forecast.md)' });
    refs.errs = h('div', { class: 'errs' });
    refs.sched = h('div', { class: 'errs' });
    el.append(h('div', { class: 'card-stats' },
      h('div', { class: 'stat' }, h('div', { class: 'label' }, h('span', { text: 'Conn/s' })), refs.cps, refs.cpsSpark, refs.forecast),
      h('div', { class: 'stat' }, h('div', { class: 'label' }, h('span', { text: 'Bytes/s' }), h('span', {}, h('span', { class: 'legend in' }, h('span', { text: 'in' })), h('span', { class: 'legend out' }, h('span', { text: 'out' })))),
        h('div', { class: 'pair' }, h('span', {}, h('small', { text: 'in' }), refs.inb), h('span', {}, h('small', { text: 'out' }), refs.outb)), refs.bytesSpark),
      h('div', { class: 'stat' }, h('div', { class: 'label', text: 'Connections' }),
        h('div', { class: 'pair' }, h('span', {}, h('small', { text: 'act' }), refs.active), h('span', {}, h('small', { text: 'inact' }), refs.inactive)), refs.total),
      h('div', { class: 'stat' }, h('div', { class: 'label', text: 'Errors' }), refs.errs, refs.sched)));

    refs.tbody = h('tbody');
    const th = (t, cls, title) => h('th', { class: cls, text: t, title });
    el.append(h('div', { class: 'table-wrap' }, h('table', { class: 'rs' },
      h('thead', {}, h('tr', {},
        th('State'), th('Real server'), th('Weight', 'num', 'effective weight (configured)'),
        th('Agent', '', "what the real server's agent said last: weight %, CPU busy %, memory used % (hover for all)"), th('ActiveConn', 'num'), th('InActConn', 'num'),
        th('Conn/s', 'num'), th(''), th('Share', '', 'share of new connections over the last 10 s'), th('In/s', 'num'), th('Out/s', 'num'),
        th('Check'), th('Last check', 'num'), th('Since', 'num', 'time in the current state'))),
      refs.tbody)));
    refs.rows = new Map();
    return { el, refs };
  }

  function newRow(r) {
    const c = {};
    const td = (cls, field) => h('td', { class: cls, 'data-field': field });
    c.state = td('', 'state');
    c.addr = td('addr', 'address');
    c.weight = td('num', 'weight');
    c.agent = td('agent', 'agent');
    c.agentText = h('span');
    c.agentSpark = spark(['c-conn']);
    c.agent.append(c.agentText, c.agentSpark);
    c.act = td('num', 'active');
    c.inact = td('num', 'inactive');
    c.cps = td('num', 'cps');
    c.spark = spark(['c-conn']);
    c.share = td('', 'share');
    c.shareBar = h('i');
    c.shareText = h('span');
    c.share.append(h('span', { class: 'share' }, c.shareBar), c.shareText);
    c.inb = td('num', 'inbps');
    c.outb = td('num', 'outbps');
    c.check = td('', 'check');
    c.last = td('num', 'latency');
    c.since = td('num', 'since');
    c.badge = h('span', { class: 'badge' });
    c.state.append(c.badge);
    c.tr = h('tr', { 'data-backend': r.addr }, c.state, c.addr, c.weight, c.agent, c.act, c.inact, c.cps, h('td', { class: 'spark-cell' }, c.spark), c.share, c.inb, c.outb, c.check, c.last, c.since);
    // A named real server shows its name, the address beside it; a
    // discovered one the name its source gives it (a pod, a container).
    const label = r.name || r.sourceName;
    if (label) {
      c.addr.append(h('span', { class: r.name ? 'rs-name' : 'rs-name rs-source-name' }, label), ' ', h('span', { class: 'rs-addr' }, r.addr));
      c.addr.title = label + ' ' + r.addr;
    } else {
      setText(c.addr, r.addr);
    }
    // A discovered real server says where it came from (docs/discovery.md).
    if (r.origin) {
      const where = 'discovered by ' + r.origin + (r.node ? ', on node ' + r.node : '');
      c.addr.append(' ', h('span', { class: 'rs-origin', 'data-origin': r.origin, title: where }, r.origin.split(':')[0]));
      c.addr.title = (c.addr.title || r.addr) + ' (' + where + ')';
    }
    c.ident = rowIdent(r);
    return c;
  }

  // rowIdent is what a row's address cell is built from: a row whose
  // server's names changed (a new pod at the same address) is built anew.
  function rowIdent(r) {
    return [r.name, r.sourceName, r.node, r.origin].join('\u0000');
  }

  // agentFigures reads the status's agent object (docs/agent.md) into a
  // short cell and a tooltip with every figure.
  function agentFigures(a) {
    if (!a) return ['–', 'no agent answer'];
    const parts = [];
    if (a.weight_percent != null) parts.push(a.weight_percent + '%');
    if (a.cpu_percent != null) parts.push('cpu ' + a.cpu_percent);
    if (a.memory_percent != null) parts.push('mem ' + a.memory_percent);
    if (a.admin && a.admin !== 'ready') parts.push(a.admin);
    const all = [['weight %', a.weight_percent], ['cpu busy %', a.cpu_percent], ['memory used %', a.memory_percent],
      ['load per cpu', a.load_per_cpu], ['pressure %', a.pressure_percent], ['io busy %', a.io_percent],
      ['in flight', a.in_flight], ['latency s', a.latency_seconds], ['state', a.admin], ['at', a.at]]
      .filter(([, v]) => v != null).map(([k, v]) => k + ': ' + v);
    return [parts.join(' · ') || '–', all.join('\n')];
  }

  function renderService(s, now) {
    let card = cards.get(s.key);
    if (!card) { card = newCard(s); cards.set(s.key, card); }
    const { el, refs } = card;
    setText(refs.title, s.name);
    refs.vip.hidden = s.name === s.key || s.name === s.address;
    setText(refs.vip, s.address);
    const tags = [s.scheduler, s.forwarding];
    if (s.persistence) tags.push('persistent ' + s.persistence);
    if (s.flags && s.flags.length) tags.push(s.flags.join(','));
    const tagText = tags.join('|');
    if (refs.tags._t !== tagText) { refs.tags._t = tagText; refs.tags.replaceChildren(...tags.map((t) => h('span', { text: t }))); }

    const up = s.reals.filter((r) => r.up).length;
    const level = s.reals.length === 0 || up === 0 ? 'bad' : up < s.reals.length ? 'warn' : 'ok';
    el.className = 'card ' + level;
    refs.health.className = 'pill health ' + level;
    refs.health.replaceChildren(h('b', { text: up + '/' + s.reals.length }), ' up');

    const hs = seriesOf(s.key);
    const cps = hs.conn.last();
    valueWithUnit(refs.cps, fmtNum(cps), '/s');
    drawSpark(refs.cpsSpark, [hs.conn]);
    const [iv, iu] = fmtBytes(hs.in.last()), [ov, ou] = fmtBytes(hs.out.last());
    valueWithUnit(refs.inb, iv, iu);
    valueWithUnit(refs.outb, ov, ou);
    drawSpark(refs.bytesSpark, [hs.in, hs.out]);
    setText(refs.active, fmtNum(s.active));
    setText(refs.inactive, fmtNum(s.inactive));
    const fc = forecasts.get(s.key);
    let fcText = fc ? 'in 5 min: ' + fmtNum(fc.connections_per_second) + '/s (' + fmtNum(fc.lower) + '–' + fmtNum(fc.upper) + ')' : '';
    if (fc && fc.capacity.connections_per_second > 0) {
      // The capacity the director learned (or was told), and its alert.
      fcText += ' · capacity ' + fmtNum(fc.capacity.connections_per_second) + '/s' + (fc.capacity.alert ? ' — forecast exceeds it' : '');
    }
    setText(refs.forecast, fcText);
    setText(refs.total, fmtNum(s.stats.connections) + ' conns · ' + bytesText(s.stats.in_bytes + s.stats.out_bytes) + ' total');
    const err = (label, n) => [h('b', { class: n ? 'nz' : '', text: fmtNum(n) }), ' ' + label];
    refs.errs.replaceChildren(...err('connect', s.stats.connect_errors), ' · ', ...err('refused', s.stats.refused),
      ...(s.protocol === 'udp' ? [' · ', ...err('dropped', s.stats.dropped)] : []));
    setText(refs.sched, s.reals.length + ' real server' + (s.reals.length === 1 ? '' : 's'));

    // Real servers, in the configuration's order.
    const seen = new Set();
    const svcWindow = hs.conn.sumLast(SHARE_WINDOW);
    s.reals.forEach((r) => {
      seen.add(r.addr);
      let c = refs.rows.get(r.addr);
      if (c && c.ident !== rowIdent(r)) { c.tr.remove(); c = null; }
      if (!c) { c = newRow(r); refs.rows.set(r.addr, c); }
      refs.tbody.append(c.tr); // (re)ordered; appending an attached node moves it
      c.tr.className = (r.up ? '' : 'down') + (r.up && r.weight === 0 ? ' zero' : '');
      c.badge.className = 'badge ' + r.state;
      setText(c.badge, r.state);
      c.badge.title = r.reason || '';
      setText(c.weight, r.weight === r.cfgWeight ? String(r.weight) : r.weight + ' (' + r.cfgWeight + ')');
      setText(c.act, fmtNum(r.active));
      setText(c.inact, fmtNum(r.inactive));
      const [agentText, agentTitle] = agentFigures(r.agent);
      setText(c.agentText, agentText);
      c.agent.title = agentTitle;
      const ah = seriesOf(s.key + ' ' + r.addr).agent;
      c.agentSpark.style.display = ah.v.length > 1 ? '' : 'none';
      if (ah.v.length > 1) drawSpark(c.agentSpark, [ah]);
      const rh = seriesOf(s.key + ' ' + r.addr);
      setText(c.cps, fmtNum(rh.conn.last()));
      drawSpark(c.spark, [rh.conn]);
      const share = svcWindow > 0 ? rh.conn.sumLast(SHARE_WINDOW) / svcWindow : 0;
      c.shareBar.style.width = (share * 100).toFixed(1) + '%';
      setText(c.shareText, svcWindow > 0 ? Math.round(share * 100) + '%' : '–');
      setText(c.inb, bytesText(rh.in.last()));
      setText(c.outb, bytesText(rh.out.last()));
      const hl = r.health;
      if (hl.checked) {
        const last = hl.last;
        const mark = last ? (last.ok ? '✓ ' : '✗ ') : '';
        setText(c.check, mark + (hl.check || 'check') + (hl.fails ? ' · ' + fmtNum(hl.fails) + ' failed' : ''));
        c.check.className = last ? (last.ok ? 'check-ok' : 'check-fail') : '';
        c.check.title = last ? (last.message || (last.ok ? 'passed' : 'failed')) + ' at ' + new Date(last.at).toLocaleTimeString() : 'not run yet';
        setText(c.last, last ? fmtLatency(last.latency_seconds) : '–');
      } else {
        setText(c.check, 'none');
        c.check.className = 'muted';
        c.check.title = 'no health check: always up';
        setText(c.last, '–');
      }
      setText(c.since, hl.since ? fmtDur((now - new Date(hl.since).getTime()) / 1000) : '–');
    });
    for (const [addr, c] of refs.rows) if (!seen.has(addr)) { c.tr.remove(); refs.rows.delete(addr); }
    return el;
  }

  function renderServices(model, now) {
    const box = $('services');
    const live = new Set();
    for (const s of model.services) {
      live.add(s.key);
      box.append(renderService(s, now));
    }
    for (const [k, card] of cards) if (!live.has(k)) { card.el.remove(); cards.delete(k); }
    $('no-services').hidden = model.services.length > 0;
    if (!$('no-services').hidden) box.append($('no-services'));
  }

  function renderVRRP(vrrp, now) {
    const body = $('vrrp-body');
    const insts = vrrp.instances || [];
    if (!insts.length) {
      body.dataset.vrrp = 'none';
      body.replaceChildren(h('p', { class: 'muted', text: 'Not configured on this director.' }));
      return;
    }
    body.dataset.vrrp = insts.map((i) => i.state).join(',');
    body.replaceChildren(...insts.map((i) => {
      const dl = h('dl');
      const row = (k, v) => { if (v !== '' && v !== undefined && v !== null) dl.append(h('dt', { text: k }), h('dd', { text: String(v) })); };
      row('interface', i.interface + ' · VRID ' + i.virtual_router_id + ' · v' + i.version);
      row('priority', i.priority === i.base_priority ? i.priority : i.priority + ' (base ' + i.base_priority + ')');
      if (i.state !== 'MASTER') row('master', i.master ? i.master + ' (priority ' + i.master_priority + ')' : 'unknown');
      row('VIPs', (i.virtual_ipaddress || []).join(' '));
      if (i.sync_group) row('sync group', i.sync_group);
      if (i.since) row('since', fmtDur((now - new Date(i.since).getTime()) / 1000) + ' ago');
      return h('div', { class: 'vrrp-inst', 'data-vrrp-instance': i.name },
        h('div', { class: 'row' }, h('span', { class: 'nm', text: i.name }), h('span', { class: 'badge ' + i.state.toLowerCase(), text: i.state })),
        dl,
        i.faults && i.faults.length ? h('div', { class: 'faults', text: 'fault: ' + i.faults.join(', ') }) : null);
    }));
  }

  // renderBGP shows the speaker's sessions and the VIPs it announces
  // (GET /api/v1/bgp); null when the API did not answer it.
  function renderBGP(bgp, now) {
    const body = $('bgp-body');
    if (!bgp || bgp.status) {
      body.dataset.bgp = 'none';
      setText($('bgp-summary'), '');
      body.replaceChildren(h('p', { class: 'muted', text: bgp ? 'Not configured on this director.' : 'No answer from /api/v1/bgp.' }));
      return;
    }
    const peers = bgp.peers || [];
    const vips = bgp.vips || [];
    const up = peers.filter((p) => p.up).length;
    const announced = vips.filter((v) => v.announced).length;
    body.dataset.bgp = up + '/' + peers.length + ' ' + announced + '/' + vips.length;
    setText($('bgp-summary'), 'AS ' + bgp.asn + ' · ' + up + '/' + peers.length + ' sessions · ' + announced + '/' + vips.length + ' announced');
    const peerRows = peers.map((p) => {
      const dl = h('dl');
      const row = (k, v) => { if (v !== '' && v !== undefined && v !== null) dl.append(h('dt', { text: k }), h('dd', { text: String(v) })); };
      row('AS', p.asn);
      if (p.up && p.since) row('up for', fmtDur((now - new Date(p.since).getTime()) / 1000));
      row('prefixes sent', p.advertised);
      if (p.hold_time) row('hold time', p.hold_time + 's');
      if (p.bfd) row('BFD', p.bfd);
      if (p.flaps) row('flaps', p.flaps);
      return h('div', { class: 'vrrp-inst bgp-peer', 'data-bgp-peer': p.address },
        h('div', { class: 'row' }, h('span', { class: 'nm mono', text: p.address }),
          h('span', { class: 'badge ' + (p.up ? 'up' : 'down'), text: p.up ? 'established' : p.state })),
        dl);
    });
    const vipRows = vips.map((v) => {
      const state = v.suppressed ? 'suppressed' : v.announced ? 'announced' : 'withdrawn';
      const cls = v.suppressed ? 'draining' : v.announced ? 'up' : 'down';
      const why = v.suppressed ? 'held back by flap damping (penalty ' + v.penalty.toFixed(2) + ')'
        : !v.healthy ? 'a service on it lacks its quorum' : v.announced ? '' : 'waiting for announce_delay';
      return h('div', { class: 'vrrp-inst bgp-vip', 'data-bgp-prefix': v.prefix, title: (v.services || []).join(', ') },
        h('div', { class: 'row' }, h('span', { class: 'nm mono', text: v.prefix }), h('span', { class: 'badge ' + cls, text: state })),
        why || v.flaps ? h('div', { class: 'muted small', text: [why, v.flaps ? v.flaps + ' flaps' : ''].filter(Boolean).join(' · ') }) : null);
    });
    body.replaceChildren(...peerRows, ...vipRows);
  }

  // renderSync shows the connection sync (docs/sync.md): the panel stays
  // hidden on a director without a sync section.
  function renderSync(st) {
    const body = $('sync-body');
    if (!st || st.status === 'sync not configured') {
      body.dataset.sync = 'none';
      $('sync').hidden = true;
      return;
    }
    $('sync').hidden = false;
    body.dataset.sync = st.status;
    const c = st.counters || {};
    const dl = h('dl');
    const row = (k, v) => { if (v !== '' && v !== undefined && v !== null) dl.append(h('dt', { text: k }), h('dd', { text: String(v) })); };
    row('link', (st.mode === 'multicast' ? st.group : (st.peers || []).join(' ')) + ':' + st.port + (st.interface ? ' on ' + st.interface : '') + ' · syncid ' + st.sync_id);
    row('flows', fmtNum(st.flows) + ' sent · ' + fmtNum(st.peer_flows) + ' from peers');
    row('entries', fmtNum(c.entries_sent) + ' sent · ' + fmtNum(c.entries_received) + ' received · ' + fmtNum(c.installed) + ' installed');
    if (c.install_errors) row('install errors', fmtNum(c.install_errors));
    row('lag', st.lag_median_ms.toFixed(1) + ' ms median · ' + st.lag_p99_ms.toFixed(1) + ' ms p99');
    row('resyncs', fmtNum(c.resyncs_requested) + ' asked · ' + fmtNum(c.resyncs_served) + ' served' + (st.resync && st.resync.result ? ' · start-up ' + st.resync.result : ''));
    if (c.retransmits || c.lost) row('repairs', fmtNum(c.retransmits) + ' retransmitted · ' + fmtNum(c.lost) + ' lost');
    const drops = Object.entries(c.drops || {}).filter(([, n]) => n > 0);
    const peers = (st.peer_nodes || []).map((p) => h('div', { class: 'row', 'data-sync-peer': p.node },
      h('span', { class: 'nm mono', text: p.address || p.node }),
      h('span', { class: 'muted small', text: 'heard ' + fmtDur(Math.max(0, (Date.now() - new Date(p.last_heard).getTime()) / 1000)) + ' ago · lag ' + p.lag_ms.toFixed(1) + ' ms' + (p.missing ? ' · ' + p.missing + ' missing' : '') })));
    body.replaceChildren(h('div', { class: 'vrrp-inst' },
      h('div', { class: 'row' }, h('span', { class: 'nm', text: (st.peer_nodes || []).length + ' peer' + ((st.peer_nodes || []).length === 1 ? '' : 's') }),
        h('span', { class: 'badge ' + (st.status === 'running' ? 'master' : 'backup'), text: st.status.toUpperCase() })),
      ...peers, dl,
      drops.length ? h('div', { class: 'faults', 'data-field': 'sync-drops', text: 'dropped: ' + drops.map(([k, n]) => k + ' ' + fmtNum(n)).join(', ') }) : null));
  }

  function renderEvents() {
    if (!eventsDirty) return;
    eventsDirty = false;
    $('no-events').hidden = events.length > 0;
    setText($('events-count'), events.length ? '(' + events.length + ')' : '');
    $('events').replaceChildren(...events.map((ev) => {
      const li = h('li', { class: ev.fresh ? 'new' : '', 'data-event': ev.to, title: ev.at.toISOString() });
      ev.fresh = false;
      const what = h('span', { class: 'what' });
      if (ev.vrrp) what.append(h('b', { text: 'VRRP ' + ev.vrrp }));
      else what.append(h('b', { text: ev.svc }), ' ', h('span', { class: 'mono', text: ev.addr }));
      what.append(' ', ev.from ? ev.from + ' → ' : '', h('b', { text: ev.to }));
      li.append(h('span', { class: 't', text: fmtClock(ev.at) }), h('span', { class: 'd ' + ev.to }), what);
      if (ev.why) li.append(h('span', { class: 'why', text: ev.why }));
      return li;
    }));
  }

  function renderPills(model, vrrp) {
    const pills = [];
    const pill = (cls, bold, rest, title) => pills.push(h('span', { class: 'pill ' + cls, title }, h('b', { text: bold }), rest ? ' ' + rest : ''));
    pill('', String(model.services.length), model.services.length === 1 ? 'virtual service' : 'virtual services');
    let up = 0, total = 0;
    for (const s of model.services) for (const r of s.reals) { total++; if (r.up) up++; }
    pill(total === 0 ? '' : up === total ? 'ok' : up === 0 ? 'bad' : 'warn', up + '/' + total, 'real servers up');
    const insts = vrrp.instances || [];
    if (insts.length) {
      const counts = {};
      for (const i of insts) counts[i.state] = (counts[i.state] || 0) + 1;
      const text = Object.entries(counts).map(([k, n]) => (insts.length > 1 ? n + ' ' : '') + k).join(' · ');
      pill(counts.FAULT ? 'bad' : counts.MASTER || counts.BACKUP ? 'ok' : 'warn', 'VRRP', text);
    }
    $('pills').replaceChildren(...pills);
  }

  // ---- the model: what the API says, reduced to what is shown ----

  function buildModel(services, t) {
    const live = new Set();
    const out = services.map((svc) => {
      const st = svc.status || {};
      const key = st.key || (svc.fwmark ? (svc.family === 'ipv6' ? 'fwm6/' : 'fwm/') + svc.fwmark : svc.protocol + '/' + svc.address);
      const name = svc.name || key;
      const reals = (svc.real_servers || []).map((rs) => {
        const rst = rs.status || {};
        const hl = rst.health || { state: 'up' };
        const rk = key + ' ' + rs.address;
        live.add(rk);
        sample(rk, t, rst.stats || {}, rst.rates, rst.active_connections || 0);
        if (rst.agent && rst.agent.weight_percent != null) seriesOf(rk).agent.push(rst.agent.weight_percent);
        let state = hl.state || 'up';
        if (rst.drained && state === 'up') state = 'draining';
        return {
          addr: rs.address, name: rs.name || '', origin: rs.origin || '', sourceName: rs.source_name || '', node: rs.node || '', cfgWeight: rs.weight, weight: rst.weight ?? rs.weight, active: rst.active_connections || 0,
          inactive: rst.inactive_connections || 0, up: !!rst.up && state === 'up', state, reason: hl.reason, health: hl, stats: rst.stats || {},
          agent: rst.agent,
        };
      });
      const active = reals.reduce((a, r) => a + r.active, 0);
      const inactive = reals.reduce((a, r) => a + r.inactive, 0);
      live.add(key);
      sample(key, t, st.stats || {}, st.rates, active);
      // A firewall-mark service has no address: it shows as ipvsadm lists it.
      const address = svc.fwmark ? 'FWM ' + svc.fwmark + (svc.family === 'ipv6' ? ' IPv6' : '') : svc.address;
      return {
        key, name, address, protocol: svc.protocol || 'tcp', scheduler: svc.scheduler, forwarding: svc.forwarding,
        persistence: svc.persistence_timeout, flags: svc.scheduler_flags, reals, active, inactive, stats: st.stats || {},
      };
    });
    forget(live);
    return { services: out };
  }

  // ---- the poll loop ----

  let timer = null;
  let failures = 0;
  let versionShown = false;
  let updates = 0;

  function schedule(ms) { clearTimeout(timer); timer = setTimeout(tick, ms); }

  function setLive(ok, text) {
    $('live-dot').className = 'dot ' + (ok ? 'ok' : 'bad');
    setText($('live-text'), text);
    document.body.classList.toggle('stale', !ok);
    document.body.dataset.state = ok ? 'live' : 'error';
  }

  // Forecasts change once a minute: fetched every FORECAST_MS, the 5-minute
  // one shown under each service's rate. Failures are ignored (an older
  // daemon has no forecasts).
  const FORECAST_MS = 30000;
  const forecasts = new Map(); // service key -> the 5-minute forecast
  let forecastAt = 0;
  function refreshForecasts() {
    if (Date.now() - forecastAt < FORECAST_MS) return;
    forecastAt = Date.now();
    api('api/v1/forecasts').then((fs) => {
      forecasts.clear();
      for (const f of fs || []) {
        const h5 = (f.forecasts || []).find((x) => x.horizon === '5m');
        if (h5) forecasts.set(f.key, { ...h5, capacity: f.capacity || {} });
      }
    }).catch(() => {});
  }

  // ---- discovery: each source's state (docs/discovery.md) ----
  //
  // GET /api/v1/discovery is asked with every poll, apart from the main
  // calls: an older daemon without it, or a failed call, leaves the rest of
  // the page alone (the panel keeps its last data). Every string a source
  // gives (its error above all, which comes from a remote system: a DNS
  // server, an apiserver, a file someone wrote) goes into the page as text,
  // never as HTML.
  let discovery = null; // the last answer's sources; null: none yet
  function refreshDiscovery() {
    // Never rejects: tick awaits it beside the main calls.
    return api('api/v1/discovery').then((d) => { discovery = (d && d.sources) || []; }).catch(() => {});
  }

  // discoveryState is govsadm -L --discovery's State: FAIL (the last answer
  // was an error), HELD (a sudden drop is held), wait (no answer yet), ok.
  function discoveryState(s) {
    if (!s.ok) return 'fail';
    if (s.held) return 'held';
    if (!s.last_success) return 'wait';
    return 'ok';
  }

  // trackDiscovery lists a source's state changes among the transitions, as
  // "SERVICE discovery TYPE ok → fail" with the error (as text) for why.
  const prevDiscovery = new Map(); // service key -> state
  function trackDiscovery(srcs, states, now) {
    const live = new Set();
    srcs.forEach((s, i) => {
      const st = states[i];
      live.add(s.key);
      const prev = prevDiscovery.get(s.key);
      prevDiscovery.set(s.key, st);
      const ev = { who: 'discovery ' + s.key, svc: s.service || s.key, addr: 'discovery ' + s.type, to: st };
      const why = st === 'fail' ? s.last_error || '' : st === 'held' ? 'drop ' + s.held.from + ' → ' + s.held.to + ' held until confirmed' : '';
      if (prev === undefined) {
        // What happened before the page opened: a failure or a held drop
        // in force, at its time.
        if (firstDiscovery && st === 'fail' && s.last_error_at) addEvent({ ...ev, at: new Date(s.last_error_at), from: null, why });
        if (firstDiscovery && st === 'held') addEvent({ ...ev, at: new Date(s.held.since), from: null, why });
      } else if (prev !== st) {
        addEvent({ ...ev, at: now, from: prev, why });
      }
    });
    for (const k of [...prevDiscovery.keys()]) if (!live.has(k)) prevDiscovery.delete(k);
    if (discovery) firstDiscovery = false;
  }
  let firstDiscovery = true;

  const ago = (t, now) => (t ? fmtDur((now - new Date(t).getTime()) / 1000) + ' ago' : 'never');

  function renderDiscovery(now) {
    const panel = $('discovery');
    const srcs = discovery || [];
    panel.hidden = srcs.length === 0; // a director without discovery shows nothing
    const states = srcs.map(discoveryState);
    trackDiscovery(srcs, states, new Date(now));
    panel.dataset.discovery = states.join(',');
    // A failing or held source is worth the top bar: the pool it feeds is
    // frozen (keep_last), draining (set_empty) or kept from a drop.
    const bad = states.filter((s) => s === 'fail').length, held = states.filter((s) => s === 'held').length;
    if (srcs.length) {
      const text = bad ? bad + ' failing' : held ? held + ' held' : srcs.length === 1 ? '1 source ok' : srcs.length + ' sources ok';
      $('pills').append(h('span', { class: 'pill ' + (bad ? 'bad' : held ? 'warn' : 'ok'), 'data-pill': 'discovery', title: 'discovery sources (panel on the right)' },
        h('b', { text: 'Discovery' }), ' ' + text));
    }
    setText($('discovery-count'), srcs.length ? '(' + srcs.length + ')' : '');
    $('discovery-body').replaceChildren(...srcs.map((s, i) => {
      const st = states[i];
      const dl = h('dl');
      const row = (k, field, v, cls, title) => {
        if (v === '' || v === undefined || v === null) return;
        dl.append(h('dt', { text: k }), h('dd', { 'data-field': field, class: cls, title, text: String(v) }));
      };
      row('origin', 'origin', s.origin + ' (' + s.fail_policy + ')');
      row('servers', 'servers', s.servers_found + ' found · ' + s.servers_active + ' active · ' + s.servers_draining + ' draining');
      row('last success', 'last-success', ago(s.last_success, now) + ' · ' + fmtNum(s.answers) + ' answers', '', s.last_success || '');
      if (s.errors || s.last_error) row('errors', 'errors', fmtNum(s.errors) + (s.last_error_at ? ' · last ' + ago(s.last_error_at, now) : ''), '', s.last_error_at || '');
      // The error stays listed after the source recovers, dimmed: it says
      // what went wrong last, which is what one looks for after an outage.
      row('last error', 'last-error', s.last_error, s.ok ? 'err old' : 'err');
      if (s.held) {
        const hd = s.held;
        row('held', 'held', 'drop ' + hd.from + ' → ' + hd.to + ' since ' + ago(hd.since, now) + ' · ' + hd.answers + '/' + hd.confirm +
          ' answers or at ' + fmtClock(new Date(hd.confirm_at)), 'warn', hd.confirm_at);
      }
      row('applied', 'applies', fmtNum(s.applies) + (s.last_apply ? ' · last ' + ago(s.last_apply, now) : ''));
      row('refused', 'apply-error', s.apply_error, 'err');
      // What it is doing in words when that is not simply "ok": keeping the
      // last good set (the error it quotes is listed above: not twice), or
      // waiting for a first answer. A held drop has its own line.
      let msg = st === 'fail' || st === 'wait' ? s.message || '' : '';
      if (s.last_error && msg.endsWith(': ' + s.last_error)) msg = msg.slice(0, -(s.last_error.length + 2));
      return h('div', { class: 'disc-src', 'data-discovery-source': s.key, 'data-state': st },
        h('div', { class: 'row' }, h('span', { class: 'nm', text: s.service || s.key }), h('span', { class: 'tag', text: s.type }),
          h('span', { class: 'badge ' + st, 'data-field': 'state', title: s.message || '', text: st === 'ok' || st === 'wait' ? st : st.toUpperCase() })),
        dl,
        msg ? h('div', { class: 'disc-msg ' + st, 'data-field': 'message', text: msg }) : null);
    }));
  }

  // The sync state is fetched with each poll but apart from it: a failure
  // (an older daemon) hides the panel and does not stop the page.
  function refreshSync() {
    api('api/v1/sync').then(renderSync).catch((e) => { if (!(e instanceof Unauthorized)) renderSync(null); });
  }

  async function tick() {
    const start = Date.now();
    refreshForecasts();
    const discovered = refreshDiscovery();
    refreshSync();
    try {
      // BGP is a side panel: its failure must not take the page down.
      const [services, vrrp, bgp] = await Promise.all([api('api/v1/services'), api('api/v1/vrrp'),
        api('api/v1/bgp').catch((e) => { if (e instanceof Unauthorized) throw e; return null; })]);
      await discovered;
      const now = Date.now();
      const model = buildModel(services, now);
      for (const s of model.services) for (const r of s.reals) trackHealth(s.name, s.key + ' ' + r.addr, r.addr, { ...r.health, state: r.state }, new Date(now));
      for (const i of vrrp.instances || []) trackVRRP(i, new Date(now));
      const liveRS = new Set(model.services.flatMap((s) => s.reals.map((r) => s.key + ' ' + r.addr)));
      for (const k of [...prevHealth.keys()]) if (!liveRS.has(k)) prevHealth.delete(k);
      const liveVRRP = new Set((vrrp.instances || []).map((i) => i.name));
      for (const k of [...prevVRRP.keys()]) if (!liveVRRP.has(k)) prevVRRP.delete(k);
      firstPoll = false;
      renderPills(model, vrrp);
      renderKPIs(model);
      renderServices(model, now);
      renderVRRP(vrrp, now);
      renderBGP(bgp, now);
      renderDiscovery(now); // after renderPills: it adds its own pill
      renderEvents();
      failures = 0;
      updates++;
      document.body.dataset.updates = String(updates);
      setLive(true, 'live · ' + fmtClock(new Date(now)));
      $('lock').hidden = !sessionStorage.getItem(TOKEN_KEY);
      if (!versionShown) {
        versionShown = true;
        api('api/v1/version').then((v) => setText($('version'), v.version)).catch(() => { versionShown = false; });
      }
      schedule(Math.max(100, POLL_MS - (Date.now() - start)));
    } catch (e) {
      if (e instanceof Unauthorized) { askToken(); return; }
      failures++;
      setLive(false, 'API unreachable: ' + e.message + ' · retrying');
      schedule(Math.min(POLL_MS * 2 ** Math.min(failures, 4), 10000));
    }
  }

  // ---- the token ----

  function askToken() {
    clearTimeout(timer);
    const rejected = !!sessionStorage.getItem(TOKEN_KEY);
    sessionStorage.removeItem(TOKEN_KEY);
    document.body.dataset.state = 'login';
    $('login-error').hidden = !rejected;
    setText($('login-error'), rejected ? 'The API refused that token.' : '');
    $('live-dot').className = 'dot';
    setText($('live-text'), 'waiting for the API token');
    const local = /^(localhost|127(\.\d+){3}|\[::1\])$/.test(location.hostname);
    $('login-insecure').hidden = location.protocol === 'https:' || local;
    $('login').hidden = false;
    $('token').focus();
  }

  $('login-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const token = $('token').value.trim();
    if (!token) return;
    sessionStorage.setItem(TOKEN_KEY, token);
    $('token').value = '';
    $('login').hidden = true;
    setText($('live-text'), 'connecting…');
    schedule(0);
  });

  $('lock').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    location.reload();
  });

  tick();
})();
