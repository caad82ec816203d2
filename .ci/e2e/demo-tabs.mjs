#!/usr/bin/env node
// Drives the example client at BASE_URL/demo in two tabs of one browser, as a person with two
// tabs open would, and checks the browser pattern holds:
//   1. tab A signs in with the form; tab B, opened next, gets the session through a refresh
//      (the shared cookie), not a second login, and tab A picks up B's token from the channel;
//   2. both tabs refresh at the same moment, presenting the same cookie (forced through the
//      page's race hook, which skips the cross-tab lock): both get 200 and the same new
//      cookie (the grace window), and both stay signed in;
//   3. another device signs in, and tab A ends that device's session from its list;
//   4. tab A signs out everywhere; tab B's next refresh is refused and B shows the sign-in form;
//      the old cookie and B's last access token are refused by the service itself.
// Saves a screenshot of each state in a folder it prints.
//
// Usage: node .ci/e2e/demo-tabs.mjs BASE_URL     (e.g. http://127.0.0.1:8000, dev profile)
// Uses Debian's /usr/bin/chromium through playwright-core (no browser download).
// Screenshots go to $DEMO_SCREENSHOT_DIR, or a fresh folder under /tmp.
// Exits 0 when every check held, 1 otherwise.

import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, request as apiRequest } from 'playwright-core';

const OVERALL_TIMEOUT_MS = 90_000;
const STEP_TIMEOUT_MS = 15_000;
const EXECUTABLE = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const CREDENTIALS = { email: 'jywan@test.com', password: 'test' };
// Two requests started together may still go out one after the other (Chromium hands the
// second the connection the first just freed, and attaches the cookie then); about one try in
// three here. Only a try where both carried the same cookie counts as a race.
const RACE_ATTEMPTS = 10;

const baseArg = process.argv[2];
if (!baseArg) {
  console.error('usage: node demo-tabs.mjs BASE_URL');
  process.exit(2);
}
const baseUrl = baseArg.replace(/\/+$/, '');
const base = new URL(baseUrl);
const demoUrl = `${baseUrl}/demo`;

let shotDir = process.env.DEMO_SCREENSHOT_DIR;
if (shotDir) mkdirSync(shotDir, { recursive: true });
else shotDir = mkdtempSync('/tmp/jwt-auth-demo-tabs-');

const log = (msg) => console.error(`demo-tabs: ${msg}`);

let browser;
const pages = {};
const problems = []; // page errors, CSP violations, requests to other origins
let shotCount = 0;

function check(cond, message) {
  if (!cond) throw new Error(message);
}

