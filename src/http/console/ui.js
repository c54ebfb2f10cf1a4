// Small DOM helpers shared by the pages. Text from the API is only ever set as text (never
// as HTML), so a collection named `<img onerror=…>` shows as those characters.

/** Creates an element: h('a', {href: '#'}, 'text', child, ...). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on')) el.addEventListener(name.slice(2), value);
    else if (name === 'class') el.className = value;
    else if (name === 'dataset') Object.assign(el.dataset, value);
    else if (value === true) el.setAttribute(name, '');
    else el.setAttribute(name, value);
  }
  append(el, children);
  return el;
}

/** Replaces an element's children; like h(), skips null/false and flattens arrays. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

/** Links to the console's own pages (the routes app.js serves). */
export const href = {
  cluster: (clusterId) => `#/clusters/${encodeURIComponent(clusterId)}`,
  policy: (clusterId) => `${href.cluster(clusterId)}/policy`,
  backup: (clusterId, backupId) => `${href.cluster(clusterId)}/backups/${encodeURIComponent(backupId)}`,
  job: (jobId) => `#/jobs?jobId=${encodeURIComponent(jobId)}`,
};

/**
 * A number field's text as the API should get it: a whole number as a number, anything else
 * as typed, so the API's own message (not the browser's) explains a bad value.
 */
export function wholeNumberOrText(text) {
  return /^-?\d+$/.test(text) ? Number(text) : text;
}

