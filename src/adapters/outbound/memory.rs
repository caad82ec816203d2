//! In-memory `UserRepo` and `RefreshStore`: the zero-setup default. Everything is lost on
//! restart and nothing is shared between instances; use a database store for that. The
//! session store reads the accounts of its `InMemoryUserRepo` directly, as a database joins
//! its tables: a rotation checks the user under the same lock that makes it atomic.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use async_trait::async_trait;

use crate::domain::{
    judge_rotation, speaks_for_session, ClientAddress, Email, LogoutScope, PasswordHash,
    PresentedToken, RefreshTokenHash, RotationRefusal, RotationVerdict, Session, SessionId,
    SessionInfo, SessionOrigin, Timestamp, User, UserId, KEPT_CONSUMED_TOKENS,
};
use crate::ports::{
    CreateUserError, LoggedOut, RefreshStore, RotateError, Rotated, Rotation, StoreError, UserRepo,
};

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

    async fn mark_email_verified(&self, id: UserId) -> Result<bool, StoreError> {
        let mut users = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        Ok(users
            .by_id
            .get_mut(&id)
            .map(|u| u.email_verified = true)
            .is_some())
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

/// A live session, kept compact: 72 bytes with its key, plus its recent tokens once it has
/// rotated and, when the login sent any, its origin.
#[derive(Debug, Clone)]
struct SessionRecord {
    user: UserId,
    created_at: u32,
    expires_at: u32,
    /// The last login or rotation: when the newest consumed token was consumed.
    last_used_at: u32,
    /// 0: no idle timeout.
    idle_expires_at: u32,
    /// The consumed tokens still kept: at most `KEPT_CONSUMED_TOKENS`.
    consumed: Consumed,
    /// Where it was opened, in one allocation: the client address, then `\n` and the user
    /// agent if there was one (neither can contain a line break). `None` for an unknown
    /// client without a user agent.
    origin: Option<Box<str>>,
}

const KEPT: usize = KEPT_CONSUMED_TOKENS as usize;

/// A session's consumed tokens, oldest first, in one allocation made at its first rotation:
/// a thin pointer in the record (a `VecDeque` there takes 32 bytes in every session, and grows
/// to 8 slots when the fifth is pushed before the oldest is popped).
#[derive(Debug, Clone, Default)]
struct Consumed(Option<Box<[Option<RefreshTokenHash>; KEPT]>>);

impl Consumed {
    fn newest(&self) -> Option<&RefreshTokenHash> {
        self.0.as_ref()?.iter().rev().find_map(Option::as_ref)
    }

    /// Keeps `hash` as the newest; returns the oldest when it no longer fits.
    fn push(&mut self, hash: RefreshTokenHash) -> Option<RefreshTokenHash> {
        let ring = self.0.get_or_insert_with(|| Box::new([None; KEPT]));
        match ring.iter().position(Option::is_none) {
            Some(free) => {
                ring[free] = Some(hash);
                None
            }
            None => {
                ring.rotate_left(1);
                ring[KEPT - 1].replace(hash)
            }
        }
    }
}

/// `SessionRecord::origin` from what a login recorded.
fn packed_origin(origin: &SessionOrigin) -> Option<Box<str>> {
    let client = origin.client.as_str();
    match &origin.user_agent {
        None if origin.client == ClientAddress::unknown() => None,
        None => Some(client.into()),
        Some(ua) => Some(format!("{client}\n{}", ua.as_str()).into()),
    }
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
    /// Each user's sessions, so the per-user operations (the cap at every login, the list,
    /// revoking a user's sessions) cost what the user has, not what the store holds.
    by_user: HashMap<UserId, Vec<SessionId>>,
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
    /// The revocation feed: (Unix seconds by the process clock, session), in feed order.
    revoked: Mutex<BTreeSet<(u64, SessionId)>>,
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
        revoked.extend(ids.into_iter().map(|id| (at, id)));
    }

    fn lock(&self) -> MutexGuard<'_, Families> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Live sessions and stored token hashes, for tests and the memory benchmark.
    pub fn counts(&self) -> (usize, usize) {
        let f = self.lock();
        (f.sessions.len(), f.tokens.len())
    }

    /// Unconsumed token hashes of live sessions: one per session, whatever the races.
    pub fn current_tokens(&self) -> usize {
        let f = self.lock();
        f.tokens
            .values()
            .filter(|t| !t.consumed && f.sessions.contains_key(&t.session))
            .count()
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
        since: Option<crate::domain::FeedPosition>,
        window_secs: u64,
        limit: usize,
    ) -> Result<(Vec<crate::ports::Revocation>, u64), StoreError> {
        let now = system_now();
        let oldest = now.saturating_sub(window_secs);
        let since = since.unwrap_or_default();
        let (from, skip) = if since.second < oldest {
            (oldest, 0)
        } else {
            (since.second, since.skip)
        };
        let least = SessionId::from_uuid(uuid::Uuid::nil());
        let revoked = self.revoked.lock().unwrap_or_else(PoisonError::into_inner);
        // The skip passes over entries of `from` only, then every later second follows.
        let of_from = revoked
            .range((from, least)..)
            .take_while(|(at, _)| *at == from)
            .skip(usize::try_from(skip).unwrap_or(usize::MAX));
        let later = revoked.range((from.saturating_add(1), least)..);
        let entries = of_from
            .chain(later)
            .take(limit)
            .map(|(at, session)| crate::ports::Revocation {
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
        while revoked.first().is_some_and(|(at, _)| *at < oldest) {
            revoked.pop_first();
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
            idle_expires_at: (self.idle_expires_at != 0)
                .then(|| Timestamp::from_unix(self.idle_expires_at.into())),
        }
    }

    fn live_at(&self, now: Timestamp) -> bool {
        now < self.to_session_end()
    }

    fn to_session_end(&self) -> Timestamp {
        let end = if self.idle_expires_at == 0 {
            self.expires_at
        } else {
            self.idle_expires_at.min(self.expires_at)
        };
        Timestamp::from_unix(end.into())
    }

    fn info(&self, id: SessionId) -> SessionInfo {
        let unknown = ClientAddress::unknown();
        let (client, user_agent) = match self.origin.as_deref() {
            None => (unknown.as_str(), None),
            Some(packed) => match packed.split_once('\n') {
                Some((client, ua)) => (client, Some(ua.to_owned())),
                None => (packed, None),
            },
        };
        SessionInfo {
            session: self.to_session(id),
            last_used_at: Timestamp::from_unix(self.last_used_at.into()),
            user_agent,
            client_address: Some(client.to_owned()),
        }
    }
}

/// An idle end no later than the absolute one; 0 for none.
fn idle32(idle: Option<Timestamp>, expires_at: u32) -> u32 {
    idle.map_or(0, |t| secs32(t).min(expires_at).max(1))
}

/// A refusal that names the session it concerned, when there was one.
fn refusal(why: RotationRefusal, id: SessionId, record: Option<&SessionRecord>) -> RotateError {
    match record {
        Some(r) => RotateError::refused_in(why, r.to_session(id)),
        None => why.into(),
    }
}

impl Families {
    fn add(&mut self, id: SessionId, record: SessionRecord) {
        self.by_user.entry(record.user).or_default().push(id);
        self.sessions.insert(id, record);
    }

    /// Removes a session (revocation or purge); its tokens become orphans.
    fn remove(&mut self, id: &SessionId) -> Option<SessionRecord> {
        let record = self.sessions.remove(id)?;
        if let Some(ids) = self.by_user.get_mut(&record.user) {
            if let Some(at) = ids.iter().position(|s| s == id) {
                ids.swap_remove(at);
            }
            if ids.is_empty() {
                self.by_user.remove(&record.user);
            }
        }
        Some(record)
    }

    /// Removes every session of `user` but `keep`; returns the ones removed.
    fn remove_user(&mut self, user: UserId, keep: Option<SessionId>) -> Vec<SessionId> {
        let ids = self.by_user.get(&user).cloned().unwrap_or_default();
        ids.into_iter()
            .filter(|id| Some(*id) != keep)
            .filter(|id| self.remove(id).is_some())
            .collect()
    }

    /// The user's sessions live at `now`.
    fn live_of(&self, user: UserId, now: Timestamp) -> Vec<(SessionId, &SessionRecord)> {
        self.by_user.get(&user).map_or_else(Vec::new, |ids| {
            ids.iter()
                .filter_map(|id| self.sessions.get(id).map(|s| (*id, s)))
                .filter(|(_, s)| s.live_at(now))
                .collect()
        })
    }

    /// Whether `presented` is the session's current token, or its immediate predecessor
    /// consumed less than `grace` seconds before `now` while its successor is still current:
    /// a token that speaks for the session's holder now.
    fn is_fresh(
        &self,
        record: &SessionRecord,
        presented: &RefreshTokenHash,
        token: TokenRecord,
        now: Timestamp,
        grace: u64,
    ) -> bool {
        // The newest consumed token is the one the current token replaced, consumed at the
        // session's last use.
        let consumed_at = token
            .consumed
            .then(|| Timestamp::from_unix(record.last_used_at.into()));
        speaks_for_session(
            consumed_at,
            record.consumed.newest() == Some(presented),
            now,
            grace,
        )
    }

    /// Revokes the user's least recently used live sessions beyond `max` at `now`, never
    /// `new` (the login that asks).
    fn cap(&mut self, user: UserId, new: SessionId, max: usize, now: Timestamp) -> Vec<SessionId> {
        if self.by_user.get(&user).is_none_or(|ids| ids.len() <= max) {
            return Vec::new();
        }
        let mut others: Vec<(u32, u32, SessionId)> = self
            .live_of(user, now)
            .into_iter()
            .filter(|(id, _)| *id != new)
            .map(|(id, s)| (s.last_used_at, s.created_at, id))
            .collect();
        if others.len() < max {
            return Vec::new();
        }
        others.sort_unstable_by(|a, b| b.cmp(a));
        let evicted: Vec<SessionId> = others
            .into_iter()
            .skip(max - 1)
            .map(|(_, _, id)| id)
            .collect();
        for id in &evicted {
            self.remove(id);
        }
        evicted
    }
}

#[async_trait]
impl RefreshStore for InMemoryRefreshStore {
    async fn create_session(
        &self,
        session: &Session,
        first: RefreshTokenHash,
        origin: &SessionOrigin,
        max_per_user: usize,
    ) -> Result<bool, StoreError> {
        let mut f = self.lock();
        // Under this lock, so a disabling either sees the new session when it revokes the
        // user's sessions (it takes this lock after setting the flag) or is seen here.
        if !self.users.active(session.user_id) {
            return Ok(false);
        }
        let expires_at = secs32(session.expires_at);
        f.add(
            session.id,
            SessionRecord {
                user: session.user_id,
                created_at: secs32(session.created_at),
                expires_at,
                last_used_at: secs32(session.created_at),
                idle_expires_at: idle32(session.idle_expires_at, expires_at),
                consumed: Consumed::default(),
                origin: packed_origin(origin),
            },
        );
        f.tokens.insert(
            first,
            TokenRecord {
                session: session.id,
                consumed: false,
            },
        );
        let evicted = f.cap(
            session.user_id,
            session.id,
            max_per_user.max(1),
            session.created_at,
        );
        self.record_revoked(evicted);
        Ok(true)
    }

    async fn rotate(&self, rotation: Rotation) -> Result<Rotated, RotateError> {
        let Rotation {
            presented,
            successor,
            now,
            ..
        } = rotation;
        let mut f = self.lock();
        let Some(token) = f.tokens.get(&presented).copied() else {
            return Err(RotationRefusal::NotFound.into());
        };
        // A revoked session is removed at once, so a found session is never revoked.
        // The session's current token, when it is the successor derived now (or under the
        // previous key) of the presented one.
        let current_child = [Some(successor), rotation.previous_successor]
            .into_iter()
            .flatten()
            .find(|hash| {
                f.tokens
                    .get(hash)
                    .is_some_and(|t| t.session == token.session && !t.consumed)
            });
        let read = f.sessions.get(&token.session).map(|r| {
            let replayable = token.consumed && r.consumed.newest() == Some(&presented);
            PresentedToken {
                session_expires_at: Timestamp::from_unix(r.expires_at.into()),
                session_idle_expires_at: (r.idle_expires_at != 0)
                    .then(|| Timestamp::from_unix(r.idle_expires_at.into())),
                session_revoked: false,
                consumed_at: token
                    .consumed
                    .then(|| Timestamp::from_unix(r.last_used_at.into())),
                successor_is_current: replayable && current_child.is_some(),
                user_active: self.users.active(r.user),
            }
        });
        match judge_rotation(read, now, rotation.reuse_grace_secs) {
            RotationVerdict::Consume => {}
            RotationVerdict::Replay => {
                let session = f.sessions[&token.session].to_session(token.session);
                return Ok(Rotated {
                    session,
                    replayed: true,
                    successor: current_child.unwrap_or(successor),
                });
            }
            RotationVerdict::Refuse(why) => {
                // The session is gone: drop its orphaned token now.
                f.tokens.remove(&presented);
                return Err(why.into());
            }
            RotationVerdict::RevokeAndRefuse(why) => {
                let session = f.remove(&token.session);
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
                    let revoked = f.remove_user(user, None);
                    self.record_revoked(revoked);
                }
                return Err(refusal(why, token.session, session.as_ref()));
            }
        }
        let Families {
            sessions, tokens, ..
        } = &mut *f;
        let Some(record) = sessions.get_mut(&token.session) else {
            return Err(RotationRefusal::NotFound.into());
        };
        if let Some(forgotten) = record.consumed.push(presented) {
            tokens.remove(&forgotten);
        }
        record.last_used_at = secs32(now);
        record.idle_expires_at = idle32(rotation.idle_expires_at, record.expires_at);
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
        Ok(Rotated {
            session: rotated,
            replayed: false,
            successor,
        })
    }

    async fn revoke_by_token(
        &self,
        presented: RefreshTokenHash,
        scope: LogoutScope,
        now: Timestamp,
        reuse_grace_secs: u64,
    ) -> Result<LoggedOut, StoreError> {
        let mut f = self.lock();
        let Some(token) = f.tokens.get(&presented).copied() else {
            return Ok(LoggedOut::default());
        };
        let Some(record) = f.sessions.get(&token.session) else {
            f.tokens.remove(&presented);
            return Ok(LoggedOut::default());
        };
        let user = record.user;
        let live = record.live_at(now);
        // The cookie of an ended session speaks for nobody: it ends its own session only.
        let fresh = live && f.is_fresh(record, &presented, token, now, reuse_grace_secs);
        let revoked = match scope {
            LogoutScope::Others if fresh => f.remove_user(user, Some(token.session)),
            LogoutScope::Global if fresh => f.remove_user(user, None),
            _ => {
                f.tokens.remove(&presented);
                f.remove(&token.session)
                    .map(|_| vec![token.session])
                    .unwrap_or_default()
            }
        };
        let count = revoked.len() as u64;
        self.record_revoked(revoked);
        // As the database stores: a local logout names the session it ended, a wider one the
        // live session its token speaks from.
        let named = if scope == LogoutScope::Local {
            count > 0
        } else {
            live
        };
        Ok(LoggedOut {
            revoked: count,
            session: named.then_some((token.session, user)),
        })
    }

    async fn revoke_session(
        &self,
        user: UserId,
        session: SessionId,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut f = self.lock();
        let owned = f
            .sessions
            .get(&session)
            .is_some_and(|s| s.user == user && s.live_at(now));
        if owned {
            f.remove(&session);
            self.record_revoked([session]);
        }
        Ok(owned)
    }

    async fn list_sessions(
        &self,
        user: UserId,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<SessionInfo>, StoreError> {
        let f = self.lock();
        let mut live: Vec<SessionInfo> = f
            .live_of(user, now)
            .into_iter()
            .map(|(id, s)| s.info(id))
            .collect();
        live.sort_by(|a, b| {
            (b.last_used_at, b.session.created_at).cmp(&(a.last_used_at, a.session.created_at))
        });
        live.truncate(limit);
        Ok(live)
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

    async fn revoke_user_sessions(&self, user: UserId) -> Result<u64, StoreError> {
        let mut f = self.lock();
        let revoked = f.remove_user(user, None);
        let count = revoked.len() as u64;
        self.record_revoked(revoked);
        Ok(count)
    }

    async fn change_password(
        &self,
        user: UserId,
        current: &PasswordHash,
        new: &PasswordHash,
        keep: Option<SessionId>,
        now: Timestamp,
    ) -> Result<Option<u64>, StoreError> {
        // Sessions first, then the accounts: the order every method takes the two locks in.
        let mut f = self.lock();
        let kept = keep.is_none_or(|id| {
            f.sessions
                .get(&id)
                .is_some_and(|s| s.user == user && s.live_at(now))
        });
        {
            let mut users = self
                .users
                .inner
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            match users.by_id.get_mut(&user) {
                Some(u) if kept && !u.disabled && u.password_hash == *current => {
                    u.password_hash = new.clone();
                }
                _ => return Ok(None),
            }
        }
        let revoked = f.remove_user(user, keep);
        let count = revoked.len() as u64;
        self.record_revoked(revoked);
        Ok(Some(count))
    }

    async fn tighten_idle_ends(&self, idle_ttl_secs: u64) -> Result<u64, StoreError> {
        let mut f = self.lock();
        let ttl = u32::try_from(idle_ttl_secs).unwrap_or(u32::MAX);
        let mut changed = 0;
        for s in f.sessions.values_mut() {
            let end = s.last_used_at.saturating_add(ttl).min(s.expires_at).max(1);
            if s.idle_expires_at == 0 || s.idle_expires_at > end {
                s.idle_expires_at = end;
                changed += 1;
            }
        }
        Ok(changed)
    }

    async fn count_live_sessions(&self, now: Timestamp) -> Result<u64, StoreError> {
        let f = self.lock();
        Ok(f.sessions.values().filter(|s| s.live_at(now)).count() as u64)
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
            f.remove(id);
        }
        let Families {
            sessions, tokens, ..
        } = &mut *f;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(n: u8) -> RefreshTokenHash {
        RefreshTokenHash::from_bytes([n; 32])
    }

    #[test]
    fn consumed_keeps_the_newest_and_hands_back_the_oldest_beyond_its_size() {
        let mut c = Consumed::default();
        assert!(c.newest().is_none());
        for n in 0..KEPT as u8 {
            assert_eq!(c.push(hash(n)), None);
            assert_eq!(c.newest(), Some(&hash(n)));
        }
        for n in KEPT as u8..3 * KEPT as u8 {
            assert_eq!(c.push(hash(n)), Some(hash(n - KEPT as u8)));
            assert_eq!(c.newest(), Some(&hash(n)));
        }
        assert_eq!(std::mem::size_of::<Consumed>(), 8, "a thin pointer");
    }
}
