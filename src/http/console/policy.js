// A cluster's Automatic backups tab: the policy form, with the API's validation shown beside
// the field it names.

import { api, loadRegions } from './api.js';
import {
  h, badge, field, select, loading, errorBox, notify, clearFieldErrors, showFormError, fill, wholeNumberOrText,
} from './ui.js';

const DAYS = ['Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday', 'Sunday'];

export async function policyTab(ctx, cluster, body) {
  fill(body, loading('the policy'));
  const path = `/v2/clusters/${encodeURIComponent(cluster.clusterId)}/backups/policy`;
  let policy;
  let regions;
  try {
    [policy, regions] = await Promise.all([api('GET', path, undefined, { signal: ctx.signal }), loadRegions(ctx.signal)]);
  } catch (e) {
    if (e.name !== 'AbortError') fill(body, errorBox(e, () => policyTab(ctx, cluster, body)));
    return;
  }
  const days = new Set((policy.frequency ?? '1,2,3,4,5,6,7').split(',').filter(Boolean));
  const enabled = h('input', { type: 'checkbox', name: 'enabled', checked: policy.status === 'ENABLED' });
  const windowInput = h('input', {
    name: 'startTime', 'data-field': 'startTime', value: policy.startTime ?? '02:00-04:00',
    placeholder: 'HH:mm-HH:mm', autocomplete: 'off',
  });
  const retention = h('input', {
    name: 'retentionDays', 'data-field': 'retentionDays', type: 'number', min: '1', max: '30',
    value: String(policy.retentionDays ?? 7), inputmode: 'numeric',
  });
  const otherRegions = regions.filter((r) => r.regionId !== cluster.regionId);
  const copyRows = h('div', { class: 'copy-rows' });
  const addCopy = (copy = {}) => {
    const row = h('div', { class: 'copy-row' },
      field('Region', select({ dataset: { copyRegion: '' }, 'data-field': 'crossRegionCopies' },
        otherRegions.map((r) => [r.regionId, `${r.regionId} (${r.cloudProvider})`]), copy.regionId)),
      field('Keep copies (days)', h('input', {
        type: 'number', min: '1', max: '30', value: String(copy.retentionDays ?? 7), dataset: { copyRetention: '' },
      })),
      h('button', { type: 'button', class: 'small', onclick: () => row.remove() }, 'Remove'));
    copyRows.append(row);
  };
  (policy.crossRegionCopies ?? []).forEach(addCopy);

  const status = h('p', { class: 'policy-status' }, 'Status: ', badge(policy.status));
  const error = h('p', { class: 'form-error', role: 'alert', hidden: true });
  const form = h('form', { class: 'card policy-form', novalidate: true, 'aria-label': 'Automatic backup policy' },
    status,
    h('label', { class: 'choice' }, enabled, ' Take automatic backups of this cluster'),
    h('fieldset', { class: 'choices days', 'data-field': 'frequency' }, h('legend', {}, 'Days (UTC)'),
      DAYS.map((day, i) => h('label', { class: 'choice' },
        h('input', { type: 'checkbox', name: 'day', value: String(i + 1), checked: days.has(String(i + 1)) }), ' ', day))),
    field('Window (UTC)', windowInput, 'A backup starts within this window, HH:mm-HH:mm; it may cross midnight.'),
    field('Keep automatic backups (days)', retention, '1 to 30 days; manual backups are kept until deleted.'),
    otherRegions.length
      ? h('fieldset', {}, h('legend', {}, 'Cross-region copies'), copyRows,
        h('button', { type: 'button', class: 'small', onclick: () => addCopy() }, 'Add a region'))
      : null,
    error,
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Save policy')));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearFieldErrors(form);
    error.hidden = true;
    const request = {
      enabled: enabled.checked,
      frequency: [...form.querySelectorAll('input[name=day]:checked')].map((b) => b.value).join(','),
      startTime: windowInput.value.trim(),
      retentionDays: wholeNumberOrText(retention.value.trim()),
      crossRegionCopies: [...copyRows.querySelectorAll('.copy-row')].map((row) => ({
        regionId: row.querySelector('[data-copy-region]').value,
        retentionDays: Number(row.querySelector('[data-copy-retention]').value),
      })),
    };
    try {
      const saved = await api('POST', path, request);
      fill(status, 'Status: ', badge(saved.status));
      notify(saved.status === 'ENABLED'
        ? 'Policy saved. The first automatic backup starts now; the next ones in the window.'
        : 'Policy saved: automatic backups are off.', 'success');
    } catch (e) {
      showFormError(form, error, e);
    }
  });
  fill(body, h('h2', {}, 'Automatic backups'), form);
}