async function shot(name, page) {
  shotCount += 1;
  const file = join(shotDir, `${String(shotCount).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  log(`screenshot ${file}`);
}

const stateOf = (page) => page.evaluate(() => document.body.dataset.state);

async function waitState(page, state, why) {
  await page.waitForSelector(`body[data-state="${state}"]`, { state: 'attached' }).catch(async () => {
    throw new Error(`${why}: tab ${page.tabName} is "${await stateOf(page)}", expected "${state}" ` +
      `(status: ${await page.locator('#status').innerText().catch(() => '?')})`);
  });
}

/**
 * Every POST /auth/refresh and /auth/login a tab sends, with the refresh cookie it really
 * carried and the one it got back. Read from the DevTools protocol's ExtraInfo events, which
 * carry the headers as sent on the wire: Playwright's own request headers can show the cookie
 * of another request to /auth, and Chromium attaches cookies only when a request gets a
 * connection, which may be after another tab's answer rotated the cookie.
 */
async function recordAuthCalls(context, page) {
  page.authCalls = [];
  const byId = new Map();
  const entry = (id) => {
    if (!byId.has(id)) byId.set(id, { id });
    return byId.get(id);
  };
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  cdp.on('Network.requestWillBeSent', (e) => {
    const path = new URL(e.request.url).pathname;
    if (e.request.method !== 'POST' || !['/auth/refresh', '/auth/login'].includes(path)) return;
    const call = entry(e.requestId);
    call.path = path;
    call.done = new Promise((resolve) => { call.finish = resolve; });
    page.authCalls.push(call);
  });
  cdp.on('Network.requestWillBeSentExtraInfo', (e) => {
    entry(e.requestId).cookieSent = cookieValue(header(e.headers, 'cookie'));
  });
  cdp.on('Network.responseReceivedExtraInfo', (e) => {
    entry(e.requestId).cookieSet = cookieValue(header(e.headers, 'set-cookie'));
  });
  cdp.on('Network.responseReceived', (e) => {
    entry(e.requestId).status = e.response.status;
  });
  const finished = (e) => {
    const call = byId.get(e.requestId);
    if (call && call.finish) call.finish();
  };
  cdp.on('Network.loadingFinished', finished);
  cdp.on('Network.loadingFailed', finished);
  page.on('response', async (resp) => {
    // The access token of a 200 (the body is not in the ExtraInfo events).
    if (new URL(resp.url()).pathname !== '/auth/refresh' || resp.status() !== 200) return;
    page.lastAccessToken = (await resp.json().catch(() => ({}))).access_token || page.lastAccessToken;
  });
}

function header(headers, name) {
  const key = Object.keys(headers || {}).find((k) => k.toLowerCase() === name);
  return key ? headers[key] : undefined;
}

/** A fingerprint of a token, enough to tell two apart in a message without printing it. */
const short = (token) => (token === undefined ? 'none'
  : createHash('sha256').update(String(token)).digest('hex').slice(0, 8));

function cookieValue(value) {
  const m = /(?:^|[;\n]\s*)refresh_token=([^;\s]*)/.exec(value || '');
  return m ? m[1] : undefined;
}

/** The calls recorded so far, once each has finished and its ExtraInfo events are in. */
async function settled(page) {
  await Promise.all(page.authCalls.map((c) => c.done));
  for (let i = 0; i < 40 && page.authCalls.some((c) => !('cookieSet' in c) || c.status === undefined); i++) {
    await new Promise((r) => setTimeout(r, 50));
  }
  return page.authCalls;
}

async function refreshCookie(context) {
  // The cookie's Path is /auth, so ask for the cookies a request there would carry.
  const c = (await context.cookies(`${baseUrl}/auth/refresh`)).find((k) => k.name === 'refresh_token');
  return c && c.value;
}

async function openTab(context, name) {
  const page = await context.newPage();
  page.tabName = name;
  page.on('pageerror', (e) => problems.push(`tab ${name}: page error: ${e.message}`));
  page.on('console', (m) => {
    if (/Content.Security.Policy/i.test(m.text())) problems.push(`tab ${name}: ${m.text()}`);
  });
  await recordAuthCalls(context, page);
  pages[name] = page;
  const nav = await page.goto(demoUrl, { waitUntil: 'domcontentloaded' });
  check(nav && nav.ok(), `GET ${demoUrl} answered ${nav ? nav.status() : 'nothing'}`);
  return page;
}

async function sessionRows(page) {
  await page.evaluate(() => window.jwtDemo.loadSessions());
  return page.locator('#sessions-body tr').count();
}

async function run() {
  browser = await chromium.launch({
    executablePath: EXECUTABLE,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--disable-dev-shm-usage'],
    timeout: STEP_TIMEOUT_MS,
  });
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  context.setDefaultTimeout(STEP_TIMEOUT_MS);
  context.setDefaultNavigationTimeout(STEP_TIMEOUT_MS);
  // The page must work offline: anything outside the service's origin is refused and reported.
  await context.route('**/*', (route) => {
    const url = new URL(route.request().url());
    if (url.origin === base.origin) return route.continue();
    problems.push(`request to another origin: ${url.origin}${url.pathname}`);
    return route.abort('blockedbyclient');
  });

  // 1. Tab A: no cookie yet, so its first refresh is refused and it shows the form.
  log(`opening ${demoUrl} in tab A`);
  const a = await openTab(context, 'A');
  await waitState(a, 'signed-out', 'a new browser has no session');
  check(await a.locator('#login-form').isVisible(), 'tab A: the sign-in form is not visible');
  await shot('tab-a-signed-out', a);

  await a.fill('#email', CREDENTIALS.email);
  await a.fill('#password', CREDENTIALS.password);
  await a.click('#login-button');
  await waitState(a, 'signed-in', 'signing in with the form');
  await a.locator('#sessions-body tr.current').first().waitFor();
  check((await a.locator('#me-email').innerText()) === CREDENTIALS.email, 'tab A: /auth/me shows another user');
  check(await a.locator('#login-form').isHidden(), 'tab A: the form is still shown after sign-in');
  await shot('tab-a-signed-in', a);

  // Tab B: same browser, so the same cookie; it signs in by refreshing.
  log('opening tab B');
  const b = await openTab(context, 'B');
  await waitState(b, 'signed-in', 'tab B picks up the session through the cookie');
  await b.locator('#sessions-body tr.current').first().waitFor();
  const bCalls = await settled(b);
  check(bCalls.every((c) => c.path === '/auth/refresh'), 'tab B sent a login');
  check(bCalls.some((c) => c.status === 200), 'tab B got no 200 refresh');
  check((await b.locator('#me-email').innerText()) === CREDENTIALS.email, 'tab B: /auth/me shows another user');
  // B's refresh rotated the shared cookie; A must use B's token rather than its own old one.
  await a.waitForFunction(() => window.jwtDemo.state().from === 'another tab').catch(() => {
    throw new Error('tab A did not take the token tab B announced on the BroadcastChannel');
  });
  await shot('tab-b-signed-in-by-refresh', b);

  // 2. Both tabs refresh at the same moment with the same cookie. Started from a common
  // deadline in each page; retried when the two requests were not concurrent enough to
  // present the same cookie (one answered before the other left).
  const rowsBefore = await sessionRows(a);
  let races = 0;
  for (let attempt = 1; attempt <= RACE_ATTEMPTS && races === 0; attempt++) {
    const cookieBefore = await refreshCookie(context);
    check(cookieBefore, 'the browser holds no refresh cookie');
    a.authCalls.length = 0;
    b.authCalls.length = 0;
    const at = Date.now() + 300;
    const fire = (page) => page.evaluate((deadline) => new Promise((resolve) => {
      setTimeout(() => resolve(window.jwtDemo.raceRefresh()), Math.max(0, deadline - Date.now()));
    }), at);
    const [okA, okB] = await Promise.all([fire(a), fire(b)]);
    const [callsA, callsB] = [await settled(a), await settled(b)];
    const [ca, cb] = [callsA[0], callsB[0]];
    const described = (calls) => calls.map((c) => `${c.path} ${c.status} sent ${short(c.cookieSent)} got ${short(c.cookieSet)}`).join('; ');
    log(`race ${attempt}: tab A: ${described(callsA)}`);
    log(`race ${attempt}: tab B: ${described(callsB)}`);
    check(ca && cb, `attempt ${attempt}: a tab sent no refresh (A: ${!!ca}, B: ${!!cb})`);
    log(`race ${attempt}: A ${ca.status}, B ${cb.status}; same cookie presented: ${ca.cookieSent === cb.cookieSent}`);
    check(ca.status === 200 && cb.status === 200,
      `concurrent refresh: A answered ${ca.status}, B answered ${cb.status} (both must be 200)`);
    check(okA && okB, `a tab thinks it is signed out after the race (A: ${okA}, B: ${okB})`);
    check(ca.cookieSent && cb.cookieSent && ca.cookieSet && cb.cookieSet,
      `the Cookie/Set-Cookie headers are not visible (${JSON.stringify([ca, cb])})`);
    if (ca.cookieSent === cb.cookieSent) {
      check(ca.cookieSent === cookieBefore, 'the tabs presented a cookie the browser did not hold');
      check(ca.cookieSet === cb.cookieSet,
        `the same cookie presented twice at once got two different successors (${short(ca.cookieSet)}, ${short(cb.cookieSet)})`);
      check(ca.cookieSet !== cookieBefore, 'the refresh did not rotate the cookie');
      races += 1;
    }
  }
  check(races > 0, `no attempt in ${RACE_ATTEMPTS} made the tabs present the same cookie at once`);

  // Both still signed in: the API answers each tab, and each can refresh again afterwards
  // (a race taken for theft would have revoked the session).
  for (const page of [a, b]) {
    await page.evaluate(() => window.jwtDemo.loadMe());
    check((await stateOf(page)) === 'signed-in', `tab ${page.tabName} is signed out after the race`);
    page.authCalls.length = 0;
    check(await page.evaluate(() => window.jwtDemo.refresh()), `tab ${page.tabName}: refresh after the race failed`);
    const [call] = await settled(page);
    check(call && call.status === 200, `tab ${page.tabName}: refresh after the race answered ${call && call.status}`);
  }
  check((await sessionRows(a)) === rowsBefore, 'the race changed the number of sessions');
  check((await a.locator('#sessions-body tr.current').count()) === 1, 'not exactly one current session');
  await shot('tab-a-after-concurrent-refresh', a);
  await shot('tab-b-after-concurrent-refresh', b);

  // The token lives in memory only.
  for (const page of [a, b]) {
    const stored = await page.evaluate(() => localStorage.length + sessionStorage.length);
    check(stored === 0, `tab ${page.tabName} wrote to Web Storage`);
  }

  // Another device (its own cookie jar and user agent) signs in; tab A ends its session from
  // the list (DELETE /auth/sessions/{id}), and that device's refresh is refused.
  const deviceAgent = `demo-tabs other device ${Date.now()}`;
  const device = await apiRequest.newContext({ baseURL: baseUrl, extraHTTPHeaders: { 'user-agent': deviceAgent } });
  try {
    const signedIn = await device.post('/auth/login', { data: CREDENTIALS });
    check(signedIn.status() === 200, `the other device could not sign in (${signedIn.status()})`);
    await sessionRows(a);
    const row = a.locator('#sessions-body tr', { hasText: deviceAgent });
    check((await row.count()) === 1, 'tab A does not list the other device');
    await shot('tab-a-lists-another-device', a);
    await row.locator('button', { hasText: 'End' }).click();
    await row.waitFor({ state: 'detached' }).catch(() => {
      throw new Error('the ended session is still listed in tab A');
    });
    check((await stateOf(a)) === 'signed-in', 'ending another session signed tab A out');
    const refused = await device.post('/auth/refresh');
    check(refused.status() === 401, `the ended device still refreshes (${refused.status()})`);
  } finally {
    await device.dispose();
  }

  // 4. Tab A signs out everywhere; B's next refresh fails and B shows the form.
  const oldCookie = await refreshCookie(context);
  await settled(b);
  const bToken = b.lastAccessToken;
  check(bToken, 'no access token of tab B was seen');
  const bRefused = b.waitForResponse((r) => new URL(r.url()).pathname === '/auth/refresh'
    && r.request().method() === 'POST' && r.status() === 401);
  await a.click('#logout-global');
  await waitState(a, 'signed-out', 'sign out everywhere');
  check(await a.locator('#login-form').isVisible(), 'tab A: no sign-in form after signing out');
  await shot('tab-a-signed-out-everywhere', a);
  await bRefused.catch(() => {
    throw new Error('tab B sent no refresh that was refused after the sign-out');
  });
  await waitState(b, 'signed-out', "tab B's refresh failed");
  check(await b.locator('#login-form').isVisible(), 'tab B: no sign-in form after its refresh failed');
  await shot('tab-b-refresh-failed', b);

  // The service itself, not just the cleared cookie: the old cookie and B's access token are
  // dead (another device holding them would be signed out too).
  const api = await apiRequest.newContext({ baseURL: baseUrl });
  try {
    const refreshed = await api.post('/auth/refresh', { headers: { cookie: `refresh_token=${oldCookie}` } });
    check(refreshed.status() === 401, `the cookie from before the sign-out still refreshes (${refreshed.status()})`);
    const me = await api.get('/auth/me', { headers: { authorization: `Bearer ${bToken}` } });
    check(me.status() === 401, `tab B's last access token still works at /auth/me (${me.status()})`);
  } finally {
    await api.dispose();
  }
  check(problems.length === 0, `problems in the pages:\n  ${problems.join('\n  ')}`);
  console.log('demo-tabs: sign-in, a tab signed in by refresh, a concurrent refresh (both 200, one successor), ' +
    `another device ended from the list, sign-out everywhere ending the other tab; ${shotCount} screenshots in ${shotDir}`);
}

async function fail(err) {
  console.error(`demo-tabs: FAILED: ${err && err.message ? err.message : err}`);
  for (const p of problems.slice(0, 20)) console.error(`demo-tabs:   ${p}`);
  for (const [name, page] of Object.entries(pages)) {
    try {
      const file = join(shotDir, `failure-tab-${name}.png`);
      await page.screenshot({ path: file, fullPage: true, timeout: 5_000 });
      console.error(`demo-tabs: screenshot ${file}`);
      const lines = await page.locator('#log li').allInnerTexts();
      console.error(`demo-tabs: tab ${name} log (newest first):\n  ${lines.slice(0, 15).join('\n  ')}`);
    } catch (e) {
      console.error(`demo-tabs: tab ${name}: could not save a screenshot: ${e.message}`);
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
  console.error(`demo-tabs: screenshots in ${shotDir}`);
  if (browser) {
    await Promise.race([browser.close().catch(() => {}), new Promise((r) => setTimeout(r, 5_000))]);
  }
}
process.exit(code);
