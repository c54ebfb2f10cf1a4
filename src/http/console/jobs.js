// The job center (every job, live progress, Cancel) and the live job card other pages show
// for the jobs they start.

import { api, query, isFinal, followJob, loadProjects } from './api.js';
import {
  h, badge, field, select, formatBytes, formatDuration, formatTime, pager, pageHeader, loading, errorBox,
  notify, progressBar, updateProgressBar, fill, href,
} from './ui.js';

const PAGE_SIZE = 20;
const TYPES = ['BACKUP', 'RESTORE_COLLECTION', 'RESTORE_CLUSTER', 'DELETE_BACKUP', 'VERIFY_BACKUP', 'COPY_BACKUP'];
const STATUSES = ['PENDING', 'IN_PROGRESS', 'SUCCESSFUL', 'FAILED', 'CANCELING', 'CANCELED'];
const REFRESH_ACTIVE_MS = 3000;
const REFRESH_IDLE_MS = 15000;

function cancelButton(job, onCanceled) {
  return h('button', {
    type: 'button',
    class: 'danger small',
    'aria-label': `Cancel job ${job.jobId}`,
    onclick: async (event) => {
      event.target.disabled = true;
      try {
        const answer = await api('POST', `/v2/jobs/${encodeURIComponent(job.jobId)}/cancel`);
        notify(`Job ${job.jobId} is ${answer.status}.`, 'success');
        onCanceled?.(answer);
      } catch (e) {
        notify(e.message, 'error');
        event.target.disabled = false;
      }
    },
  }, 'Cancel');
}

/** What a job is doing, or why it failed. */
function details(job) {
  if (job.reason) return h('span', { class: 'reason' }, job.reason);
  const parts = [];
  // A finished job's step says what it did (e.g. "restored 2 collection(s) …; skipped 1").
  if (job.currentStep && (!isFinal(job.status) || job.status === 'SUCCESSFUL')) parts.push(job.currentStep);
  for (const warning of job.result?.warnings ?? []) parts.push(`note: ${warning}`);
  if (job.bytesTotal > 0) parts.push(`${formatBytes(job.bytesDone)} of ${formatBytes(job.bytesTotal)}`);
  if (job.attempts > 1) parts.push(`attempt ${job.attempts} of ${job.maxAttempts}`);
  return parts.join(' · ');
}

const label = (job) => `${job.type} job ${job.jobId}`;

/**
 * A card that follows one job to its end: status, progress, step or reason, Cancel where
 * allowed. `onFinal(job)` runs once when it ends.
 */
export function liveJob(jobId, signal, onFinal) {
  const card = h('div', { class: 'job-card', dataset: { jobId } }, `Job ${jobId}: waiting for its first report…`);
  let bar = null;
  const show = (job) => {
    if (bar) updateProgressBar(bar, job.progress);
    else bar = progressBar(job.progress, label(job));
    fill(card,
      h('div', { class: 'job-card-head' },
        h('strong', {}, job.type.replaceAll('_', ' ').toLowerCase()), ' ',
        h('code', {}, job.jobId), ' ', badge(job.status),
        job.cancellable ? cancelButton(job) : null,
        h('a', { href: href.job(job.jobId) }, 'Job center')),
      bar,
      h('p', { class: 'job-details' }, details(job)));
  };
  followJob(jobId, show, signal).then((job) => {
    if (job && isFinal(job.status)) onFinal?.(job);
  });
  return card;
}

