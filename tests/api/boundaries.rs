//! State that must not outlive the boundary it was made for: the `dev` profile's demo account
//! on a database later served under `prod`.

use crate::helpers::*;

/// The demo account's password is public: a database first served under `dev` (which seeds
/// it) and then under `prod` must not let it in, nor keep its `dev` sessions alive.
#[tokio::test]
async fn the_dev_demo_account_never_authenticates_under_prod() {
    let dev_stores = Stores::new(Store::Sqlite).await.expect("a SQLite file");
    let db = dev_stores.db.as_ref().expect("a database");
    let prod_stores = Stores {
        users: db.users(),
        sessions: db.sessions(),
        memory: None,
        db: None,
    };
    let same_secret = [("JWT_SECRET_KEY", PROD_SECRET)];
    let dev = spawn_app_from(dev_stores, &same_secret).await;
    let session = dev.login_demo().await;

    let prod = spawn_app_from(prod_stores, &PROD).await;
    prod.login(DEMO_EMAIL, DEMO_PASSWORD)
        .await
        .assert_error(401, "invalid_credentials");
    prod.me(&session.access_token())
        .await
        .assert_error(401, "invalid_token");
    prod.refresh(session.refresh_cookie().as_deref())
        .await
        .assert_error(401, "invalid_refresh_token");
    // Even re-enabled by hand in the database, it still does not log in under prod.
    prod.disable_in_store(DEMO_EMAIL, false).await;
    prod.login(DEMO_EMAIL, DEMO_PASSWORD)
        .await
        .assert_error(401, "invalid_credentials");
}
