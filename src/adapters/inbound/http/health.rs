//! `/health/*`: liveness and readiness.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::OpenApi;

use crate::ports::KeyHealth;

use super::dto::HealthBody;
use super::responses::HealthResponse;
use super::{AppState, Tag};

/// `/health/*`; stateless like `AuthApi`.
pub struct HealthApi;

fn health(status: &str) -> Json<HealthBody> {
    Json(HealthBody {
        status: status.into(),
    })
}

#[OpenApi(prefix_path = "/health", tag = "Tag::Health")]
impl HealthApi {
    /// Liveness
    ///
    /// The process is up and serving.
    #[oai(path = "/live", method = "get", operation_id = "health_live")]
    async fn live(&self) -> HealthResponse {
        HealthResponse::Ok(health("ok"))
    }

    /// Readiness
    ///
    /// The user and session stores answer and a signing key is loaded; 503 otherwise.
    /// `degraded` (200): some stored signing keys did not open and were skipped (see logs).
    #[oai(path = "/ready", method = "get", operation_id = "health_ready")]
    async fn ready(&self, Data(state): Data<&Arc<AppState>>) -> HealthResponse {
        let pings = tokio::join!(state.sessions.ping(), state.users.ping());
        match pings.0.and(pings.1) {
            Ok(()) => match state.public_keys.key_health() {
                KeyHealth::Ok => HealthResponse::Ok(health("ok")),
                KeyHealth::Degraded => HealthResponse::Ok(health("degraded")),
                KeyHealth::Unavailable => {
                    tracing::warn!("readiness: no signing key the store still lists");
                    HealthResponse::Unavailable(health("unavailable"))
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "readiness probe failed");
                HealthResponse::Unavailable(health("unavailable"))
            }
        }
    }
}
