// Flotilla's web console: a single page over the cluster's own API (same origin, same
// bearer token as kubectl). Every kind the API serves is listed from discovery and shown
// with the server's Table columns, so new kinds appear without new page code. Lists and
// details follow watches (streamed JSON lines), never polling. Text is only ever set with
// textContent (no HTML from the API is interpreted).
'use strict';

const TABLE = 'application/json;as=Table;v=v1;g=meta.k8s.io';
const $ = (sel) => document.querySelector(sel);

/** el('a', {href: '#/'}, 'text', child…): an element with attributes and children. */
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

const state = {
  token: sessionStorage.getItem('flotilla-token') || '',
  namespace: sessionStorage.getItem('flotilla-namespace') || 'default',
  kinds: [], // {group, version, plural, kind, namespaced, verbs, scale}
  views: [], // AbortControllers of the current view's watches
};

class ApiError extends Error {}

async function api(path, opts = {}) {
  const headers = Object.assign({ Authorization: 'Bearer ' + state.token, Accept: 'application/json' }, opts.headers || {});
  const resp = await fetch(path, Object.assign({}, opts, { headers }));
  if (resp.status === 401) {
    logout('The API refused the token: 401 Unauthorized.');
    throw new ApiError('Unauthorized');
  }
  if (!resp.ok) {
    let message = resp.status + ' ' + resp.statusText;
    try { message = (await resp.json()).message || message; } catch (_) { /* not a Status */ }
    throw new ApiError(message);
  }
  return opts.text ? resp.text() : resp.json();
}

/** Streams the watch of `path` (from `resourceVersion`), calling onEvent per event, until
 * `signal` aborts; a watch the server ends is started again from the last version seen. */
async function watch(path, resourceVersion, accept, onEvent, signal) {
  let rv = resourceVersion;
  while (!signal.aborted) {
    const sep = path.includes('?') ? '&' : '?';
    let resp;
    try {
      resp = await fetch(`${path}${sep}watch=1&allowWatchBookmarks=true&resourceVersion=${encodeURIComponent(rv || '')}`, {
        headers: { Authorization: 'Bearer ' + state.token, Accept: accept }, signal,
      });
    } catch (_) { return; }
    if (resp.status === 401) { logout('The API refused the token: 401 Unauthorized.'); return; }
    if (!resp.ok) { onEvent({ type: 'RELIST' }); return; }
    const reader = resp.body.getReader();
    const decoder = new TextDecoder();
    let buf = '';
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += decoder.decode(value, { stream: true });
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          if (!line.trim()) continue;
          const ev = JSON.parse(line);
          if (ev.type === 'ERROR') { onEvent({ type: 'RELIST' }); return; }
          const meta = ev.object && (ev.object.metadata || {});
          if (meta && meta.resourceVersion) rv = meta.resourceVersion;
          if (ev.type !== 'BOOKMARK') onEvent(ev);
        }
      }
    } catch (_) { return; }
  }
}

function liveSignal() {
  const c = new AbortController();
  state.views.push(c);
  return c.signal;
}

function stopViews() {
  for (const c of state.views) c.abort();
  state.views = [];
}

// ---- login ------------------------------------------------------------------------------

function logout(message) {
  stopViews();
  state.token = '';
  sessionStorage.removeItem('flotilla-token');
  $('#kinds').hidden = true;
  $('#logout').hidden = true;
  $('#ns-label').hidden = true;
  const main = $('#main');
  main.replaceChildren(loginCard);
  $('#login-error').textContent = message || '';
}

const loginCard = $('#login');

async function login(token) {
  state.token = token;
  try {
    await api('/api/v1/namespaces?limit=1');
  } catch (e) {
    if (!(e instanceof ApiError && e.message === 'Unauthorized')) $('#login-error').textContent = e.message;
    return;
  }
  sessionStorage.setItem('flotilla-token', token);
  await start();
}

