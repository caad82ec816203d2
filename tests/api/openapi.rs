//! The OpenAPI document: committed copies match the code, and it documents what the API does.

use serde_json::Value;

use jwt_auth::adapters::inbound::http::openapi_service;

use crate::helpers::*;

fn committed(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("openapi")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[tokio::test]
async fn committed_spec_matches_the_code() {
    let service = openapi_service(None);
    let served = spawn_app().await.get("/openapi.json").await;
    assert!(
        committed("openapi.json") == served.body,
        "the served spec is the committed one"
    );
    assert!(
        committed("openapi.json") == service.spec(),
        "openapi/openapi.json is stale: run `cargo run -- openapi` and commit the result"
    );
    assert!(
        committed("openapi.yaml") == service.spec_yaml(),
        "openapi/openapi.yaml is stale: run `cargo run -- openapi` and commit the result"
    );
}

#[tokio::test]
async fn served_spec_documents_every_operation_and_response() {
    let app = spawn_app().await;
    let resp = app.get("/openapi.json").await;
    assert_eq!(resp.status, 200);
    let spec: Value = resp.json();
    assert_eq!(
        spec["servers"][0]["url"], "/",
        "relative server so Try it out works anywhere"
    );
    let expect: &[(&str, &str, &[&str])] = &[
        (
            "/auth/login",
            "post",
            &[
                "200", "400", "401", "403", "408", "413", "415", "421", "429", "500", "503",
            ],
        ),
        (
            "/auth/refresh",
            "post",
            &["200", "401", "403", "408", "415", "421", "500", "503"],
        ),
        (
            "/auth/logout",
            "post",
            &["204", "403", "408", "415", "421", "500", "503"],
        ),
        ("/auth/me", "get", &["200", "401", "421", "500", "503"]),
        (
            "/auth/register",
            "post",
            &[
                "201", "400", "403", "404", "408", "409", "413", "415", "421", "429", "500", "503",
            ],
        ),
        (
            "/auth/verify-email",
            "post",
            &["204", "400", "401", "403", "413", "415", "500", "503"],
        ),
        (
            "/auth/verify-email/resend",
            "post",
            &["202", "400", "403", "413", "415"],
        ),
        ("/health/live", "get", &["200", "421"]),
        ("/health/ready", "get", &["200", "421", "503"]),
        ("/.well-known/jwks.json", "get", &["200", "421"]),
        ("/.well-known/openid-configuration", "get", &["200", "421"]),
        (
            "/.well-known/oauth-authorization-server",
            "get",
            &["200", "421"],
        ),
    ];
    for (path, method, statuses) in expect {
        let op = &spec["paths"][path][method];
        assert!(op["operationId"].is_string(), "{path} operationId");
        assert!(
            op["summary"].as_str().is_some_and(|s| !s.is_empty()),
            "{path} summary"
        );
        for status in *statuses {
            assert!(
                op["responses"][status].is_object(),
                "{method} {path} documents {status}"
            );
        }
    }
    let me = &spec["paths"]["/auth/me"]["get"];
    assert!(me["security"].to_string().contains("BearerAuth"));
    let scheme = &spec["components"]["securitySchemes"]["BearerAuth"];
    assert_eq!(scheme["scheme"], "bearer");
    assert_eq!(scheme["bearerFormat"], "JWT");
    let refresh_params = spec["paths"]["/auth/refresh"]["post"]["parameters"].to_string();
    assert!(
        refresh_params.contains("refresh_token") && refresh_params.contains("cookie"),
        "{refresh_params}"
    );
    let login_401 = &spec["paths"]["/auth/login"]["post"]["responses"]["401"];
    assert!(login_401.to_string().contains("ErrorBody"));
    assert!(
        spec["paths"]["/auth/login"]["post"]["responses"]["429"]["headers"]["RETRY-AFTER"]
            .is_object()
    );
    assert_eq!(app.get("/openapi.yaml").await.status, 200);

    // The schema states the same email rules the domain enforces.
    let schemas = &spec["components"]["schemas"];
    assert_eq!(
        schemas["LoginRequest"]["properties"]["email"]["pattern"],
        jwt_auth::domain::LOGIN_EMAIL_PATTERN
    );
    assert_eq!(
        schemas["RegisterRequest"]["properties"]["email"]["pattern"],
        jwt_auth::domain::NEW_EMAIL_PATTERN
    );
    assert_eq!(
        schemas["RegisterRequest"]["properties"]["password"]["minLength"],
        8
    );
    assert_eq!(
        schemas["UserBody"]["properties"]["email_verified"]["type"],
        "boolean"
    );
    assert!(schemas["UserBody"]["required"]
        .to_string()
        .contains("email_verified"));
    assert_eq!(
        schemas["VerifyEmailRequest"]["properties"]["token"]["maxLength"],
        1024
    );
    let login_403 = spec["paths"]["/auth/login"]["post"]["responses"]["403"].to_string();
    assert!(login_403.contains("email_not_verified"), "{login_403}");
}

#[tokio::test]
async fn method_not_allowed_lists_the_allowed_methods() {
    let app = spawn_app().await;
    let resp = Resp::read(
        app.client
            .request(poem::http::Method::TRACE, "/auth/login")
            .send()
            .await
            .0,
    )
    .await;
    resp.assert_error(405, "method_not_allowed");
    assert_eq!(resp.header("allow"), Some("POST"));
    let resp = Resp::read(app.client.delete("/auth/me").send().await.0).await;
    assert_eq!(resp.header("allow"), Some("GET"));
}

#[tokio::test]
async fn public_url_becomes_the_server() {
    let app = spawn_app_with(&[("PUBLIC_URL", "https://auth.example.com/")]).await;
    let spec = app.get("/openapi.json").await.json();
    assert_eq!(spec["servers"][0]["url"], "https://auth.example.com");
}

#[tokio::test]
async fn swagger_ui_is_served_on_the_same_origin_offline() {
    let app = spawn_app().await;
    let docs = app.get("/docs").await;
    assert_eq!(docs.status, 200);
    assert!(
        docs.body.contains("SwaggerUIBundle"),
        "the UI bundle is inlined"
    );
    assert!(
        !docs.body.contains("https://unpkg.com") && !docs.body.contains("cdn.jsdelivr"),
        "no CDN"
    );
}

#[tokio::test]
async fn swagger_ui_is_off_in_prod_unless_enabled() {
    let prod = spawn_app_with(&PROD).await;
    assert_eq!(prod.get("/docs/").await.status, 404);
    assert_eq!(
        prod.get("/openapi.json").await.status,
        200,
        "the spec stays"
    );
    let mut on = PROD.to_vec();
    on.push(("DOCS_ENABLED", "true"));
    assert_eq!(spawn_app_with(&on).await.get("/docs/").await.status, 200);
}