export async function jobsPage(ctx) {
  document.title = 'Job center · Backstop console';
  ctx.show(loading('jobs'));
  const filters = {
    projectId: ctx.params.get('projectId') ?? '',
    type: ctx.params.get('type') ?? '',
    status: ctx.params.get('status') ?? '',
  };
  let projects;
  try {
    projects = await loadProjects(ctx.signal);
  } catch (e) {
    if (e.name !== 'AbortError') ctx.show(errorBox(e, () => jobsPage(ctx)));
    return;
  }
  const pick = (name, labelText, options) => field(labelText, select({
    name, onchange: (e) => ctx.navigate({ [name]: e.target.value, page: '' }),
  }, [['', 'All'], ...options], filters[name]));
  const list = h('div', {}, loading('jobs'));
  ctx.show(
    pageHeader('Job center'),
    h('div', { class: 'toolbar' },
      pick('projectId', 'Project', projects.map((p) => [p.projectId, p.projectName])),
      pick('type', 'Type', TYPES.map((t) => [t, t])),
      pick('status', 'Status', STATUSES.map((s) => [s, s]))),
    list);

  const rows = new Map(); // jobId -> { row, job }
  const streamed = new Set();
  const highlight = ctx.params.get('jobId');

  function update(job) {
    const entry = rows.get(job.jobId);
    if (!entry) return;
    const before = entry.job;
    entry.job = job;
    const [, , status, progress, , , duration, info, actions] = entry.row.children;
    if (before.status !== job.status) fill(status, badge(job.status));
    updateProgressBar(progress.firstChild, job.progress);
    duration.textContent = formatDuration(job.startTime, job.endTime);
    fill(info, details(job));
    if (before.cancellable !== job.cancellable) fill(actions, job.cancellable ? cancelButton(job, refresh) : '');
  }

  function renderRow(job) {
    const resource = [];
    if (job.resource.clusterId) {
      resource.push(h('a', { href: href.cluster(job.resource.clusterId) }, job.resource.clusterId));
    }
    if (job.resource.backupId) {
      const ownCluster = ['BACKUP', 'DELETE_BACKUP', 'VERIFY_BACKUP', 'COPY_BACKUP'].includes(job.type);
      resource.push(' ', ownCluster && job.resource.clusterId
        ? h('a', { href: href.backup(job.resource.clusterId, job.resource.backupId) },
          job.resource.backupId)
        : job.resource.backupId);
    }
    return h('tr', { dataset: { jobId: job.jobId }, class: job.jobId === highlight ? 'highlight' : null },
      h('td', {}, h('code', {}, job.jobId)),
      h('td', {}, job.type),
      h('td', {}, badge(job.status)),
      h('td', {}, progressBar(job.progress, label(job))),
      h('td', {}, resource),
      h('td', {}, formatTime(job.startTime ?? job.createTime)),
      h('td', {}, formatDuration(job.startTime, job.endTime)),
      h('td', {}, details(job)),
      h('td', {}, job.cancellable ? cancelButton(job, refresh) : ''));
  }

  let timer = null;
  async function refresh() {
    clearTimeout(timer);
    let answer;
    try {
      answer = await api('GET', `/v2/jobs${query({ ...filters, currentPage: ctx.params.get('page') ?? '1', pageSize: PAGE_SIZE })}`,
        undefined, { signal: ctx.signal });
    } catch (e) {
      if (e.name === 'AbortError') return;
      fill(list, errorBox(e, refresh));
      return;
    }
    const sameRows = answer.jobs.length === rows.size && answer.jobs.every((j) => rows.has(j.jobId));
    if (sameRows) {
      for (const job of answer.jobs) update(job); // in place: keeps keyboard focus
    } else {
      rows.clear();
      for (const job of answer.jobs) rows.set(job.jobId, { row: renderRow(job), job });
      fill(list, answer.jobs.length === 0
        ? h('p', { class: 'empty' }, 'No jobs match. Backups, restores, verifications and deletions show here.')
        : h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': 'Jobs' },
          h('table', {},
            h('caption', { class: 'visually-hidden' }, 'Jobs, newest first'),
            h('thead', {}, h('tr', {}, ['Job', 'Type', 'Status', 'Progress', 'Resource', 'Started', 'Duration', 'Details', '']
              .map((t) => h('th', { scope: 'col' }, t)))),
            h('tbody', {}, [...rows.values()].map((r) => r.row)))),
      answer.count > PAGE_SIZE ? pager(answer, (page) => ctx.navigate({ page })) : null);
    }
    // Running jobs move by their event streams (a few at a time), the rest by this refresh.
    const active = answer.jobs.filter((j) => !isFinal(j.status));
    for (const job of active.slice(0, 3)) {
      if (streamed.has(job.jobId)) continue;
      streamed.add(job.jobId);
      followJob(job.jobId, update, ctx.signal).then(() => streamed.delete(job.jobId));
    }
    if (!ctx.signal.aborted) timer = setTimeout(refresh, active.length ? REFRESH_ACTIVE_MS : REFRESH_IDLE_MS);
  }
  // Durations of running jobs tick every second.
  const ticker = setInterval(() => {
    for (const { row, job } of rows.values()) {
      if (job.startTime && !job.endTime) row.children[6].textContent = formatDuration(job.startTime, null);
    }
  }, 1000);
  ctx.signal.addEventListener('abort', () => {
    clearTimeout(timer);
    clearInterval(ticker);
  });
  await refresh();
}
