// report.html: renders the run from the JSON blocks of this page. Every piece of
// text from the run (model replies, code, outputs, names) reaches the DOM through
// text nodes only (`el` below), never as markup. Conversations and optimizer steps
// are parsed from their own blocks only when opened.
(function () {
  'use strict';
  const data = JSON.parse(document.getElementById('run-data').textContent);
  const report = data.report;

  // An element with `props` and children; strings become text nodes.
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (key === 'class') node.className = value;
      else if (key === 'text') node.textContent = value;
      else if (key === 'on') for (const [type, fn] of Object.entries(value)) node.addEventListener(type, fn);
      else node.setAttribute(key, value);
    }
    return put(node, children);
  }
  // Appends `children` (nested arrays flattened; strings as text nodes) to `node`.
  function put(node, ...children) {
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(typeof child === 'object' ? child : String(child));
    }
    return node;
  }
  const percent = (rate) => (rate * 100).toFixed(1) + '%';
  const accuracy = (a) => `${a.correct}/${a.total} (${percent(a.rate)}, 95% CI ${percent(a.interval.low)}–${percent(a.interval.high)})`;
  const seconds = (s) => s < 60 ? s.toFixed(1) + ' s' : s < 3600 ? `${Math.floor(s / 60)} min ${String(Math.round(s % 60)).padStart(2, '0')} s` : `${Math.floor(s / 3600)} h ${String(Math.round((s % 3600) / 60)).padStart(2, '0')} min`;
  function table(head, rows, cls) {
    return el('table', { class: cls || '' },
      el('thead', null, el('tr', null, head.map((h) => el('th', null, h)))),
      el('tbody', null, rows.map((row) => el('tr', null, row.map((cell) => el('td', null, cell))))));
  }
  function badge(status) {
    const label = { solved: 'solved', failed: 'wrong', infrastructure: 'infra error' }[status] || '—';
    return el('span', { class: 'badge ' + (status || 'none') }, label);
  }
  function blockData(id) {
    const node = id && document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }
  function pretty(text) {
    try { return JSON.stringify(JSON.parse(text), null, 2); } catch (_) { return String(text); }
  }
  const callTotal = (calls) => Object.values(calls || {}).reduce((sum, c) => sum + c.calls, 0);
  const callList = (calls) => Object.entries(calls || {}).map(([name, c]) => `${name} ×${c.calls} (${c.succeeded} ok)`).join(', ');

  // ---- Summary ----
  function renderSummary() {
    const s = report.setup;
    const rows = [
      ['task', s.task], ['model', s.model], ['optimizer model', s.optimizer_model],
      ['endpoint', s.endpoint], ['data', s.data], ['selection', s.selection],
      ['problems', `${s.train_problems} train, ${s.test_problems} test`],
      ['training', `${report.epochs.length} of ${s.epochs} epochs, at most ${s.max_actions_per_step} actions per step`],
      ...(s.settings || []),
    ];
    if (report.stopped_early) rows.push(['stopped early', report.stopped_early]);
    if (report.incomplete) rows.push(['INCOMPLETE', report.incomplete]);
    const p = report.paired;
    const results = [['before training', accuracy(report.test_before.accuracy)], ['after training', accuracy(report.test_after.accuracy)]];
    for (const check of report.other_checks || []) {
      results.push([`before, ${check.name} check`, accuracy(check.test_before.accuracy)]);
      results.push([`after, ${check.name} check`, accuracy(check.test_after.accuracy)]);
    }
    const before = report.test_before.accuracy; const after = report.test_after.accuracy;
    document.querySelector('header h1').after(el('span', { class: 'headline' },
      `test ${percent(before.rate)} → ${percent(after.rate)} · +${p.after_only} / −${p.before_only} problems · McNemar p = ${report.mcnemar_p.toFixed(3)}` + (report.incomplete ? ' · INCOMPLETE' : '')));
    const curve = document.querySelector('figure.curve');
    const body = document.getElementById('summary-body');
    body.append(
      el('div', { class: 'cards' },
        el('div', { class: 'card' }, el('h3', null, 'Test accuracy'), table(['agents', 'solved'], results),
          el('p', null, `Paired on the same problems: ${p.after_only} solved only after training, ${p.before_only} only before, ${p.both} both times, ${p.neither} neither. Exact McNemar p = ${report.mcnemar_p.toFixed(4)}.`),
          el('h3', null, 'Training epochs'),
          report.epochs.length === 0 ? el('p', null, 'No training epoch ran.') :
            table(['epoch', 'training accuracy', 'step', 'actions', 'functions after'], report.epochs.map((e) => [
              String(e.epoch), accuracy(e.accuracy),
              e.skipped ? `skipped (${e.skipped})` : e.kept ? 'kept' : 'rolled back',
              e.rejected ? `${e.actions} (${e.rejected} rejected)` : String(e.actions),
              e.functions_after.join(', ') || '—']))),
        curve),
      el('div', { class: 'cards' },
        el('div', { class: 'card' }, el('h3', null, 'Setup'), table(['setting', 'value'], rows)),
        el('div', { class: 'card' },
          el('h3', null, 'Tokens and cost'),
          report.usage.length === 0 ? el('p', { class: 'note' }, 'No metered model call.') :
            table(['role', 'calls', 'retried', 'failed', 'prompt tokens', 'completion tokens', 'cost (USD)'],
              report.usage.map((u) => [u.role, String(u.calls), String(u.retries), String(u.failed_calls), String(u.prompt_tokens), String(u.completion_tokens), u.cost_usd.toFixed(4)])),
          el('h3', null, 'Wall time'),
          table(['phase', 'time'], report.phases.map((ph) => [ph.phase, seconds(ph.seconds)])))));
    if (report.infrastructure.length) {
      body.append(el('h3', null, 'Infrastructure errors (not counted in any accuracy)'),
        table(['phase', 'errors', 'first error'], report.infrastructure.map((i) => [
          i.phase, i.by_kind.map(([kind, n]) => `${kind} × ${n}`).join(', '), i.first_message])));
    }
  }

  // ---- Conversations ----
  // Text with ``` fences shown as code blocks.
  function richText(text) {
    const box = el('div', { class: 'rich' });
    const fence = /```([^\n`]*)\n([\s\S]*?)```/g;
    let at = 0;
    for (const match of text.matchAll(fence)) {
      if (match.index > at) put(box, el('div', { class: 'text' }, text.slice(at, match.index)));
      put(box, el('div', { class: 'code-block' }, el('span', { class: 'lang' }, match[1] || 'code'), el('pre', { class: 'code' }, match[2])));
      at = match.index + match[0].length;
    }
    if (at < text.length) put(box, el('div', { class: 'text' }, text.slice(at)));
    return box;
  }
  function execution(x) {
    const ok = x.success ? 'ok' : 'failed';
    if (x.kind === 'code') {
      return el('div', { class: 'execution ' + ok },
        el('div', { class: 'label' }, `ran ${x.lang} code · ${ok}`), el('pre', { class: 'code' }, x.code),
        el('div', { class: 'label' }, 'output'), el('pre', { class: 'output' }, x.output));
    }
    return el('div', { class: 'execution ' + ok },
      el('div', { class: 'label' }, `called ${x.name} · ${ok}`), el('pre', { class: 'code' }, pretty(x.arguments)),
      el('div', { class: 'label' }, 'result'), el('pre', { class: 'output' }, x.output));
  }
  function message(m) {
    const who = m.sender ? `${m.sender} → ${m.recipient}` : m.role;
    return el('div', { class: 'message role-' + m.role },
      el('div', { class: 'who' }, who + (m.name ? ` (${m.name})` : '') + (m.tokens ? ` · ${m.tokens} tokens` : '')),
      m.content ? richText(m.content) : null,
      (m.calls || []).map((c) => el('div', { class: 'tool-call' }, el('div', { class: 'label' }, `requests ${c.name}`), el('pre', { class: 'code' }, pretty(c.arguments)))),
      (m.executions || []).map(execution));
  }
  function stopReason(stop) {
    if (!stop) return null;
    const { reason, ...rest } = stop;
    return `${reason.replace(/_/g, ' ')}: ${Object.values(rest).join(' · ')}`;
  }
  function conversation(block) {
    const c = blockData(block);
    if (!c) return el('p', { class: 'note' }, 'No conversation recorded.');
    const o = c.outcome;
    const verdict = el('div', { class: 'verdict' },
      el('div', null, badge(o.status), ' ', o.reason || (o.message ? `${o.kind}: ${o.message}` : '')),
      el('div', null, `answer: ${c.answer ?? '—'} · expected: ${c.expected ?? '—'} · ${c.tokens} tokens`),
      Object.keys(c.checks || {}).length ? el('div', null, 'other checks: ' + Object.entries(c.checks).map(([k, v]) => `${k} ${v ? 'right' : 'wrong'}`).join(', ')) : null,
      Object.keys(c.calls || {}).length ? el('div', null, 'learned-function calls: ' + callList(c.calls)) : null,
      c.stop_reason ? el('div', null, 'ended: ' + stopReason(c.stop_reason) + (c.wall_seconds !== undefined ? ` · ${seconds(c.wall_seconds)}` : '')) : null);
    return el('div', { class: 'conversation' }, el('div', { class: 'phase' }, `${c.phase} · ${c.problem_id}`), verdict, c.messages.map(message));
  }

  // ---- Test problems ----
  const FILTERS = [
    { key: 'all', label: 'all', test: () => true },
    { key: 'flipped_solved', label: 'flipped to solved', test: (p) => p.before && p.after && p.before.status === 'failed' && p.after.status === 'solved' },
    { key: 'flipped_wrong', label: 'flipped to wrong', test: (p) => p.before && p.after && p.before.status === 'solved' && p.after.status === 'failed' },
    { key: 'called', label: 'called a function', test: (p) => callTotal(p.before && p.before.calls) + callTotal(p.after && p.after.calls) > 0 },
    { key: 'infrastructure', label: 'infrastructure error', test: (p) => [p.before, p.after].some((a) => a && a.status === 'infrastructure') },
  ];
  const rows = [];
  let activeFilter = 'all';
  let search = '';
  function applyFilter(key) {
    activeFilter = key;
    const filter = FILTERS.find((f) => f.key === key);
    let shown = 0;
    for (const row of rows) {
      const visible = filter.test(row.problem) && (!search || row.haystack.includes(search));
      row.tr.hidden = !visible;
      if (row.detail) row.detail.hidden = !visible || !row.open;
      if (visible) shown += 1;
    }
    for (const button of document.querySelectorAll('.filters button')) button.classList.toggle('active', button.dataset.filter === key);
    document.getElementById('shown-count').textContent = `${shown} of ${rows.length} problems shown`;
    return shown;
  }
  function toggleRow(row) {
    row.open = !row.open;
    if (!row.detail) {
      const p = row.problem;
      row.detail = el('tr', { class: 'detail' }, el('td', { colspan: '9' },
        el('div', { class: 'pair' },
          el('div', { class: 'side' }, el('h4', null, 'Before training'), p.before ? conversation(p.before.block) : el('p', { class: 'note' }, 'not run')),
          el('div', { class: 'side' }, el('h4', null, 'After training'), p.after ? conversation(p.after.block) : el('p', { class: 'note' }, 'not run')))));
      row.tr.after(row.detail);
    }
    row.detail.hidden = !row.open;
    row.tr.classList.toggle('open', row.open);
  }
  function renderProblems() {
    const body = document.getElementById('problems-body');
    const filters = el('div', { class: 'filters' }, FILTERS.map((f) => el('button', {
      type: 'button', 'data-filter': f.key, on: { click: () => applyFilter(f.key) },
    }, `${f.label} (${data.problems.filter(f.test).length})`)),
    el('input', { type: 'search', placeholder: 'search id or answer', on: { input: (e) => { search = e.target.value.toLowerCase(); applyFilter(activeFilter); } } }),
    el('span', { id: 'shown-count' }));
    const tbody = el('tbody');
    for (const p of data.problems) {
      const b = p.before || {}; const a = p.after || {};
      const called = [b.calls, a.calls].map(callTotal);
      const tr = el('tr', { class: 'problem', tabindex: '0', id: `problem-${p.index + 1}` },
        el('td', null, String(p.index + 1)), el('td', { class: 'id' }, p.id),
        el('td', null, badge(b.status)), el('td', null, badge(a.status)),
        el('td', { class: 'answer' }, b.answer ?? '—'), el('td', { class: 'answer' }, a.answer ?? '—'),
        el('td', { class: 'answer' }, a.expected ?? b.expected ?? '—'),
        el('td', { class: 'num' }, `${b.tokens ?? '—'} / ${a.tokens ?? '—'}`),
        el('td', { class: 'fn' }, `${p.offered.length ? p.offered.join(', ') : 'none'} · ${called[1] ? callList(a.calls) : 'no call'}` +
          (a.shadowed ? ` · its own ${a.shadowed.join(', ')}` : '') + (called[0] ? ` (before: ${callList(b.calls)})` : '')));
      const row = { problem: p, tr, detail: null, open: false, haystack: [p.id, b.answer, a.answer, a.expected ?? b.expected].join(' ').toLowerCase() };
      tr.addEventListener('click', () => toggleRow(row));
      tr.addEventListener('keydown', (e) => { if (e.key === 'Enter') toggleRow(row); });
      rows.push(row);
      tbody.append(tr);
    }
    body.append(filters, el('p', { class: 'hint' }, 'Click a row to see the conversation before and after training side by side.'),
      el('table', { id: 'problem-table', class: 'problems' },
        el('thead', null, el('tr', null, ['#', 'problem', 'before', 'after', 'answer before', 'answer after', 'expected', 'tokens before / after', 'functions offered · called (after)'].map((h) => el('th', null, h)))),
        tbody));
    applyFilter('all');
  }

  // ---- Optimizer steps ----
  function functionCard(f, extra) {
    const params = (f.parameters && f.parameters.properties) || {};
    const card = el('article', { class: 'function' },
      el('h3', null, f.name),
      f.description ? el('p', { class: 'description' }, f.description) : null,
      Object.keys(params).length ? table(['argument', 'type', 'description'], Object.entries(params).map(([n, s]) => [n, String(s.type ?? ''), String(s.description ?? '')])) : null,
      (f.packages || []).length ? el('p', null, 'packages: ' + f.packages.join(', ')) : null,
      el('pre', { class: 'code' }, f.code || ''));
    const demos = f.demonstrations || f.examples;
    if (Array.isArray(demos) && demos.length) {
      put(card, el('h4', null, `Demonstrations (${demos.length})`), demos.map((d) => el('div', { class: 'demo' },
        typeof d === 'object' ? Object.entries(d).map(([k, v]) => el('div', null, el('div', { class: 'label' }, k), el('pre', { class: 'output' }, typeof v === 'string' ? v : JSON.stringify(v, null, 2)))) : el('pre', null, String(d)))));
    }
    if (extra) put(card, extra);
    return card;
  }
  function action(a) {
    if (a.action === 'remove') return el('div', { class: 'action' }, el('div', { class: 'label' }, `remove ${a.function}`));
    return el('div', { class: 'action' }, el('div', { class: 'label' }, `${a.action} ${a.function.name}`), functionCard(a.function));
  }
  function exchange(x, number) {
    const reply = x.reply;
    const summary = `Request ${number}: ${x.messages.length} message(s) → ` + (x.error ? 'error' : reply && (reply.tool_calls || []).length ? reply.tool_calls.map((c) => c.function.name).join(', ') : 'text reply') + (x.finish_reason ? ` (${x.finish_reason})` : '');
    return el('details', { class: 'exchange' }, el('summary', null, summary),
      x.messages.map((m) => el('div', { class: 'message role-' + m.role }, el('div', { class: 'who' }, `sent (${m.role})`), el('pre', { class: 'prompt' }, m.content || ''))),
      reply ? el('div', { class: 'message role-assistant' }, el('div', { class: 'who' }, 'optimizer reply'),
        reply.content ? el('pre', { class: 'prompt' }, reply.content) : null,
        (reply.tool_calls || []).map((c) => el('div', { class: 'tool-call' }, el('div', { class: 'label' }, c.function.name), el('pre', { class: 'code' }, pretty(c.function.arguments))))) : null,
      x.error ? el('p', { class: 'error' }, x.error) : null);
  }
  function stepBody(step) {
    const detail = blockData(step.detail);
    const box = el('div', { class: 'step-body' });
    if (step.skipped) put(box, el('p', { class: 'error' }, 'Skipped: ' + step.skipped));
    const o = detail && detail.outcome;
    if (o) {
      put(box, el('p', null, `${o.accepted ? 'Kept the trial' : 'Rolled back to the best list'}: trial score ${o.trial_performance.toFixed(3)}, best ${o.best_performance.toFixed(3)}` + (o.terminated ? '; the optimizer ended the step' : '') + (o.should_stop ? '; patience used up' : '') + '.'));
      put(box, el('h4', null, `Actions accepted (${o.actions.length})`), o.actions.length ? o.actions.map(action) : el('p', { class: 'note' }, 'none'));
      put(box, el('h4', null, `Replies rejected (${o.rejected.length})`), o.rejected.length ? o.rejected.map((r) => el('div', { class: 'rejected' },
        r.calls.map(([name, args], i) => el('div', null, el('div', { class: 'label' }, name), el('pre', { class: 'code' }, pretty(args)), r.errors[i] ? el('p', { class: 'error' }, 'why: ' + r.errors[i]) : el('p', { class: 'note' }, 'this call was valid'))))) : el('p', { class: 'note' }, 'none'));
    }
    if (detail) {
      put(box, el('h4', null, `Prompts and replies (${detail.exchanges.length})`), detail.exchanges.map((x, i) => exchange(x, i + 1)));
    } else {
      put(box, el('p', { class: 'note' }, 'This run did not record the step in detail (step_details.jsonl).'));
    }
    const after = o ? o.functions.functions : null;
    put(box, el('h4', null, 'Function set after the step'), after ? (after.length ? after.map((f) => functionCard(f)) : el('p', { class: 'note' }, 'empty')) : el('p', null, step.functions_after.join(', ') || 'empty'));
    const trained = data.phases.filter((ph) => ph.epoch === step.epoch);
    for (const ph of trained) {
      const holder = el('div');
      put(box, el('h4', null, `Conversations of ${ph.phase} (${ph.rows.length})`), el('div', { class: 'chips' }, ph.rows.map(([id, row]) => el('button', {
        type: 'button', class: 'chip ' + row.status, on: { click: () => holder.replaceChildren(conversation(row.block)) },
      }, id))), holder);
    }
    return box;
  }
  function openStep(details, step) {
    if (!details.dataset.rendered) {
      details.dataset.rendered = '1';
      details.append(stepBody(step));
    }
  }
  function renderSteps() {
    const body = document.getElementById('steps-body');
    if (!data.steps.length) body.append(el('p', { class: 'note' }, 'No optimizer step ran.'));
    for (const step of data.steps) {
      const decision = step.skipped ? 'skipped' : step.kept ? 'kept the trial' : 'rolled back to the best';
      const details = el('details', { class: 'step', id: `step-${step.epoch}` }, el('summary', null,
        `Step after epoch ${step.epoch} · ${decision} · ${step.actions} action(s)` + (step.rejected ? ` (${step.rejected} rejected)` : '') + ` · functions: ${step.functions_after.join(', ') || 'none'}`));
      details.addEventListener('toggle', () => { if (details.open) openStep(details, step); });
      body.append(details);
    }
  }

  // ---- Functions ----
  function renderFunctions() {
    const body = document.getElementById('functions-body');
    if (!data.functions.length) body.append(el('p', { class: 'note' }, 'No learned function: the agents end with the functions they started with.'));
    for (const entry of data.functions) {
      const calls = el('div', null, el('h4', null, 'Calls per phase'), entry.calls.length ?
        table(['phase', 'calls', 'succeeded'], entry.calls.map(([phase, c]) => [phase, String(c.calls), String(c.succeeded)])) : el('p', { class: 'note' }, 'never called'));
      body.append(entry.function ? functionCard(entry.function, calls) :
        el('article', { class: 'function removed' }, el('h3', null, entry.name), el('p', { class: 'note' }, 'Removed before the end of training (its code is in the optimizer steps).'), calls));
    }
  }

  // ---- Self-test (report.html#selftest): used by the browser test ----
  function selftest() {
    const result = { rows: rows.length, filters: {} };
    for (const f of FILTERS) result.filters[f.key] = applyFilter(f.key);
    applyFilter('flipped_solved');
    result.flipped_rows_really_flipped = rows.filter((r) => !r.tr.hidden).every((r) => r.problem.before.status === 'failed' && r.problem.after.status === 'solved');
    applyFilter('all');
    const started = performance.now();
    if (rows.length) toggleRow(rows[0]);
    result.open_row_ms = performance.now() - started;
    for (const row of rows.slice(1, 50)) toggleRow(row);
    result.open_conversations = document.querySelectorAll('#problems-body .conversation').length;
    result.messages = document.querySelectorAll('#problems-body .message').length;
    result.executions = document.querySelectorAll('#problems-body .execution').length;
    const step = document.querySelector('details.step');
    if (step) { step.open = true; openStep(step, data.steps[0]); }
    result.step_exchanges = document.querySelectorAll('#steps-body .exchange').length;
    result.step_actions = document.querySelectorAll('#steps-body .action').length;
    result.functions = document.querySelectorAll('#functions-body .function').length;
    result.function_code = Array.from(document.querySelectorAll('#functions-body pre.code')).map((pre) => pre.textContent);
    result.injected = document.documentElement.hasAttribute('data-injected');
    document.body.append(el('pre', { id: 'selftest-result' }, JSON.stringify(result)));
  }

  renderSummary();
  renderProblems();
  renderSteps();
  renderFunctions();
  // Ready means laid out: reading a layout property forces style and layout now.
  void document.body.offsetHeight;
  document.documentElement.setAttribute('data-ready-ms', performance.now().toFixed(0));
  if (location.hash === '#selftest') selftest();
  // Links to one problem (#problem-N, opened) or one step (#step-EPOCH, expanded);
  // the browser scrolls to the element, which exists by the time the page loads.
  const target = /^#(problem|step)-(\d+)$/.exec(location.hash);
  if (target) {
    const node = document.getElementById(`${target[1]}-${target[2]}`);
    if (node && target[1] === 'problem') toggleRow(rows.find((row) => row.tr === node));
    if (node && target[1] === 'step') { node.open = true; openStep(node, data.steps.find((s) => String(s.epoch) === target[2])); }
  }
})();
