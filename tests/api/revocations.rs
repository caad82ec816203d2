//! The revocation feed (`GET /revocations`) on every store: every revocation path shows up,
//! the cursor returns only what is new (with the documented overlap), entries leave the feed
//! once no token they affect can be unexpired, and a logout flood keeps it bounded.

use std::collections::HashSet;

use jwt_auth::ports::{RefreshStore, UserRepo};
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
    a_logout_flood_stays_bounded,
    a_second_fuller_than_a_page_is_paged_through,
    a_verifier_learns_every_revocation_of_a_flooded_second
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

/// Revokes `n` sessions within one second of the feed's clock; returns that second and
/// their ids. On the memory store through the store itself (one user's sessions revoked at
/// once, as a disable does); on the databases by writing the trigger's rows directly (a
/// revoking UPDATE of that size may straddle a second), plus a few of the second before,
/// written after them, so that the order by time is tested too.
pub(crate) async fn revoke_in_one_second(app: &TestApp, n: usize) -> (u64, HashSet<String>) {
    use jwt_auth::domain::{
        ClientAddress, Email, PasswordHash, RefreshToken, Session, SessionId, SessionOrigin,
        Timestamp, User, UserId,
    };
    let mut sids = HashSet::new();
    let Some(db) = app.db.as_ref().map(|d| &d.db) else {
        let user = User {
            id: UserId::new_random(),
            email: Email::parse(&format!("{}@example.com", uuid::Uuid::new_v4())).unwrap(),
            password_hash: PasswordHash::new("$2b$04$flood-test-hash".into()),
            disabled: false,
            email_verified: true,
            created_at: Timestamp::from_unix(T0),
        };
        let id = user.id;
        app.users.create(user).await.unwrap();
        let origin = SessionOrigin {
            user_agent: None,
            client: ClientAddress::unknown(),
        };
        for _ in 0..n {
            let session = Session {
                id: SessionId::new_random(),
                user_id: id,
                created_at: Timestamp::from_unix(T0),
                expires_at: Timestamp::from_unix(T0 + 30 * 86_400),
                idle_expires_at: None,
            };
            let first = RefreshToken::generate().hash();
            assert!(app
                .sessions
                .create_session(&session, first, &origin, usize::MAX)
                .await
                .unwrap());
            sids.insert(session.id.to_string());
        }
        let before = feed(app, None).await["cursor"].as_u64().unwrap() + 10;
        assert_eq!(
            app.sessions.revoke_user_sessions(id).await.unwrap(),
            n as u64
        );
        let page = feed(app, Some(before)).await;
        let second = page["entries"][0]["revoked_at"].as_u64().unwrap();
        return (second, sids);
    };
    let second = feed(app, None).await["cursor"].as_u64().unwrap() + 5;
    let pg = app.db.as_ref().unwrap().url.starts_with("postgres");
    let rows = |at: u64, ids: &[uuid::Uuid]| {
        let values: Vec<String> = ids
            .iter()
            .map(|id| {
                if pg {
                    format!("('{id}'::uuid, {at})")
                } else {
                    format!("('{id}', {at})")
                }
            })
            .collect();
        format!(
            "INSERT INTO session_revocations (session_id, revoked_at) VALUES {}",
            values.join(", ")
        )
    };
    let ids: Vec<uuid::Uuid> = (0..n).map(|_| uuid::Uuid::new_v4()).collect();
    for chunk in ids.chunks(500) {
        db.execute(&rows(second, chunk)).await.unwrap();
    }
    let earlier: Vec<uuid::Uuid> = (0..3).map(|_| uuid::Uuid::new_v4()).collect();
    db.execute(&rows(second - 1, &earlier)).await.unwrap();
    sids.extend(ids.iter().chain(&earlier).map(ToString::to_string));
    (second, sids)
}

/// Reads the feed page by page from `since` as a verifier does; every entry, in order.
async fn page_through(app: &TestApp, mut since: Option<u64>) -> (Vec<(u64, String)>, usize) {
    let mut entries = Vec::new();
    for pages in 1..=20 {
        let page = feed(app, since).await;
        for e in page["entries"].as_array().unwrap() {
            entries.push((
                e["revoked_at"].as_u64().unwrap(),
                e["sid"].as_str().unwrap().to_owned(),
            ));
        }
        let cursor = page["cursor"].as_u64().unwrap();
        assert!(cursor < 1 << 53, "a JSON number reader holds it exactly");
        if page["more"] != true {
            return (entries, pages);
        }
        assert_ne!(Some(cursor), since, "a full page moves the cursor on");
        since = Some(cursor);
    }
    panic!("the feed never ended");
}

/// More revocations in one second than two pages hold (a logout flood, a mass disable):
/// paging with the cursor reaches every one of them, in (revoked_at, sid) order, instead of
/// stopping at the first page's cursor (which was that second again).
pub async fn a_second_fuller_than_a_page_is_paged_through(store: Store) {
    use jwt_auth::adapters::inbound::http::MAX_ENTRIES;
    let Some(stores) = Stores::new(store).await else {
        return;
    };
    let app = spawn_app_from(stores, &[]).await;
    let (second, revoked) = revoke_in_one_second(&app, 2 * MAX_ENTRIES + 5).await;
    let (entries, pages) = page_through(&app, None).await;
    assert_eq!(pages, 3, "two full pages, then the rest");
    let got: HashSet<String> = entries.iter().map(|(_, sid)| sid.clone()).collect();
    assert_eq!(got.len(), revoked.len(), "nothing twice, nothing missed");
    assert!(revoked.is_subset(&got), "every revoked session arrives");
    assert!(
        entries.windows(2).all(|w| w[0] < w[1]),
        "ordered by (revoked_at, session id)"
    );
    // A position's skip passes over its own second only: from the second before, however
    // many it says to skip, the flooded second comes whole.
    let skip_all = (second - 2) * jwt_auth::domain::CURSOR_SCALE + 999_999;
    let (after, _) = page_through(&app, Some(skip_all)).await;
    assert_eq!(after.len(), entries.len());
}

/// A stateless verifier learns every revocation of such a second from the feed.
pub async fn a_verifier_learns_every_revocation_of_a_flooded_second(store: Store) {
    use jwt_auth::adapters::inbound::http::MAX_ENTRIES;
    use jwt_auth::verifier::{Verifier, VerifierConfig};
    let Some(stores) = Stores::new(store).await else {
        return;
    };
    let app = spawn_app_from(stores, &[("JWT_ALGORITHM", "EdDSA")]).await;
    let (_, revoked) = revoke_in_one_second(&app, 2 * MAX_ENTRIES + 5).await;
    let base = crate::revocation_stream::serve(&app).await;
    let mut config = VerifierConfig::new(
        base,
        app.settings.jwt_issuer.clone(),
        app.settings.jwt_audience.clone(),
        jwt_auth::domain::SigningAlgorithm::EdDSA,
    );
    config.poll_interval = std::time::Duration::from_secs(3600);
    config.push = false;
    let verifier = Verifier::start(config).await.unwrap();
    let missed = revoked.iter().filter(|s| !verifier.is_revoked(s)).count();
    assert_eq!(missed, 0, "of {} revoked sessions", revoked.len());
}