$('#login-form').addEventListener('submit', (e) => {
  e.preventDefault();
  login($('#token').value.trim());
});
$('#logout').addEventListener('click', () => logout('Logged out.'));

// ---- discovery --------------------------------------------------------------------------

async function discover() {
  const kinds = [];
  const add = (group, version, list) => {
    for (const r of list.resources || []) {
      if (r.name.includes('/')) continue;
      if (!['list', 'watch'].every((v) => (r.verbs || []).includes(v))) continue;
      const scale = (list.resources || []).some((s) => s.name === r.name + '/scale');
      kinds.push({ group, version, plural: r.name, kind: r.kind, namespaced: r.namespaced, verbs: r.verbs, scale });
    }
  };
  add('', 'v1', await api('/api/v1'));
  const groups = await api('/apis');
  await Promise.all((groups.groups || []).map(async (g) => {
    const gv = g.preferredVersion.groupVersion;
    try { add(g.name, gv.split('/')[1], await api('/apis/' + gv)); } catch (_) { /* a group that fails to list */ }
  }));
  kinds.sort((a, b) => (a.group || '').localeCompare(b.group || '') || a.kind.localeCompare(b.kind));
  state.kinds = kinds;
}

function findKind(group, plural) {
  return state.kinds.find((k) => k.group === group && k.plural === plural);
}

function kindOf(apiVersion, kind) {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
  return state.kinds.find((k) => k.group === group && k.kind === kind && k.version === version)
    || state.kinds.find((k) => k.group === group && k.kind === kind);
}

function base(k, ns) {
  const root = k.group ? `/apis/${k.group}/${k.version}` : `/api/${k.version}`;
  return k.namespaced && ns ? `${root}/namespaces/${encodeURIComponent(ns)}/${k.plural}` : `${root}/${k.plural}`;
}

function listHref(k) { return `#/list/${k.group || 'core'}/${k.version}/${k.plural}`; }
function objHref(k, ns, name) { return `#/obj/${k.group || 'core'}/${k.version}/${k.plural}/${ns || '_'}/${encodeURIComponent(name)}`; }

function renderNav() {
  const nav = $('#kinds');
  nav.replaceChildren(el('a', { href: '#/' }, 'Overview'));
  let group = null;
  for (const k of state.kinds) {
    if (k.group !== group) {
      group = k.group;
      nav.append(el('h3', {}, group || 'core'));
    }
    nav.append(el('a', { href: listHref(k), dataset: { kind: k.kind } }, k.kind));
  }
  nav.hidden = false;
}

async function renderNamespaces() {
  const select = $('#namespace');
  const list = await api('/api/v1/namespaces');
  const names = list.items.map((n) => n.metadata.name);
  if (!names.includes(state.namespace)) state.namespace = names.includes('default') ? 'default' : names[0];
  select.replaceChildren(...names.map((n) => el('option', { value: n, selected: n === state.namespace }, n)));
  $('#ns-label').hidden = false;
}

$('#namespace').addEventListener('change', (e) => {
  state.namespace = e.target.value;
  sessionStorage.setItem('flotilla-namespace', state.namespace);
  route();
});

async function start() {
  $('#logout').hidden = false;
  try {
    const v = await api('/version');
    $('#cluster').textContent = `Kubernetes API ${v.gitVersion || ''} on ${location.host}`;
  } catch (_) { /* the version is decoration */ }
  await discover();
  renderNav();
  await renderNamespaces();
  route();
}

// ---- views ------------------------------------------------------------------------------

function page(title, ...children) {
  $('#main').replaceChildren(el('h1', {}, title), ...children);
}

function showError(e) {
  $('#main').append(el('p', { class: 'error', role: 'alert' }, e.message || String(e)));
}

function quantity(q) { return q === undefined ? '' : String(q); }

