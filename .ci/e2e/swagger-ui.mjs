#!/usr/bin/env node
// Drives the service's embedded Swagger UI like a person would:
// open BASE_URL/docs, expand "POST /auth/login", "Try it out", type the demo credentials,
// "Execute", and check the live response is 200 with an access_token.
//
// Usage: node .ci/e2e/swagger-ui.mjs BASE_URL     (e.g. http://127.0.0.1:8000)
// Uses Debian's /usr/bin/chromium through playwright-core (no browser download).
// Success: prints one line, saves /tmp/swagger-ui.png, exits 0.
// Failure: saves /tmp/swagger-ui-failure.png, exits 1.

import { chromium } from 'playwright-core';

const OVERALL_TIMEOUT_MS = 60_000;
const STEP_TIMEOUT_MS = 15_000;
const SUCCESS_PNG = '/tmp/swagger-ui.png';
const FAILURE_PNG = '/tmp/swagger-ui-failure.png';
const EXECUTABLE = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const CREDENTIALS = { email: 'jywan@test.com', password: 'test' };
const OPERATION_PATH = '/auth/login';

const baseArg = process.argv[2];
if (!baseArg) {
  console.error('usage: node swagger-ui.mjs BASE_URL');
  process.exit(2);
}
const baseUrl = baseArg.replace(/\/+$/, '');
const base = new URL(baseUrl);
const docsUrl = `${baseUrl}/docs`;

const log = (msg) => console.error(`swagger-ui: ${msg}`);

let browser;
let page;
const diagnostics = [];
const blockedExternal = new Set();

