// Clusters: the list per project, registering a cluster, and a cluster's page with its tabs.

import { api, query, loadProjects, loadRegions } from './api.js';
import {
  h, badge, fact, field, select, table, pager, openDialog, pageHeader, loading, errorBox, notify, href,
  wholeNumberOrText,
} from './ui.js';
import { backupsTab } from './backups.js';
import { policyTab } from './policy.js';

const PAGE_SIZE = 10;

export async function clustersPage(ctx) {
  document.title = 'Clusters · Backstop console';
  ctx.show(loading('clusters'));
  const projectId = ctx.params.get('projectId') ?? '';
  const currentPage = ctx.params.get('page') ?? '1';
  let projects;
  let regions;
  let answer;
  try {
    [projects, regions, answer] = await Promise.all([
      loadProjects(ctx.signal),
      loadRegions(ctx.signal),
      api('GET', `/v2/clusters${query({ projectId, currentPage, pageSize: PAGE_SIZE })}`, undefined, { signal: ctx.signal }),
    ]);
  } catch (e) {
    if (e.name === 'AbortError') return;
    ctx.show(errorBox(e, () => clustersPage(ctx)));
    return;
  }
  const projectNames = new Map(projects.map((p) => [p.projectId, p.projectName]));
  const projectPicker = select({ id: 'project-filter', onchange: (e) => ctx.navigate({ projectId: e.target.value, page: '' }) },
    [['', 'All projects'], ...projects.map((p) => [p.projectId, `${p.projectName} (${p.projectId})`])], projectId);
  const rows = answer.clusters.map((c) => [
    h('a', { href: href.cluster(c.clusterId) }, c.clusterName),
    h('code', {}, c.clusterId),
    projectNames.get(c.projectId) ?? c.projectId,
    c.regionId,
    c.plan,
    String(c.cuSize),
    badge(c.status),
    c.milvusVersion ?? '—',
  ]);
  ctx.show(
    pageHeader('Clusters',
      h('button', { type: 'button', onclick: () => newProjectDialog(ctx) }, 'New project'),
      h('button', {
        type: 'button',
        class: 'primary',
        onclick: () => registerClusterDialog(ctx, projects, regions, projectId),
      }, 'Register cluster')),
    h('div', { class: 'toolbar' }, field('Project', projectPicker)),
    projects.length === 0
      ? h('p', { class: 'empty' }, 'No projects yet. Create one with New project, then register a cluster in it.')
      : table('Clusters', ['Name', 'Cluster ID', 'Project', 'Region', 'Plan', 'CU', 'Status', 'Milvus'], rows,
        'No clusters registered here yet. Register cluster adds a running Milvus.'),
    answer.count > PAGE_SIZE ? pager(answer, (page) => ctx.navigate({ page })) : null,
  );
}

function newProjectDialog(ctx) {
  const name = h('input', { name: 'projectName', 'data-field': 'projectName', autocomplete: 'off' });
  const form = h('form', { dataset: { submit: 'Create project' } }, field('Project name', name));
  openDialog('New project', form, async () => {
    const created = await api('POST', '/v2/projects', { projectName: name.value.trim() });
    notify(`Project ${name.value.trim()} created (${created.projectId}).`, 'success');
    ctx.navigate({ projectId: created.projectId, page: '' });
  });
}