/** A quantity's value ("100m" → 0.1, "64Mi" → 67108864). */
function parseQuantity(q) {
  const m = /^([+-]?[\d.]+)([a-zA-Z]*)$/.exec(String(q || '0').trim());
  if (!m) return 0;
  const mult = { '': 1, m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, Ti: 1024 ** 4 }[m[2]];
  return Number(m[1]) * (mult === undefined ? 1 : mult);
}

/** A pod's requests (requests, else limits) summed over its containers. */
function podRequests(p) {
  const r = { cpu: 0, memory: 0 };
  for (const c of (p.spec && p.spec.containers) || []) {
    const res = c.resources || {};
    for (const k of ['cpu', 'memory']) r[k] += parseQuantity((res.requests || {})[k] ?? (res.limits || {})[k]);
  }
  return r;
}

function cores(v) { return v >= 1 || v === 0 ? String(Math.round(v * 100) / 100) : Math.round(v * 1000) + 'm'; }
function mib(v) { return v >= 1024 ** 3 ? (v / 1024 ** 3).toFixed(1) + 'Gi' : Math.round(v / 1024 ** 2) + 'Mi'; }

/** Overview: nodes with capacity and what is allocated, pods by phase, recent warnings. */
async function overview() {
  const nodesCard = el('section', { class: 'card', id: 'nodes' });
  const podsCard = el('section', { class: 'card', id: 'pods-by-phase' });
  const eventsCard = el('section', { class: 'card', id: 'warnings' });
  page('Overview', nodesCard, podsCard, eventsCard);
  const signal = liveSignal();
  const nodes = new Map();
  const pods = new Map();
  const events = new Map();
  const draw = () => {
    const perNode = new Map();
    for (const p of pods.values()) {
      const n = p.spec.nodeName;
      if (!n || ['Succeeded', 'Failed'].includes(p.status && p.status.phase)) continue;
      const a = perNode.get(n) || { pods: 0, cpu: 0, memory: 0 };
      const r = podRequests(p);
      a.pods += 1;
      a.cpu += r.cpu;
      a.memory += r.memory;
      perNode.set(n, a);
    }
    const rows = [...nodes.values()].sort((a, b) => a.metadata.name.localeCompare(b.metadata.name)).map((n) => {
      const ready = ((n.status && n.status.conditions) || []).find((c) => c.type === 'Ready');
      const alloc = (n.status && n.status.allocatable) || {};
      const cap = (n.status && n.status.capacity) || {};
      const used = perNode.get(n.metadata.name) || { pods: 0, cpu: 0, memory: 0 };
      return el('tr', { dataset: { name: n.metadata.name } },
        el('td', {}, el('a', { href: objHref(findKind('', 'nodes'), null, n.metadata.name) }, n.metadata.name)),
        el('td', { class: ready && ready.status === 'True' ? 'ok' : 'bad' }, ready && ready.status === 'True' ? 'Ready' : 'NotReady'),
        el('td', {}, `${cores(used.cpu)} / ${cores(parseQuantity(alloc.cpu))} (capacity ${quantity(cap.cpu)})`),
        el('td', {}, `${mib(used.memory)} / ${mib(parseQuantity(alloc.memory))} (capacity ${mib(parseQuantity(cap.memory))})`),
        el('td', {}, `${used.pods} / ${quantity(alloc.pods)}`));
    });
    nodesCard.replaceChildren(el('h2', {}, 'Nodes', el('span', { class: 'live' }, '● live')),
      el('table', {}, el('thead', {}, el('tr', {}, ...['Name', 'Status', 'CPU requested / allocatable', 'Memory requested / allocatable', 'Pods / max'].map((h) => el('th', {}, h)))), el('tbody', {}, rows)));
    const phases = {};
    for (const p of pods.values()) {
      const ph = (p.status && p.status.phase) || 'Pending';
      phases[ph] = (phases[ph] || 0) + 1;
    }
    podsCard.replaceChildren(el('h2', {}, 'Pods by phase'),
      el('div', { class: 'counts' }, ...['Running', 'Pending', 'Succeeded', 'Failed', 'Unknown'].map((ph) =>
        el('div', { class: `count phase-${ph}`, dataset: { phase: ph } }, el('b', {}, String(phases[ph] || 0)), ph))));
    const warnings = [...events.values()].filter((e) => e.type === 'Warning')
      .sort((a, b) => String(b.lastTimestamp || b.eventTime || '').localeCompare(String(a.lastTimestamp || a.eventTime || ''))).slice(0, 10);
    eventsCard.replaceChildren(el('h2', {}, 'Recent warnings'), warnings.length === 0 ? el('p', { class: 'muted' }, 'No warning events.')
      : el('table', {}, el('tbody', {}, warnings.map((e) => el('tr', {},
        el('td', {}, e.involvedObject.kind + '/' + e.involvedObject.name), el('td', {}, e.reason), el('td', {}, e.message))))));
  };
  let pending = null;
  const schedule = () => { if (!pending) pending = setTimeout(() => { pending = null; draw(); }, 50); };
  const follow = async (path, map) => {
    const list = await api(path);
    map.clear();
    for (const o of list.items) map.set(o.metadata.uid, o);
    schedule();
    watch(path, list.metadata.resourceVersion, 'application/json', (ev) => {
      if (ev.type === 'RELIST') { if (!signal.aborted) follow(path, map); return; }
      if (ev.type === 'DELETED') map.delete(ev.object.metadata.uid); else map.set(ev.object.metadata.uid, ev.object);
      schedule();
    }, signal);
  };
  try {
    await Promise.all([follow('/api/v1/nodes', nodes), follow('/api/v1/pods', pods), follow('/api/v1/events', events)]);
  } catch (e) { showError(e); }
}

