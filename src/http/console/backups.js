// A cluster's Backups tab (list, Create backup) and a backup's details (verify, delete).

import { api, query, isFinal, loadCollections, loadRegions } from './api.js';
import {
  h, badge, fact, field, formatBytes, formatTime, table, pager, openDialog, pageHeader, loading, errorBox,
  notify, fill, href,
} from './ui.js';
import { liveJob } from './jobs.js';
import { restoreDialog } from './restore.js';

const PAGE_SIZE = 10;
const BUSY = new Set(['CREATING', 'DELETING']);

export async function backupsTab(ctx, cluster, body) {
  const jobs = h('div', { class: 'live-jobs', 'aria-label': 'Jobs started here' });
  const list = h('div', {}, loading('backups'));
  fill(body,
    h('div', { class: 'section-header' },
      h('h2', {}, 'Backups'),
      h('button', { type: 'button', class: 'primary', onclick: () => createBackupDialog(ctx, cluster, jobs, refresh) },
        'Create backup')),
    jobs,
    list,
  );
  // One follower per busy backup; refreshes of the list do not start a second one.
  const followed = new Set();
  async function refresh() {
    let answer;
    try {
      answer = await api('GET', `/v2/backups${query({
        clusterId: cluster.clusterId, currentPage: ctx.params.get('page') ?? '1', pageSize: PAGE_SIZE,
      })}`, undefined, { signal: ctx.signal });
    } catch (e) {
      if (e.name !== 'AbortError') fill(list, errorBox(e, refresh));
      return;
    }
    const rows = answer.backups.map((b) => [
      h('a', { href: href.backup(cluster.clusterId, b.backupId) }, b.backupName),
      BUSY.has(b.status) && b.jobId ? h('span', { class: 'busy-status', dataset: { jobId: b.jobId } }, badge(b.status)) : badge(b.status),
      b.backupType,
      b.creationMethod,
      formatBytes(b.size),
      formatTime(b.createTime),
      b.expireTime ? formatTime(b.expireTime) : 'Kept until deleted',
    ]);
    fill(list,
      table('Backups', ['Name', 'Status', 'Type', 'Created by', 'Size', 'Created', 'Expires'], rows,
        'No backups of this cluster yet. Create backup takes one now.'),
      answer.count > PAGE_SIZE ? pager(answer, (page) => ctx.navigate({ page })) : null,
    );
    for (const b of answer.backups) {
      if (BUSY.has(b.status) && b.jobId && !followed.has(b.jobId)) {
        followed.add(b.jobId);
        jobs.append(liveJob(b.jobId, ctx.signal, () => {
          followed.delete(b.jobId);
          refresh();
        }));
      }
    }
  }
  await refresh();
}