function registerClusterDialog(ctx, projects, regions, projectId) {
  const input = (name, attrs = {}) => h('input', { name, 'data-field': name, autocomplete: 'off', ...attrs });
  const storageType = select({ name: 'storage.type', 'data-field': 'storage.type' },
    [['local', 'Local directory (Milvus localStorage)'], ['s3', 'S3 / MinIO bucket']], 'local');
  const local = h('fieldset', {}, h('legend', {}, 'Local storage'),
    field('Storage path', input('storage.path', { placeholder: '/var/lib/milvus/data' }),
      'Absolute path of the Milvus localStorage.path, readable by this server.'));
  const s3 = h('fieldset', { hidden: true }, h('legend', {}, 'S3 storage'),
    field('Endpoint', input('storage.endpoint', { placeholder: 'http://minio:9000' }), 'Leave empty for AWS.'),
    field('Bucket', input('storage.bucket')),
    field('Root path', input('storage.rootPath', { placeholder: 'files' })),
    field('Region', input('storage.region', { placeholder: 'us-east-1' })),
    field('Access key ID', input('storage.accessKeyId')),
    field('Secret access key', input('storage.secretAccessKey', { type: 'password' }), 'Stored encrypted; never shown again.'));
  storageType.addEventListener('change', () => {
    local.hidden = storageType.value !== 'local';
    s3.hidden = storageType.value !== 's3';
  });
  const form = h('form', { dataset: { submit: 'Register' } },
    field('Cluster name', input('clusterName')),
    field('Project', select({ name: 'projectId', 'data-field': 'projectId' },
      projects.map((p) => [p.projectId, p.projectName]), projectId || projects[0]?.projectId)),
    field('Region', select({ name: 'regionId', 'data-field': 'regionId' },
      regions.map((r) => [r.regionId, `${r.regionId} (${r.cloudProvider})`]), regions[0]?.regionId),
    'Backups of this cluster are stored in this region.'),
    field('Plan', select({ name: 'plan', 'data-field': 'plan' }, [['Dedicated', 'Dedicated'], ['Serverless', 'Serverless']], 'Dedicated'),
      'Only Dedicated clusters can be backed up.'),
    field('CU size', input('cuSize', { type: 'number', min: '1', value: '1', inputmode: 'numeric' })),
    field('Milvus URI', input('milvus.uri', { placeholder: 'http://127.0.0.1:19530' })),
    field('Milvus token', input('milvus.token', { type: 'password' }), 'Optional (user:password or an API token). Stored encrypted.'),
    field('Storage type', storageType),
    local,
    s3,
  );
  openDialog('Register cluster', form, async () => {
    const value = (name) => form.elements[name].value.trim();
    const optional = (name) => value(name) || undefined;
    const storage = storageType.value === 'local'
      ? { type: 'local', path: value('storage.path') }
      : {
        type: 's3',
        endpoint: optional('storage.endpoint'),
        bucket: value('storage.bucket'),
        rootPath: value('storage.rootPath'),
        region: optional('storage.region'),
        accessKeyId: value('storage.accessKeyId'),
        secretAccessKey: value('storage.secretAccessKey'),
      };
    const body = {
      clusterName: value('clusterName'),
      projectId: value('projectId'),
      regionId: value('regionId'),
      plan: value('plan'),
      cuSize: wholeNumberOrText(value('cuSize')),
      milvus: { uri: value('milvus.uri'), token: optional('milvus.token') },
      storage,
    };
    const created = await api('POST', '/v2/clusters', body);
    notify(`Cluster ${body.clusterName} registered (${created.clusterId}).`, 'success');
    location.hash = href.cluster(created.clusterId);
  });
}

/** A cluster's page: its facts, and the Backups or Automatic backups tab. */
export async function clusterPage(ctx, clusterId, tab) {
  ctx.show(loading('the cluster'));
  let cluster;
  try {
    cluster = await api('GET', `/v2/clusters/${encodeURIComponent(clusterId)}`, undefined, { signal: ctx.signal });
  } catch (e) {
    if (e.name === 'AbortError') return;
    ctx.show(errorBox(e, () => clusterPage(ctx, clusterId, tab)));
    return;
  }
  document.title = `${cluster.clusterName} · Backstop console`;
  const tabLink = (name, target, label) => h('a', {
    href: target, class: 'tab', 'aria-current': tab === name ? 'page' : null,
  }, label);
  const body = h('div', { class: 'tab-body' });
  ctx.show(
    h('p', { class: 'breadcrumb' }, h('a', { href: '#/clusters' }, 'Clusters'), ' / ', cluster.clusterName),
    pageHeader(cluster.clusterName),
    h('dl', { class: 'facts' },
      fact('Cluster ID', h('code', {}, cluster.clusterId)),
      fact('Status', badge(cluster.status)),
      fact('Region', cluster.regionId),
      fact('Plan', cluster.plan),
      fact('CU', String(cluster.cuSize)),
      fact('Milvus', cluster.milvusVersion ?? '—'),
      fact('Address', cluster.connectAddress)),
    h('nav', { class: 'tabs', 'aria-label': 'Cluster' },
      tabLink('backups', href.cluster(clusterId), 'Backups'),
      tabLink('policy', href.policy(clusterId), 'Automatic backups')),
    body,
  );
  if (tab === 'policy') await policyTab(ctx, cluster, body);
  else await backupsTab(ctx, cluster, body);
}
