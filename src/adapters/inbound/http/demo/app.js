// jwt-auth example client: the browser pattern this service is made for, in plain JavaScript.
//
// The rules it follows, and why:
//
// 1. The access token lives in one variable (`access` below) and nowhere else. Web Storage
//    (local or session) is readable by every script on the origin and outlives the tab, so one
//    XSS bug would hand out tokens that keep working after the bug is fixed. A variable dies
//    with the tab; a reloaded tab gets a fresh token from the refresh cookie.
// 2. The refresh token is never seen by JavaScript: the service keeps it in the `refresh_token`
//    cookie (HttpOnly, SameSite=Strict, Path=/auth). The browser sends it to /auth/refresh and
//    /auth/logout by itself; this script only has to call them from the same origin.
// 3. Refresh silently a little before `expires_in` runs out, not after a request failed, so a
//    user never waits on a refresh. A 401 from the API still gets one refresh and one retry
//    (the timer of a background tab may have been delayed by the browser).
// 4. Every tab of a browser shares the one cookie, hence one session. Tabs tell each other about
//    a new access token (BroadcastChannel), and take a lock around refreshing (Web Locks, where
//    the browser has them), so usually one tab refreshes and the others reuse its token. This is
//    an optimisation only: if two tabs still present the same cookie at the same moment, the
//    service's grace window (REFRESH_REUSE_GRACE_SECS) gives both the same new cookie.
// 5. A refresh answered 401 means the session is over (signed out here or elsewhere, ended
//    from another device, expired): forget the token and show the sign-in form. A network
//    error, 429 or 5xx does not: keep the token and try again a little later.
// 6. Text that comes from the server or another client (user agents, addresses) is set with
//    textContent, never parsed as HTML: a user agent is whatever the other client chose to send.
//
// The page is served with a Content-Security-Policy that allows scripts and styles from this
// origin only and no inline ones; keep it that way in your app, since the token in memory is
// only as safe as the page is free of injected script.

'use strict';

