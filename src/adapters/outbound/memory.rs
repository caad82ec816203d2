//! In-memory `UserRepo` and `RefreshStore`: the zero-setup default. Everything is lost on
//! restart and nothing is shared between instances; use a database store for that. The
//! session store reads the accounts of its `InMemoryUserRepo` directly, as a database joins
//! its tables: a rotation checks the user under the same lock that makes it atomic.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use async_trait::async_trait;
use hashbrown::HashTable;

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

/// A live session in the slab, kept compact: 104 bytes with its id and current token, plus
/// its recent tokens once it has rotated and, when the login sent any, its origin.
#[derive(Debug)]
struct Slot {
    id: SessionId,
    user: UserId,
    created_at: u32,
    expires_at: u32,
    /// The last login or rotation: when the newest consumed token was consumed.
    last_used_at: u32,
    /// 0: no idle timeout.
    idle_expires_at: u32,
    /// The token that rotates the session now.
    current: RefreshTokenHash,
    /// The consumed tokens still kept: at most `KEPT_CONSUMED_TOKENS`.
    consumed: Consumed,
    /// Where it was opened, in one allocation: the client address, then `\n` and the user
    /// agent if there was one (neither can contain a line break). `None` for an unknown
    /// client without a user agent.
    origin: Option<Box<str>>,
}

const KEPT: usize = KEPT_CONSUMED_TOKENS as usize;

/// A token index entry is its slot's index shifted by this, or'ed with its place in the slot:
/// 0 for the current token, 1 + i for place i of the consumed ring.
const PLACE_BITS: u32 = 3;
const PLACE_MASK: u32 = (1 << PLACE_BITS) - 1;
const _: () = assert!(KEPT < PLACE_MASK as usize);
/// The most sessions the store holds at once, so every slot index fits an entry.
const MAX_SLOTS: usize = 1 << (32 - PLACE_BITS);

/// A session's consumed tokens in one allocation made at its first rotation: a thin pointer in
/// the slot. A token keeps its place until it is forgotten, so the token index can name it by
/// place.
#[derive(Debug, Default)]
struct Consumed(Option<Box<Ring>>);

#[derive(Debug)]
struct Ring {
    hashes: [Option<RefreshTokenHash>; KEPT],
    /// Where the next one goes: once the ring is full, the place of the oldest.
    next: u8,
}

impl Consumed {
    fn newest(&self) -> Option<&RefreshTokenHash> {
        let ring = self.0.as_ref()?;
        ring.hashes[(usize::from(ring.next) + KEPT - 1) % KEPT].as_ref()
    }

    fn at(&self, place: usize) -> Option<&RefreshTokenHash> {
        self.0.as_ref()?.hashes.get(place)?.as_ref()
    }

    /// The kept tokens and their places, in no particular order.
    fn places(&self) -> impl Iterator<Item = (usize, &RefreshTokenHash)> {
        self.0
            .iter()
            .flat_map(|ring| ring.hashes.iter().enumerate())
            .filter_map(|(place, hash)| hash.as_ref().map(|h| (place, h)))
    }

    /// Keeps `hash` as the newest; returns its place and the oldest when it no longer fits
    /// (the one it replaced there).
    fn push(&mut self, hash: RefreshTokenHash) -> (usize, Option<RefreshTokenHash>) {
        let ring = self.0.get_or_insert_with(|| {
            Box::new(Ring {
                hashes: [None; KEPT],
                next: 0,
            })
        });
        let place = usize::from(ring.next);
        ring.next = u8::try_from((place + 1) % KEPT).unwrap_or(0);
        (place, ring.hashes[place].replace(hash))
    }
}

/// `Slot::origin` from what a login recorded.
fn packed_origin(origin: &SessionOrigin) -> Option<Box<str>> {
    let client = origin.client.as_str();
    match &origin.user_agent {
        None if origin.client == ClientAddress::unknown() => None,
        None => Some(client.into()),
        Some(ua) => Some(format!("{client}\n{}", ua.as_str()).into()),
    }
}

// Both indexes hash their keys by taking 8 bytes of them as they are: session ids are random
// UUIDs (v4: the bytes taken are all random ones, without the version and variant bits) and
// token hashes are SHA-256 of random tokens. Every key inserted is made by the service, so no
// one can choose keys to crowd the tables; a client chooses only what it looks up, which
// cannot lengthen the probe sequences. It also spares SipHash on every access.

