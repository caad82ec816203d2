//! The example browser client at `/demo` (see `demo/app.js`): three files embedded in the
//! binary, served with their own strict Content-Security-Policy. Not in the OpenAPI spec (like
//! `/docs`): it is a page, not part of the API. On in `dev`, off in `prod` unless
//! `DEMO_PAGE_ENABLED=true`.

use poem::http::{header, StatusCode};
use poem::{get, handler, Response, Route};

const INDEX_HTML: &str = include_str!("demo/index.html");
const APP_JS: &str = include_str!("demo/app.js");
const APP_CSS: &str = include_str!("demo/app.css");

/// Scripts, styles and fetches from this origin only, nothing inline, no framing, and no form
/// submission by the browser itself (the script sends the login with `fetch`; without it, the
/// form must not put the password in a URL). The page holds an access token in memory, so an
/// injected script is the one thing it cannot afford.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                       connect-src 'self'; img-src 'self'; form-action 'none'; \
                       frame-ancestors 'none'; base-uri 'none'";

fn asset(body: &'static str, content_type: &'static str) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CONTENT_SECURITY_POLICY, CSP)
        .header(header::X_FRAME_OPTIONS, "DENY")
        // Revalidate every time: the page and the API it calls come from one binary, so a
        // cached page must not outlive an upgrade.
        .header(header::CACHE_CONTROL, "no-cache")
        .body(body)
}

#[handler]
fn index() -> Response {
    asset(INDEX_HTML, "text/html; charset=utf-8")
}

#[handler]
fn script() -> Response {
    asset(APP_JS, "text/javascript; charset=utf-8")
}

#[handler]
fn style() -> Response {
    asset(APP_CSS, "text/css; charset=utf-8")
}

/// `/demo` (and `/demo/`), `/demo/app.js` and `/demo/app.css`, to be nested at the root.
pub fn routes(routes: Route) -> Route {
    routes
        .at("/demo", get(index))
        .at("/demo/", get(index))
        .at("/demo/app.js", get(script))
        .at("/demo/app.css", get(style))
}
