//! The security events the use cases report, through the real app on every store: each kind
//! with its account, session, client and user agent, and nothing reported for what did not
//! happen (an unknown cookie's logout, a refresh of an unknown token).

use std::sync::{Arc, Mutex};

use jwt_auth::domain::{EventKind, SecurityEvent};
use jwt_auth::ports::SecurityEvents;
use serde_json::json;

use crate::helpers::*;

#[derive(Default)]
struct Recorder(Mutex<Vec<SecurityEvent>>);

impl SecurityEvents for Recorder {
    fn record(&self, event: SecurityEvent) {
        self.0.lock().unwrap().push(event);
    }
}

impl Recorder {
    /// The events reported since the last call.
    fn take(&self) -> Vec<SecurityEvent> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }

    fn take_kinds(&self) -> Vec<EventKind> {
        self.take().iter().map(|e| e.kind).collect()
    }
}

async fn app_on(store: Store, overrides: &[(&str, &str)]) -> Option<(TestApp, Arc<Recorder>)> {
    let stores = Stores::new(store).await?;
    let app = spawn_app_from(stores, overrides).await;
    let recorder = Arc::new(Recorder::default());
    app.adapters.events.subscribe(recorder.clone());
    Some((app, recorder))
}

const UA: &str = "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0";

async fn login_as(app: &TestApp, email: &str, password: &str, agent: &str) -> Resp {
    app.post("/auth/login")
        .header("user-agent", agent)
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
}

async fn every_login_outcome_is_reported(store: Store) {
    let Some((app, events)) = app_on(store, &[("LOGIN_MAX_FAILURES", "2")]).await else {
        return;
    };
    let created = app.register("events@example.com", "correct horse").await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.json()["id"].as_str().unwrap().to_owned();
    let account = events.take();
    assert_eq!(account.len(), 1);
    assert_eq!(account[0].kind, EventKind::AccountCreated);
    assert_eq!(account[0].user.map(|u| u.to_string()), Some(id.clone()));
    assert!(account[0].client.is_some(), "a sign-up from the network");

    let ok = login_as(&app, "events@example.com", "correct horse", UA).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let opened = events.take();
    let kinds: Vec<_> = opened.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [EventKind::LoginSucceeded, EventKind::NewLogin]);
    for e in &opened {
        assert_eq!(e.user.map(|u| u.to_string()), Some(id.clone()));
        assert!(e.session.is_some());
        assert_eq!(e.user_agent.as_ref().map(|u| u.as_str()), Some(UA));
        assert!(e.client.is_some());
    }
    // The same browser again: not a new client.
    let again = login_as(&app, "events@example.com", "correct horse", UA).await;
    assert_eq!(again.status, 200);
    assert_eq!(events.take_kinds(), [EventKind::LoginSucceeded]);
    // Another browser on the same address is.
    let other = login_as(&app, "events@example.com", "correct horse", "curl/8.0").await;
    assert_eq!(other.status, 200);
    assert_eq!(
        events.take_kinds(),
        [EventKind::LoginSucceeded, EventKind::NewLogin]
    );

    // Two wrong passwords lock the pair; the second failure reports the lock once.
    for _ in 0..2 {
        let wrong = login_as(&app, "events@example.com", "wrong password", UA).await;
        assert_eq!(wrong.status, 401);
    }
    let failed = events.take();
    let kinds: Vec<_> = failed.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            EventKind::LoginFailed,
            EventKind::LoginFailed,
            EventKind::AccountLocked
        ]
    );
    assert_eq!(failed[0].detail.as_deref(), Some("wrong_password"));
    assert_eq!(failed[2].detail.as_deref(), Some("pair"));
    assert!(failed.iter().all(|e| e.user.is_some()));
    let held = login_as(&app, "events@example.com", "correct horse", UA).await;
    assert_eq!(held.status, 429);
    assert_eq!(events.take_kinds(), [EventKind::LoginThrottled]);

    let unknown = login_as(&app, "nobody@example.com", "whatever pw", UA).await;
    assert_eq!(unknown.status, 401);
    let e = events.take();
    assert_eq!(e.len(), 1);
    assert_eq!(
        (e[0].kind, e[0].user, e[0].detail.as_deref()),
        (EventKind::LoginFailed, None, Some("unknown_account"))
    );

    app.set_disabled("events@example.com", true).await;
    let disabled = events.take();
    assert_eq!(disabled.len(), 1);
    assert_eq!(disabled[0].kind, EventKind::AccountDisabled);
    app.set_disabled("events@example.com", false).await;
    assert_eq!(events.take_kinds(), [EventKind::AccountEnabled]);
}