/** A kind's list, in the server's Table columns, following a watch. */
async function listView(k) {
  const ns = k.namespaced ? state.namespace : null;
  const holder = el('section', { class: 'card', id: 'list' });
  page(k.kind + (ns ? ` in ${ns}` : ''), holder);
  const signal = liveSignal();
  const rows = new Map();
  let columns = [];
  const draw = () => {
    const shown = columns.map((c, i) => [c, i]).filter(([c]) => !c.priority);
    const body = [...rows.values()].sort((a, b) => a.object.metadata.name.localeCompare(b.object.metadata.name)).map((r) => {
      const m = r.object.metadata;
      return el('tr', { dataset: { name: m.name } }, ...shown.map(([c, i]) => el('td', {},
        c.name === 'Name' ? el('a', { href: objHref(k, m.namespace, m.name) }, String(r.cells[i])) : String(r.cells[i] ?? ''))));
    });
    holder.replaceChildren(el('span', { class: 'live' }, '● live'),
      el('table', {}, el('thead', {}, el('tr', {}, ...shown.map(([c]) => el('th', {}, c.name)))), el('tbody', {}, body)));
  };
  const load = async () => {
    const table = await api(base(k, ns), { headers: { Accept: TABLE } });
    columns = table.columnDefinitions || [];
    rows.clear();
    for (const r of table.rows || []) rows.set(r.object.metadata.uid, r);
    draw();
    watch(base(k, ns), table.metadata.resourceVersion, TABLE, (ev) => {
      if (ev.type === 'RELIST') { if (!signal.aborted) load(); return; }
      for (const r of (ev.object && ev.object.rows) || []) {
        if (ev.type === 'DELETED') rows.delete(r.object.metadata.uid); else rows.set(r.object.metadata.uid, r);
      }
      draw();
    }, signal);
  };
  try { await load(); } catch (e) { showError(e); }
}

