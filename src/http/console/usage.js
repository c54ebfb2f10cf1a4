// Usage: backup storage and its cost per region, and per backup within a region.

import { api, query, loadProjects } from './api.js';
import { h, field, select, formatBytes, formatMoney, table, pageHeader, loading, errorBox } from './ui.js';

const DAY_MS = 24 * 3600 * 1000;

export async function usagePage(ctx) {
  document.title = 'Usage · Backstop console';
  ctx.show(loading('usage'));
  // Dates are whole UTC days; the end date is included.
  const today = new Date().toISOString().slice(0, 10);
  const from = ctx.params.get('from') ?? new Date(Date.now() - 30 * DAY_MS).toISOString().slice(0, 10);
  const to = ctx.params.get('to') ?? today;
  const projectId = ctx.params.get('projectId') ?? '';
  let projects;
  let usage;
  try {
    const endTime = new Date(Date.parse(`${to}T00:00:00Z`) + DAY_MS).toISOString();
    [projects, usage] = await Promise.all([
      loadProjects(ctx.signal),
      api('GET', `/v2/usage/backups${query({ projectId, startTime: `${from}T00:00:00Z`, endTime })}`,
        undefined, { signal: ctx.signal }),
    ]);
  } catch (e) {
    if (e.name === 'AbortError') return;
    ctx.show(pageHeader('Usage'), dateFilters(ctx, from, to), errorBox(e));
    return;
  }
  const regionRows = usage.regions.map((r) => [
    r.regionId,
    `${formatMoney(r.pricePerGbMonth)} / GB-month`,
    r.gbDays.toFixed(3),
    formatMoney(r.cost),
    String(r.backups.length),
  ]);
  ctx.show(
    pageHeader('Usage'),
    h('div', { class: 'toolbar' },
      field('Project', select({ onchange: (e) => ctx.navigate({ projectId: e.target.value }) },
        [['', 'All projects'], ...projects.map((p) => [p.projectId, p.projectName])], projectId)),
      dateFilters(ctx, from, to)),
    h('p', { class: 'total' }, 'Total cost: ', h('strong', { 'data-total-cost': '' }, formatMoney(usage.totalCost)),
      ' · billed per day, one-day minimum, at each region\'s price per GB-month / 30.'),
    table('Backup storage per region', ['Region', 'Price', 'GB-days', 'Cost', 'Backups'], regionRows,
      'No backup storage in this period.'),
    usage.regions.map((r) => h('details', { class: 'region-usage' },
      h('summary', {}, `Backups in ${r.regionId}`),
      table(`Backups in ${r.regionId}`, ['Backup', 'Cluster', 'Size', 'Days', 'GB-days', 'Cost'],
        r.backups.map((b) => [b.backupName, b.clusterId, formatBytes(b.size), String(b.days), b.gbDays.toFixed(3),
          formatMoney(b.cost)])))),
  );
}

function dateFilters(ctx, from, to) {
  const date = (name, label, value) => field(label, h('input', {
    type: 'date', name, value, onchange: (e) => ctx.navigate({ [name]: e.target.value }),
  }));
  return h('div', { class: 'date-filters' }, date('from', 'From (UTC)', from), date('to', 'To (UTC, included)', to));
}
