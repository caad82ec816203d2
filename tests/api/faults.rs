//! A backing store that goes away: 503 `unavailable`, nothing half-written, and recovery.

use crate::helpers::*;

#[tokio::test]
async fn session_store_down_gives_503_and_recovers() {
    let app = spawn_app().await;
    let login = app.login_demo().await;
    let cookie = login.refresh_cookie().unwrap();
    app.sessions.set_down(true);
    app.login(DEMO_EMAIL, DEMO_PASSWORD)
        .await
        .assert_error(503, "unavailable");
    let refresh = app.refresh(Some(&cookie)).await;
    refresh.assert_error(503, "unavailable");
    assert!(
        refresh.set_cookie().is_none(),
        "an outage does not clear the cookie"
    );
    app.me(&login.access_token())
        .await
        .assert_error(503, "unavailable");
    app.logout(Some(&cookie))
        .await
        .assert_error(503, "unavailable");
    app.sessions.set_down(false);
    assert_eq!(
        app.refresh(Some(&cookie)).await.status,
        200,
        "nothing rotated during the outage"
    );
}

#[tokio::test]
async fn user_store_down_gives_503() {
    let app = spawn_app().await;
    let login = app.login_demo().await;
    app.users.set_down(true);
    app.login(DEMO_EMAIL, DEMO_PASSWORD)
        .await
        .assert_error(503, "unavailable");
    // `/auth/me` reads the session's owner from the session store in one look-up (as one
    // database joins its tables), so the user store's outage does not reach it; the session
    // store's does (`session_store_down_gives_503_and_recovers`).
    assert_eq!(app.me(&login.access_token()).await.status, 200);
    app.register("x@example.com", "long enough")
        .await
        .assert_error(503, "unavailable");
    app.users.set_down(false);
    assert_eq!(app.me(&login.access_token()).await.status, 200);
}