async function run() {
  browser = await chromium.launch({
    executablePath: EXECUTABLE,
    headless: true,
    // playwright-core creates (and removes) a fresh temporary user-data-dir for launch().
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-dev-shm-usage',
    ],
    timeout: STEP_TIMEOUT_MS,
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 1600 } });
  context.setDefaultTimeout(STEP_TIMEOUT_MS);
  context.setDefaultNavigationTimeout(STEP_TIMEOUT_MS);

  // The UI must work offline: keep every request on the service's own origin and record
  // (and refuse) anything else, so a CDN dependency shows up instead of hanging.
  await context.route('**/*', (route) => {
    const url = new URL(route.request().url());
    if (url.protocol === 'data:' || url.protocol === 'blob:' || url.origin === base.origin) {
      return route.continue();
    }
    blockedExternal.add(url.origin + url.pathname);
    return route.abort('blockedbyclient');
  });

  page = await context.newPage();
  page.on('console', (m) => {
    if (m.type() === 'error') diagnostics.push(`console error: ${m.text()}`);
  });
  page.on('pageerror', (e) => diagnostics.push(`page error: ${e.message}`));
  page.on('requestfailed', (r) => {
    diagnostics.push(`request failed: ${r.method()} ${r.url()} (${r.failure()?.errorText})`);
  });

  log(`opening ${docsUrl}`);
  const nav = await page.goto(docsUrl, { waitUntil: 'domcontentloaded' });
  if (!nav || !nav.ok()) {
    throw new Error(`GET ${docsUrl} answered ${nav ? nav.status() : 'nothing'}`);
  }

  // The POST /auth/login operation block.
  const opblock = page
    .locator('.opblock.opblock-post')
    .filter({ has: page.locator(`.opblock-summary-path[data-path="${OPERATION_PATH}"]`) })
    .first();
  await opblock.waitFor({ state: 'visible' }).catch(() => {
    throw new Error(`no "POST ${OPERATION_PATH}" operation rendered in Swagger UI`);
  });

  // Expand it (unless deep linking already did).
  if (!(await opblock.evaluate((el) => el.classList.contains('is-open')))) {
    await opblock.locator('.opblock-summary').first().click();
  }
  await opblock.locator('.opblock-body').waitFor({ state: 'visible' });

  // Try it out.
  await opblock.locator('button.try-out__btn').click();

  // Replace the pre-filled example body with the demo credentials.
  const textarea = opblock.locator('textarea.body-param__text').first();
  await textarea.waitFor({ state: 'visible' }).catch(() => {
    throw new Error('no editable request body after "Try it out"');
  });
  const body = JSON.stringify(CREDENTIALS, null, 2);
  await textarea.fill(body);
  // Swagger UI debounces edits to the body; make sure its state holds our text before Execute.
  await page.waitForTimeout(800);
  const typed = await textarea.inputValue();
  if (JSON.stringify(JSON.parse(typed)) !== JSON.stringify(CREDENTIALS)) {
    throw new Error(`request body textarea holds ${JSON.stringify(typed)}`);
  }

  // Execute, and wait for the browser's real request to the service.
  const responsePromise = page.waitForResponse(
    (r) => r.request().method() === 'POST' && new URL(r.url()).pathname === OPERATION_PATH,
  );
  await opblock.locator('button.execute').click();
  const netResponse = await responsePromise.catch(() => {
    throw new Error(`clicking Execute sent no POST ${OPERATION_PATH} to ${base.origin}`);
  });
  const sent = netResponse.request();
  const sentBody = sent.postData();
  log(`browser sent POST ${sent.url()} with body ${sentBody}`);
  try {
    if (JSON.stringify(JSON.parse(sentBody)) !== JSON.stringify(CREDENTIALS)) throw new Error();
  } catch {
    throw new Error(`the request Swagger UI sent did not carry the demo credentials: ${sentBody}`);
  }

  // The live response as the page shows it.
  const live = opblock.locator('.live-responses-table');
  const statusCell = live.locator('tbody .response .response-col_status').first();
  await statusCell.waitFor({ state: 'visible' }).catch(() => {
    throw new Error('Swagger UI showed no live response after Execute');
  });
  const shownStatus = (await statusCell.innerText()).trim().split(/\s+/)[0];
  const shownBody = (await live.locator('tbody .response .response-col_description').first().innerText()).trim();
  log(`page shows response code ${shownStatus}`);

  if (shownStatus !== '200') {
    throw new Error(
      `Swagger UI shows response code ${JSON.stringify(shownStatus)} (network status ${netResponse.status()}); ` +
        `shown body: ${shownBody.slice(0, 500)}`,
    );
  }
  if (!shownBody.includes('access_token')) {
    throw new Error(`Swagger UI response body lacks access_token: ${shownBody.slice(0, 500)}`);
  }
  if (!shownBody.includes('bearer')) {
    throw new Error(`Swagger UI response body lacks token_type bearer: ${shownBody.slice(0, 500)}`);
  }

  await opblock.scrollIntoViewIfNeeded();
  await page.screenshot({ path: SUCCESS_PNG, fullPage: true });
  if (blockedExternal.size) {
    log(`warning: the page tried to reach other origins (blocked): ${[...blockedExternal].join(', ')}`);
  }
  console.log(`swagger-ui: login via Try it out -> ${shownStatus} with access_token`);
}

async function fail(err) {
  console.error(`swagger-ui: FAILED: ${err && err.message ? err.message : err}`);
  for (const d of diagnostics.slice(0, 20)) console.error(`swagger-ui:   ${d}`);
  if (blockedExternal.size) {
    console.error(`swagger-ui:   blocked requests to other origins: ${[...blockedExternal].join(', ')}`);
  }
  if (page) {
    try {
      await page.screenshot({ path: FAILURE_PNG, fullPage: true, timeout: 5_000 });
      console.error(`swagger-ui: screenshot saved to ${FAILURE_PNG}`);
    } catch (e) {
      console.error(`swagger-ui: could not save screenshot: ${e.message}`);
    }
  }
}

let overallTimer;
const overall = new Promise((_, reject) => {
  overallTimer = setTimeout(
    () => reject(new Error(`overall timeout of ${OVERALL_TIMEOUT_MS / 1000} s exceeded`)),
    OVERALL_TIMEOUT_MS,
  );
});

let code = 0;
try {
  await Promise.race([run(), overall]);
} catch (err) {
  code = 1;
  await fail(err);
} finally {
  clearTimeout(overallTimer);
  if (browser) {
    await Promise.race([browser.close().catch(() => {}), new Promise((r) => setTimeout(r, 5_000))]);
  }
}
process.exit(code);
