//! In-memory `UserRepo` and `RefreshStore`: the zero-setup default. Everything is lost on
//! restart and nothing is shared between instances; use a database store for that. The
//! session store reads the accounts of its `InMemoryUserRepo` directly, as a database joins
//! its tables: a rotation checks the user under the same lock that makes it atomic.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use async_trait::async_trait;

use crate::domain::{
    judge_rotation, Email, PasswordHash, PresentedToken, RefreshTokenHash, RotationRefusal,
    RotationVerdict, Session, SessionId, Timestamp, User, UserId, KEPT_CONSUMED_TOKENS,
};
use crate::ports::{CreateUserError, RefreshStore, RotateError, StoreError, UserRepo};

/// Accounts in a map, with an index by normalized email. Clones share the accounts.
#[derive(Debug, Default, Clone)]
pub struct InMemoryUserRepo {
    inner: Arc<RwLock<Users>>,
}

#[derive(Debug, Default)]
struct Users {
    by_id: HashMap<UserId, User>,
    by_email: HashMap<String, UserId>,
}

impl InMemoryUserRepo {
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Users> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The account, if it exists and is enabled.
    fn active(&self, id: UserId) -> bool {
        self.read().by_id.get(&id).is_some_and(|u| !u.disabled)
    }
}

#[async_trait]
impl UserRepo for InMemoryUserRepo {
    async fn find_by_email(&self, email: &Email) -> Result<Option<User>, StoreError> {
        let users = self.read();
        Ok(users
            .by_email
            .get(email.as_str())
            .and_then(|id| users.by_id.get(id))
            .cloned())
    }

    async fn find_by_id(&self, id: UserId) -> Result<Option<User>, StoreError> {
        Ok(self.read().by_id.get(&id).cloned())
    }

    async fn create(&self, user: User) -> Result<(), CreateUserError> {
        let mut users = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        if users.by_email.contains_key(user.email.as_str()) {
            return Err(CreateUserError::EmailTaken);
        }
        users
            .by_email
            .insert(user.email.as_str().to_owned(), user.id);
        users.by_id.insert(user.id, user);
        Ok(())
    }

    async fn set_disabled(
        &self,
        email: &Email,
        disabled: bool,
    ) -> Result<Option<User>, StoreError> {
        let mut users = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        let Some(id) = users.by_email.get(email.as_str()).copied() else {
            return Ok(None);
        };
        Ok(users.by_id.get_mut(&id).map(|u| {
            u.disabled = disabled;
            u.clone()
        }))
    }

    async fn replace_password_hash(
        &self,
        id: UserId,
        current: &PasswordHash,
        new: &PasswordHash,
    ) -> Result<bool, StoreError> {
        let mut users = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        Ok(match users.by_id.get_mut(&id) {
            Some(u) if u.password_hash == *current => {
                u.password_hash = new.clone();
                true
            }
            _ => false,
        })
    }

