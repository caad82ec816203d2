//! The example browser client at `/demo`: served in `dev` with headers that keep it safe,
//! absent in `prod` unless asked for, outside the spec, and calling only operations the spec
//! has.

use poem::http::Method;

use crate::helpers::{spawn_app, spawn_app_with, TestApp, PROD};

const PAGES: [&str; 2] = ["/demo", "/demo/"];
const ASSETS: [(&str, &str); 2] = [
    ("/demo/app.js", "text/javascript"),
    ("/demo/app.css", "text/css"),
];

fn assert_strict_csp(path: &str, csp: Option<&str>) {
    let csp = csp.unwrap_or_else(|| panic!("{path}: no Content-Security-Policy"));
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "form-action 'none'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ] {
        assert!(csp.contains(directive), "{path}: {directive} in {csp}");
    }
    for loose in [
        "unsafe-inline",
        "unsafe-eval",
        "*",
        "http:",
        "https:",
        "data:",
    ] {
        assert!(!csp.contains(loose), "{path}: {loose} in {csp}");
    }
}

async fn status_of(app: &TestApp, path: &str) -> u16 {
    app.get(path).await.status
}

#[tokio::test]
async fn the_page_is_served_in_dev_with_a_strict_policy_and_no_inline_code() {
    let app = spawn_app().await;
    for path in PAGES {
        let page = app.get(path).await;
        assert_eq!(page.status, 200, "{path}");
        assert_eq!(
            page.header("content-type"),
            Some("text/html; charset=utf-8"),
            "{path}"
        );
        assert_strict_csp(path, page.header("content-security-policy"));
        assert_eq!(page.header("x-frame-options"), Some("DENY"));
        assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
        assert_eq!(page.header("cache-control"), Some("no-cache"));
        assert!(page.header("access-control-allow-origin").is_none());
        let html = &page.body;
        assert!(html.contains(r#"<script src="/demo/app.js" defer></script>"#));
        assert!(html.contains(r#"<link rel="stylesheet" href="/demo/app.css">"#));
        // The CSP would block inline code; the page must not rely on any.
        assert_eq!(
            html.matches("<script").count(),
            html.matches("<script src=").count(),
            "every script is a file"
        );
        assert!(!html.contains("<style") && !html.contains(" style="));
        for handler in ["onclick=", "onsubmit=", "onload=", "javascript:"] {
            assert!(!html.contains(handler), "{path}: inline {handler}");
        }
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "no CDN"
        );
        assert!(html.contains(r#"id="login-form""#));
    }
}

#[tokio::test]
async fn the_script_and_style_are_served_with_the_same_policy() {
    let app = spawn_app().await;
    for (path, kind) in ASSETS {
        let asset = app.get(path).await;
        assert_eq!(asset.status, 200, "{path}");
        let ct = asset.header("content-type").unwrap_or_default();
        assert!(ct.starts_with(kind), "{path}: {ct}");
        assert_strict_csp(path, asset.header("content-security-policy"));
        assert_eq!(asset.header("x-content-type-options"), Some("nosniff"));
        assert!(!asset.body.contains("https://") && !asset.body.contains("http://"));
    }
}

#[tokio::test]
async fn the_script_keeps_the_token_in_memory_and_writes_no_markup_from_data() {
    let js = spawn_app().await.get("/demo/app.js").await.body;
    for banned in [
        "localStorage.",
        "sessionStorage.",
        "indexedDB",
        "document.cookie",
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "new Function",
    ] {
        assert!(!js.contains(banned), "app.js uses {banned}");
    }
    assert!(js.contains("new BroadcastChannel("), "tabs coordinate");
    assert!(js.contains("credentials: 'same-origin'"));
}

#[tokio::test]
async fn the_page_is_404_in_prod_unless_enabled_and_can_be_turned_off_in_dev() {
    let prod = spawn_app_with(&PROD).await;
    for path in PAGES.into_iter().chain(ASSETS.map(|(p, _)| p)) {
        let resp = prod.get(path).await;
        resp.assert_error(404, "not_found");
        assert!(resp.header("content-security-policy").is_none());
    }
    let mut on = PROD.to_vec();
    on.push(("DEMO_PAGE_ENABLED", "true"));
    let enabled = spawn_app_with(&on).await;
    for path in PAGES.into_iter().chain(ASSETS.map(|(p, _)| p)) {
        assert_eq!(status_of(&enabled, path).await, 200, "{path}");
    }
    let off = spawn_app_with(&[("DEMO_PAGE_ENABLED", "false")]).await;
    assert_eq!(status_of(&off, "/demo").await, 404);
    assert_eq!(status_of(&off, "/docs/").await, 200, "docs are separate");
}

#[tokio::test]
async fn the_page_is_not_in_the_spec_and_takes_only_get() {
    let app = spawn_app().await;
    let spec = app.get("/openapi.json").await.json();
    let paths = spec["paths"].as_object().expect("paths");
    assert!(paths.keys().all(|p| !p.starts_with("/demo")), "{paths:?}");
    for method in [Method::POST, Method::PUT, Method::DELETE] {
        let resp = app.request(method.clone(), "/demo").send().await;
        resp.assert_error(405, "method_not_allowed");
        assert!(!resp.body.contains("<html"), "{method}");
    }
    assert_eq!(status_of(&app, "/demo/other.js").await, 404);
}

/// The `/auth/…` paths the script names, with `${…}` for an interpolated segment.
fn called_paths(js: &str) -> Vec<String> {
    let mut paths = Vec::new();
    for quote in ['\'', '`'] {
        for (at, _) in js.match_indices(&format!("{quote}/auth/")) {
            let rest = &js[at + 1..];
            let end = rest.find([quote, '?']).unwrap_or(rest.len());
            paths.push(rest[..end].to_owned());
        }
    }
    paths.sort();
    paths.dedup();
    paths
}

fn matches_template(template: &str, path: &str) -> bool {
    let (t, p): (Vec<_>, Vec<_>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len()
        && t.iter()
            .zip(&p)
            .all(|(t, p)| t == p || (t.starts_with('{') && p.starts_with("${")))
}

#[tokio::test]
async fn the_script_calls_only_operations_the_spec_has() {
    let app = spawn_app().await;
    let js = app.get("/demo/app.js").await.body;
    let spec = app.get("/openapi.json").await.json();
    let paths: Vec<String> = spec["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .cloned()
        .collect();
    let called = called_paths(&js);
    for expected in [
        "/auth/login",
        "/auth/refresh",
        "/auth/logout",
        "/auth/me",
        "/auth/sessions",
    ] {
        assert!(
            called.iter().any(|c| c == expected),
            "{expected}: {called:?}"
        );
    }
    for path in &called {
        assert!(
            paths.iter().any(|t| matches_template(t, path)),
            "app.js calls {path}, which the spec lacks: {paths:?}"
        );
    }
    assert!(
        called.iter().any(|c| c.starts_with("/auth/sessions/${")),
        "{called:?}"
    );
}
