//! The HTTP side of the metrics: requests counted and timed per operation, and the `/metrics`
//! endpoint served on its own listener (never on the public one).
//!
//! The operation is the spec's `operationId` for the method and path template a request
//! matches, or a fixed name (`openapi`, `docs`, `demo`, `preflight`); every other request is
//! `unmatched`, so a scan of random paths adds no series.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Instant;

use metrics::{Counter, Histogram, Label};
use poem::endpoint::BoxEndpoint;
use poem::http::{header, Method, StatusCode};
use poem::{handler, Endpoint, EndpointExt, IntoResponse, Response, Route};

use super::errors::matches_template;
use super::openapi_service;
use crate::adapters::outbound::metrics::Metrics;

/// Distinct status codes kept per operation; any further one is counted as `other` (the app
/// answers a handful per operation, so this only bounds the unforeseen).
const MAX_STATUSES: usize = 24;

const FIXED: [&str; 5] = ["openapi", "docs", "demo", "preflight", "unmatched"];

/// One operation's series.
struct Operation {
    name: String,
    duration: Histogram,
    /// Counters by status, registered on first use.
    statuses: RwLock<Vec<(u16, Counter)>>,
    other_status: Counter,
}

/// Which operation a request is, and its series.
pub struct HttpMetrics {
    metrics: Arc<Metrics>,
    operations: Vec<Operation>,
    /// Spec paths without parameters: method to operation index.
    exact: HashMap<String, Vec<(Method, usize)>>,
    /// Spec paths with a `{param}` segment.
    templates: Vec<(String, Vec<(Method, usize)>)>,
}

impl HttpMetrics {
    /// The operations of the service's spec (for any public URL: paths do not depend on it).
    pub fn new(metrics: Arc<Metrics>) -> Self {
        let spec: serde_json::Value =
            serde_json::from_str(&openapi_service(None).spec()).unwrap_or_default();
        let mut this = Self {
            metrics,
            operations: Vec::new(),
            exact: HashMap::new(),
            templates: Vec::new(),
        };
        for name in FIXED {
            this.add(name.to_owned());
        }
        let paths = spec["paths"].as_object().cloned().unwrap_or_default();
        for (path, ops) in paths {
            let mut methods = Vec::new();
            for (method, op) in ops.as_object().into_iter().flatten() {
                let (Ok(method), Some(id)) = (
                    Method::from_bytes(method.to_ascii_uppercase().as_bytes()),
                    op["operationId"].as_str(),
                ) else {
                    continue;
                };
                methods.push((method, this.add(id.to_owned())));
            }
            if path.contains('{') {
                this.templates.push((path, methods));
            } else {
                this.exact.insert(path, methods);
            }
        }
        this
    }

    fn add(&mut self, name: String) -> usize {
        let label = || vec![Label::new("operation", name.clone())];
        let mut other = label();
        other.push(Label::from_static_parts("status", "other"));
        self.operations.push(Operation {
            duration: self
                .metrics
                .histogram("http_request_duration_seconds", label()),
            other_status: self.metrics.counter("http_requests_total", other),
            statuses: RwLock::new(Vec::new()),
            name,
        });
        self.operations.len() - 1
    }

    fn fixed(name: &str) -> usize {
        FIXED
            .iter()
            .position(|f| *f == name)
            .unwrap_or(FIXED.len() - 1)
    }

    /// The operation index of a request.
    fn operation(&self, method: &Method, path: &str) -> usize {
        let of = |methods: &Vec<(Method, usize)>| {
            methods.iter().find(|(m, _)| m == method).map(|(_, i)| *i)
        };
        if let Some(i) = self.exact.get(path).and_then(of) {
            return i;
        }
        if let Some(i) = self
            .templates
            .iter()
            .find(|(t, _)| matches_template(t, path))
            .and_then(|(_, methods)| of(methods))
        {
            return i;
        }
        if method == Method::OPTIONS {
            return Self::fixed("preflight");
        }
        match path {
            "/openapi.json" | "/openapi.yaml" => Self::fixed("openapi"),
            p if p == "/docs" || p.starts_with("/docs/") => Self::fixed("docs"),
            p if p == "/demo" || p.starts_with("/demo/") => Self::fixed("demo"),
            _ => Self::fixed("unmatched"),
        }
    }

    fn observe(&self, operation: usize, status: StatusCode, started: Instant) {
        let op = &self.operations[operation];
        op.duration.record(started.elapsed().as_secs_f64());
        let code = status.as_u16();
        {
            let known = op.statuses.read().unwrap_or_else(PoisonError::into_inner);
            if let Some((_, c)) = known.iter().find(|(s, _)| *s == code) {
                c.increment(1);
                return;
            }
        }
        let mut known = op.statuses.write().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, c)) = known.iter().find(|(s, _)| *s == code) {
            c.increment(1);
        } else if known.len() < MAX_STATUSES {
            let counter = self.metrics.counter(
                "http_requests_total",
                vec![
                    Label::new("operation", op.name.clone()),
                    Label::new("status", code.to_string()),
                ],
            );
            counter.increment(1);
            known.push((code, counter));
        } else {
            op.other_status.increment(1);
        }
    }
}

/// `app` with every request counted and timed (until its response headers are ready).
pub fn instrument(
    app: BoxEndpoint<'static, Response>,
    http: Arc<HttpMetrics>,
) -> BoxEndpoint<'static, Response> {
    app.around(move |next, req| {
        let http = http.clone();
        async move {
            let started = Instant::now();
            let operation = http.operation(req.method(), req.uri().path());
            let resp = next.call(req).await?;
            http.observe(operation, resp.status(), started);
            Ok(resp)
        }
    })
    .boxed()
}

/// The metrics listener's app: `GET /metrics` in the Prometheus text format, 404 for anything
/// else.
pub fn metrics_app(metrics: Arc<Metrics>) -> BoxEndpoint<'static, Response> {
    Route::new()
        .at("/metrics", poem::get(scrape))
        .data(metrics)
        .map_to_response()
        .boxed()
}

#[handler]
fn scrape(metrics: poem::web::Data<&Arc<Metrics>>) -> Response {
    metrics
        .render()
        .with_content_type("text/plain; version=0.0.4; charset=utf-8")
        .with_header(header::CACHE_CONTROL, "no-store")
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_map_to_their_operation_or_one_fixed_name() {
        let http = HttpMetrics::new(Arc::new(Metrics::new()));
        let name = |m: Method, p: &str| http.operations[http.operation(&m, p)].name.clone();
        assert_eq!(name(Method::POST, "/auth/login"), "login");
        assert_eq!(name(Method::GET, "/auth/me"), "me");
        assert_eq!(name(Method::DELETE, "/auth/sessions/abc"), "endSession");
        assert_eq!(name(Method::GET, "/auth/login"), "unmatched");
        assert_eq!(name(Method::GET, "/wp-admin/x.php"), "unmatched");
        assert_eq!(name(Method::OPTIONS, "/auth/login"), "preflight");
        assert_eq!(name(Method::GET, "/openapi.json"), "openapi");
        assert_eq!(name(Method::GET, "/docs/index.css"), "docs");
    }
}