async function createBackupDialog(ctx, cluster, jobs, refresh) {
  const picker = h('fieldset', { class: 'picker', 'data-field': 'dbCollections', hidden: true },
    h('legend', {}, 'Databases and collections'), loading('collections from the cluster'));
  const kind = (value, label, checked) => h('label', { class: 'choice' },
    h('input', { type: 'radio', name: 'backupType', value, checked, onchange: () => { picker.hidden = value === 'CLUSTER'; } }),
    ' ', label);
  const name = h('input', { name: 'backupName', 'data-field': 'backupName', autocomplete: 'off' });
  const copies = h('fieldset', { class: 'choices', 'data-field': 'crossRegionCopies' }, h('legend', {}, 'Also copy to'));
  const form = h('form', { dataset: { submit: 'Create backup' } },
    h('fieldset', { class: 'choices', 'data-field': 'backupType' },
      h('legend', {}, 'What to back up'),
      kind('CLUSTER', 'The whole cluster', true),
      kind('COLLECTION', 'Chosen databases and collections', false)),
    picker,
    field('Backup name', name, `Optional. Default: ${cluster.clusterName}_backup<N>.`),
    copies);
  openDialog(`Create backup of ${cluster.clusterName}`, form, async () => {
    const backupType = form.elements.backupType.value;
    const body = { backupType };
    if (name.value.trim()) body.backupName = name.value.trim();
    if (backupType === 'COLLECTION') {
      const byDb = new Map();
      for (const box of picker.querySelectorAll('input[data-collection]:checked')) {
        const names = byDb.get(box.dataset.db) ?? [];
        names.push(box.dataset.collection);
        byDb.set(box.dataset.db, names);
      }
      body.dbCollections = [...byDb].map(([dbName, collectionNames]) => ({ dbName, collectionNames }));
    }
    body.crossRegionCopies = [...copies.querySelectorAll('input:checked')].map((box) => ({ regionId: box.value }));
    const created = await api('POST', `/v2/clusters/${encodeURIComponent(cluster.clusterId)}/backups/create`, body);
    notify(`Backup ${created.backupName} started (job ${created.jobId}).`, 'success');
    await refresh();
  });
  // Filled in after the dialog opens, so a slow Milvus does not hold it up.
  try {
    const [collections, regions] = await Promise.all([
      loadCollections(cluster.clusterId, ctx.signal),
      loadRegions(ctx.signal),
    ]);
    fillPicker(picker, collections);
    const others = regions.filter((r) => r.regionId !== cluster.regionId);
    if (others.length === 0) copies.remove();
    for (const region of others) {
      copies.append(h('label', { class: 'choice' },
        h('input', { type: 'checkbox', value: region.regionId }), ' ', `${region.regionId} (${region.cloudProvider})`));
    }
  } catch (e) {
    if (e.name === 'AbortError') return;
    fill(picker, h('legend', {}, 'Databases and collections'), errorBox(e));
  }
}

/** Checkboxes per database ("all of it") and per collection, with a filter for long lists. */
function fillPicker(picker, collections) {
  const byDb = new Map();
  for (const c of collections) {
    if (!byDb.has(c.dbName)) byDb.set(c.dbName, []);
    byDb.get(c.dbName).push(c.collectionName);
  }
  const groups = [...byDb].map(([db, names]) => {
    const boxes = names.map((collection) => h('label', { class: 'choice' },
      h('input', { type: 'checkbox', dataset: { db, collection } }), ' ', collection));
    const all = h('input', {
      type: 'checkbox',
      'aria-label': `Every collection in database ${db}`,
      onchange: (e) => {
        for (const label of boxes) label.querySelector('input').checked = e.target.checked;
      },
    });
    return h('div', { class: 'picker-db' },
      h('label', { class: 'choice picker-db-name' }, all, ' ', h('strong', {}, db), ` (${names.length})`),
      h('div', { class: 'picker-collections' }, boxes));
  });
  const filter = h('input', {
    type: 'search',
    placeholder: 'Filter collections',
    'aria-label': 'Filter collections',
    oninput: () => {
      const text = filter.value.toLowerCase();
      for (const label of picker.querySelectorAll('.picker-collections label')) {
        label.hidden = !label.textContent.toLowerCase().includes(text);
      }
    },
  });
  fill(picker, h('legend', {}, 'Databases and collections'),
    collections.length === 0
      ? h('p', { class: 'empty' }, 'This cluster has no collections.')
      : [collections.length > 10 ? filter : null, h('div', { class: 'picker-list' }, groups)]);
}