fn id_hash(id: &SessionId) -> u64 {
    let bytes = id.as_uuid().as_bytes();
    u64::from_le_bytes([
        bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[7], bytes[15],
    ])
}

fn token_hash(hash: &RefreshTokenHash) -> u64 {
    let bytes = hash.as_bytes();
    u64::from_le_bytes([
        bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
    ])
}

/// The token a token index entry names. Lookups compare this full hash, so keys that share
/// their first bytes stay apart.
fn token_at(slots: &[Slot], entry: u32) -> Option<&RefreshTokenHash> {
    let slot = slots.get((entry >> PLACE_BITS) as usize)?;
    match entry & PLACE_MASK {
        0 => Some(&slot.current),
        place => slot.consumed.at(place as usize - 1),
    }
}

fn entry_hash(slots: &[Slot], entry: u32) -> u64 {
    token_at(slots, entry).map_or(0, token_hash)
}

/// Sessions in a slab, with indexes of slab positions: by session id, by token hash (current
/// and consumed) and by user. A slot is live while the id index names it; a removed session's
/// slot is emptied and reused by the next one, and its tokens leave the token index with it.
#[derive(Debug, Default)]
struct Families {
    slots: Vec<Slot>,
    /// Emptied slots, reused first.
    free: Vec<u32>,
    sessions: HashTable<u32>,
    /// A consumed entry stays while it is among its session's `KEPT_CONSUMED_TOKENS` most
    /// recent, so a replay of it is recognized as reuse.
    tokens: HashTable<u32>,
    /// Each user's sessions, so the per-user operations (the cap at every login, the list,
    /// revoking a user's sessions) cost what the user has, not what the store holds.
    by_user: HashMap<UserId, Vec<u32>>,
}

/// Sessions and token hashes behind one mutex: every operation is a few table accesses, so
/// the lock is held for well under a microsecond and rotation is trivially atomic. The
/// accounts are those of the `InMemoryUserRepo` it was made with (read under that lock, after
/// this one: always in that order).
///
/// Revoking a session removes it and its tokens at once: a token of a revoked session is
/// unknown from then on.
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
            .iter()
            .filter(|&&e| e & PLACE_MASK == 0 && f.slot_of_entry(e).is_some())
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

impl Slot {
    /// What an emptied slot holds: nothing a lookup can match, no allocation.
    fn vacant() -> Self {
        Self {
            id: SessionId::from_uuid(uuid::Uuid::nil()),
            user: UserId::from_uuid(uuid::Uuid::nil()),
            created_at: 0,
            expires_at: 0,
            last_used_at: 0,
            idle_expires_at: 0,
            current: RefreshTokenHash::from_bytes([0; 32]),
            consumed: Consumed::default(),
            origin: None,
        }
    }

