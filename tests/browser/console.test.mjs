// Browser end-to-end tests of the web console: the real `backstop serve` binary on its
// embedded default (SQLite + local directories, no config), a real embedded Milvus, and
// Debian's Chromium driven headless by playwright-core. Run by scripts/test, which starts
// Milvus and exports BACKSTOP_TEST_MILVUS_URI, BACKSTOP_TEST_MILVUS_STORAGE and
// BACKSTOP_TEST_MILVUS_VENV; screenshots go to the folder printed at the start.
//
// The steps are one user's journey and run in order, sharing the browser page.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync, createWriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const stamp = new Date().toISOString().replace(/[:.]/g, '-');
const artifacts = process.env.BACKSTOP_TEST_ARTIFACTS ?? path.join(root, 'test-artifacts', `console-${stamp}`);
const JOB_TIMEOUT = 180_000;

function required(name, how) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: ${how}`);
  return value;
}

const milvusUri = required('BACKSTOP_TEST_MILVUS_URI', 'run the browser tests with scripts/test (it starts Milvus)');
const milvusStorage = required('BACKSTOP_TEST_MILVUS_STORAGE', 'run the browser tests with scripts/test');
const milvusVenv = required('BACKSTOP_TEST_MILVUS_VENV', 'run the browser tests with scripts/test');
const binary = process.env.BACKSTOP_BIN ?? path.join(root, 'target/debug/backstop');
const chromiumPath = process.env.BACKSTOP_TEST_CHROMIUM ?? '/usr/bin/chromium';

const suffix = Math.random().toString(16).slice(2, 8);
const collection = `console_${suffix}`;
const restored = `${collection}_restored`;
const ROWS = 300;

let server;
let base;
let adminKey;
let browser;
let page;
let workDir;
let pauseDir;
const pageErrors = [];
const foreignRequests = [];
const state = {};

function seed(...args) {
  return execFileSync(path.join(milvusVenv, 'bin/python'), [path.join(root, 'tests/support/milvus_seed.py'), milvusUri, ...args],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
}

/** Starts the binary with no config in an empty directory and reads the key it prints. */
async function startServer() {
  workDir = mkdtempSync(path.join(tmpdir(), 'backstop-console-'));
  pauseDir = path.join(workDir, 'pause');
  const log = createWriteStream(path.join(artifacts, 'server.log'));
  const child = spawn(binary, ['serve'], {
    cwd: workDir,
    env: {
      ...process.env,
      BACKSTOP_SERVER__LISTEN: '127.0.0.1:0',
      // The first backup job stops after its first file until `resume` exists, so the
      // cancel step has a running job to cancel.
      BACKSTOP_TEST_BACKUP_PAUSE: `1:${pauseDir}`,
      RUST_LOG: 'info',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stderr.pipe(log);
  let stdout = '';
  const started = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`backstop did not print its key within 60 s; see ${artifacts}/server.log`)), 60_000);
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
      log.write(chunk);
      const key = stdout.match(/^ {4}(\S+)$/m);
      const url = stdout.match(/(http:\/\/127\.0\.0\.1:\d+)\/v2\/regions/);
      if (key && url) {
        clearTimeout(timer);
        resolve({ key: key[1], url: url[1] });
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`backstop exited with ${code} during start-up; see ${artifacts}/server.log`));
    });
  });
  const { key, url } = await started;
  return { child, key, url };
}

/** The API, from the test (not the browser), to check what the console did. */
async function apiCall(method, route, body) {
  const response = await fetch(`${base}${route}`, {
    method,
    headers: { Authorization: `Bearer ${adminKey}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const envelope = await response.json();
  assert.equal(envelope.code, 0, `${method} ${route}: ${JSON.stringify(envelope)}`);
  return envelope.data;
}

async function shot(name) {
  await page.screenshot({ path: path.join(artifacts, `${name}.png`), fullPage: true });
}

