//! `GET /revocations`: the sessions revoked within the last access-token lifetime, for
//! services that verify access tokens locally (JWKS) and still want logout, reuse detection
//! and disabling to cut access before `exp`. Public like the JWKS: an entry names only an
//! opaque session id (the `sid` claim) and times; it is of use only to someone already holding
//! a token of that session, whom it tells the token is dead.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::errors::ErrorBody;
use super::responses::{infra_failure, InfraFailure};
use super::{AppState, Tag};
use crate::domain::{FeedPosition, CURSOR_SCALE};
use crate::ports::Revocation;

/// Entries of the last this-many seconds are sent again after a cursor, so an entry that was
/// committed late (another instance, a slow transaction) with an earlier time is not missed;
/// entries are idempotent.
pub const CURSOR_OVERLAP_SECS: u64 = 10;
/// Entries in one answer at most; `more` says to ask again from the cursor.
pub const MAX_ENTRIES: usize = 10_000;

/// `/revocations`; stateless like `AuthApi`.
pub struct RevocationsApi;

/// A revoked session.
#[derive(Debug, Clone, Object)]
pub struct RevocationEntry {
    /// The session id: refuse every access token whose `sid` claim is this.
    pub sid: String,
    /// When it was revoked (Unix seconds, the feed's clock).
    pub revoked_at: u64,
    /// Until when to remember it: no token of the session is unexpired after this.
    pub until: u64,
    /// The stream's event `id` for this entry (not part of the JSON).
    #[oai(skip)]
    pub cursor: u64,
}

/// One page of the feed.
#[derive(Debug, Object)]
pub struct RevocationPage {
    /// Pass as `since` next time to get only what is new (with a short overlap). Opaque:
    /// pass it back as it is, do not compute with it.
    pub cursor: u64,
    /// Oldest first. A session may appear more than once.
    pub entries: Vec<RevocationEntry>,
    /// More entries wait after `cursor`: ask again at once.
    pub more: bool,
    /// How far back the feed reaches: an access token's lifetime plus leeway.
    pub window_secs: u64,
}

/// Where a page read from `since` ends: after its last entry, counting the entries of that
/// second read before (a full page of one second still moves the cursor on).
pub fn page_end(since: Option<FeedPosition>, entries: &[Revocation]) -> FeedPosition {
    let mut at = since.unwrap_or_default();
    for e in entries {
        at = at.after(e.revoked_at);
    }
    if at.skip >= CURSOR_SCALE {
        tracing::error!(
            second = at.second,
            "a million revocations or more in one second: the feed cursor moves past the rest"
        );
    }
    at
}

#[derive(ApiResponse)]
pub enum RevocationsResponse {
    /// The revocations since `since` (all of the window without it).
    #[oai(status = 200)]
    Ok(Json<RevocationPage>),
    /// `invalid_request`: `since` is not one non-negative integer.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// `misdirected_request`: the `Host` is not one of this service's names.
    #[oai(status = 421)]
    Misdirected(Json<ErrorBody>),
    /// `internal_error`.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
    /// `unavailable`: the store is down; verifiers keep what they have and retry.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

impl InfraFailure for RevocationsResponse {
    fn unavailable(body: Json<ErrorBody>) -> Self {
        Self::Unavailable(body)
    }

    fn internal(body: Json<ErrorBody>) -> Self {
        Self::Internal(body)
    }
}

#[OpenApi(tag = "Tag::Keys")]
impl RevocationsApi {
    /// The revocation feed
    ///
    /// Sessions revoked (logout, refresh-token reuse, disabling, ...) whose access tokens may
    /// still be unexpired: each entry stays only until the latest `exp` it could affect, so
    /// the feed stays small. Poll with `since` set to the last `cursor`.
    #[oai(path = "/revocations", method = "get", operation_id = "revocations")]
    async fn revocations(
        &self,
        Data(state): Data<&Arc<AppState>>,
        /// The `cursor` of the previous answer (at most 2^53 - 1).
        // Bounded in the spec so that nothing it allows is refused; a cursor (see
        // `FeedPosition`) stays below 2^53 - 1, which every JSON number reader holds exactly.
        #[oai(validator(minimum(value = "0"), maximum(value = "9007199254740991")))]
        since: Query<Option<u64>>,
    ) -> RevocationsResponse {
        let window = state.settings.revocation_window_secs;
        let since = since.0.map(FeedPosition::from_cursor);
        match state
            .revocations
            .revoked_since(since, window, MAX_ENTRIES)
            .await
        {
            Ok((entries, now)) => {
                let more = entries.len() >= MAX_ENTRIES;
                let cursor = if more {
                    page_end(since, &entries).cursor()
                } else {
                    now.saturating_sub(CURSOR_OVERLAP_SECS)
                };
                let entries = entries
                    .into_iter()
                    .map(|e| RevocationEntry {
                        sid: e.session.to_string(),
                        revoked_at: e.revoked_at,
                        until: e.revoked_at + window,
                        cursor: 0,
                    })
                    .collect();
                RevocationsResponse::Ok(Json(RevocationPage {
                    cursor,
                    entries,
                    more,
                    window_secs: window,
                }))
            }
            Err(e) => infra_failure("revocations", e),
        }
    }
}