async fn session_ends_are_reported_with_their_cause(store: Store) {
    let Some((app, events)) = app_on(store, &[]).await else {
        return;
    };
    let first = app.login_demo().await;
    let cookie = first.refresh_cookie().unwrap();
    let session_of_first = |e: &SecurityEvent| e.session.map(|s| s.to_string());
    let opened = events.take();
    let sid = session_of_first(&opened[0]).unwrap();

    // A rotation is routine: nothing to report. A replay after the window is a reuse.
    let rotated = app.refresh(Some(&cookie)).await;
    assert_eq!(rotated.status, 200);
    assert!(events.take().is_empty());
    app.clock.advance(app.settings.refresh_reuse_grace_secs + 1);
    let reused = app.refresh(Some(&cookie)).await;
    assert_eq!(reused.status, 401);
    let e = events.take();
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].kind, EventKind::RefreshReuse);
    assert_eq!(session_of_first(&e[0]).as_deref(), Some(sid.as_str()));
    assert!(e[0].user.is_some() && e[0].client.is_some());
    // The revoked family's token again: unknown now, not reported twice.
    let _ = app.refresh(Some(&cookie)).await;
    assert!(events.take().is_empty());

    // Logout names its scope; a cookie of nobody reports nothing.
    let second = app.login_demo().await;
    events.take();
    let logout = app
        .post("/auth/logout?scope=global")
        .cookie(&second.refresh_cookie().unwrap())
        .send()
        .await;
    assert_eq!(logout.status, 204);
    let e = events.take();
    assert_eq!(e.len(), 1);
    assert_eq!(
        (e[0].kind, e[0].detail.as_deref()),
        (EventKind::Logout, Some("global"))
    );
    assert!(e[0].session.is_some() && e[0].user.is_some());
    let nobody = app.logout(Some("refresh_token=not-a-real-token")).await;
    assert_eq!(nobody.status, 204);
    assert!(events.take().is_empty());

    // Ending a session from the list.
    let a = app.login_demo().await;
    let b = app.login_demo().await;
    let b_sid = events.take().last().and_then(session_of_first).unwrap();
    let ended = app
        .request(
            poem::http::Method::DELETE,
            &format!("/auth/sessions/{b_sid}"),
        )
        .header("authorization", format!("Bearer {}", a.access_token()))
        .send()
        .await;
    assert_eq!(ended.status, 204, "{}", ended.body);
    let e = events.take();
    assert_eq!(e.len(), 1);
    assert_eq!(
        (e[0].kind, e[0].detail.as_deref()),
        (EventKind::SessionRevoked, Some("ended_by_owner"))
    );
    assert_eq!(session_of_first(&e[0]), Some(b_sid));
    drop(b);
}

/// No event carries a secret: every string in them is an id, an address, a user agent or a
/// word of a closed set, never the password, a cookie or a token.
async fn no_event_carries_a_secret(store: Store) {
    let Some((app, events)) = app_on(store, &[]).await else {
        return;
    };
    let login = login_as(&app, DEMO_EMAIL, DEMO_PASSWORD, UA).await;
    let cookie = login.refresh_cookie().unwrap();
    let token = login.access_token();
    let _ = login_as(&app, DEMO_EMAIL, "not the password", UA).await;
    let _ = app.refresh(Some(&cookie)).await;
    app.clock.advance(app.settings.refresh_reuse_grace_secs + 1);
    let _ = app.refresh(Some(&cookie)).await;
    let all = format!("{:?}", events.take());
    let cookie_value = cookie.split_once('=').map_or(cookie.as_str(), |(_, v)| v);
    for secret in [
        DEMO_PASSWORD,
        "not the password",
        cookie_value,
        token.as_str(),
    ] {
        assert!(!all.contains(secret), "an event shows {secret:?}");
    }
    assert!(!all.contains(DEMO_EMAIL), "events name ids, not emails");
}

on_every_store!(
    every_login_outcome_is_reported,
    session_ends_are_reported_with_their_cause,
    no_event_carries_a_secret
);