/** JSON as YAML (block style), for reading. */
function yaml(v, indent = '') {
  const scalar = (s) => {
    if (s === null) return 'null';
    if (typeof s !== 'string') return String(s);
    return /^[\w./:@-][\w ./:@,=-]*$/.test(s) && !/^(true|false|null|yes|no|~|[-+]?[\d.]+(e[-+]?\d+)?)$/i.test(s) && !s.endsWith(' ') ? s : JSON.stringify(s);
  };
  if (Array.isArray(v)) {
    if (v.length === 0) return '[]';
    return v.map((x) => {
      if (x !== null && typeof x === 'object' && Object.keys(x).length) return `${indent}- ${yaml(x, indent + '  ').trimStart()}`;
      return `${indent}- ${x !== null && typeof x === 'object' ? (Array.isArray(x) ? '[]' : '{}') : scalar(x)}`;
    }).join('\n');
  }
  if (v !== null && typeof v === 'object') {
    const keys = Object.keys(v);
    if (keys.length === 0) return '{}';
    return keys.map((key) => {
      const x = v[key];
      if (x !== null && typeof x === 'object' && (Array.isArray(x) ? x.length : Object.keys(x).length)) {
        return `${indent}${scalar(key)}:\n${yaml(x, indent + '  ')}`;
      }
      return `${indent}${scalar(key)}: ${x !== null && typeof x === 'object' ? (Array.isArray(x) ? '[]' : '{}') : scalar(x)}`;
    }).join('\n');
  }
  return indent + scalar(v);
}

