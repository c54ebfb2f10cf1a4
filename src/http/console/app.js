// The console's shell: sign-in, navigation and the hash router that picks a page.
//
// Routes (all under /console/#...):
//   /signin                          paste an API key
//   /clusters                        clusters per project, register a cluster
//   /clusters/{id}                   a cluster's Backups tab (create backup)
//   /clusters/{id}/policy            its automatic backup policy
//   /clusters/{id}/backups/{bid}     backup details: restore, verify, delete
//   /jobs                            job center
//   /usage                           storage and cost per region

import { api, apiKey, setApiKey, whenUnauthenticated } from './api.js';
import { h, field, describeError, notify, fill } from './ui.js';
import { clustersPage, clusterPage } from './clusters.js';
import { backupPage } from './backups.js';
import { jobsPage } from './jobs.js';
import { usagePage } from './usage.js';

const main = () => document.getElementById('main');

// Each page render gets a fresh AbortController; leaving the page stops its requests and
// job streams.
let pageAbort = new AbortController();

const routes = [
  [/^\/clusters$/, (ctx) => clustersPage(ctx)],
  [/^\/clusters\/([^/]+)$/, (ctx, id) => clusterPage(ctx, id, 'backups')],
  [/^\/clusters\/([^/]+)\/policy$/, (ctx, id) => clusterPage(ctx, id, 'policy')],
  [/^\/clusters\/([^/]+)\/backups\/([^/]+)$/, (ctx, id, backupId) => backupPage(ctx, id, backupId)],
  [/^\/jobs$/, (ctx) => jobsPage(ctx)],
  [/^\/usage$/, (ctx) => usagePage(ctx)],
];

async function render() {
  pageAbort.abort();
  pageAbort = new AbortController();
  const [path, search = ''] = (location.hash.slice(1) || '/clusters').split('?');
  const signedIn = Boolean(apiKey());
  document.getElementById('nav').hidden = !signedIn;
  document.getElementById('sign-out').hidden = !signedIn;
  if (!signedIn) {
    showSignIn();
    return;
  }
  if (path === '/signin') {
    location.hash = '#/clusters';
    return;
  }
  for (const link of document.querySelectorAll('[data-nav]')) {
    const current = path.startsWith(`/${link.dataset.nav}`);
    if (current) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  const ctx = {
    signal: pageAbort.signal,
    params: new URLSearchParams(search),
    /** Replaces the page's content (ignored once the user has left the page). */
    show: (...nodes) => {
      if (!ctx.signal.aborted) fill(main(), ...nodes);
    },
    /** Sets query parameters of the current route and re-renders. */
    navigate: (params) => {
      const next = new URLSearchParams(search);
      for (const [name, value] of Object.entries(params)) {
        if (value === undefined || value === null || value === '') next.delete(name);
        else next.set(name, value);
      }
      const text = next.toString();
      location.hash = `#${path}${text ? `?${text}` : ''}`;
    },
  };
  for (const [pattern, page] of routes) {
    const match = path.match(pattern);
    if (match) {
      try {
        await page(ctx, ...match.slice(1).map(decodeURIComponent));
      } catch (e) {
        if (e.name !== 'AbortError') ctx.show(h('div', { class: 'error-box', role: 'alert' }, describeError(e)));
      }
      return;
    }
  }
  ctx.show(h('h1', {}, 'Page not found'), h('p', {}, 'This console has no page ', h('code', {}, path), '. ',
    h('a', { href: '#/clusters' }, 'Go to clusters'), '.'));
}

function showSignIn(reason) {
  document.title = 'Sign in · Backstop console';
  const input = h('input', { type: 'password', name: 'apiKey', autocomplete: 'off', spellcheck: 'false', required: true });
  const error = h('p', { class: 'form-error', role: 'alert', hidden: !reason }, reason ?? '');
  const form = h('form', { class: 'card signin', novalidate: true },
    h('h1', {}, 'Sign in'),
    h('p', {}, 'Paste an API key. The first start of the server printed an owner key; keys are made with POST /v2/apiKeys.'),
    field('API key', input, 'Kept in this browser tab only (session storage) and sent only to this server.'),
    error,
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Sign in')));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const key = input.value.trim();
    if (!key) {
      error.textContent = 'Paste your API key into the API key field.';
      error.hidden = false;
      input.focus();
      return;
    }
    try {
      // Any read proves the key; projects are what the next page needs anyway.
      await api('GET', '/v2/projects?pageSize=1', undefined, { key });
    } catch (e) {
      error.textContent = e.status === 401
        ? 'This API key was not accepted. Paste the whole key as it was shown when it was created; a deleted key no longer works.'
        : describeError(e);
      error.hidden = false;
      input.focus();
      return;
    }
    setApiKey(key);
    if (!location.hash || location.hash === '#/signin') location.hash = '#/clusters';
    else render();
  });
  fill(main(), form);
  input.focus();
}

whenUnauthenticated(() => {
  setApiKey(null);
  pageAbort.abort();
  document.getElementById('nav').hidden = true;
  document.getElementById('sign-out').hidden = true;
  showSignIn('The server no longer accepts this API key (was it deleted?). Sign in with another key.');
});

document.getElementById('sign-out').addEventListener('click', () => {
  setApiKey(null);
  notify('Signed out. The key was removed from this tab.');
  render();
});

window.addEventListener('hashchange', () => {
  render();
  // Move focus to the new content, as a page load would, for keyboard and screen reader users.
  main().focus({ preventScroll: true });
});
render();