export function formatBytes(bytes) {
  if (bytes === undefined || bytes === null) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = Number(bytes);
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

export function formatTime(iso) {
  if (!iso) return '—';
  const date = new Date(iso);
  // ISO-like and in UTC, as the API and the policy window speak UTC.
  return `${date.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

export function formatDuration(startIso, endIso) {
  if (!startIso) return '—';
  const end = endIso ? new Date(endIso) : new Date();
  let seconds = Math.max(0, Math.round((end - new Date(startIso)) / 1000));
  const hours = Math.floor(seconds / 3600);
  seconds -= hours * 3600;
  const minutes = Math.floor(seconds / 60);
  seconds -= minutes * 60;
  if (hours) return `${hours} h ${minutes} min`;
  if (minutes) return `${minutes} min ${seconds} s`;
  return `${seconds} s`;
}

export function formatMoney(value) {
  return `$${Number(value).toFixed(4)}`;
}

/** A status word as a coloured badge (colour is never the only signal: the word is shown). */
export function badge(status) {
  return h('span', { class: `badge badge-${String(status).toLowerCase()}` }, status);
}

/** A labelled progress bar: `progress(42, 'Backup job')`. */
export function progressBar(percent, label) {
  const value = Math.max(0, Math.min(100, Math.round(percent ?? 0)));
  return h('div', {
    class: 'progress',
    role: 'progressbar',
    'aria-valuemin': '0',
    'aria-valuemax': '100',
    'aria-valuenow': String(value),
    'aria-label': label,
  }, h('div', { class: 'progress-fill', style: `width: ${value}%` }), h('span', { class: 'progress-text' }, `${value}%`));
}

export function updateProgressBar(bar, percent) {
  const value = Math.max(0, Math.min(100, Math.round(percent ?? 0)));
  bar.setAttribute('aria-valuenow', String(value));
  bar.querySelector('.progress-fill').style.width = `${value}%`;
  bar.querySelector('.progress-text').textContent = `${value}%`;
}

/** A short-lived message at the top of the page (announced to screen readers). */
export function notify(message, kind = 'info', ...extra) {
  const box = document.getElementById('notices');
  const note = h('div', { class: `notice notice-${kind}` }, h('span', {}, message, ...extra),
    h('button', { type: 'button', class: 'link-button', 'aria-label': 'Dismiss', onclick: () => note.remove() }, '×'));
  box.append(note);
  if (kind !== 'error') setTimeout(() => note.remove(), 6000);
  return note;
}

/** What to tell the user about an ApiError. */
export function describeError(error) {
  if (error.status === 429) {
    return `Too many requests; try again in ${error.retryAfter ?? 'a few'} seconds. (${error.message})`;
  }
  return error.code ? `${error.message} (code ${error.code})` : error.message;
}

/** A table with a header row; `rows` are arrays of cells (strings or nodes). */
export function table(caption, headers, rows, empty = 'Nothing here yet.') {
  if (rows.length === 0) return h('p', { class: 'empty' }, empty);
  return h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': caption },
    h('table', {},
      h('caption', { class: 'visually-hidden' }, caption),
      h('thead', {}, h('tr', {}, headers.map((name) => h('th', { scope: 'col' }, name)))),
      h('tbody', {}, rows.map((cells) => (cells instanceof Node ? cells : h('tr', {}, cells.map((c) => h('td', {}, c))))))));
}

/** Previous / next controls for a paginated list answer. */
export function pager(answer, onPage) {
  const pages = Math.max(1, Math.ceil(answer.count / answer.pageSize));
  const current = answer.currentPage;
  return h('nav', { class: 'pager', 'aria-label': 'Pages' },
    h('button', { type: 'button', disabled: current <= 1, onclick: () => onPage(current - 1) }, '← Previous'),
    h('span', {}, `Page ${current} of ${pages} · ${answer.count} in all`),
    h('button', { type: 'button', disabled: current >= pages, onclick: () => onPage(current + 1) }, 'Next →'));
}

/**
 * Opens a modal dialog holding `form` (a <form> whose submit calls `onSubmit(form)`); the
 * dialog closes when onSubmit resolves, and shows the API's error beside the field it names
 * when it throws. Esc and the Cancel button close it; focus returns where it was.
 */
export function openDialog(title, form, onSubmit) {
  const opener = document.activeElement;
  const error = h('p', { class: 'form-error', role: 'alert', hidden: true });
  const submit = h('button', { type: 'submit', class: form.dataset.danger ? 'danger' : 'primary' },
    form.dataset.submit ?? 'Save');
  const dialog = h('dialog', { 'aria-labelledby': 'dialog-title' },
    h('h2', { id: 'dialog-title' }, title));
  form.setAttribute('novalidate', ''); // the API's own messages are shown, field by field
  form.append(error, h('div', { class: 'actions' },
    h('button', { type: 'button', onclick: () => dialog.close() }, 'Cancel'), submit));
  dialog.append(form);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearFieldErrors(form);
    error.hidden = true;
    submit.disabled = true;
    try {
      await onSubmit(form);
      dialog.close();
    } catch (e) {
      showFormError(form, error, e);
    } finally {
      submit.disabled = false;
    }
  });
  dialog.addEventListener('close', () => {
    dialog.remove();
    opener?.focus?.();
  });
  document.body.append(dialog);
  dialog.showModal();
  form.querySelector('input:not([type=hidden]), select, textarea')?.focus();
  return dialog;
}

/** Clears the messages `showFormError` put beside fields. */
export function clearFieldErrors(form) {
  for (const el of form.querySelectorAll('.field-error')) el.remove();
  for (const el of form.querySelectorAll('[aria-invalid]')) {
    el.removeAttribute('aria-invalid');
    el.removeAttribute('aria-describedby');
  }
}

/**
 * Puts the API's message beside the field it names (inputs carry the API's field path in
 * `data-field`, e.g. "cuSize" or "storage.path"), else in the form's error line.
 */
export function showFormError(form, errorLine, e) {
  const message = describeError(e);
  const field = fieldNamedIn(form, e.message ?? '');
  if (field) {
    const id = `${field.id || field.name}-error`;
    const note = h('p', { class: 'field-error', id }, message);
    field.setAttribute('aria-invalid', 'true');
    field.setAttribute('aria-describedby', id);
    (field.closest('.field') ?? field).append(note);
    field.focus();
  } else {
    errorLine.textContent = message;
    errorLine.hidden = false;
  }
}

function fieldNamedIn(form, message) {
  let best = null;
  let bestAt = Infinity;
  for (const el of form.querySelectorAll('[data-field]')) {
    if (el.disabled || el.closest('[hidden]')) continue;
    const at = message.indexOf(el.dataset.field);
    // The earliest, then the longest, match: "storage.path" beats "storage".
    if (at >= 0 && (at < bestAt || (at === bestAt && el.dataset.field.length > best.dataset.field.length))) {
      best = el;
      bestAt = at;
    }
  }
  return best;
}

let fieldIds = 0;
/** A labelled form field; `input` gets an id, and `hint` is tied to it for screen readers. */
export function field(label, input, hint) {
  fieldIds += 1;
  input.id ||= `field-${fieldIds}`;
  const parts = [h('label', { for: input.id }, label), input];
  if (hint) {
    const hintId = `${input.id}-hint`;
    input.setAttribute('aria-describedby', hintId);
    parts.push(h('p', { class: 'hint', id: hintId }, hint));
  }
  return h('div', { class: 'field' }, parts);
}

export function select(attrs, options, selected) {
  return h('select', attrs, options.map(([value, label]) =>
    h('option', { value, selected: value === selected }, label)));
}

/** A page title with optional actions on the right. */
export function pageHeader(title, ...actions) {
  return h('div', { class: 'page-header' }, h('h1', {}, title), h('div', { class: 'page-actions' }, actions));
}

/** Shown while a page loads, replaced by the page or by `errorBox`. */
export function loading(what) {
  return h('p', { class: 'loading', role: 'status' }, `Loading ${what}…`);
}

export function errorBox(e, retry) {
  return h('div', { class: 'error-box', role: 'alert' },
    h('p', {}, describeError(e)),
    retry ? h('button', { type: 'button', onclick: retry }, 'Try again') : null);
}

/** One term and value of a <dl class="facts">. */
export function fact(term, value) {
  return h('div', {}, h('dt', {}, term), h('dd', {}, value));
}