/** Waits until the live job card for `jobId` shows a final status; returns it. */
async function waitForJobCard(jobId) {
  const card = page.locator(`.job-card[data-job-id="${jobId}"]`);
  await card.waitFor();
  await card.locator('.badge-successful, .badge-failed, .badge-canceled').waitFor({ timeout: JOB_TIMEOUT });
  return card;
}

const dialog = () => page.locator('dialog[open]');

/** The job id from the notice a started job shows, e.g. "Restore started (job job-…)". */
async function startedJob(text) {
  const notice = page.locator('.notice', { hasText: text }).last();
  await notice.waitFor();
  return (await notice.textContent()).match(/job (job-[0-9a-f]+)/)[1];
}

// The steps build on each other: after one fails, the rest fail at once naming it, instead
// of each waiting out its timeouts.
let brokenBy = null;
function step(name, body) {
  test(name, async () => {
    if (brokenBy) throw new Error(`not run: the earlier step "${brokenBy}" failed`);
    try {
      await body();
    } catch (e) {
      brokenBy = name;
      await shot(`failed-${name.replace(/\W+/g, '-')}`).catch(() => {});
      throw e;
    }
  });
}

before(async () => {
  mkdirSync(artifacts, { recursive: true });
  console.log(`console test artifacts (screenshots, server log): ${artifacts}`);
  if (!existsSync(binary)) throw new Error(`${binary} is missing: build it with cargo build (scripts/test does)`);
  if (!existsSync(chromiumPath)) throw new Error(`${chromiumPath} is missing: apt-get install chromium (scripts/test does)`);
  assert.equal(seed('create-collection', 'default', collection, String(ROWS)), 'ok');
  ({ child: server, key: adminKey, url: base } = await startServer());
  browser = await chromium.launch({
    executablePath: chromiumPath,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  context.setDefaultTimeout(20_000);
  page = await context.newPage();
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  page.on('request', (request) => {
    if (!request.url().startsWith(base)) foreignRequests.push(request.url());
  });
});

after(async () => {
  await browser?.close();
  if (server && server.exitCode === null) {
    server.kill('SIGTERM');
    await new Promise((resolve) => server.once('exit', resolve));
  }
  try {
    seed('drop-collection', 'default', collection);
    seed('drop-collection', 'default', restored);
  } catch {
    // Best effort: the names are unique to this run.
  }
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

step('a wrong API key is refused with a clear message', async () => {
  await page.goto(`${base}/`);
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  await shot('01-sign-in');
  // Keyboard only: the key field has focus on load, Enter submits.
  await page.keyboard.type('bsk_this-key-does-not-exist');
  await page.keyboard.press('Enter');
  const alert = page.locator('.signin .form-error');
  await alert.waitFor();
  assert.match(await alert.textContent(), /not accepted/);
});

step('signs in with the key the server printed', async () => {
  const input = page.getByLabel('API key');
  await input.fill(adminKey);
  await input.press('Enter');
  await page.getByRole('heading', { name: 'Clusters' }).waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.getItem('backstop.apiKey')), adminKey);
});

step('creates a project and registers a cluster, showing the API validation beside the field', async () => {
  await page.getByRole('button', { name: 'New project' }).click();
  await dialog().getByLabel('Project name').fill(`console-${suffix}`);
  await dialog().getByRole('button', { name: 'Create project' }).click();
  await dialog().waitFor({ state: 'detached' });

  await page.getByRole('button', { name: 'Register cluster' }).click();
  const form = dialog();
  await form.getByLabel('Cluster name').fill(`console-${suffix}`);
  await form.getByLabel('CU size').fill('0');
  await form.getByLabel('Milvus URI').fill(milvusUri);
  await form.getByLabel('Storage path').fill('relative/data');
  await form.getByRole('button', { name: 'Register' }).click();
  // The API's message, beside the field it names, and the field marked invalid.
  const cuError = form.locator('.field:has(#' + (await form.getByLabel('CU size').getAttribute('id')) + ') .field-error');
  await cuError.waitFor();
  assert.match(await cuError.textContent(), /cuSize is 0; use a whole number from 1/);
  assert.equal(await form.getByLabel('CU size').getAttribute('aria-invalid'), 'true');
  await shot('02-register-validation');

  await form.getByLabel('CU size').fill('2');
  await form.getByRole('button', { name: 'Register' }).click();
  const pathError = form.locator('.field-error', { hasText: 'storage.path' });
  await pathError.waitFor();
  assert.equal(await form.locator('.field-error').count(), 1, 'the fixed field\'s message is gone');

  await form.getByLabel('Storage path').fill(milvusStorage);
  await form.getByRole('button', { name: 'Register' }).click();
  await page.getByRole('heading', { name: `console-${suffix}` }).waitFor();
  state.clusterId = decodeURIComponent(new URL(page.url()).hash.split('/')[2]);
  assert.match(state.clusterId, /^in01-[0-9a-f]{16}$/);
  await page.locator('.facts .badge-running').waitFor();

  await page.goto(`${base}/console/#/clusters`);
  await page.getByRole('link', { name: `console-${suffix}` }).waitFor();
  await shot('03-clusters');
});

async function createCollectionBackup() {
  await page.goto(`${base}/console/#/clusters/${state.clusterId}`);
  await page.getByRole('button', { name: 'Create backup' }).click();
  const form = dialog();
  await form.getByLabel('Chosen databases and collections').check();
  await form.getByLabel(collection, { exact: true }).check();
  await form.getByRole('button', { name: 'Create backup' }).click();
  await dialog().waitFor({ state: 'detached' });
  // The answer's job appears at once, on the same page.
  const jobId = await startedJob(/Backup \S+ started/);
  await page.locator(`.live-jobs .job-card[data-job-id="${jobId}"]`).waitFor();
  return jobId;
}

step('cancels a running backup from the job center', async () => {
  const jobId = await createCollectionBackup();
  // The job is copying (held at the test barrier after its first file).
  for (let i = 0; i < 600 && !existsSync(path.join(pauseDir, 'paused')); i += 1) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.ok(existsSync(path.join(pauseDir, 'paused')), 'the backup job never reached its first file');
  await page.getByRole('link', { name: 'Job center' }).first().click();
  const row = page.locator(`tr[data-job-id="${jobId}"]`);
  await row.locator('.badge-in_progress').waitFor();
  await shot('04-job-center-running');
  await row.getByRole('button', { name: `Cancel job ${jobId}` }).click();
  await row.locator('.badge-canceled').waitFor({ timeout: JOB_TIMEOUT });
  assert.equal(await row.getByRole('button', { name: /Cancel/ }).count(), 0, 'a canceled job offers no Cancel');
  const job = await apiCall('GET', `/v2/jobs/${jobId}`);
  assert.equal(job.status, 'CANCELED');
  const backups = await apiCall('GET', `/v2/backups?clusterId=${state.clusterId}`);
  assert.equal(backups.backups[0].status, 'CANCELED');
  writeFileSync(path.join(pauseDir, 'resume'), ''); // later backups run through
});

step('creates a collection backup and watches its job reach 100%', async () => {
  const jobId = await createCollectionBackup();
  state.backupJobId = jobId;
  const card = await waitForJobCard(jobId);
  await shot('05-backup-job-done');
  assert.equal(await card.locator('.badge').textContent(), 'SUCCESSFUL');
  assert.equal(await card.getByRole('progressbar').getAttribute('aria-valuenow'), '100');
  // The list refreshes itself when the job ends.
  const row = page.locator('tbody tr', { has: page.locator('.badge-available') });
  await row.waitFor();
  state.backupName = (await row.locator('td a').textContent()).trim();
  await shot('06-backups-tab');
});

step('shows the backup with its collections and restores one under a new name', async () => {
  await page.getByRole('link', { name: state.backupName }).click();
  await page.getByRole('heading', { name: state.backupName }).waitFor();
  const row = page.locator('tbody tr', { hasText: collection });
  await row.waitFor();
  assert.equal((await row.locator('td').nth(3).textContent()).replace(/,/g, ''), String(ROWS));
  state.backupUrl = page.url();
  await shot('07-backup-details');

  await page.getByRole('button', { name: 'Restore' }).click();
  const form = dialog();
  await form.getByLabel(`New name for default.${collection}`).fill(restored);
  // The seeded collection has no index, and Milvus loads only indexed collections: the
  // dialog does not offer Loaded, and says why (the API refuses it too: restores:: tests).
  const loadState = form.getByLabel(`Load state of default.${collection} after restore`);
  assert.equal(await loadState.locator('option[value=LOADED]').isDisabled(), true);
  assert.match(await form.locator('.hint', { hasText: 'No vector index' }).textContent(), /create one after the restore/);
  await shot('08-restore-dialog');
  await form.getByRole('button', { name: 'Start restore' }).click();
  await dialog().waitFor({ state: 'detached' });
  const jobId = await startedJob('Restore started');
  const card = await waitForJobCard(jobId);
  await shot('09-restore-done');
  assert.equal(await card.locator('.badge').textContent(), 'SUCCESSFUL', await card.textContent());
  const collections = [];
  for (let page = 1; ; page += 1) {
    const listed = await apiCall('GET', `/v2/clusters/${state.clusterId}/collections?pageSize=100&currentPage=${page}`);
    collections.push(...listed.collections);
    if (listed.collections.length === 0 || collections.length >= listed.count) break;
  }
  assert.ok(collections.some((c) => c.collectionName === restored), `${restored} is in the cluster`);
  const dump = JSON.parse(seed('dump', 'default', restored));
  assert.equal(dump.rows.length, ROWS);
  assert.equal(dump.loaded, false);
});

step('a restore onto an existing name is refused with the API message beside the choice', async () => {
  await page.getByRole('button', { name: 'Restore' }).click();
  const form = dialog();
  await form.getByLabel(`New name for default.${collection}`).fill(restored);
  await form.getByRole('button', { name: 'Start restore' }).click();
  // The message names onExisting, so it stands beside that field, the way out.
  const error = form.locator('.field:has([data-field="onExisting"]) .field-error');
  await error.waitFor();
  assert.match(await error.textContent(), /already exists/);
  await page.keyboard.press('Escape');
  await dialog().waitFor({ state: 'detached' });
});

step('a restore may skip what exists, or bring the metadata only', async () => {
  await page.getByRole('button', { name: 'Restore' }).click();
  let form = dialog();
  await form.getByLabel(`New name for default.${collection}`).fill(restored);
  await form.getByLabel('If a collection exists there').selectOption('SKIP');
  await shot('09b-restore-options');
  await form.getByRole('button', { name: 'Start restore' }).click();
  await dialog().waitFor({ state: 'detached' });
  let card = await waitForJobCard(await startedJob('Restore started'));
  assert.equal(await card.locator('.badge').textContent(), 'SUCCESSFUL', await card.textContent());
  assert.match(await card.textContent(), /skipped 1 that existed/);

  const shape = `${collection}_shape`;
  await page.getByRole('button', { name: 'Restore' }).click();
  form = dialog();
  await form.getByLabel(`New name for default.${collection}`).fill(shape);
  await form.getByLabel(/Metadata only/).check();
  await form.getByRole('button', { name: 'Start restore' }).click();
  await dialog().waitFor({ state: 'detached' });
  card = await waitForJobCard(await startedJob('Restore started'));
  assert.equal(await card.locator('.badge').textContent(), 'SUCCESSFUL', await card.textContent());
  assert.equal(JSON.parse(seed('dump', 'default', shape)).rows.length, 0, 'no rows, only the shape');
  seed('drop-collection', 'default', shape);
});

step('verifies the backup', async () => {
  await page.getByRole('button', { name: 'Verify' }).click();
  const jobId = await startedJob('Verification started');
  const card = await waitForJobCard(jobId);
  assert.equal(await card.locator('.badge').textContent(), 'SUCCESSFUL');
  assert.equal((await apiCall('GET', `/v2/jobs/${jobId}`)).type, 'VERIFY_BACKUP');
});

step('the job center lists every job with status, progress and duration', async () => {
  await page.goto(`${base}/console/#/jobs`);
  const rows = page.locator('tbody tr');
  await rows.first().waitFor();
  const types = await rows.locator('td:nth-child(2)').allTextContents();
  for (const type of ['BACKUP', 'RESTORE_COLLECTION', 'VERIFY_BACKUP']) assert.ok(types.includes(type), `${type} in ${types}`);
  const done = page.locator(`tr[data-job-id="${state.backupJobId}"]`);
  assert.equal(await done.getByRole('progressbar').getAttribute('aria-valuenow'), '100');
  assert.match(await done.locator('td').nth(6).textContent(), /\d+ (s|min)/);
  await page.getByLabel('Status').selectOption('CANCELED');
  await page.waitForFunction(() => {
    const statuses = [...document.querySelectorAll('tbody tr td:nth-child(3)')].map((td) => td.textContent);
    return statuses.length > 0 && statuses.every((s) => s === 'CANCELED');
  });
  await shot('10-job-center');
});

step('the policy form shows the API validation inline and saves', async () => {
  await page.goto(`${base}/console/#/clusters/${state.clusterId}/policy`);
  const form = page.locator('form.policy-form');
  await form.waitFor();
  await form.getByLabel('Keep automatic backups (days)').fill('40');
  await form.getByRole('button', { name: 'Save policy' }).click();
  const retentionError = form.locator('.field-error', { hasText: 'retentionDays' });
  await retentionError.waitFor();
  await shot('11-policy-validation');
  await form.getByLabel('Keep automatic backups (days)').fill('7');
  await form.getByLabel('Window (UTC)').fill('25:00-01:00');
  await form.getByRole('button', { name: 'Save policy' }).click();
  await form.locator('.field-error', { hasText: 'startTime' }).waitFor();
  assert.equal(await form.locator('.field-error').count(), 1);
  await form.getByLabel('Window (UTC)').fill('01:30-03:00');
  await form.getByLabel('Saturday').uncheck();
  await form.getByLabel('Sunday').uncheck();
  // Saved disabled: enabling would start an automatic backup of the shared Milvus now.
  await form.getByRole('button', { name: 'Save policy' }).click();
  await page.locator('.notice', { hasText: 'automatic backups are off' }).waitFor();
  const policy = await apiCall('GET', `/v2/clusters/${state.clusterId}/backups/policy`);
  assert.deepEqual([policy.status, policy.frequency, policy.startTime, policy.retentionDays],
    ['DISABLED', '1,2,3,4,5', '01:30-03:00', 7]);
});

step('usage shows storage and cost per region', async () => {
  await page.goto(`${base}/console/#/usage`);
  const row = page.locator('tbody tr', { hasText: 'local' }).first();
  await row.waitFor();
  const usage = await apiCall('GET', '/v2/usage/backups');
  const local = usage.regions.find((r) => r.regionId === 'local');
  assert.equal(await row.locator('td').nth(4).textContent(), String(local.backups.length));
  await page.locator('summary', { hasText: 'Backups in local' }).click();
  await page.locator('details[open] td', { hasText: state.backupName }).waitFor();
  await shot('12-usage');
});

step('dialogs work from the keyboard: Escape closes and focus returns', async () => {
  await page.goto(`${base}/console/#/clusters/${state.clusterId}`);
  const button = page.getByRole('button', { name: 'Create backup' });
  await button.focus();
  await page.keyboard.press('Enter');
  await dialog().waitFor();
  assert.ok(await page.evaluate(() => document.activeElement.closest('dialog') !== null), 'focus moved into the dialog');
  await page.keyboard.press('Escape');
  await dialog().waitFor({ state: 'detached' });
  assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Create backup');
});

step('is usable on a narrow window', async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  for (const [route, name] of [['#/clusters', '13-narrow-clusters'], [`#/clusters/${state.clusterId}`, '14-narrow-backups'], ['#/jobs', '15-narrow-jobs']]) {
    await page.goto(`${base}/console/${route}`);
    await page.locator('main h1').waitFor();
    await page.locator('table').first().waitFor();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `${route} scrolls sideways by ${overflow}px at 390px wide`);
    await shot(name);
  }
  await page.setViewportSize({ width: 1280, height: 900 });
});