/** One object: YAML, events, owners and owned objects, logs (pods), scale. */
async function objectView(k, ns, name) {
  const signal = liveSignal();
  const url = `${base(k, ns)}/${encodeURIComponent(name)}`;
  const content = el('section', { class: 'card', id: 'detail' });
  const tabs = el('div', { class: 'tabs' });
  const extra = el('div', {});
  page(`${k.kind} ${ns ? ns + '/' : ''}${name}`, extra, tabs, content);
  let obj;
  try { obj = await api(url); } catch (e) { showError(e); return; }
  const views = {
    YAML: () => el('pre', { id: 'yaml' }, yaml(obj)),
    Events: async () => {
      const list = await api(`/api/v1/${ns ? 'namespaces/' + encodeURIComponent(ns) + '/' : ''}events?fieldSelector=${encodeURIComponent('involvedObject.uid=' + obj.metadata.uid)}`);
      const items = list.items.sort((a, b) => String(a.lastTimestamp || '').localeCompare(String(b.lastTimestamp || '')));
      return items.length === 0 ? el('p', { class: 'muted' }, 'No events.')
        : el('table', { id: 'events' }, el('tbody', {}, items.map((e) => el('tr', {}, el('td', { class: e.type === 'Warning' ? 'bad' : '' }, e.type), el('td', {}, e.reason), el('td', {}, e.message), el('td', { class: 'muted' }, e.lastTimestamp || '')))));
    },
    Related: async () => {
      const owners = (obj.metadata.ownerReferences || []).map((o) => {
        const ok = kindOf(o.apiVersion, o.kind);
        return el('li', {}, 'owner: ', ok ? el('a', { href: objHref(ok, ns, o.name) }, `${o.kind}/${o.name}`) : `${o.kind}/${o.name}`);
      });
      const owned = [];
      if (ns) {
        for (const [group, plural] of [['', 'pods'], ['apps', 'replicasets'], ['batch', 'jobs'], ['apps', 'controllerrevisions']]) {
          const ok = findKind(group, plural);
          if (!ok) continue;
          const list = await api(base(ok, ns));
          for (const o of list.items) {
            if ((o.metadata.ownerReferences || []).some((r) => r.uid === obj.metadata.uid)) {
              owned.push(el('li', {}, 'owns: ', el('a', { href: objHref(ok, ns, o.metadata.name) }, `${ok.kind}/${o.metadata.name}`)));
            }
          }
        }
      }
      return owners.length + owned.length === 0 ? el('p', { class: 'muted' }, 'No owners and nothing owned.') : el('ul', { id: 'related' }, owners, owned);
    },
  };
  if (k.group === '' && k.plural === 'pods') {
    views.Logs = async () => {
      const containers = (obj.spec.containers || []).map((c) => c.name);
      const pre = el('pre', { id: 'logs' }, '');
      const pick = el('select', { id: 'log-container' }, containers.map((c) => el('option', { value: c }, c)));
      const logSignal = liveSignal();
      const follow = async () => {
        pre.textContent = '';
        const resp = await fetch(`${url}/log?container=${encodeURIComponent(pick.value)}&follow=true&tailLines=1000`, {
          headers: { Authorization: 'Bearer ' + state.token }, signal: logSignal,
        });
        if (!resp.ok) { pre.textContent = (await resp.text()); return; }
        const reader = resp.body.getReader();
        const decoder = new TextDecoder();
        try {
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            pre.textContent += decoder.decode(value, { stream: true });
          }
        } catch (_) { /* navigated away */ }
      };
      pick.addEventListener('change', follow);
      follow();
      return el('div', {}, el('label', {}, 'container ', pick), pre);
    };
  }
  if (k.scale) {
    const input = el('input', { id: 'scale-input', type: 'number', min: 0, value: obj.spec && obj.spec.replicas });
    const status = el('span', { id: 'scale-status', class: 'muted' });
    const button = el('button', {
      id: 'scale-button', onclick: async () => {
        try {
          await api(`${url}/scale`, { method: 'PATCH', headers: { 'Content-Type': 'application/merge-patch+json' }, body: JSON.stringify({ spec: { replicas: Number(input.value) } }) });
          status.textContent = `scaled to ${input.value}`;
        } catch (e) { status.textContent = e.message; status.className = 'error'; }
      },
    }, 'Scale');
    extra.replaceChildren(el('section', { class: 'card' }, el('label', {}, 'replicas ', input), ' ', button, ' ', status));
  }
  let current = 'YAML';
  const show = async (name) => {
    current = name;
    for (const b of tabs.children) b.classList.toggle('active', b.textContent === name);
    try { content.replaceChildren(await views[name]()); } catch (e) { content.replaceChildren(el('p', { class: 'error' }, e.message)); }
  };
  tabs.replaceChildren(...Object.keys(views).map((v) => el('button', { onclick: () => show(v), dataset: { tab: v } }, v)));
  await show('YAML');
  // The object follows its watch; the YAML view re-renders on each change.
  const field = encodeURIComponent('metadata.name=' + name);
  watch(`${base(k, ns)}?fieldSelector=${field}`, obj.metadata.resourceVersion, 'application/json', (ev) => {
    if (ev.type === 'MODIFIED' || ev.type === 'ADDED') {
      obj = ev.object;
      if (current === 'YAML') show('YAML');
    } else if (ev.type === 'DELETED') {
      content.prepend(el('p', { class: 'error' }, 'This object was deleted.'));
    }
  }, signal);
}

function route() {
  if (!state.token) return;
  stopViews();
  const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  for (const a of $('#kinds').querySelectorAll('a')) a.classList.toggle('active', a.getAttribute('href') === location.hash);
  if (parts[0] === 'list' && parts.length >= 4) {
    const k = findKind(parts[1] === 'core' ? '' : parts[1], parts[3]);
    return k ? listView(k) : page('Not found', el('p', {}, 'This kind is not served.'));
  }
  if (parts[0] === 'obj' && parts.length >= 6) {
    const k = findKind(parts[1] === 'core' ? '' : parts[1], parts[3]);
    return k ? objectView(k, parts[4] === '_' ? null : parts[4], parts.slice(5).join('/')) : page('Not found', el('p', {}, 'This kind is not served.'));
  }
  return overview();
}

window.addEventListener('hashchange', route);
if (state.token) login(state.token); else logout('');
document.body.dataset.ready = 'true';