    fn to_session(&self) -> Session {
        Session {
            id: self.id,
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

    fn info(&self) -> SessionInfo {
        let unknown = ClientAddress::unknown();
        let (client, user_agent) = match self.origin.as_deref() {
            None => (unknown.as_str(), None),
            Some(packed) => match packed.split_once('\n') {
                Some((client, ua)) => (client, Some(ua.to_owned())),
                None => (packed, None),
            },
        };
        SessionInfo {
            session: self.to_session(),
            last_used_at: Timestamp::from_unix(self.last_used_at.into()),
            user_agent,
            client_address: Some(client.to_owned()),
        }
    }

    /// Whether `presented` is the session's current token, or its immediate predecessor
    /// consumed less than `grace` seconds before `now` while its successor is still current:
    /// a token that speaks for the session's holder now.
    fn is_fresh(
        &self,
        presented: &RefreshTokenHash,
        consumed: bool,
        now: Timestamp,
        grace: u64,
    ) -> bool {
        // The newest consumed token is the one the current token replaced, consumed at the
        // session's last use.
        let consumed_at = consumed.then(|| Timestamp::from_unix(self.last_used_at.into()));
        speaks_for_session(
            consumed_at,
            self.consumed.newest() == Some(presented),
            now,
            grace,
        )
    }
}

/// An idle end no later than the absolute one; 0 for none.
fn idle32(idle: Option<Timestamp>, expires_at: u32) -> u32 {
    idle.map_or(0, |t| secs32(t).min(expires_at).max(1))
}

fn too_many_sessions() -> StoreError {
    StoreError::Unknown(anyhow::anyhow!(
        "the in-memory session store is full ({MAX_SLOTS} sessions)"
    ))
}

impl Families {
    /// The slot of session `id`.
    fn slot_of(&self, id: &SessionId) -> Option<u32> {
        self.sessions
            .find(id_hash(id), |&s| self.slots[s as usize].id == *id)
            .copied()
    }

    /// The slot of a token index entry, when the session there is live.
    fn slot_of_entry(&self, entry: u32) -> Option<u32> {
        let slot = entry >> PLACE_BITS;
        let id = &self.slots.get(slot as usize)?.id;
        (self.slot_of(id) == Some(slot)).then_some(slot)
    }

    /// The slot holding `hash` and whether it is consumed there.
    fn token_of(&self, hash: &RefreshTokenHash) -> Option<(u32, bool)> {
        self.tokens
            .find(token_hash(hash), |&e| {
                token_at(&self.slots, e) == Some(hash)
            })
            .map(|&e| (e >> PLACE_BITS, e & PLACE_MASK != 0))
    }

    fn insert_token(&mut self, hash: &RefreshTokenHash, entry: u32) {
        let Self { slots, tokens, .. } = self;
        tokens.insert_unique(token_hash(hash), entry, |&e| entry_hash(slots, e));
    }

    /// Drops the token index entry `entry`, which names `hash`.
    fn remove_token(&mut self, hash: &RefreshTokenHash, entry: u32) {
        if let Ok(found) = self.tokens.find_entry(token_hash(hash), |&e| e == entry) {
            found.remove();
        }
    }

    fn add(&mut self, slot: Slot) -> Result<u32, StoreError> {
        // A session id seen again replaces its session, as a map insert would.
        if let Some(old) = self.slot_of(&slot.id) {
            self.remove(old);
        }
        let index = match self.free.pop() {
            Some(index) => index,
            None if self.slots.len() < MAX_SLOTS => {
                self.slots.push(Slot::vacant());
                u32::try_from(self.slots.len() - 1).map_err(|_| too_many_sessions())?
            }
            None => return Err(too_many_sessions()),
        };
        let (id, user, current) = (slot.id, slot.user, slot.current);
        self.slots[index as usize] = slot;
        let Self {
            slots, sessions, ..
        } = self;
        sessions.insert_unique(id_hash(&id), index, |&s| id_hash(&slots[s as usize].id));
        self.insert_token(&current, index << PLACE_BITS);
        self.by_user.entry(user).or_default().push(index);
        Ok(index)
    }

    /// Removes the session in `index` (revocation or purge) with its tokens; returns what it
    /// held.
    fn remove(&mut self, index: u32) -> Slot {
        let slot = std::mem::replace(&mut self.slots[index as usize], Slot::vacant());
        if let Ok(found) = self.sessions.find_entry(id_hash(&slot.id), |&s| s == index) {
            found.remove();
        }
        let base = index << PLACE_BITS;
        self.remove_token(&slot.current, base);
        for (place, hash) in slot.consumed.places() {
            self.remove_token(hash, base | (place as u32 + 1));
        }
        if let Some(slots) = self.by_user.get_mut(&slot.user) {
            if let Some(at) = slots.iter().position(|&s| s == index) {
                slots.swap_remove(at);
            }
            if slots.is_empty() {
                self.by_user.remove(&slot.user);
            }
        }
        self.free.push(index);
        slot
    }

    /// Removes every session of `user` but the one in `keep`; returns the ones removed.
    fn remove_user(&mut self, user: UserId, keep: Option<u32>) -> Vec<SessionId> {
        let slots = self.by_user.get(&user).cloned().unwrap_or_default();
        slots
            .into_iter()
            .filter(|&s| Some(s) != keep)
            .map(|s| self.remove(s).id)
            .collect()
    }

    /// The slots of the user's sessions live at `now`.
    fn live_of(&self, user: UserId, now: Timestamp) -> Vec<u32> {
        self.by_user.get(&user).map_or_else(Vec::new, |slots| {
            slots
                .iter()
                .copied()
                .filter(|&s| self.slots[s as usize].live_at(now))
                .collect()
        })
    }

    /// Revokes the user's least recently used live sessions beyond `max` at `now`, never
    /// the one in `new` (the login that asks).
    fn cap(&mut self, user: UserId, new: u32, max: usize, now: Timestamp) -> Vec<SessionId> {
        if self.by_user.get(&user).is_none_or(|s| s.len() <= max) {
            return Vec::new();
        }
        let mut others: Vec<(u32, u32, SessionId, u32)> = self
            .live_of(user, now)
            .into_iter()
            .filter(|&s| s != new)
            .map(|s| {
                let slot = &self.slots[s as usize];
                (slot.last_used_at, slot.created_at, slot.id, s)
            })
            .collect();
        if others.len() < max {
            return Vec::new();
        }
        others.sort_unstable_by(|a, b| b.cmp(a));
        others
            .into_iter()
            .skip(max - 1)
            .map(|(_, _, _, s)| self.remove(s).id)
            .collect()
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
        let index = f.add(Slot {
            id: session.id,
            user: session.user_id,
            created_at: secs32(session.created_at),
            expires_at,
            last_used_at: secs32(session.created_at),
            idle_expires_at: idle32(session.idle_expires_at, expires_at),
            current: first,
            consumed: Consumed::default(),
            origin: packed_origin(origin),
        })?;
        let evicted = f.cap(
            session.user_id,
            index,
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
        let Some((index, consumed)) = f.token_of(&presented) else {
            return Err(RotationRefusal::NotFound.into());
        };
        // A revoked session is removed at once with its tokens, so a found token's session
        // is live.
        let slot = &f.slots[index as usize];
        // The session's current token, when it is the successor derived now (or under the
        // previous key) of the presented one.
        let current_child = [Some(successor), rotation.previous_successor]
            .into_iter()
            .flatten()
            .find(|hash| slot.current == *hash);
        let replayable = consumed && slot.consumed.newest() == Some(&presented);
        let read = PresentedToken {
            session_expires_at: Timestamp::from_unix(slot.expires_at.into()),
            session_idle_expires_at: (slot.idle_expires_at != 0)
                .then(|| Timestamp::from_unix(slot.idle_expires_at.into())),
            session_revoked: false,
            consumed_at: consumed.then(|| Timestamp::from_unix(slot.last_used_at.into())),
            successor_is_current: replayable && current_child.is_some(),
            user_active: self.users.active(slot.user),
        };
        match judge_rotation(Some(read), now, rotation.reuse_grace_secs) {
            RotationVerdict::Consume => {}
            RotationVerdict::Replay => {
                return Ok(Rotated {
                    session: slot.to_session(),
                    replayed: true,
                    successor: current_child.unwrap_or(successor),
                });
            }
            RotationVerdict::Refuse(why) => return Err(why.into()),
            RotationVerdict::RevokeAndRefuse(why) => {
                let removed = f.remove(index);
                self.record_revoked([removed.id]);
                return Err(RotateError::refused_in(why, removed.to_session()));
            }
            RotationVerdict::RevokeUserAndRefuse(why) => {
                let session = slot.to_session();
                let revoked = f.remove_user(session.user_id, None);
                self.record_revoked(revoked);
                return Err(RotateError::refused_in(why, session));
            }
        }
        let base = index << PLACE_BITS;
        let slot = &mut f.slots[index as usize];
        let (place, forgotten) = slot.consumed.push(presented);
        slot.current = successor;
        slot.last_used_at = secs32(now);
        slot.idle_expires_at = idle32(rotation.idle_expires_at, slot.expires_at);
        let rotated = slot.to_session();
        let consumed_entry = base | (place as u32 + 1);
        if let Some(forgotten) = forgotten {
            f.remove_token(&forgotten, consumed_entry);
        }
        // The presented token keeps its index entry, now naming its place in the ring.
        if let Some(entry) = f.tokens.find_mut(token_hash(&presented), |&e| e == base) {
            *entry = consumed_entry;
        }
        f.insert_token(&successor, base);
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
        let Some((index, consumed)) = f.token_of(&presented) else {
            return Ok(LoggedOut::default());
        };
        let slot = &f.slots[index as usize];
        let (id, user) = (slot.id, slot.user);
        let live = slot.live_at(now);
        // The cookie of an ended session speaks for nobody: it ends its own session only.
        let fresh = live && slot.is_fresh(&presented, consumed, now, reuse_grace_secs);
        let revoked = match scope {
            LogoutScope::Others if fresh => f.remove_user(user, Some(index)),
            LogoutScope::Global if fresh => f.remove_user(user, None),
            _ => vec![f.remove(index).id],
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
            session: named.then_some((id, user)),
        })
    }

    async fn revoke_session(
        &self,
        user: UserId,
        session: SessionId,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut f = self.lock();
        let owned = f.slot_of(&session).filter(|&s| {
            let slot = &f.slots[s as usize];
            slot.user == user && slot.live_at(now)
        });
        if let Some(index) = owned {
            f.remove(index);
            self.record_revoked([session]);
        }
        Ok(owned.is_some())
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
            .map(|s| f.slots[s as usize].info())
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
        let owner = {
            let f = self.lock();
            f.slot_of(&session)
                .map(|s| &f.slots[s as usize])
                .filter(|s| s.live_at(now))
                .map(|s| s.user)
        };
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
        let kept = keep.map(|id| {
            f.slot_of(&id).filter(|&s| {
                let slot = &f.slots[s as usize];
                slot.user == user && slot.live_at(now)
            })
        });
        {
            let mut users = self
                .users
                .inner
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            match users.by_id.get_mut(&user) {
                Some(u)
                    if kept.is_none_or(|s| s.is_some())
                        && !u.disabled
                        && u.password_hash == *current =>
                {
                    u.password_hash = new.clone();
                }
                _ => return Ok(None),
            }
        }
        let revoked = f.remove_user(user, kept.flatten());
        let count = revoked.len() as u64;
        self.record_revoked(revoked);
        Ok(Some(count))
    }

    async fn tighten_idle_ends(&self, idle_ttl_secs: u64) -> Result<u64, StoreError> {
        let mut f = self.lock();
        let Families {
            slots, sessions, ..
        } = &mut *f;
        let ttl = u32::try_from(idle_ttl_secs).unwrap_or(u32::MAX);
        let mut changed = 0;
        for &s in sessions.iter() {
            let slot = &mut slots[s as usize];
            let end = slot
                .last_used_at
                .saturating_add(ttl)
                .min(slot.expires_at)
                .max(1);
            if slot.idle_expires_at == 0 || slot.idle_expires_at > end {
                slot.idle_expires_at = end;
                changed += 1;
            }
        }
        Ok(changed)
    }

    async fn count_live_sessions(&self, now: Timestamp) -> Result<u64, StoreError> {
        let f = self.lock();
        Ok(f.sessions
            .iter()
            .filter(|&&s| f.slots[s as usize].live_at(now))
            .count() as u64)
    }

    async fn purge(&self, now: Timestamp, limit: usize) -> Result<u64, StoreError> {
        let mut f = self.lock();
        let ended: Vec<u32> = f
            .sessions
            .iter()
            .copied()
            .filter(|&s| !f.slots[s as usize].live_at(now))
            .take(limit)
            .collect();
        for &s in &ended {
            f.remove(s);
        }
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
    fn consumed_keeps_the_newest_in_place_and_hands_back_the_oldest_beyond_its_size() {
        let mut c = Consumed::default();
        assert!(c.newest().is_none());
        for n in 0..KEPT as u8 {
            assert_eq!(c.push(hash(n)), (usize::from(n), None));
            assert_eq!(c.newest(), Some(&hash(n)));
        }
        for n in KEPT as u8..3 * KEPT as u8 {
            let place = usize::from(n) % KEPT;
            assert_eq!(c.push(hash(n)), (place, Some(hash(n - KEPT as u8))));
            assert_eq!(c.newest(), Some(&hash(n)));
            assert_eq!(
                c.at(place),
                Some(&hash(n)),
                "a token stays where it was put"
            );
        }
        assert_eq!(c.places().count(), KEPT);
        assert_eq!(std::mem::size_of::<Consumed>(), 8, "a thin pointer");
        if cfg!(target_pointer_width = "64") {
            assert_eq!(std::mem::size_of::<Slot>(), 104, "as its doc says");
        }
    }

    /// A store with one active account.
    async fn store() -> (InMemoryRefreshStore, UserId) {
        let users = InMemoryUserRepo::new();
        let user = UserId::new_random();
        users
            .create(User {
                id: user,
                email: Email::parse("slab@example.com").unwrap(),
                password_hash: PasswordHash::new("$2b$04$test".into()),
                disabled: false,
                email_verified: true,
                created_at: Timestamp::from_unix(1_000),
            })
            .await
            .unwrap();
        (InMemoryRefreshStore::new(&users), user)
    }

    async fn open(
        store: &InMemoryRefreshStore,
        user: UserId,
        first: RefreshTokenHash,
    ) -> SessionId {
        let session = Session {
            id: SessionId::new_random(),
            user_id: user,
            created_at: Timestamp::from_unix(1_000),
            expires_at: Timestamp::from_unix(100_000),
            idle_expires_at: None,
        };
        let origin = SessionOrigin {
            user_agent: None,
            client: ClientAddress::unknown(),
        };
        assert!(store
            .create_session(&session, first, &origin, usize::MAX)
            .await
            .unwrap());
        session.id
    }

    fn rotation(presented: RefreshTokenHash, successor: RefreshTokenHash, now: u64) -> Rotation {
        Rotation {
            presented,
            successor,
            previous_successor: None,
            now: Timestamp::from_unix(now),
            idle_expires_at: None,
            reuse_grace_secs: 0,
        }
    }

    fn not_found(result: Result<Rotated, RotateError>) -> bool {
        matches!(
            result,
            Err(RotateError::Refused {
                why: RotationRefusal::NotFound,
                session: None
            })
        )
    }

    #[tokio::test]
    async fn a_removed_sessions_slot_is_reused_and_its_old_tokens_stay_unknown() {
        let (store, user) = store().await;
        let first = open(&store, user, hash(1)).await;
        // Consumed tokens in the ring, the oldest already forgotten.
        for n in 1..=KEPT as u8 + 1 {
            store
                .rotate(rotation(hash(n), hash(n + 1), 2_000))
                .await
                .unwrap();
        }
        assert!(store
            .revoke_session(user, first, Timestamp::from_unix(2_000))
            .await
            .unwrap());
        assert_eq!(store.counts(), (0, 0), "its tokens went with it");

        let second = open(&store, user, hash(100)).await;
        store
            .rotate(rotation(hash(100), hash(101), 3_000))
            .await
            .unwrap();
        store
            .rotate(rotation(hash(101), hash(102), 3_000))
            .await
            .unwrap();
        assert_eq!(store.lock().slots.len(), 1, "the emptied slot was reused");
        assert_eq!(store.lock().slot_of(&second), Some(0));
        assert_eq!(store.lock().slot_of(&first), None);

        // Replaying the first session's tokens, consumed or current, must not be taken for a
        // reuse in the session now in their slot.
        for n in 1..=KEPT as u8 + 2 {
            assert!(
                not_found(store.rotate(rotation(hash(n), hash(200), 3_000)).await),
                "{n}"
            );
            let out = store
                .revoke_by_token(hash(n), LogoutScope::Global, Timestamp::from_unix(3_000), 0)
                .await
                .unwrap();
            assert_eq!(out, LoggedOut::default(), "{n}");
        }
        assert_eq!(store.counts(), (1, 3));
        let rotated = store
            .rotate(rotation(hash(102), hash(103), 3_000))
            .await
            .unwrap();
        assert_eq!(rotated.session.id, second);
        assert!(!rotated.replayed);
    }

    #[tokio::test]
    async fn tokens_sharing_their_index_prefix_stay_apart() {
        let (store, user) = store().await;
        let like = |tail: u8| {
            let mut bytes = [tail; 32];
            bytes[..8].copy_from_slice(&[7; 8]);
            RefreshTokenHash::from_bytes(bytes)
        };
        let a = open(&store, user, like(1)).await;
        let b = open(&store, user, like(2)).await;
        assert_eq!(token_hash(&like(1)), token_hash(&like(2)));

        assert!(not_found(
            store.rotate(rotation(like(3), hash(9), 2_000)).await
        ));
        let rotated = store
            .rotate(rotation(like(2), like(4), 2_000))
            .await
            .unwrap();
        assert_eq!(rotated.session.id, b);
        // A replay of b's consumed token is a reuse in b only.
        assert!(store
            .rotate(rotation(like(2), like(4), 2_001))
            .await
            .is_err());
        assert_eq!(store.lock().slot_of(&b), None, "b revoked for the reuse");
        let rotated = store
            .rotate(rotation(like(1), like(5), 2_001))
            .await
            .unwrap();
        assert_eq!(rotated.session.id, a, "a untouched");
        assert_eq!(store.counts(), (1, 2));
    }
}