    async fn list(&self) -> Result<Vec<User>, StoreError> {
        let users = self.read();
        let mut all: Vec<User> = users.by_id.values().cloned().collect();
        all.sort_by(|a, b| (a.created_at, a.email.as_str()).cmp(&(b.created_at, b.email.as_str())));
        Ok(all)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// A live session, kept compact: about 48 bytes with its key, plus its recent tokens.
#[derive(Debug, Clone)]
struct SessionRecord {
    user: UserId,
    created_at: u32,
    expires_at: u32,
    /// The consumed tokens still kept, oldest first: at most `KEPT_CONSUMED_TOKENS`.
    consumed: VecDeque<RefreshTokenHash>,
}

/// A token hash's owner. A consumed entry stays while it is among its session's
/// `KEPT_CONSUMED_TOKENS` most recent, so a replay of it is recognized as reuse.
#[derive(Debug, Clone, Copy)]
struct TokenRecord {
    session: SessionId,
    consumed: bool,
}

#[derive(Debug, Default)]
struct Families {
    sessions: HashMap<SessionId, SessionRecord>,
    tokens: HashMap<RefreshTokenHash, TokenRecord>,
}

/// Sessions and token hashes behind one mutex: every operation is a few map accesses, so the
/// lock is held for well under a microsecond and rotation is trivially atomic. The accounts
/// are those of the `InMemoryUserRepo` it was made with (read under that lock, after this
/// one: always in that order).
///
/// Revoking a session removes only the session; its token entries become orphans that fail
/// lookup at once and are dropped lazily on lookup or by `purge`.
#[derive(Debug)]
pub struct InMemoryRefreshStore {
    inner: Mutex<Families>,
    users: InMemoryUserRepo,
    /// The revocation feed: (session, Unix seconds by the process clock), oldest first.
    revoked: Mutex<VecDeque<(SessionId, u64)>>,
}

impl InMemoryRefreshStore {
    /// Sessions of the accounts in `users` (a shared handle, as one database holds both).
    pub fn new(users: &InMemoryUserRepo) -> Self {
        Self {
            inner: Mutex::default(),
            users: users.clone(),
            revoked: Mutex::default(),
        }
    }

    /// Adds revoked sessions to the feed (taken after the families' lock, never before it).
    fn record_revoked(&self, ids: impl IntoIterator<Item = SessionId>) {
        let at = system_now();
        let mut revoked = self.revoked.lock().unwrap_or_else(PoisonError::into_inner);
        revoked.extend(ids.into_iter().map(|id| (id, at)));
    }

    /// The ids of the user's sessions (before they are all revoked).
    fn sessions_of(f: &Families, user: UserId) -> Vec<SessionId> {
        f.sessions
            .iter()
            .filter(|(_, s)| s.user == user)
            .map(|(id, _)| *id)
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, Families> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Live sessions and stored token hashes, for tests and the memory benchmark.
    pub fn counts(&self) -> (usize, usize) {
        let f = self.lock();
        (f.sessions.len(), f.tokens.len())
    }
}

/// The process clock in Unix seconds: the in-memory feed's time base (as a database's feed
/// uses the database's clock).
fn system_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[async_trait]
impl crate::ports::RevocationFeed for InMemoryRefreshStore {
    async fn revoked_since(
        &self,
        since: Option<u64>,
        window_secs: u64,
        limit: usize,
    ) -> Result<(Vec<crate::ports::Revocation>, u64), StoreError> {
        let now = system_now();
        let from = since.unwrap_or(0).max(now.saturating_sub(window_secs));
        let revoked = self.revoked.lock().unwrap_or_else(PoisonError::into_inner);
        let entries = revoked
            .iter()
            .filter(|(_, at)| *at >= from)
            .take(limit)
            .map(|(session, at)| crate::ports::Revocation {
                session: *session,
                revoked_at: *at,
            })
            .collect();
        Ok((entries, now))
    }

    async fn purge_revocations(&self, window_secs: u64) -> Result<u64, StoreError> {
        let oldest = system_now().saturating_sub(window_secs);
        let mut revoked = self.revoked.lock().unwrap_or_else(PoisonError::into_inner);
        let before = revoked.len();
        while revoked.front().is_some_and(|(_, at)| *at < oldest) {
            revoked.pop_front();
        }
        Ok((before - revoked.len()) as u64)
    }
}

/// Seconds fit in `u32` until 2106; saturate rather than wrap beyond.
fn secs32(t: Timestamp) -> u32 {
    u32::try_from(t.unix()).unwrap_or(u32::MAX)
}

impl SessionRecord {
    fn to_session(&self, id: SessionId) -> Session {
        Session {
            id,
            user_id: self.user,
            created_at: Timestamp::from_unix(self.created_at.into()),
            expires_at: Timestamp::from_unix(self.expires_at.into()),
        }
    }

    fn live_at(&self, now: Timestamp) -> bool {
        now.unix() < u64::from(self.expires_at)
    }
}

/// A refusal that names the session it concerned, when there was one.
fn refusal(why: RotationRefusal, id: SessionId, record: Option<&SessionRecord>) -> RotateError {
    match record {
        Some(r) => RotateError::refused_in(why, r.to_session(id)),
        None => why.into(),
    }
}

#[async_trait]
impl RefreshStore for InMemoryRefreshStore {
    async fn create_session(
        &self,
        session: &Session,
        first: RefreshTokenHash,
    ) -> Result<bool, StoreError> {
        let mut f = self.lock();
        // Under this lock, so a disabling either sees the new session when it revokes the
        // user's sessions (it takes this lock after setting the flag) or is seen here.
        if !self.users.active(session.user_id) {
            return Ok(false);
        }
        f.sessions.insert(
            session.id,
            SessionRecord {
                user: session.user_id,
                created_at: secs32(session.created_at),
                expires_at: secs32(session.expires_at),
                consumed: VecDeque::new(),
            },
        );
        f.tokens.insert(
            first,
            TokenRecord {
                session: session.id,
                consumed: false,
            },
        );
        Ok(true)
    }

    async fn rotate(
        &self,
        presented: RefreshTokenHash,
        successor: RefreshTokenHash,
        now: Timestamp,
    ) -> Result<Session, RotateError> {
        let mut f = self.lock();
        let Some(token) = f.tokens.get(&presented).copied() else {
            return Err(RotationRefusal::NotFound.into());
        };
        // A revoked session is removed at once, so a found session is never revoked.
        let read = f.sessions.get(&token.session).map(|r| PresentedToken {
            session_expires_at: Timestamp::from_unix(r.expires_at.into()),
            session_revoked: false,
            consumed: token.consumed,
            user_active: self.users.active(r.user),
        });
        match judge_rotation(read, now) {
            RotationVerdict::Consume => {}
            RotationVerdict::Refuse(why) => {
                // The session is gone: drop its orphaned token now.
                f.tokens.remove(&presented);
                return Err(why.into());
            }
            RotationVerdict::RevokeAndRefuse(why) => {
                let session = f.sessions.remove(&token.session);
                if session.is_some() {
                    self.record_revoked([token.session]);
                }
                if why == RotationRefusal::Expired {
                    f.tokens.remove(&presented);
                }
                return Err(refusal(why, token.session, session.as_ref()));
            }
            RotationVerdict::RevokeUserAndRefuse(why) => {
                let session = f.sessions.get(&token.session).cloned();
                if let Some(user) = session.as_ref().map(|r| r.user) {
                    self.record_revoked(Self::sessions_of(&f, user));
                    f.sessions.retain(|_, s| s.user != user);
                }
                return Err(refusal(why, token.session, session.as_ref()));
            }
        }
        let Families { sessions, tokens } = &mut *f;
        let Some(record) = sessions.get_mut(&token.session) else {
            return Err(RotationRefusal::NotFound.into());
        };
        record.consumed.push_back(presented);
        if record.consumed.len() > KEPT_CONSUMED_TOKENS as usize {
            if let Some(forgotten) = record.consumed.pop_front() {
                tokens.remove(&forgotten);
            }
        }
        let rotated = record.to_session(token.session);
        tokens.insert(
            presented,
            TokenRecord {
                consumed: true,
                ..token
            },
        );
        tokens.insert(
            successor,
            TokenRecord {
                session: token.session,
                consumed: false,
            },
        );
        Ok(rotated)
    }

    async fn live_session_user(
        &self,
        session: SessionId,
        now: Timestamp,
    ) -> Result<Option<User>, StoreError> {
        let owner = self
            .lock()
            .sessions
            .get(&session)
            .filter(|s| s.live_at(now))
            .map(|s| s.user);
        Ok(owner.and_then(|id| self.users.read().by_id.get(&id).cloned()))
    }

    async fn revoke_by_token(&self, presented: RefreshTokenHash) -> Result<bool, StoreError> {
        let mut f = self.lock();
        let Some(token) = f.tokens.remove(&presented) else {
            return Ok(false);
        };
        let revoked = f.sessions.remove(&token.session).is_some();
        if revoked {
            self.record_revoked([token.session]);
        }
        Ok(revoked)
    }

    async fn revoke_user_sessions(&self, user: UserId) -> Result<u64, StoreError> {
        let mut f = self.lock();
        let before = f.sessions.len();
        self.record_revoked(Self::sessions_of(&f, user));
        f.sessions.retain(|_, s| s.user != user);
        Ok((before - f.sessions.len()) as u64)
    }

    async fn purge(&self, now: Timestamp, limit: usize) -> Result<u64, StoreError> {
        let mut f = self.lock();
        let ended: Vec<SessionId> = f
            .sessions
            .iter()
            .filter(|(_, s)| !s.live_at(now))
            .map(|(id, _)| *id)
            .take(limit)
            .collect();
        for id in &ended {
            f.sessions.remove(id);
        }
        let Families { sessions, tokens } = &mut *f;
        let mut dropped = 0usize;
        tokens.retain(|_, t| {
            if dropped < limit && !sessions.contains_key(&t.session) {
                dropped += 1;
                false
            } else {
                true
            }
        });
        Ok(ended.len() as u64)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