step('deletes the backup after typing its name', async () => {
  await page.goto(state.backupUrl);
  await page.getByRole('button', { name: 'Delete' }).click();
  const form = dialog();
  await form.getByLabel(`Type ${state.backupName} to confirm`).fill('not-the-name');
  await form.getByRole('button', { name: 'Delete backup' }).click();
  await form.locator('.field-error', { hasText: 'type the backup name' }).waitFor();
  await form.getByLabel(`Type ${state.backupName} to confirm`).fill(state.backupName);
  await form.getByRole('button', { name: 'Delete backup' }).click();
  await page.getByRole('heading', { name: 'Backups' }).waitFor();
  // DELETING until its objects are gone, then no longer listed (by the API, then the page:
  // the list may not have rendered yet when the page is first read, so ask the API first).
  const listed = async () => (await apiCall('GET', `/v2/backups?clusterId=${state.clusterId}`))
    .backups.some((b) => b.backupName === state.backupName);
  const deadline = Date.now() + JOB_TIMEOUT;
  while (await listed()) {
    assert.ok(Date.now() < deadline, `backup ${state.backupName} still listed after ${JOB_TIMEOUT} ms`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  await page.reload();
  await page.getByRole('heading', { name: 'Backups' }).waitFor();
  await page.getByRole('link', { name: state.backupName }).waitFor({ state: 'detached', timeout: JOB_TIMEOUT });
});

step('a read-only key is told why it cannot back up, and is signed out once its key is deleted', async () => {
  const cluster = await apiCall('GET', `/v2/clusters/${state.clusterId}`);
  const key = await apiCall('POST', '/v2/apiKeys', {
    name: `viewer-${suffix}`, projectRoles: [{ projectId: cluster.projectId, role: 'READ_ONLY' }],
  });
  // A second tab of its own: session storage is per tab.
  const viewer = await page.context().newPage();
  viewer.on('pageerror', (e) => pageErrors.push(String(e)));
  try {
    await viewer.goto(`${base}/console/#/clusters/${state.clusterId}`);
    await viewer.getByLabel('API key').fill(key.apiKey);
    await viewer.getByLabel('API key').press('Enter');
    await viewer.getByRole('heading', { name: `console-${suffix}` }).waitFor();
    await viewer.getByRole('button', { name: 'Create backup' }).click();
    await viewer.locator('dialog[open]').getByRole('button', { name: 'Create backup' }).click();
    const refusal = viewer.locator('dialog[open] .form-error');
    await refusal.waitFor();
    assert.match(await refusal.textContent(), /lacks the privilege backup\.create.*90403/);
    await viewer.keyboard.press('Escape');

    await apiCall('DELETE', `/v2/apiKeys/${key.apiKeyId}`);
    await viewer.getByRole('link', { name: 'Job center' }).click();
    const signIn = viewer.locator('.signin .form-error');
    await signIn.waitFor();
    assert.match(await signIn.textContent(), /no longer accepts this API key/);
    assert.equal(await viewer.evaluate(() => sessionStorage.getItem('backstop.apiKey')), null);
  } finally {
    await viewer.close();
  }
});

test('the pages loaded nothing from other origins and threw no script errors', () => {
  assert.deepEqual(foreignRequests, []);
  assert.deepEqual(pageErrors, []);
});
