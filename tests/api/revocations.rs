//! The revocation feed (`GET /revocations`) on every store: every revocation path shows up,
//! the cursor returns only what is new (with the documented overlap), entries leave the feed
//! once no token they affect can be unexpired, and a logout flood keeps it bounded.

use std::collections::HashSet;

use serde_json::Value;

use crate::helpers::*;

fn sids(page: &Value) -> HashSet<String> {
    page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["sid"].as_str().unwrap().to_owned())
        .collect()
}

async fn feed(app: &TestApp, since: Option<u64>) -> Value {
    let path = match since {
        Some(c) => format!("/revocations?since={c}"),
        None => "/revocations".to_owned(),
    };
    let resp = app.get(&path).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(
        resp.header("cache-control"),
        Some("no-store"),
        "never cached"
    );
    resp.json()
}

fn sid_of(resp: &Resp) -> String {
    payload_of(&resp.access_token())["sid"]
        .as_str()
        .unwrap()
        .to_owned()
}

pub async fn every_revocation_path_is_published(store: Store) {
    let Some(stores) = Stores::new(store).await else {
        return;
    };
    let app = spawn_app_from(stores, &[]).await;
    let before = feed(&app, None).await;
    assert_eq!(before["window_secs"], 900);
    assert!(sids(&before).is_empty(), "{before}");

    // Logout.
    let login = app.login_demo().await;
    let sid = sid_of(&login);
    assert!(
        !sids(&feed(&app, None).await).contains(&sid),
        "a live session is not listed"
    );
    app.logout(login.refresh_cookie().as_deref()).await;
    let page = feed(&app, None).await;
    assert!(sids(&page).contains(&sid), "logout: {page}");
    let entry = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["sid"] == sid.as_str())
        .unwrap();
    assert_eq!(
        entry["until"].as_u64().unwrap(),
        entry["revoked_at"].as_u64().unwrap() + 900,
        "kept until the last token it affects expires"
    );

    // Refresh-token reuse revokes the session.
    let login = app.login_demo().await;
    let reused = sid_of(&login);
    let first = login.refresh_cookie().unwrap();
    let second = app.refresh(Some(&first)).await.refresh_cookie().unwrap();
    assert_eq!(app.refresh(Some(&second)).await.status, 200);
    // Two generations old: reuse, whatever the grace window.
    assert_eq!(app.refresh(Some(&first)).await.status, 401);
    assert!(sids(&feed(&app, None).await).contains(&reused), "reuse");

    // Disabling the account revokes every session.
    let (a, b) = (app.login_demo().await, app.login_demo().await);
    app.set_disabled(DEMO_EMAIL, true).await;
    let listed = sids(&feed(&app, None).await);
    assert!(
        listed.contains(&sid_of(&a)) && listed.contains(&sid_of(&b)),
        "disable"
    );

    // The cursor: nothing older than the overlap comes back.
    let cursor = page["cursor"].as_u64().unwrap();
    assert!(
        cursor + jwt_auth::adapters::inbound::http::CURSOR_OVERLAP_SECS
            >= entry["revoked_at"].as_u64().unwrap()
    );
    let later = feed(&app, Some(cursor + 3600)).await;
    assert!(sids(&later).is_empty(), "nothing after the cursor: {later}");
    assert_eq!(later["more"], false);
}

/// Entries older than the window are neither served nor kept (database stores, where an old
/// entry can be written directly).
pub async fn old_entries_leave_the_feed(store: Store) {
    let Some(stores) = Stores::new(store).await else {
        return;
    };
    let app = spawn_app_from(stores, &[]).await;
    let db = &app.db.as_ref().expect("a database").db;
    let now = feed(&app, None).await["cursor"].as_u64().unwrap() + 10;
    let old = uuid::Uuid::new_v4();
    let id = if store == Store::Postgres {
        format!("'{old}'::uuid")
    } else {
        format!("'{old}'")
    };
    db.execute(&format!(
        "INSERT INTO session_revocations (session_id, revoked_at) VALUES ({id}, {})",
        now - 905
    ))
    .await
    .unwrap();
    assert!(!sids(&feed(&app, None).await).contains(&old.to_string()));
    assert!(
        !sids(&feed(&app, Some(0)).await).contains(&old.to_string()),
        "not even from 0"
    );
    let purged = app
        .adapters
        .revocations
        .purge_revocations(900)
        .await
        .unwrap();
    assert_eq!(purged, 1);
}

/// A logout flood: the feed holds one entry per session revoked within the window and no
/// more (the figure the README states).
pub async fn a_logout_flood_stays_bounded(store: Store) {
    let Some(stores) = Stores::new(store).await else {
        return;
    };
    let app = spawn_app_from(stores, &[("LOGIN_THROTTLE_ENABLED", "false")]).await;
    const FLOOD: usize = 200;
    let mut cookies = Vec::new();
    for _ in 0..FLOOD {
        cookies.push(app.login_demo().await.refresh_cookie().unwrap());
    }
    for cookie in &cookies {
        // Twice each: a repeated logout adds nothing.
        app.logout(Some(cookie)).await;
        app.logout(Some(cookie)).await;
    }
    let page = feed(&app, None).await;
    assert_eq!(
        page["entries"].as_array().unwrap().len(),
        FLOOD,
        "one entry a session"
    );
    assert_eq!(sids(&page).len(), FLOOD);
    assert_eq!(page["more"], false);
}

on_every_store!(
    every_revocation_path_is_published,
    a_logout_flood_stays_bounded
);

mod databases {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sqlite_old_entries_leave_the_feed() {
        super::old_entries_leave_the_feed(crate::helpers::Store::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    #[cfg_attr(no_postgres, ignore = "TEST_DATABASE_URL not set")]
    async fn postgres_old_entries_leave_the_feed() {
        super::old_entries_leave_the_feed(crate::helpers::Store::Postgres).await;
    }
}

#[tokio::test]
async fn a_cursor_that_is_not_one_non_negative_integer_is_400() {
    let app = spawn_app().await;
    for query in [
        "since=-1",
        "since=x",
        "since=18446744073709551616",
        "since=9007199254740992",
    ] {
        app.get(&format!("/revocations?{query}"))
            .await
            .assert_error(400, "invalid_request");
    }
    assert_eq!(app.get("/revocations?since=0").await.status, 200);
    // The spec's bound itself is accepted: nothing the spec allows is refused.
    assert_eq!(
        app.get("/revocations?since=9007199254740991").await.status,
        200
    );
}