/** A backup's details: collections with rows and sizes, copies; Restore, Verify, Delete. */
export async function backupPage(ctx, clusterId, backupId) {
  ctx.show(loading('the backup'));
  let backup;
  try {
    backup = await api('GET', `/v2/clusters/${encodeURIComponent(clusterId)}/backups/${encodeURIComponent(backupId)}`,
      undefined, { signal: ctx.signal });
  } catch (e) {
    if (e.name === 'AbortError') return;
    ctx.show(errorBox(e, () => backupPage(ctx, clusterId, backupId)));
    return;
  }
  document.title = `${backup.backupName} · Backstop console`;
  const jobs = h('div', { class: 'live-jobs' });
  const rerender = () => backupPage(ctx, clusterId, backupId);
  const available = backup.status === 'AVAILABLE';
  const actions = [
    available ? h('button', { type: 'button', class: 'primary', onclick: () => restoreDialog(ctx, backup, jobs) }, 'Restore') : null,
    available ? h('button', { type: 'button', onclick: () => verify(backup, jobs, ctx) }, 'Verify') : null,
    backup.status !== 'DELETING'
      ? h('button', { type: 'button', class: 'danger', onclick: () => deleteDialog(backup) }, 'Delete')
      : null,
  ];
  const collectionRows = backup.dbCollections.flatMap((db) => db.collections.map((c) => [
    db.dbName, c.collectionName, badge(c.status), Number(c.rowCount).toLocaleString('en'), formatBytes(c.size),
  ]));
  const copyRows = (backup.copies ?? []).map((c) => [
    c.regionId, badge(c.status), formatBytes(c.size), c.expireTime ? formatTime(c.expireTime) : 'With the backup', c.reason ?? '',
  ]);
  ctx.show(
    h('p', { class: 'breadcrumb' },
      h('a', { href: '#/clusters' }, 'Clusters'), ' / ',
      h('a', { href: href.cluster(clusterId) }, backup.clusterName), ' / ', backup.backupName),
    pageHeader(backup.backupName, ...actions),
    jobs,
    h('dl', { class: 'facts' },
      fact('Backup ID', h('code', {}, backup.backupId)),
      fact('Status', badge(backup.status)),
      fact('Type', backup.backupType),
      fact('Created by', backup.creationMethod),
      fact('Size', formatBytes(backup.size)),
      fact('Region', backup.regionId),
      fact('Created', formatTime(backup.createTime)),
      fact('Expires', backup.expireTime ? formatTime(backup.expireTime) : 'Kept until deleted'),
      backup.reason ? fact('Reason', backup.reason) : null),
    h('h2', {}, 'Collections'),
    table('Collections in the backup', ['Database', 'Collection', 'Status', 'Rows', 'Size'], collectionRows,
      backup.status === 'CREATING' ? 'The collections are listed once the backup has read them.' : 'No collections.'),
    copyRows.length ? [h('h2', {}, 'Cross-region copies'),
      table('Cross-region copies', ['Region', 'Status', 'Size', 'Expires', 'Reason'], copyRows)] : null,
  );
  if (BUSY.has(backup.status) && backup.jobId) {
    jobs.append(liveJob(backup.jobId, ctx.signal, (job) => (isFinal(job.status) ? rerender() : null)));
  }
}

async function verify(backup, jobs, ctx) {
  try {
    const started = await api('POST',
      `/v2/clusters/${encodeURIComponent(backup.clusterId)}/backups/${encodeURIComponent(backup.backupId)}/verify`);
    notify(`Verification started (job ${started.jobId}).`, 'success');
    jobs.append(liveJob(started.jobId, ctx.signal));
  } catch (e) {
    notify(e.message, 'error');
  }
}

function deleteDialog(backup) {
  const confirm = h('input', { name: 'confirm', 'data-field': 'confirm', autocomplete: 'off' });
  const form = h('form', { dataset: { submit: 'Delete backup', danger: 'yes' } },
    h('p', {}, 'This removes the backup and all its copies from object storage. It cannot be undone.'),
    field(`Type ${backup.backupName} to confirm`, confirm));
  openDialog(`Delete ${backup.backupName}?`, form, async () => {
    if (confirm.value.trim() !== backup.backupName) {
      throw new Error(`confirm: type the backup name ${backup.backupName} exactly to delete it`);
    }
    const deleted = await api('DELETE',
      `/v2/clusters/${encodeURIComponent(backup.clusterId)}/backups/${encodeURIComponent(backup.backupId)}`);
    notify(`Deleting ${deleted.backupName} (job ${deleted.jobId}).`, 'success');
    location.hash = href.cluster(backup.clusterId);
  });
}
