//! What the PostgreSQL and SQLite backends share, and nothing that chooses between them: pool
//! settings, the mapping of driver errors onto port errors, codecs between domain values and
//! columns, and the one body of both stores (`sql_stores!`). A leaf: it imports no backend.

use std::fmt::Display;
use std::time::Duration;

use uuid::Uuid;

use crate::domain::{
    Email, PasswordHash, PresentedToken, RefreshTokenHash, Session, SessionId, SessionInfo,
    Timestamp, User, UserId, KEPT_CONSUMED_TOKENS,
};
use crate::ports::StoreError;

/// How each process pools its connections.
#[derive(Debug, Clone, Copy)]
pub struct PoolSettings {
    pub max_connections: u32,
    /// How long a request waits for a connection before its store answers `Unavailable`
    /// (the service then answers 503): short, so a dead database never hangs a client.
    pub acquire_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(3),
        }
    }
}

/// The statements of both stores, in one dialect. Every backend binds the same parameters in
/// the same order (named in each comment), so one body runs them all.
pub(crate) struct Queries {
    /// `email` → `UserRow`.
    pub find_user_by_email: &'static str,
    /// `id` → `UserRow`.
    pub find_user_by_id: &'static str,
    /// `id, email, password_hash, created_at, disabled, email_verified`.
    pub insert_user: &'static str,
    /// `id`: sets `email_verified` (affects one row or none).
    pub mark_email_verified: &'static str,
    /// `email, disabled` → `UserRow`.
    pub set_disabled: &'static str,
    /// `id, current hash, new hash`.
    pub replace_password_hash: &'static str,
    /// `id, current hash, new hash, kept session_id, now`: only for an enabled account whose
    /// kept session is live.
    pub change_password_keeping: &'static str,
    /// `id, current hash, new hash`: only for an enabled account.
    pub change_password: &'static str,
    /// → `UserRow`, oldest first.
    pub list_users: &'static str,
    /// `id, user_id, created_at, expires_at, idle_expires_at, user_agent, client_addr`, the
    /// creation being the first use: inserts nothing unless the user exists and is enabled.
    pub insert_session: &'static str,
    /// `user_id, now, others, new session_id`: revokes the user's least recently used live
    /// sessions but the new one beyond `others` of them.
    pub cap_sessions: &'static str,
    /// `hash, session_id, issued_at`.
    pub insert_first_token: &'static str,
    /// `hash` → `PresentedRow`, locking the session row where the database locks rows.
    pub read_presented: &'static str,
    /// `hash` → a row when a token with this hash is stored; no lock.
    pub token_known: &'static str,
    /// `hash, now`: the one-shot consumption (affects one row or none).
    pub consume_token: &'static str,
    /// `successor, session_id, presented, now, generation`.
    pub insert_successor: &'static str,
    /// `session_id, generation`: forgets the session's tokens at or below `generation`.
    pub forget_tokens: &'static str,
    /// `session_id, now, idle_expires_at`.
    pub touch_session: &'static str,
    /// `session_id, now`.
    pub revoke_session: &'static str,
    /// `hash`, revoked at the database's clock.
    pub revoke_by_token: &'static str,
    /// `hash, now` → `OwnerRow` of a live session's token (not revoked, neither end reached).
    pub token_owner: &'static str,
    /// `user_id, kept session_id`, revoked at the database's clock.
    pub revoke_other_sessions: &'static str,
    /// `session_id, user_id, now`: only a live session of that user.
    pub revoke_owned_session: &'static str,
    /// `user_id, now, limit` → `InfoRow`, most recently used first.
    pub list_sessions: &'static str,
    /// `now` → the number of live sessions.
    pub count_live_sessions: &'static str,
    /// `user_id`, revoked at the database's clock.
    pub revoke_user_sessions: &'static str,
    /// `session_id, now` → `UserRow` of a live session's owner.
    pub live_session_user: &'static str,
    /// `now, limit`.
    pub purge: &'static str,
    /// `idle ttl secs`.
    pub tighten_idle_ends: &'static str,
}

