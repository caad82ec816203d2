//! Arbitrary request bodies to the JSON endpoints of the real app (in-process): the answer is
//! always the contract's (2xx, or a 4xx with the JSON error body), never a 5xx or a panic.
#![no_main]

use std::sync::LazyLock;

use jwt_auth::adapters::inbound::http::build_app;
use jwt_auth::config::Settings;
use jwt_auth::startup::{build_state, seed_demo_user, Adapters};
use libfuzzer_sys::fuzz_target;
use poem::endpoint::BoxEndpoint;
use poem::test::TestClient;
use poem::{EndpointExt, Response};

struct Harness {
    rt: tokio::runtime::Runtime,
    client: TestClient<BoxEndpoint<'static, Response>>,
}

static HARNESS: LazyLock<Harness> = LazyLock::new(|| {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let settings = Settings::from_pairs(&[
        ("JWT_SECRET_KEY", "fuzz-secret-0123456789-abcdefghijklmnopqrstuvwxyz"),
        ("BCRYPT_COST", "4"),
        ("LOGIN_THROTTLE_ENABLED", "false"),
    ])
    .unwrap();
    let client = rt.block_on(async {
        let adapters = Adapters::in_memory(&settings).unwrap();
        seed_demo_user(&adapters).await.unwrap();
        TestClient::new(build_app(build_state(&settings, &adapters)).map_to_response().boxed())
    });
    Harness { rt, client }
});

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else { return };
    let path = ["/auth/login", "/auth/register", "/auth/refresh", "/auth/logout"][usize::from(selector % 4)];
    let h = &*HARNESS;
    let (status, text) = h.rt.block_on(async {
        let resp = h
            .client
            .post(path)
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await
            .0;
        let status = resp.status();
        (status, resp.into_body().into_string().await.unwrap_or_default())
    });
    assert!(!status.is_server_error(), "{path}: {status}");
    if status.is_client_error() {
        let json: serde_json::Value = serde_json::from_str(&text).expect("error bodies are JSON");
        assert!(json["error"].is_string() && json["message"].is_string(), "{text}");
    }
});