(() => {
  // ---- Settings -----------------------------------------------------------------------------

  // Refresh this long before the access token expires: a minute, or a fifth of a short
  // lifetime, so a slow network or a busy tab still makes it in time.
  const leadMs = (lifetimeMs) => Math.min(60_000, lifetimeMs / 5);
  // Each tab waits a random extra bit (up to 5 s) so the tabs' timers do not all fire together.
  const jitterMs = (lifetimeMs) => Math.random() * Math.min(5_000, lifetimeMs / 20);
  // A request that hangs must not hold the refresh lock (and every other tab) for ever.
  const REQUEST_TIMEOUT_MS = 10_000;
  // After a transient failure: 1 s, 2 s, 4 s, … up to 30 s between tries.
  const RETRY_MAX_MS = 30_000;
  const LOCK_NAME = 'jwt-auth-refresh';
  const CHANNEL_NAME = 'jwt-auth';

  // ---- State --------------------------------------------------------------------------------

  /** The access token, in memory only: { token, expiresAt (ms, this browser's clock),
   * lifetimeMs, from }. null when signed out. */
  let access = null;
  let refreshTimer = null;
  let nextRefreshAt = null;
  let retryDelayMs = 1_000;
  /** The refresh this tab is running, if any: callers share it instead of starting another. */
  let inFlight = null;

  // ---- Tabs talking to each other -----------------------------------------------------------

  // Only pages of this origin can join the channel, and any script of this origin could call
  // /auth/refresh itself anyway, so sharing the access token here gives nothing away.
  const channel = 'BroadcastChannel' in window ? new BroadcastChannel(CHANNEL_NAME) : null;

  function tellOtherTabs(message) {
    if (channel) channel.postMessage(message);
  }

  if (channel) {
    channel.onmessage = (event) => {
      const msg = event.data || {};
      if (msg.type === 'token' && typeof msg.token === 'string') {
        // Keep whichever token lives longer: two tabs that refreshed at once both announce.
        if (!access || msg.expiresAt > access.expiresAt) {
          setAccess({ token: msg.token, expiresAt: msg.expiresAt, lifetimeMs: msg.lifetimeMs, from: 'another tab' });
          log('Took the access token another tab got.');
          if (document.body.dataset.state !== 'signed-in') showSignedIn();
        }
      } else if (msg.type === 'signed-out' && access) {
        // A hint, not an order: ask the service. The sign-out cleared the shared cookie, so
        // this refresh fails and shows the sign-in form, as it would on any other device.
        log('Another tab signed out; checking the session.');
        refresh({ force: true });
      }
    };
  }

  // ---- Talking to the service ---------------------------------------------------------------

  /** The `{error, message}` body of a failed response, or a stand-in. */
  async function errorOf(resp) {
    try {
      const body = await resp.json();
      return { error: body.error || String(resp.status), message: body.message || resp.statusText };
    } catch {
      return { error: String(resp.status), message: resp.statusText || 'request failed' };
    }
  }

  /**
   * POST /auth/refresh, the one place a new token comes from after sign-in.
   *
   * - force: refresh even if another tab already replaced our token while we waited.
   * - replaces: the token this refresh is meant to replace; if another tab has already put a
   *   different one in `access` by the time we hold the lock, use that one instead.
   * - coordinate: take the cross-tab lock (false only for the race hook below).
   *
   * Resolves to whether this tab holds an access token afterwards.
   */
  function refresh({ force = false, replaces = access && access.token, coordinate = true } = {}) {
    if (inFlight) return inFlight;
    const needed = () => force || !access || access.token === replaces;
    const run = async () => (needed() ? postRefresh() : access !== null);
    inFlight = (coordinate ? withRefreshLock(run) : run()).finally(() => {
      inFlight = null;
    });
    return inFlight;
  }

  /** Runs `fn` while holding the browser-wide refresh lock, where the browser has Web Locks
   * (secure contexts only: https, or http on localhost/127.0.0.1). */
  function withRefreshLock(fn) {
    if (navigator.locks && navigator.locks.request) {
      return navigator.locks.request(LOCK_NAME, fn);
    }
    return fn();
  }

  async function postRefresh() {
    let resp;
    try {
      // No body and no Content-Type: the cookie is the whole request. The browser adds the
      // Origin header, which the service checks against its own origin.
      resp = await fetch('/auth/refresh', {
        method: 'POST',
        credentials: 'same-origin',
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
    } catch (e) {
      retryLater(`Refresh failed (${e.name}); will retry.`);
      return access !== null;
    }
    if (resp.ok) {
      retryDelayMs = 1_000;
      adopt(await resp.json(), 'refresh');
      log('Refreshed: new access token and a rotated cookie.');
      if (document.body.dataset.state !== 'signed-in') showSignedIn();
      return true;
    }
    if (resp.status === 401) {
      log(access ? 'Refresh refused (401): the session is over.' : 'No session yet (refresh answered 401).');
      showSignedOut(access
        ? 'Your session has ended (signed out here or elsewhere, or it expired). Sign in again.'
        : 'Not signed in.');
      return false;
    }
    // 429, 503 (with Retry-After), other 5xx: the session may well be fine.
    const err = await errorOf(resp);
    const after = Number(resp.headers.get('Retry-After'));
    retryLater(`Refresh answered ${resp.status} ${err.error}; will retry.`, after > 0 ? after * 1000 : undefined);
    return access !== null;
  }

  function retryLater(message, delayMs) {
    log(message);
    const wait = delayMs || retryDelayMs;
    retryDelayMs = Math.min(retryDelayMs * 2, RETRY_MAX_MS);
    clearTimeout(refreshTimer);
    nextRefreshAt = Date.now() + wait;
    refreshTimer = setTimeout(() => refresh({ force: true }), wait);
    renderToken();
  }

  /** A token body from /auth/login or /auth/refresh: keep it and share it with the tabs. */
  function adopt(body, from) {
    // expires_in is relative: counting from now on this browser's clock avoids clock skew
    // with the server (the JWT's exp claim is the server's clock).
    const lifetimeMs = body.expires_in * 1000;
    const next = { token: body.access_token, expiresAt: Date.now() + lifetimeMs, lifetimeMs, from };
    setAccess(next);
    tellOtherTabs({ type: 'token', token: next.token, expiresAt: next.expiresAt, lifetimeMs });
  }

  function setAccess(next) {
    access = next;
    scheduleRefresh();
    renderToken();
  }

  function scheduleRefresh() {
    clearTimeout(refreshTimer);
    if (!access) {
      nextRefreshAt = null;
      return;
    }
    const scheduledFor = access.token;
    const delay = Math.max(0, access.expiresAt - Date.now() - leadMs(access.lifetimeMs) - jitterMs(access.lifetimeMs));
    nextRefreshAt = Date.now() + delay;
    // If another tab refreshes first, its token arrives, replaces ours and reschedules this
    // timer; if it arrives while we wait for the lock, `replaces` makes us skip the refresh.
    refreshTimer = setTimeout(() => refresh({ replaces: scheduledFor }), delay);
  }

  /**
   * A call to the API with the access token. A 401 gets one refresh and one retry: the
   * token may have expired while the tab slept. A second 401 is returned to the caller.
   */
  async function api(path, options = {}) {
    if (access && access.expiresAt - Date.now() < 5_000) {
      await refresh({ replaces: access.token });
    }
    if (!access) return null;
    const send = (token) => fetch(path, {
      ...options,
      credentials: 'same-origin',
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      headers: { ...(options.headers || {}), Authorization: `Bearer ${token}` },
    });
    const used = access.token;
    let resp = await send(used);
    if (resp.status === 401 && (await refresh({ replaces: used })) && access.token !== used) {
      resp = await send(access.token);
    }
    return resp;
  }

  async function login(email, password) {
    const resp = await fetch('/auth/login', {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ email, password }),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    if (resp.ok) {
      adopt(await resp.json(), 'login');
      log('Signed in.');
      showSignedIn();
      return null;
    }
    const err = await errorOf(resp);
    if (resp.status === 401) return 'Wrong email or password.';
    if (resp.status === 429) {
      return `Too many attempts; try again in ${resp.headers.get('Retry-After') || 'a few'} seconds.`;
    }
    return `${err.message} (${err.error})`;
  }

  /**
   * POST /auth/logout?scope=…, with the cookie (which names this device's session):
   * - local: this browser's session (every tab of it);
   * - others: every other session of the user; this one and its cookie stay;
   * - global: all of them, this one too.
   * Other browsers learn of it at their next refresh, which fails.
   */
  async function logout(scope) {
    let resp;
    try {
      resp = await fetch(`/auth/logout?scope=${encodeURIComponent(scope)}`, {
        method: 'POST',
        credentials: 'same-origin',
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
    } catch (e) {
      log(`Sign-out failed (${e.name}).`);
      return;
    }
    if (resp.status !== 204) {
      const err = await errorOf(resp);
      log(`Sign-out answered ${resp.status} ${err.error}: ${err.message}`);
      return;
    }
    if (scope === 'others') {
      log('Signed out every other device; this one stays signed in.');
      await loadSessions();
      return;
    }
    showSignedOut(scope === 'global' ? 'Signed out everywhere.' : 'Signed out on this device.');
    log(scope === 'global' ? 'Signed out everywhere.' : 'Signed out this device.');
    // Tabs of this browser share the cookie the service just cleared: tell them.
    tellOtherTabs({ type: 'signed-out' });
  }

  /** DELETE /auth/sessions/{id}: ends one other session; its device is signed out at its next
   * refresh (and its access tokens stop working at once). */
  async function endSession(id) {
    const resp = await api(`/auth/sessions/${encodeURIComponent(id)}`, { method: 'DELETE' });
    if (!resp) return;
    if (resp.status === 204 || resp.status === 404) {
      // 404: already gone (ended elsewhere, or expired); either way it is not listed any more.
      log(resp.status === 204 ? 'Ended a session.' : 'That session had already ended.');
    } else {
      const err = await errorOf(resp);
      log(`Ending the session answered ${resp.status} ${err.error}`);
    }
    await loadSessions();
  }

  async function loadMe() {
    const resp = await api('/auth/me');
    if (!resp) return;
    if (resp.ok) {
      const me = await resp.json();
      text('me-email', me.email);
      text('me-id', me.id);
    } else if (resp.status === 401) {
      // Even a fresh token was refused: the session was ended since the refresh.
      showSignedOut('Your session has ended. Sign in again.');
    }
  }

  async function loadSessions() {
    const errorBox = el('sessions-error');
    const resp = await api('/auth/sessions');
    if (!resp) return;
    if (!resp.ok) {
      const err = await errorOf(resp);
      errorBox.textContent = `Could not list the sessions: ${err.message} (${err.error})`;
      errorBox.hidden = false;
      return;
    }
    errorBox.hidden = true;
    const { sessions } = await resp.json();
    renderSessions(sessions);
  }

  // ---- Rendering ----------------------------------------------------------------------------

  const el = (id) => document.getElementById(id);
  const text = (id, value) => {
    el(id).textContent = value;
  };
  const when = (unixSecs) => (unixSecs == null ? '—' : new Date(unixSecs * 1000).toLocaleString());
  const inSecs = (ms) => `${Math.max(0, Math.round((ms - Date.now()) / 1000))} s`;

  function renderSessions(sessions) {
    const body = el('sessions-body');
    const rows = sessions.map((s) => {
      const row = document.createElement('tr');
      row.dataset.sessionId = s.id;
      if (s.current) row.classList.add('current');
      // The earlier of the two ends is the one that will apply.
      const idleFirst = s.idle_expires_at != null && s.idle_expires_at < s.expires_at;
      const cells = [
        s.current ? `${s.id.slice(0, 8)} (this browser)` : s.id.slice(0, 8),
        when(s.created_at),
        when(s.last_used_at),
        idleFirst ? `${when(s.idle_expires_at)} unless used` : when(s.expires_at),
        s.user_agent || 'unknown',
        s.client_address || 'unknown',
      ];
      for (const value of cells) {
        const td = document.createElement('td');
        td.textContent = value; // text, never markup: these strings come from other clients
        row.append(td);
      }
      const action = document.createElement('td');
      const button = document.createElement('button');
      button.type = 'button';
      if (s.current) {
        // Ending our own session is a sign-out, which also clears the cookie.
        button.textContent = 'Sign out';
        button.addEventListener('click', () => logout('local'));
      } else {
        button.textContent = 'End';
        button.addEventListener('click', () => endSession(s.id));
      }
      action.append(button);
      row.append(action);
      return row;
    });
    body.replaceChildren(...rows);
  }

  function renderToken() {
    if (!access) {
      text('token-info', 'none');
      text('refresh-info', '—');
      return;
    }
    text('token-info', `in memory, from ${access.from}, expires in ${inSecs(access.expiresAt)}`);
    text('refresh-info', nextRefreshAt ? `in ${inSecs(nextRefreshAt)}` : '—');
  }

  function showSignedIn() {
    document.body.dataset.state = 'signed-in';
    el('signed-in').hidden = false;
    el('signed-out').hidden = true;
    text('status', 'Signed in.');
    renderToken();
    loadMe();
    loadSessions();
  }

  /** Forgets the token (and any refresh planned for it) and shows the sign-in form. */
  function showSignedOut(message) {
    access = null;
    clearTimeout(refreshTimer);
    nextRefreshAt = null;
    renderSignedOut(message);
  }

  function renderSignedOut(message) {
    document.body.dataset.state = 'signed-out';
    el('signed-in').hidden = true;
    el('signed-out').hidden = false;
    el('sessions-body').replaceChildren();
    text('me-email', '…');
    text('me-id', '…');
    text('status', message);
    renderToken();
  }

  function log(message) {
    const item = document.createElement('li');
    item.textContent = `${new Date().toLocaleTimeString()} ${message}`;
    const list = el('log');
    list.prepend(item);
    while (list.children.length > 50) list.lastElementChild.remove();
  }

  // ---- Wiring -------------------------------------------------------------------------------

  function start() {
    el('login-form').addEventListener('submit', async (event) => {
      event.preventDefault();
      const button = el('login-button');
      const errorBox = el('login-error');
      button.disabled = true;
      errorBox.hidden = true;
      try {
        const problem = await login(el('email').value, el('password').value);
        if (problem) {
          errorBox.textContent = problem;
          errorBox.hidden = false;
        } else {
          el('password').value = '';
        }
      } catch (e) {
        errorBox.textContent = `Could not reach the service (${e.name}).`;
        errorBox.hidden = false;
      } finally {
        button.disabled = false;
      }
    });
    el('refresh-button').addEventListener('click', () => refresh({ force: true }));
    el('me-button').addEventListener('click', () => loadMe());
    el('logout-local').addEventListener('click', () => logout('local'));
    el('logout-others').addEventListener('click', () => logout('others'));
    el('logout-global').addEventListener('click', () => logout('global'));

    // Browsers slow down the timers of hidden tabs and stop them in sleep: when the tab is
    // seen again, refresh if the token is gone or nearly so.
    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState === 'visible' && access
          && access.expiresAt - Date.now() < leadMs(access.lifetimeMs)) {
        refresh({ replaces: access.token });
      }
    });
    setInterval(renderToken, 1_000);

    // A new tab (or a reload) has no token in memory: the cookie, if the browser has one, gets
    // it one. This also proves the session is still alive. A tab that got a token from another
    // tab while it waited for the lock uses that one instead.
    // (On success postRefresh, or the message from the other tab, shows the signed-in view.)
    refresh().then(() => {
      if (document.body.dataset.state === 'loading') {
        // Neither 200 nor 401: the service could not be reached. The retry stays planned,
        // and the form is there in case the user wants to sign in meanwhile.
        renderSignedOut('Could not reach the service; retrying.');
      }
    });
  }

  // For the browser check in CI (.ci/e2e/demo-tabs.mjs), and for trying things in the console.
  // It hands out nothing a script on this page could not get by calling the API itself.
  window.jwtDemo = Object.freeze({
    /** Refresh now without the cross-tab lock: what two tabs do when their timers fire at the
     * same moment in a browser without Web Locks. Resolves to whether the tab is signed in. */
    raceRefresh: () => refresh({ force: true, coordinate: false }),
    /** Refresh now, coordinated with the other tabs. */
    refresh: () => refresh({ force: true }),
    loadMe,
    loadSessions,
    state: () => ({
      state: document.body.dataset.state,
      signedIn: access !== null,
      expiresAt: access && access.expiresAt,
      from: access && access.from,
    }),
  });

  start();
})();