/// Maps a driver error: lost or unreachable connections are `Unavailable` (retryable,
/// answered with 503), everything else `Unknown`. `unavailable_code` says which database
/// error codes of this driver mean "cannot be reached right now".
pub(crate) fn store_error(e: sqlx::Error, unavailable_code: fn(&str) -> bool) -> StoreError {
    let unavailable = match &e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|c| unavailable_code(&c)),
        _ => false,
    };
    if unavailable {
        StoreError::Unavailable(e.into())
    } else {
        StoreError::Unknown(e.into())
    }
}

/// Whether `e` is a unique violation of the email index (named `users_email_key` in both
/// schemas; SQLite reports the column instead of the index).
pub(crate) fn is_email_taken(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            db.constraint() == Some("users_email_key") || db.message().contains("users.email")
        }
        _ => false,
    }
}

/// Timestamps are `u64` seconds in the domain and `i64` in both databases.
pub(crate) fn to_db(t: Timestamp) -> i64 {
    i64::try_from(t.unix()).unwrap_or(i64::MAX)
}

pub(crate) fn from_db(secs: i64) -> Timestamp {
    Timestamp::from_unix(u64::try_from(secs).unwrap_or(0))
}

/// Limits are `usize` in the port and `i64` in SQL.
pub(crate) fn limit_to_db(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

pub(crate) fn hash_bytes(hash: &RefreshTokenHash) -> &[u8] {
    hash.as_bytes()
}

/// A stored value that does not parse: the database was changed behind the service's back.
pub(crate) fn corrupt(what: &str) -> StoreError {
    StoreError::Unknown(anyhow::anyhow!("stored {what} does not parse"))
}

/// How a backend stores a uuid (`I`) and reads it back.
pub(crate) type UuidOf<I> = fn(I, &str) -> Result<Uuid, StoreError>;

/// `id, email, password_hash, created_at, disabled, email_verified`, times as Unix seconds.
pub(crate) type UserRow<I> = (I, String, String, i64, bool, bool);

/// `id, user id, created_at, expires_at, idle_expires_at` of a session.
pub(crate) type SessionRow<I> = (I, I, i64, i64, Option<i64>);

/// `session id, user id, created_at, expires_at, idle_expires_at, revoked, consumed_at,
/// the hash of its successor if that is current, user active, generation` of a presented
/// token.
pub(crate) type PresentedRow<I> = (
    I,
    I,
    i64,
    i64,
    Option<i64>,
    bool,
    Option<i64>,
    Option<Vec<u8>>,
    bool,
    i64,
);

/// `session id, user id, consumed_at, successor is current` of a live session's token.
pub(crate) type OwnerRow<I> = (I, I, Option<i64>, bool);

/// `SessionRow`, then `last_used_at, user_agent, client_addr`.
pub(crate) type InfoRow<I> = (
    I,
    I,
    i64,
    i64,
    Option<i64>,
    i64,
    Option<String>,
    Option<String>,
);

/// The account a row holds, or `None` (with a warning naming the row's id, never its
/// contents) when it does not parse: a row written by hand or by an older version must not
/// fail every listing, nor answer 500 where "no such account" is the truth for the service.
pub(crate) fn user_of<I: Display>(row: UserRow<I>, uuid: UuidOf<I>) -> Option<User> {
    let (id, email, hash, created_at, disabled, email_verified) = row;
    let shown = id.to_string();
    let parsed = uuid(id, "user id").ok().and_then(|id| {
        Some(User {
            id: UserId::from_uuid(id),
            email: Email::parse(&email).ok()?,
            password_hash: PasswordHash::new(hash),
            disabled,
            email_verified,
            created_at: from_db(created_at),
        })
    });
    if parsed.is_none() {
        tracing::warn!(
            event = "stored_user_unreadable",
            user = %shown,
            "a stored account does not parse; treated as absent"
        );
    }
    parsed
}

/// `KEPT_CONSUMED_TOKENS` as SQL binds it.
pub(crate) fn kept_consumed() -> i64 {
    i64::try_from(KEPT_CONSUMED_TOKENS).unwrap_or(i64::MAX)
}

/// The generation at and below which a rotation consuming a token of `generation` forgets
/// the session's tokens: all but the `KEPT_CONSUMED_TOKENS` most recent consumed ones.
pub(crate) fn forgotten_below(generation: i64) -> i64 {
    generation.saturating_sub(kept_consumed())
}

pub(crate) fn session_of<I>(
    (id, user, created, expires, idle): SessionRow<I>,
    uuid: UuidOf<I>,
) -> Result<Session, StoreError> {
    Ok(Session {
        id: SessionId::from_uuid(uuid(id, "session id")?),
        user_id: UserId::from_uuid(uuid(user, "user id")?),
        created_at: from_db(created),
        expires_at: from_db(expires),
        idle_expires_at: idle.map(from_db),
    })
}

/// The idle end a store keeps: never after the absolute end.
pub(crate) fn idle_end(idle: Option<Timestamp>, expires_at: Timestamp) -> Option<i64> {
    idle.map(|t| to_db(t.min(expires_at)))
}

/// The session a presented token belongs to, what the rotation rule needs to know, the
/// token's generation, and its current successor when that is one of `derived` (the
/// successors this request derived).
pub(crate) fn presented_of<I>(
    row: PresentedRow<I>,
    uuid: UuidOf<I>,
    derived: [Option<RefreshTokenHash>; 2],
) -> Result<(Session, PresentedToken, i64, Option<RefreshTokenHash>), StoreError> {
    let (id, user, created, expires, idle, revoked, consumed_at, current_child, active, generation) =
        row;
    let session = session_of((id, user, created, expires, idle), uuid)?;
    let current_child = current_child.and_then(|child| {
        derived
            .into_iter()
            .flatten()
            .find(|hash| hash.as_bytes().as_slice() == child.as_slice())
    });
    let token = PresentedToken {
        session_expires_at: session.expires_at,
        session_idle_expires_at: session.idle_expires_at,
        session_revoked: revoked,
        consumed_at: consumed_at.map(from_db),
        successor_is_current: current_child.is_some(),
        user_active: active,
    };
    Ok((session, token, generation, current_child))
}

pub(crate) fn info_of<I>(row: InfoRow<I>, uuid: UuidOf<I>) -> Result<SessionInfo, StoreError> {
    let (id, user, created, expires, idle, last_used, user_agent, client) = row;
    Ok(SessionInfo {
        session: session_of((id, user, created, expires, idle), uuid)?,
        last_used_at: from_db(last_used),
        user_agent,
        client_address: client,
    })
}

/// Stamps the `UserRepo` and `RefreshStore` of one sqlx driver from one body. A macro rather
/// than a store generic over `sqlx::Database`: sqlx's executor, encode and decode bounds
/// would have to be spelled out on every method for both drivers, burying the logic; the
/// macro keeps each expansion concrete (exactly the code a hand-written backend would be).
///
/// The invoking module supplies its dialect by name: `SQL: Queries`, `type Id` (how a uuid
/// is bound and read), `fn id(Uuid) -> Id`, `fn uuid(Id, &str) -> Result<Uuid, StoreError>`,
/// `fn store(sqlx::Error) -> StoreError`, and `async fn begin_write(&Pool)`, which opens a
/// transaction that serializes rotations of one token with the locks the dialect takes.
/// `fast_rotate` names an optional one-statement rotation tried first, with its state (built
/// by `<$state>::new(pool)`, kept by the store); when it changes nothing, the transaction
/// decides.
macro_rules! sql_stores {
    (
        db: $db:ty,
        users: $users:ident,
        sessions: $sessions:ident
        $(, fast_rotate: $fast:path, state: $state:ty)? $(,)?
    ) => {
        /// Accounts in the `users` table.
        #[derive(Debug, Clone)]
        pub struct $users {
            pool: sqlx::Pool<$db>,
        }

        impl $users {
            pub fn new(pool: sqlx::Pool<$db>) -> Self {
                Self { pool }
            }
        }

        #[async_trait::async_trait]
        impl $crate::ports::UserRepo for $users {
            async fn find_by_email(
                &self,
                email: &$crate::domain::Email,
            ) -> Result<Option<$crate::domain::User>, $crate::ports::StoreError> {
                sqlx::query_as::<_, common::UserRow<Id>>(SQL.find_user_by_email)
                    .bind(email.as_str())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(store)
                    .map(|row| row.and_then(|row| common::user_of(row, uuid)))
            }

            async fn find_by_id(
                &self,
                user: $crate::domain::UserId,
            ) -> Result<Option<$crate::domain::User>, $crate::ports::StoreError> {
                sqlx::query_as::<_, common::UserRow<Id>>(SQL.find_user_by_id)
                    .bind(id(*user.as_uuid()))
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(store)
                    .map(|row| row.and_then(|row| common::user_of(row, uuid)))
            }

            async fn create(
                &self,
                user: $crate::domain::User,
            ) -> Result<(), $crate::ports::CreateUserError> {
                sqlx::query(SQL.insert_user)
                    .bind(id(*user.id.as_uuid()))
                    .bind(user.email.as_str())
                    .bind(user.password_hash.as_str())
                    .bind(common::to_db(user.created_at))
                    .bind(user.disabled)
                    .bind(user.email_verified)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| {
                        if common::is_email_taken(&e) {
                            $crate::ports::CreateUserError::EmailTaken
                        } else {
                            $crate::ports::CreateUserError::Store(store(e))
                        }
                    })?;
                Ok(())
            }

            async fn set_disabled(
                &self,
                email: &$crate::domain::Email,
                disabled: bool,
            ) -> Result<Option<$crate::domain::User>, $crate::ports::StoreError> {
                sqlx::query_as::<_, common::UserRow<Id>>(SQL.set_disabled)
                    .bind(email.as_str())
                    .bind(disabled)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(store)
                    .map(|row| row.and_then(|row| common::user_of(row, uuid)))
            }

            async fn replace_password_hash(
                &self,
                user: $crate::domain::UserId,
                current: &$crate::domain::PasswordHash,
                new: &$crate::domain::PasswordHash,
            ) -> Result<bool, $crate::ports::StoreError> {
                Ok(sqlx::query(SQL.replace_password_hash)
                    .bind(id(*user.as_uuid()))
                    .bind(current.as_str())
                    .bind(new.as_str())
                    .execute(&self.pool)
                    .await
                    .map_err(store)?
                    .rows_affected()
                    == 1)
            }

            async fn mark_email_verified(
                &self,
                user: $crate::domain::UserId,
            ) -> Result<bool, $crate::ports::StoreError> {
                Ok(sqlx::query(SQL.mark_email_verified)
                    .bind(id(*user.as_uuid()))
                    .execute(&self.pool)
                    .await
                    .map_err(store)?
                    .rows_affected()
                    == 1)
            }

            async fn list(&self) -> Result<Vec<$crate::domain::User>, $crate::ports::StoreError> {
                sqlx::query_as::<_, common::UserRow<Id>>(SQL.list_users)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(store)
                    .map(|rows| {
                        rows.into_iter()
                            .filter_map(|row| common::user_of(row, uuid))
                            .collect()
                    })
            }

            async fn ping(&self) -> Result<(), $crate::ports::StoreError> {
                ping(&self.pool).await
            }
        }

        /// Sessions in `sessions`, token hashes in `refresh_tokens`. Revoked sessions keep
        /// their row (with `revoked_at`) until the purge deletes it and, by cascade, its
        /// tokens. `revoked_at` is the rotation's `now` when a rotation revokes, else the
        /// database's clock (those port methods take no time); only whether it is set matters.
        #[derive(Debug, Clone)]
        pub struct $sessions {
            pool: sqlx::Pool<$db>,
            $(fast: $state,)?
        }

        impl $sessions {
            pub fn new(pool: sqlx::Pool<$db>) -> Self {
                Self {
                    $(fast: <$state>::new(pool.clone()),)?
                    pool,
                }
            }
        }

        async fn ping(pool: &sqlx::Pool<$db>) -> Result<(), $crate::ports::StoreError> {
            sqlx::query("SELECT 1")
                .execute(pool)
                .await
                .map_err(store)?;
            Ok(())
        }

        async fn revoke_session(
            tx: &mut <$db as sqlx::Database>::Connection,
            session: $crate::domain::SessionId,
            now: $crate::domain::Timestamp,
        ) -> Result<(), $crate::ports::StoreError> {
            sqlx::query(SQL.revoke_session)
                .bind(id(*session.as_uuid()))
                .bind(common::to_db(now))
                .execute(tx)
                .await
                .map_err(store)?;
            Ok(())
        }

        #[async_trait::async_trait]
        impl $crate::ports::RefreshStore for $sessions {
            async fn create_session(
                &self,
                session: &$crate::domain::Session,
                first: $crate::domain::RefreshTokenHash,
                origin: &$crate::domain::SessionOrigin,
                max_per_user: usize,
            ) -> Result<bool, $crate::ports::StoreError> {
                let mut tx = begin_write(&self.pool).await.map_err(store)?;
                let inserted = sqlx::query(SQL.insert_session)
                    .bind(id(*session.id.as_uuid()))
                    .bind(id(*session.user_id.as_uuid()))
                    .bind(common::to_db(session.created_at))
                    .bind(common::to_db(session.expires_at))
                    .bind(common::idle_end(session.idle_expires_at, session.expires_at))
                    .bind(origin.user_agent.as_ref().map(|ua| ua.as_str()))
                    .bind(origin.client.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(store)?
                    .rows_affected();
                if inserted != 1 {
                    // The user is disabled or gone: nothing was written.
                    return Ok(false);
                }
                sqlx::query(SQL.insert_first_token)
                    .bind(common::hash_bytes(&first))
                    .bind(id(*session.id.as_uuid()))
                    .bind(common::to_db(session.created_at))
                    .execute(&mut *tx)
                    .await
                    .map_err(store)?;
                sqlx::query(SQL.cap_sessions)
                    .bind(id(*session.user_id.as_uuid()))
                    .bind(common::to_db(session.created_at))
                    // The new session always stays: the others may keep `max - 1` places.
                    .bind(common::limit_to_db(max_per_user.max(1) - 1))
                    .bind(id(*session.id.as_uuid()))
                    .execute(&mut *tx)
                    .await
                    .map_err(store)?;
                tx.commit().await.map_err(store)?;
                Ok(true)
            }

            async fn rotate(
                &self,
                rotation: $crate::ports::Rotation,
            ) -> Result<$crate::ports::Rotated, $crate::ports::RotateError> {
                use $crate::domain::{RotationRefusal, RotationVerdict};
                use $crate::ports::{RotateError, Rotated};
                let $crate::ports::Rotation { presented, successor, now, .. } = rotation;
                $(
                    if let Some(session) = $fast(&self.fast, &rotation).await? {
                        return Ok(Rotated { session, replayed: false, successor });
                    }
                    // Nothing changed: the transaction below decides. It also rotates if the
                    // token turns out to be current after all.
                )?
                // A token nobody holds is refused without a write transaction: a flood of
                // made-up cookies must not queue behind SQLite's one writer. (A stored token
                // is never unstored but by revocation or the purge, which refuse it anyway.)
                let known = sqlx::query(SQL.token_known)
                    .bind(common::hash_bytes(&presented))
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(store)?;
                if known.is_none() {
                    return Err(RotationRefusal::NotFound.into());
                }
                // Takes the write lock (or the family's row lock) before reading: concurrent
                // rotations of one token queue here.
                let mut tx = begin_write(&self.pool).await.map_err(store)?;
                // Read at most twice. A PostgreSQL waiter that queued on the session's lock
                // behind the winner may see the token as it was before (its statement's
                // snapshot); the one-shot consumption below catches that, and a second read,
                // under the lock, sees the winner's rotation: the replay it is.
                let mut second_read = false;
                loop {
                    let derived = [Some(successor), rotation.previous_successor];
                    let family =
                        sqlx::query_as::<_, common::PresentedRow<Id>>(SQL.read_presented)
                            .bind(common::hash_bytes(&presented))
                            .fetch_optional(&mut *tx)
                            .await
                            .map_err(store)?
                            .map(|row| common::presented_of(row, uuid, derived))
                            .transpose()?;
                    let read = family.as_ref().map(|(_, token, _, _)| *token);
                    let verdict =
                        $crate::domain::judge_rotation(read, now, rotation.reuse_grace_secs);
                    let Some((session, _, generation, current_child)) = family else {
                        return Err(RotationRefusal::NotFound.into());
                    };
                    match verdict {
                        RotationVerdict::Consume => {}
                        RotationVerdict::Replay => {
                            // Read only: the transaction ends with nothing to commit.
                            return Ok(Rotated {
                                session,
                                replayed: true,
                                successor: current_child.unwrap_or(successor),
                            });
                        }
                        RotationVerdict::Refuse(why) => return Err(why.into()),
                        RotationVerdict::RevokeAndRefuse(why) => {
                            revoke_session(&mut tx, session.id, now).await?;
                            tx.commit().await.map_err(store)?;
                            return Err(RotateError::refused_in(why, session));
                        }
                        RotationVerdict::RevokeUserAndRefuse(why) => {
                            sqlx::query(SQL.revoke_user_sessions)
                                .bind(id(*session.user_id.as_uuid()))
                                .execute(&mut *tx)
                                .await
                                .map_err(store)?;
                            tx.commit().await.map_err(store)?;
                            return Err(RotateError::refused_in(why, session));
                        }
                    }
                    // The one-shot consumption: must affect exactly one row.
                    let consumed = sqlx::query(SQL.consume_token)
                        .bind(common::hash_bytes(&presented))
                        .bind(common::to_db(now))
                        .execute(&mut *tx)
                        .await
                        .map_err(store)?
                        .rows_affected();
                    if consumed != 1 {
                        if !second_read {
                            second_read = true;
                            continue;
                        }
                        // Consumed under our lock yet read as current: the rule cannot
                        // tell what happened, so it fails safe.
                        revoke_session(&mut tx, session.id, now).await?;
                        tx.commit().await.map_err(store)?;
                        return Err(RotateError::refused_in(RotationRefusal::Reused, session));
                    }
                    sqlx::query(SQL.insert_successor)
                        .bind(common::hash_bytes(&successor))
                        .bind(id(*session.id.as_uuid()))
                        .bind(common::hash_bytes(&presented))
                        .bind(common::to_db(now))
                        .bind(generation.saturating_add(1))
                        .execute(&mut *tx)
                        .await
                        .map_err(store)?;
                    // Bounded history: what reuse detection no longer needs goes now.
                    sqlx::query(SQL.forget_tokens)
                        .bind(id(*session.id.as_uuid()))
                        .bind(common::forgotten_below(generation))
                        .execute(&mut *tx)
                        .await
                        .map_err(store)?;
                    let idle = common::idle_end(rotation.idle_expires_at, session.expires_at);
                    sqlx::query(SQL.touch_session)
                        .bind(id(*session.id.as_uuid()))
                        .bind(common::to_db(now))
                        .bind(idle)
                        .execute(&mut *tx)
                        .await
                        .map_err(store)?;
                    tx.commit().await.map_err(store)?;
                    let session = $crate::domain::Session {
                        idle_expires_at: idle.map(common::from_db),
                        ..session
                    };
                    return Ok(Rotated {
                        session,
                        replayed: false,
                        successor,
                    });
                }
            }

            async fn revoke_by_token(
                &self,
                presented: $crate::domain::RefreshTokenHash,
                scope: $crate::domain::LogoutScope,
                now: $crate::domain::Timestamp,
                reuse_grace_secs: u64,
            ) -> Result<$crate::ports::LoggedOut, $crate::ports::StoreError> {
                use $crate::domain::LogoutScope;
                use $crate::ports::LoggedOut;
                if scope == LogoutScope::Local {
                    let ended = sqlx::query_as::<_, (Id, Id)>(SQL.revoke_by_token)
                        .bind(common::hash_bytes(&presented))
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(store)?;
                    return Ok(match ended {
                        Some((session, user)) => LoggedOut {
                            revoked: 1,
                            session: Some((
                                $crate::domain::SessionId::from_uuid(uuid(session, "session id")?),
                                $crate::domain::UserId::from_uuid(uuid(user, "user id")?),
                            )),
                        },
                        None => LoggedOut::default(),
                    });
                }
                let Some((session, user, consumed_at, successor_current)) =
                    sqlx::query_as::<_, common::OwnerRow<Id>>(SQL.token_owner)
                        .bind(common::hash_bytes(&presented))
                        .bind(common::to_db(now))
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(store)?
                else {
                    return Ok(LoggedOut::default());
                };
                let (session, user) = (uuid(session, "session id")?, uuid(user, "user id")?);
                let owner = (
                    $crate::domain::SessionId::from_uuid(session),
                    $crate::domain::UserId::from_uuid(user),
                );
                let fresh = $crate::domain::speaks_for_session(
                    consumed_at.map(common::from_db),
                    successor_current,
                    now,
                    reuse_grace_secs,
                );
                let query = match scope {
                    LogoutScope::Others if fresh => sqlx::query(SQL.revoke_other_sessions)
                        .bind(id(user))
                        .bind(id(session)),
                    LogoutScope::Global if fresh => {
                        sqlx::query(SQL.revoke_user_sessions).bind(id(user))
                    }
                    // A stale token ends its own session only.
                    _ => sqlx::query(SQL.revoke_session)
                        .bind(id(session))
                        .bind(common::to_db(now)),
                };
                Ok(LoggedOut {
                    revoked: query.execute(&self.pool).await.map_err(store)?.rows_affected(),
                    session: Some(owner),
                })
            }

            async fn revoke_session(
                &self,
                user: $crate::domain::UserId,
                session: $crate::domain::SessionId,
                now: $crate::domain::Timestamp,
            ) -> Result<bool, $crate::ports::StoreError> {
                Ok(sqlx::query(SQL.revoke_owned_session)
                    .bind(id(*session.as_uuid()))
                    .bind(id(*user.as_uuid()))
                    .bind(common::to_db(now))
                    .execute(&self.pool)
                    .await
                    .map_err(store)?
                    .rows_affected()
                    == 1)
            }

            async fn list_sessions(
                &self,
                user: $crate::domain::UserId,
                now: $crate::domain::Timestamp,
                limit: usize,
            ) -> Result<Vec<$crate::domain::SessionInfo>, $crate::ports::StoreError> {
                sqlx::query_as::<_, common::InfoRow<Id>>(SQL.list_sessions)
                    .bind(id(*user.as_uuid()))
                    .bind(common::to_db(now))
                    .bind(common::limit_to_db(limit))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(store)?
                    .into_iter()
                    .map(|row| common::info_of(row, uuid))
                    .collect()
            }

            async fn revoke_user_sessions(
                &self,
                user: $crate::domain::UserId,
            ) -> Result<u64, $crate::ports::StoreError> {
                Ok(sqlx::query(SQL.revoke_user_sessions)
                    .bind(id(*user.as_uuid()))
                    .execute(&self.pool)
                    .await
                    .map_err(store)?
                    .rows_affected())
            }

            async fn change_password(
                &self,
                user: $crate::domain::UserId,
                current: &$crate::domain::PasswordHash,
                new: &$crate::domain::PasswordHash,
                keep: Option<$crate::domain::SessionId>,
                now: $crate::domain::Timestamp,
            ) -> Result<Option<u64>, $crate::ports::StoreError> {
                let user = *user.as_uuid();
                // One transaction: the new hash and the other sessions' end commit together.
                // The update locks the account's row, so a second change from the same
                // `current` waits and then finds the hash replaced.
                let mut tx = begin_write(&self.pool).await.map_err(store)?;
                let changed = match keep {
                    Some(session) => sqlx::query(SQL.change_password_keeping)
                        .bind(id(user))
                        .bind(current.as_str())
                        .bind(new.as_str())
                        .bind(id(*session.as_uuid()))
                        .bind(common::to_db(now)),
                    None => sqlx::query(SQL.change_password)
                        .bind(id(user))
                        .bind(current.as_str())
                        .bind(new.as_str()),
                }
                .execute(&mut *tx)
                .await
                .map_err(store)?
                .rows_affected();
                if changed != 1 {
                    return Ok(None);
                }
                let revoked = match keep {
                    Some(session) => sqlx::query(SQL.revoke_other_sessions)
                        .bind(id(user))
                        .bind(id(*session.as_uuid())),
                    None => sqlx::query(SQL.revoke_user_sessions).bind(id(user)),
                }
                .execute(&mut *tx)
                .await
                .map_err(store)?
                .rows_affected();
                tx.commit().await.map_err(store)?;
                Ok(Some(revoked))
            }

            async fn live_session_user(
                &self,
                session: $crate::domain::SessionId,
                now: $crate::domain::Timestamp,
            ) -> Result<Option<$crate::domain::User>, $crate::ports::StoreError> {
                sqlx::query_as::<_, common::UserRow<Id>>(SQL.live_session_user)
                    .bind(id(*session.as_uuid()))
                    .bind(common::to_db(now))
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(store)
                    .map(|row| row.and_then(|row| common::user_of(row, uuid)))
            }

            async fn tighten_idle_ends(
                &self,
                idle_ttl_secs: u64,
            ) -> Result<u64, $crate::ports::StoreError> {
                Ok(sqlx::query(SQL.tighten_idle_ends)
                    .bind(i64::try_from(idle_ttl_secs).unwrap_or(i64::MAX))
                    .execute(&self.pool)
                    .await
                    .map_err(store)?
                    .rows_affected())
            }

            async fn count_live_sessions(
                &self,
                now: $crate::domain::Timestamp,
            ) -> Result<u64, $crate::ports::StoreError> {
                let (n,): (i64,) = sqlx::query_as(SQL.count_live_sessions)
                    .bind(common::to_db(now))
                    .fetch_one(&self.pool)
                    .await
                    .map_err(store)?;
                Ok(u64::try_from(n).unwrap_or(0))
            }

            async fn purge(
                &self,
                now: $crate::domain::Timestamp,
                limit: usize,
            ) -> Result<u64, $crate::ports::StoreError> {
                Ok(sqlx::query(SQL.purge)
                    .bind(common::to_db(now))
                    .bind(common::limit_to_db(limit))
                    .execute(&self.pool)
                    .await
                    .map_err(store)?
                    .rows_affected())
            }

            async fn ping(&self) -> Result<(), $crate::ports::StoreError> {
                ping(&self.pool).await
            }
        }
    };
}

pub(crate) use sql_stores;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_errors_are_unavailable_others_unknown() {
        let never = |_: &str| false;
        for e in [
            sqlx::Error::PoolTimedOut,
            sqlx::Error::PoolClosed,
            sqlx::Error::WorkerCrashed,
            sqlx::Error::Io(std::io::ErrorKind::ConnectionRefused.into()),
            sqlx::Error::Protocol("bad frame".into()),
        ] {
            assert!(matches!(store_error(e, never), StoreError::Unavailable(_)));
        }
        for e in [
            sqlx::Error::RowNotFound,
            sqlx::Error::ColumnNotFound("x".into()),
        ] {
            assert!(matches!(store_error(e, never), StoreError::Unknown(_)));
        }
    }

    #[test]
    fn timestamps_and_limits_saturate() {
        assert_eq!(to_db(Timestamp::from_unix(u64::MAX)), i64::MAX);
        assert_eq!(from_db(-5), Timestamp::from_unix(0));
        assert_eq!(from_db(to_db(Timestamp::from_unix(42))).unix(), 42);
        assert_eq!(limit_to_db(usize::MAX), i64::MAX);
    }
}
