//! `/health/*`: liveness and readiness.

use std::sync::Arc;

use poem_openapi::payload::Json;
use poem_openapi::OpenApi;

use super::dto::HealthBody;
use super::responses::HealthResponse;
use super::{AppState, Tag};
use crate::domain::SessionId;

/// `/health/*`.
pub struct HealthApi {
    state: Arc<AppState>,
}

impl HealthApi {
    pub fn new(state: Arc<AppState>) -> Self {
        Self { state }
    }
}

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
    /// The session store answers; 503 otherwise.
    #[oai(path = "/ready", method = "get", operation_id = "health_ready")]
    async fn ready(&self) -> HealthResponse {
        let probe = SessionId::new_random();
        match self
            .state
            .sessions
            .is_active(probe, self.state.clock.now())
            .await
        {
            Ok(_) => HealthResponse::Ok(health("ok")),
            Err(e) => {
                tracing::warn!(error = %e, "readiness probe failed");
                HealthResponse::Unavailable(health("unavailable"))
            }
        }
    }
}
