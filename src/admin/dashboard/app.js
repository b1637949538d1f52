// The dashboard's script: polls /dashboard/data once a second and redraws. The
// admin token, when one is needed, lives in this tab's sessionStorage and goes in
// the Authorization header only. Tables are rebuilt as one string per second and
// swapped in only when they changed, so a thousand backends cost one DOM update.
'use strict';
(function () {
  const KEY = 'parapet-admin-token';
  const COLORS = ['#888', '#2a2', '#39f', '#c80', '#d33'];
  const $ = (id) => document.getElementById(id);
  // The ring's length on the server: the charts' x axis is five minutes, now on the right.
  const SAMPLES = 300;
  const last = {};
  let previous = new Map();

  function auth() {
    const token = sessionStorage.getItem(KEY);
    return token ? { Authorization: 'Bearer ' + token } : {};
  }

  function esc(s) {
    return String(s).replace(/[&<>"']/g, (c) => ({
      '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
    })[c]);
  }

  function setText(id, text) {
    const el = $(id);
    if (el.textContent !== text) el.textContent = text;
  }

  function setHtml(id, html) {
    if (last[id] === html) return;
    last[id] = html;
    $(id).innerHTML = html;
  }

  function pct(x) { return (100 * x).toFixed(1) + '%'; }
  function ms(x) { return x < 10 ? x.toFixed(2) + ' ms' : x.toFixed(0) + ' ms'; }
  function bytes(n) {
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
    return (i ? n.toFixed(1) : n) + ' ' + units[i];
  }
  function sum(a) { return a.reduce((x, y) => x + y, 0); }
  function duration(s) {
    const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
    return (d ? d + 'd ' : '') + (d || h ? h + 'h ' : '') + m + 'm ' + (s % 60) + 's';
  }

  function showLogin(message) {
    $('board').hidden = true;
    $('login').hidden = false;
    setText('login-error', message);
    setText('state', 'token needed');
  }

  async function poll() {
    let resp;
    try {
      resp = await fetch('/dashboard/data', { headers: auth(), cache: 'no-store' });
    } catch (e) {
      setText('state', 'unreachable');
      return true;
    }
    if (resp.status === 401) {
      showLogin(sessionStorage.getItem(KEY) ? 'that token was refused' : '');
      sessionStorage.removeItem(KEY);
      return false;
    }
    if (!resp.ok) {
      setText('state', 'error ' + resp.status);
      return true;
    }
    const data = await resp.json();
    $('login').hidden = true;
    $('board').hidden = false;
    render(data);
    setText('state', 'live, updated ' + new Date().toLocaleTimeString());
    return true;
  }

  async function loop() {
    if (await poll()) setTimeout(loop, 1000);
  }

  function render(d) {
    const a = d.about;
    setText('about', 'v' + a.version + ' · up ' + duration(d.uptime_seconds) + ' · ' +
      a.config_file + ' loaded ' + new Date(a.loaded_at * 1000).toLocaleString());
    const h = d.history;
    const now = h.length ? h[h.length - 1] : null;
    setText('rps', now ? String(sum(now.classes)) : '-');
    const served = h.filter((s) => sum(s.classes) > 0);
    const latest = served.length ? served[served.length - 1] : null;
    setText('p50', latest ? ms(latest.p50_ms) : '-');
    setText('p99', latest ? ms(latest.p99_ms) : '-');
    const minute = h.slice(-60);
    const all = sum(minute.map((s) => sum(s.classes)));
    setText('error-rate', all ? pct(sum(minute.map((s) => s.classes[4])) / all) : '-');
    setText('hit-ratio', d.shield ? pct(d.shield.hit_ratio) : 'no cache');
    setText('active', String(d.requests.active));
    setText('open', String(d.connections.open));
    setText('total', String(d.requests.total));
    chart($('chart-rps'), [0, 1, 2, 3, 4].map((c) => h.map((s) => s.classes[c])), COLORS);
    chart($('chart-latency'), [h.map((s) => s.p50_ms), h.map((s) => s.p99_ms)], [COLORS[1], COLORS[4]]);
    shield(d.shield);
    backends(d.upstreams);
    routes(d.routes);
    setHtml('refused', d.connections.refused.map((r) =>
      '<tr><td>' + esc(r.listener) + '</td><td>' + esc(r.reason) + '</td><td class="n">' +
      r.count + '</td></tr>').join('') || '<tr><td colspan="3" class="muted">none</td></tr>');
  }

  function shield(s) {
    if (!s) { setHtml('shield', 'no route caches'); return; }
    const looked = sum(Object.values(s.lookups));
    const results = Object.keys(s.lookups).sort().map((k) => esc(k) + ' ' + s.lookups[k]).join(', ');
    const tiers = s.tiers.map((t) => '<tr><td>' + esc(t.name) + '</td><td class="n">' + t.objects +
      '</td><td class="n">' + bytes(t.bytes) + '</td><td class="n">' + bytes(t.max_bytes) + '</td></tr>').join('');
    const served = s.bytes_from_cache + s.bytes_from_origin;
    setHtml('shield',
      '<p>hit ratio <b>' + pct(s.hit_ratio) + '</b> · origin offload <b>' +
      (looked ? pct(s.origin_fetches_saved / looked) : '-') + '</b> of cacheable requests (' +
      s.origin_fetches_saved + ' not sent to the origin) and <b>' +
      (served ? pct(s.bytes_from_cache / served) : '-') + '</b> of their bytes (' +
      bytes(s.bytes_from_cache) + ' from the cache, ' + bytes(s.bytes_from_origin) +
      ' from the origin) · collapsed ' + s.collapsed +
      ' · evictions ' + s.evictions + '</p><p class="muted">lookups: ' + results + '</p>' +
      '<table><thead><tr><th>tier</th><th>objects</th><th>bytes</th><th>max</th></tr></thead><tbody>' +
      tiers + '</tbody></table>');
  }

  function backends(upstreams) {
    const seen = new Map();
    const rows = [];
    for (const u of upstreams) {
      for (const b of u.backends) {
        const key = u.name + ' ' + b.address;
        const before = previous.get(key);
        const delta = before ? b.attempts - before.attempts : 0;
        const failed = before ? b.failures - before.failures : 0;
        seen.set(key, { attempts: b.attempts, failures: b.failures, answers: b.answers, micros: b.answer_micros });
        const answered = before ? b.answers - before.answers : 0;
        const latency = answered > 0 ? ms((b.answer_micros - before.micros) / answered / 1000)
          : (b.answers ? ms(b.answer_micros / b.answers / 1000) : '-');
        const errors = delta > 0 ? failed / delta : (b.attempts ? b.failures / b.attempts : 0);
        const health = b.healthy ? 'healthy' : 'unhealthy';
        const circuit = b.circuit || '-';
        rows.push('<tr class="' + health + '" data-backend="' + esc(b.address) + '" data-upstream="' +
          esc(u.name) + '"><td>' + esc(u.name) + '</td><td>' + esc(b.address) + '</td><td class="health ' +
          (b.healthy ? 'ok' : 'bad') + '">' + health + '</td><td class="' +
          (circuit === 'closed' || circuit === '-' ? '' : 'warn') + '">' + esc(circuit) +
          '</td><td class="n">' + b.in_flight + '</td><td class="n">' + delta + '</td><td class="n">' +
          pct(errors) + '</td><td class="n">' + latency + '</td><td class="n">' + b.attempts + '</td><td class="n">' + u.retries +
          '</td><td class="n">' + u.retry_budget_available + '</td><td class="n">' + u.retry_budget_exhausted + '</td><td>' + esc(b.last_error || '') + '</td></tr>');
      }
    }
    previous = seen;
    setHtml('backends', rows.join(''));
  }

  function routes(list) {
    setHtml('routes', list.map((r) => '<tr><td>' + esc(r.route) + '</td><td>' + esc(r.upstream) +
      '</td><td class="n">' + r.requests + '</td>' + [1, 2, 3, 4].map((c) => '<td class="n">' +
      r.classes[c] + '</td>').join('') + '<td class="n">' + r.forbidden + '</td><td class="n">' +
      r.rate_limited + '</td></tr>').join(''));
  }

  // Lines of `series` (one value a second, newest last) on `canvas`, scaled to the
  // largest value.
  function chart(canvas, series, colors) {
    const ctx = canvas.getContext('2d');
    const w = canvas.width, h = canvas.height, pad = 4;
    ctx.clearRect(0, 0, w, h);
    const top = Math.max(1, ...series.map((s) => Math.max(0, ...s)));
    const n = SAMPLES;
    ctx.fillStyle = '#888';
    ctx.font = '11px sans-serif';
    ctx.fillText(top.toFixed(top < 10 ? 2 : 0), pad, 12);
    series.forEach((s, i) => {
      ctx.strokeStyle = colors[i];
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      s.forEach((v, x) => {
        const px = pad + (w - 2 * pad) * (x + n - s.length) / (n - 1);
        const py = h - pad - (h - 2 * pad) * v / top;
        if (x === 0) ctx.moveTo(px, py); else ctx.lineTo(px, py);
      });
      ctx.stroke();
    });
  }

  $('login').addEventListener('submit', (e) => {
    e.preventDefault();
    sessionStorage.setItem(KEY, $('token').value);
    $('token').value = '';
    setText('login-error', '');
    loop();
  });

  $('purge-kind').addEventListener('change', () => {
    $('purge-host').hidden = $('purge-kind').value !== 'path';
  });

  $('purge').addEventListener('submit', async (e) => {
    e.preventDefault();
    const soft = $('purge-soft').checked;
    const value = $('purge-value').value.trim();
    const body = $('purge-kind').value === 'path'
      ? { host: $('purge-host').value.trim() || location.host, path: value, soft }
      : { tags: value.split(',').map((t) => t.trim()).filter((t) => t), soft };
    const result = $('purge-result');
    result.className = '';
    result.textContent = 'purging...';
    try {
      const resp = await fetch('/cache/purge', {
        method: 'POST',
        headers: Object.assign({ 'Content-Type': 'application/json' }, auth()),
        body: JSON.stringify(body),
      });
      const text = await resp.text();
      let purged = null;
      try { purged = JSON.parse(text).purged; } catch (err) { purged = null; }
      if (resp.ok) {
        result.className = 'ok';
        result.textContent = 'purged ' + purged + ' object' + (purged === 1 ? '' : 's');
      } else if (resp.status === 404) {
        result.className = 'warn';
        result.textContent = 'nothing stored matched (404)';
      } else {
        result.className = 'bad';
        result.textContent = resp.status + ': ' + text.trim();
        if (resp.status === 401) showLogin('that token was refused');
      }
    } catch (err) {
      result.className = 'bad';
      result.textContent = 'failed: ' + err;
    }
  });

  loop();
})();
