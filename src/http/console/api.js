// The console's only way to the server: the public /v2 API with the user's API key.

const KEY = 'backstop.apiKey';

export function apiKey() {
  return sessionStorage.getItem(KEY);
}

export function setApiKey(key) {
  if (key) sessionStorage.setItem(KEY, key);
  else sessionStorage.removeItem(KEY);
}

/** An error answer of the API: HTTP status, the 9xxxx code and the server's message. */
export class ApiError extends Error {
  constructor(status, code, message, retryAfter) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

// Called when the server no longer accepts the key (deleted, or a wrong one was pasted).
let onUnauthenticated = () => {};
export function whenUnauthenticated(callback) {
  onUnauthenticated = callback;
}

/**
 * Calls the API and returns the envelope's `data`, or throws an ApiError.
 * `options.key` overrides the stored key (sign-in tries a key before keeping it).
 */
export async function api(method, path, body, options = {}) {
  const key = options.key ?? apiKey();
  const headers = { Accept: 'application/json' };
  if (key) headers.Authorization = `Bearer ${key}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: options.signal,
    });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 0, `The Backstop server did not answer (${e.message}). Check that it is running.`);
  }
  let envelope = null;
  try {
    envelope = await response.json();
  } catch {
    // Not JSON: a proxy's error page, say. Reported below by status.
  }
  if (response.ok && envelope && envelope.code === 0) return envelope.data;
  const code = envelope?.code ?? 0;
  const message = envelope?.message ?? `HTTP ${response.status} ${response.statusText}`;
  const error = new ApiError(response.status, code, message, response.headers.get('Retry-After'));
  if (response.status === 401 && !options.key) onUnauthenticated(error);
  throw error;
}

/** Builds a query string from the defined, non-empty values. */
export function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== '') search.set(name, value);
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}

// Lookups several pages need.

export async function loadProjects(signal) {
  return (await api('GET', '/v2/projects?pageSize=100', undefined, { signal })).projects;
}

export async function loadRegions(signal) {
  return (await api('GET', '/v2/regions?pageSize=100', undefined, { signal })).regions;
}

/** Every cluster the key can see (restore destinations), up to the API's page limit. */
export async function loadAllClusters(signal) {
  return (await api('GET', '/v2/clusters?pageSize=100', undefined, { signal })).clusters;
}

/** Every collection of a cluster, page after page (a cluster may hold thousands). */
export async function loadCollections(clusterId, signal) {
  const all = [];
  for (let page = 1; ; page += 1) {
    const listed = await api('GET',
      `/v2/clusters/${encodeURIComponent(clusterId)}/collections?pageSize=100&currentPage=${page}`,
      undefined, { signal });
    all.push(...listed.collections);
    if (listed.collections.length === 0 || all.length >= listed.count) return all;
  }
}

const FINAL = new Set(['SUCCESSFUL', 'FAILED', 'CANCELED']);
export function isFinal(status) {
  return FINAL.has(status);
}

// A browser keeps at most six HTTP/1.1 connections per server and an event stream holds one
// open, so only a few jobs are followed by stream; the rest are polled.
const MAX_STREAMS = 3;
const POLL_MS = 2000;
let openStreams = 0;

/**
 * Follows a job until its final state: `onUpdate(job)` on every change. Uses the job's
 * Server-Sent Events (read with fetch, since EventSource cannot send the API key) while
 * fewer than MAX_STREAMS are open, else polls GET /v2/jobs/{jobId}. Stops when `signal` aborts.
 */
export async function followJob(jobId, onUpdate, signal) {
  if (openStreams < MAX_STREAMS) {
    openStreams += 1;
    try {
      const last = await streamJob(jobId, onUpdate, signal);
      if (last && isFinal(last.status)) return last;
    } catch (e) {
      if (signal?.aborted) return null;
      // The stream broke (server restarted, proxy timeout): carry on by polling.
    } finally {
      openStreams -= 1;
    }
  }
  while (!signal?.aborted) {
    let job;
    try {
      job = await api('GET', `/v2/jobs/${encodeURIComponent(jobId)}`, undefined, { signal });
    } catch (e) {
      if (signal?.aborted || e.status === 401 || e.status === 404) return null;
      job = null;
    }
    if (job) {
      onUpdate(job);
      if (isFinal(job.status)) return job;
    }
    await sleep(POLL_MS, signal);
  }
  return null;
}

async function streamJob(jobId, onUpdate, signal) {
  const response = await fetch(`/v2/jobs/${encodeURIComponent(jobId)}/events`, {
    headers: { Authorization: `Bearer ${apiKey()}`, Accept: 'text/event-stream' },
    signal,
  });
  if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  let last = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return last;
    buffer += value;
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block
        .split('\n')
        .filter((line) => line.startsWith('data:'))
        .map((line) => line.slice(5).replace(/^ /, ''))
        .join('\n');
      if (!data) continue; // keep-alive comment
      const envelope = JSON.parse(data);
      last = envelope.data;
      onUpdate(last);
    }
  }
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });
}
