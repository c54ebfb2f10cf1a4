// The Restore dialog of a backup: chosen collections (renamed, loaded or not) or the whole
// backup, into any registered cluster the key may restore to; what to do with collections
// that exist there (fail, skip, replace), and metadata only.

import { api, loadAllClusters } from './api.js';
import { h, field, select, openDialog, errorBox, notify, fill } from './ui.js';
import { liveJob } from './jobs.js';

/** The load-state picker of one collection; Milvus loads only indexed collections. */
function loadState(dbName, collection) {
  const name = `${dbName}.${collection.collectionName}`;
  const picker = select({ 'aria-label': `Load state of ${name} after restore`, dataset: { load: '' } },
    [['NOT_LOADED', 'Not loaded'], ['LOADED', 'Loaded']], 'NOT_LOADED');
  if (collection.loadable !== false) return picker;
  picker.querySelector('option[value=LOADED]').disabled = true;
  const hintId = `load-hint-${name.replace(/\W/g, '-')}`;
  picker.setAttribute('aria-describedby', hintId);
  return [picker, h('p', { class: 'hint', id: hintId }, 'No vector index: create one after the restore, then load.')];
}

export async function restoreDialog(ctx, backup, jobs) {
  const destination = select({ name: 'destClusterId', 'data-field': 'destClusterId' }, []);
  const collectionsPart = h('div', { class: 'restore-collections' });
  const clusterPart = h('div', { hidden: true },
    field('Load state', select({ name: 'collectionStatus', 'data-field': 'collectionStatus' },
      [['KEEP', 'As in the backup (loaded collections are loaded)'], ['RELEASE', 'Leave every collection released']], 'KEEP')));
  const kind = (value, label, checked) => h('label', { class: 'choice' },
    h('input', {
      type: 'radio', name: 'restoreKind', value, checked,
      onchange: () => {
        collectionsPart.hidden = value !== 'collections';
        clusterPart.hidden = value !== 'cluster';
      },
    }), ' ', label);

  for (const [d, db] of backup.dbCollections.entries()) {
    const rows = db.collections.map((c, i) => h('tr', {},
      h('td', {}, h('input', {
        type: 'checkbox', checked: true, dataset: { include: '' }, 'aria-label': `Restore ${db.dbName}.${c.collectionName}`,
      })),
      h('td', {}, c.collectionName),
      h('td', {}, h('input', {
        name: `dest-${d}-${i}`, dataset: { collection: c.collectionName }, placeholder: c.collectionName,
        autocomplete: 'off', 'aria-label': `New name for ${db.dbName}.${c.collectionName}`,
      })),
      h('td', {}, loadState(db.dbName, c))));
    collectionsPart.append(h('fieldset', { class: 'restore-db', dataset: { db: db.dbName } },
      h('legend', {}, `Database ${db.dbName}`),
      field('Restore into database', h('input', { dataset: { destDb: '' }, placeholder: db.dbName, autocomplete: 'off' }),
        'Leave empty to keep the name; a missing database is created.'),
      h('div', { class: 'table-wrap' }, h('table', {},
        h('thead', {}, h('tr', {}, ['Restore', 'Collection', 'New name (empty: same)', 'After restore'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, rows)))));
  }

  const onExisting = select({ name: 'onExisting', 'data-field': 'onExisting' }, [
    ['FAIL', 'Refuse the restore'],
    ['SKIP', 'Leave it as it is, restore the others'],
    ['DROP', 'Replace it (dropped once the backup is verified)'],
  ], 'FAIL');
  const metaOnly = h('input', { type: 'checkbox', name: 'metaOnly', 'data-field': 'metaOnly' });
  const form = h('form', { dataset: { submit: 'Start restore' } },
    h('fieldset', { class: 'choices' }, h('legend', {}, 'What to restore'),
      kind('collections', 'Chosen collections', true),
      kind('cluster', 'The whole backup (every database and collection)', false)),
    field('Destination cluster', destination),
    collectionsPart,
    clusterPart,
    field('If a collection exists there', onExisting),
    h('label', { class: 'choice' }, metaOnly, ' Metadata only: schema, partitions, indexes and aliases, no rows'));
  openDialog(`Restore ${backup.backupName}`, form, async () => {
    const base = `/v2/clusters/${encodeURIComponent(backup.clusterId)}/backups/${encodeURIComponent(backup.backupId)}`;
    let started;
    if (form.elements.restoreKind.value === 'cluster') {
      started = await api('POST', `${base}/restoreCluster`, {
        destClusterId: destination.value,
        collectionStatus: form.elements.collectionStatus.value,
        onExisting: onExisting.value,
        metaOnly: metaOnly.checked,
      });
    } else {
      const dbCollections = [];
      for (const part of collectionsPart.querySelectorAll('.restore-db')) {
        const collections = [];
        for (const row of part.querySelectorAll('tbody tr')) {
          if (!row.querySelector('[data-include]').checked) continue;
          const rename = row.querySelector('[data-collection]');
          collections.push({
            collectionName: rename.dataset.collection,
            destCollectionName: rename.value.trim() || undefined,
            destCollectionStatus: row.querySelector('[data-load]').value,
          });
        }
        if (collections.length === 0) continue;
        const destDbName = part.querySelector('[data-dest-db]').value.trim() || undefined;
        dbCollections.push({ dbName: part.dataset.db, destDbName, collections });
      }
      if (dbCollections.length === 0) {
        throw new Error('Tick at least one collection to restore, or choose the whole backup.');
      }
      started = await api('POST', `${base}/restoreCollection`, {
        destClusterId: destination.value, dbCollections, onExisting: onExisting.value, metaOnly: metaOnly.checked,
      });
    }
    notify(`Restore started (job ${started.jobId}).`, 'success');
    jobs.append(liveJob(started.jobId, ctx.signal));
  });
  // Destinations: every cluster the key can see, the backup's own first.
  destination.append(h('option', { value: '' }, 'Loading clusters…'));
  try {
    const clusters = await loadAllClusters(ctx.signal);
    clusters.sort((a, b) => (b.clusterId === backup.clusterId) - (a.clusterId === backup.clusterId));
    fill(destination, ...clusters.map((c) => h('option', { value: c.clusterId },
      `${c.clusterName} (${c.clusterId}, ${c.regionId})`)));
  } catch (e) {
    if (e.name !== 'AbortError') destination.closest('.field').append(errorBox(e));
  }
}
