//! The port contract: the same cases, one per `# Errors` clause of `src/ports/mod.rs`, run
//! against every adapter of `UserRepo` and `RefreshStore` — in-memory, SQLite (a temporary
//! file per test) and PostgreSQL (a fresh database per test, when `TEST_DATABASE_URL` is set;
//! without it they are reported as ignored).

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;

use jwt_auth::domain::{
    ClientAddress, Email, LogoutScope, PasswordHash, RefreshToken, RefreshTokenHash,
    RotationRefusal, Session, SessionId, SessionOrigin, Timestamp, User, UserAgent, UserId,
    KEPT_CONSUMED_TOKENS,
};
use jwt_auth::ports::{CreateUserError, RotateError, Rotated, Rotation, StoreError};

use crate::db::{Store, Stores};

const T0: u64 = 1_800_000_000;
const DAY: u64 = 86_400;

fn at(secs: u64) -> Timestamp {
    Timestamp::from_unix(secs)
}

fn token() -> RefreshTokenHash {
    RefreshToken::generate().hash()
}

fn user(email: &str, created: u64) -> User {
    User {
        id: UserId::new_random(),
        email: Email::parse(email).unwrap(),
        password_hash: PasswordHash::new("$2b$04$contract-test-hash".into()),
        disabled: false,
        email_verified: true,
        created_at: at(created),
    }
}

/// A stored user to own sessions (the SQL schemas keep a foreign key to users).
async fn owner(s: &Stores) -> UserId {
    let u = user(&format!("{}@example.com", uuid::Uuid::new_v4()), T0);
    let id = u.id;
    s.users.create(u).await.unwrap();
    id
}

/// A new session of `user` from `T0` to `T0 + 30 days`, with its first token.
async fn session(s: &Stores, user: UserId) -> (Session, RefreshTokenHash) {
    let session = Session {
        id: SessionId::new_random(),
        user_id: user,
        created_at: at(T0),
        expires_at: at(T0 + 30 * DAY),
        idle_expires_at: None,
    };
    let first = token();
    assert!(s
        .sessions
        .create_session(&session, first, &origin(), 20)
        .await
        .unwrap());
    (session, first)
}

/// Where a test session was opened.
fn origin() -> SessionOrigin {
    SessionOrigin {
        user_agent: None,
        client: ClientAddress::unknown(),
    }
}

/// A rotation to `successor` without a grace window: strict single use, which the cases
/// written before the window was added rely on. The window's own cases build theirs.
fn strict(presented: RefreshTokenHash, successor: RefreshTokenHash, now: Timestamp) -> Rotation {
    Rotation {
        presented,
        successor,
        previous_successor: None,
        now,
        idle_expires_at: None,
        reuse_grace_secs: 0,
    }
}

/// A local logout by `presented`: whether it ended a session.
async fn revoke_local(s: &Stores, presented: RefreshTokenHash) -> bool {
    s.sessions
        .revoke_by_token(presented, LogoutScope::Local, at(T0), 0)
        .await
        .unwrap()
        .revoked
        > 0
}

fn name(e: &RotateError) -> &'static str {
    match e {
        RotateError::Refused {
            why: RotationRefusal::NotFound,
            ..
        } => "NotFound",
        RotateError::Refused {
            why: RotationRefusal::Reused,
            ..
        } => "Reused",
        RotateError::Refused {
            why: RotationRefusal::Expired,
            ..
        } => "Expired",
        RotateError::Refused {
            why: RotationRefusal::UserInactive,
            ..
        } => "UserInactive",
        RotateError::Store(StoreError::Unavailable(_)) => "Unavailable",
        RotateError::Store(StoreError::Unknown(_)) => "Unknown",
    }
}

#[track_caller]
fn assert_refused(result: Result<Rotated, RotateError>, want: &str) {
    match result {
        Ok(s) => panic!("expected {want}, got Ok({s:?})"),
        Err(e) => assert_eq!(name(&e), want, "{e:?}"),
    }
}

// ---- UserRepo ----

async fn created_user_is_found_by_email_and_id(s: Stores) {
    let u = user("Ada@Example.COM", T0);
    s.users.create(u.clone()).await.unwrap();
    let by_email = s
        .users
        .find_by_email(&Email::parse("  ada@example.com ").unwrap())
        .await
        .unwrap();
    assert_eq!(by_email.as_ref(), Some(&u), "every field round-trips");
    assert_eq!(s.users.find_by_id(u.id).await.unwrap(), Some(u));
}

async fn unknown_users_are_none(s: Stores) {
    let nobody = Email::parse("nobody@example.com").unwrap();
    assert!(s.users.find_by_email(&nobody).await.unwrap().is_none());
    assert!(s
        .users
        .find_by_id(UserId::new_random())
        .await
        .unwrap()
        .is_none());
    assert!(s.users.set_disabled(&nobody, true).await.unwrap().is_none());
    assert!(s.users.list().await.unwrap().is_empty());
}

async fn email_taken_for_case_variants(s: Stores) {
    let first = user("Grace@Example.com", T0);
    s.users.create(first.clone()).await.unwrap();
    for variant in [
        "grace@example.com",
        "GRACE@EXAMPLE.COM",
        " Grace@example.COM ",
    ] {
        let again = user(variant, T0 + 1);
        match s.users.create(again).await {
            Err(CreateUserError::EmailTaken) => {}
            other => panic!("{variant:?}: expected EmailTaken, got {other:?}"),
        }
    }
    assert_eq!(
        s.users.list().await.unwrap(),
        vec![first],
        "nothing else stored"
    );
}

async fn disabling_and_enabling_round_trip(s: Stores) {
    let u = user("linus@example.com", T0);
    s.users.create(u.clone()).await.unwrap();
    let disabled = s.users.set_disabled(&u.email, true).await.unwrap().unwrap();
    assert!(disabled.disabled);
    assert_eq!(disabled.id, u.id);
    assert!(
        s.users.find_by_id(u.id).await.unwrap().unwrap().disabled,
        "a disabled account is still found"
    );
    let enabled = s
        .users
        .set_disabled(&u.email, false)
        .await
        .unwrap()
        .unwrap();
    assert!(!enabled.disabled);
    assert_eq!(s.users.find_by_email(&u.email).await.unwrap(), Some(u));
}

/// An unverified account is stored and read back so; marking it verified is idempotent,
/// reaches every read (the live-session one included) and touches no other account.
async fn email_verification_round_trips_and_marks_only_its_account(s: Stores) {
    let mut u = user("unverified@example.com", T0);
    u.email_verified = false;
    s.users.create(u.clone()).await.unwrap();
    let other = user("other@example.com", T0);
    let mut other = other;
    other.email_verified = false;
    s.users.create(other.clone()).await.unwrap();
    let read = s.users.find_by_email(&u.email).await.unwrap().unwrap();
    assert!(!read.email_verified, "stored unverified");
    let (sess, _) = session(&s, u.id).await;
    let live = |s: &Stores| {
        let sessions = s.sessions.clone();
        async move {
            sessions
                .live_session_user(sess.id, at(T0))
                .await
                .unwrap()
                .unwrap()
        }
    };
    assert!(!live(&s).await.email_verified);
    assert!(s.users.mark_email_verified(u.id).await.unwrap());
    assert!(
        s.users.mark_email_verified(u.id).await.unwrap(),
        "idempotent"
    );
    assert!(
        s.users
            .find_by_id(u.id)
            .await
            .unwrap()
            .unwrap()
            .email_verified
    );
    assert!(live(&s).await.email_verified);
    assert!(
        !s.users
            .find_by_id(other.id)
            .await
            .unwrap()
            .unwrap()
            .email_verified,
        "another account is untouched"
    );
    assert!(!s
        .users
        .mark_email_verified(UserId::new_random())
        .await
        .unwrap());
    // Disabling keeps the state.
    let disabled = s.users.set_disabled(&u.email, true).await.unwrap().unwrap();
    assert!(disabled.email_verified);
}

async fn a_password_hash_is_replaced_only_while_it_is_still_the_current_one(s: Stores) {
    let u = user("ada@example.com", T0);
    s.users.create(u.clone()).await.unwrap();
    let newer = PasswordHash::new("$2b$12$contract-test-rehash".into());
    let changed_meanwhile = PasswordHash::new("$2b$12$contract-test-changed".into());
    assert!(s
        .users
        .replace_password_hash(u.id, &u.password_hash, &newer)
        .await
        .unwrap());
    let stored = s.users.find_by_id(u.id).await.unwrap().unwrap();
    assert_eq!(stored.password_hash, newer);
    // A stale `current` (the password changed since it was read) replaces nothing.
    assert!(!s
        .users
        .replace_password_hash(u.id, &u.password_hash, &changed_meanwhile)
        .await
        .unwrap());
    assert_eq!(
        s.users
            .find_by_id(u.id)
            .await
            .unwrap()
            .unwrap()
            .password_hash,
        newer
    );
    assert!(!s
        .users
        .replace_password_hash(UserId::new_random(), &newer, &changed_meanwhile)
        .await
        .unwrap());
}

async fn list_is_oldest_first(s: Stores) {
    let (a, b, c) = (
        user("c@example.com", T0 + 2),
        user("a@example.com", T0),
        user("b@example.com", T0 + 1),
    );
    for u in [&a, &b, &c] {
        s.users.create(u.clone()).await.unwrap();
    }
    s.users.set_disabled(&c.email, true).await.unwrap();
    let listed: Vec<String> = s
        .users
        .list()
        .await
        .unwrap()
        .iter()
        .map(|u| u.email.to_string())
        .collect();
    assert_eq!(listed, ["a@example.com", "b@example.com", "c@example.com"]);
}

// ---- RefreshStore ----

/// Whether the session is live (exists, not revoked, not ended) at `now`.
async fn is_live(s: &Stores, session: SessionId, now: Timestamp) -> bool {
    s.sessions
        .live_session_user(session, now)
        .await
        .unwrap()
        .is_some()
}

async fn a_new_session_is_live_until_exactly_its_end(s: Stores) {
    let uid = owner(&s).await;
    let (sess, _) = session(&s, uid).await;
    assert!(is_live(&s, sess.id, at(T0)).await);
    assert!(is_live(&s, sess.id, at(T0 + 30 * DAY - 1)).await);
    assert!(!is_live(&s, sess.id, at(T0 + 30 * DAY)).await);
    assert!(!is_live(&s, SessionId::new_random(), at(T0)).await);
}

async fn rotation_succeeds_and_the_successor_is_usable(s: Stores) {
    let uid = owner(&s).await;
    let (sess, first) = session(&s, uid).await;
    let second = token();
    let rotated = s
        .sessions
        .rotate(strict(first, second, at(T0 + 60)))
        .await
        .unwrap();
    assert_eq!(rotated.session, sess, "the same session, its end unchanged");
    let third = token();
    let again = s
        .sessions
        .rotate(strict(second, third, at(T0 + 120)))
        .await
        .unwrap();
    assert_eq!(
        again.session.expires_at, sess.expires_at,
        "rotation never extends"
    );
    assert!(is_live(&s, sess.id, at(T0 + 120)).await);
}

async fn unknown_token_is_not_found(s: Stores) {
    assert_refused(
        s.sessions.rotate(strict(token(), token(), at(T0))).await,
        "NotFound",
    );
}

async fn reuse_revokes_the_session_and_the_newest_token(s: Stores) {
    let uid = owner(&s).await;
    let (sess, first) = session(&s, uid).await;
    let second = token();
    s.sessions
        .rotate(strict(first, second, at(T0 + 1)))
        .await
        .unwrap();
    match s.sessions.rotate(strict(first, token(), at(T0 + 2))).await {
        Err(RotateError::Refused {
            why: RotationRefusal::Reused,
            session: Some(reported),
        }) => assert_eq!(reported, sess, "the reuse names its session, for the logs"),
        other => panic!("expected Reused with its session, got {other:?}"),
    }
    assert_refused(
        s.sessions.rotate(strict(second, token(), at(T0 + 3))).await,
        "NotFound",
    );
    assert!(!is_live(&s, sess.id, at(T0 + 3)).await);
    // Replaying the consumed token again finds nothing live either.
    assert_refused(
        s.sessions.rotate(strict(first, token(), at(T0 + 4))).await,
        "NotFound",
    );
}

async fn expired_at_exactly_expires_at_and_then_revoked(s: Stores) {
    let uid = owner(&s).await;
    let (sess, first) = session(&s, uid).await;
    let end = T0 + 30 * DAY;
    let second = token();
    s.sessions
        .rotate(strict(first, second, at(end - 1)))
        .await
        .unwrap();
    assert_refused(
        s.sessions.rotate(strict(second, token(), at(end))).await,
        "Expired",
    );
    assert_refused(
        s.sessions.rotate(strict(second, token(), at(end))).await,
        "NotFound",
    );
    // The expired session was revoked: nothing of it works even with an earlier clock.
    assert!(!is_live(&s, sess.id, at(T0)).await);
    assert!(!revoke_local(&s, second).await);
}

async fn a_consumed_token_of_an_expired_session_is_expired(s: Stores) {
    let uid = owner(&s).await;
    let (_, first) = session(&s, uid).await;
    s.sessions
        .rotate(strict(first, token(), at(T0 + 1)))
        .await
        .unwrap();
    assert_refused(
        s.sessions
            .rotate(strict(first, token(), at(T0 + 30 * DAY)))
            .await,
        "Expired",
    );
}

async fn revoked_session_token_is_not_found(s: Stores) {
    let uid = owner(&s).await;
    let (sess, first) = session(&s, uid).await;
    assert!(revoke_local(&s, first).await);
    assert_refused(
        s.sessions.rotate(strict(first, token(), at(T0 + 1))).await,
        "NotFound",
    );
    assert!(!is_live(&s, sess.id, at(T0 + 1)).await);
    assert!(!revoke_local(&s, first).await, "already revoked");
}

async fn revoke_by_token_accepts_a_consumed_token(s: Stores) {
    let uid = owner(&s).await;
    let (sess, first) = session(&s, uid).await;
    let second = token();
    s.sessions
        .rotate(strict(first, second, at(T0 + 1)))
        .await
        .unwrap();
    assert!(revoke_local(&s, first).await);
    assert_refused(
        s.sessions.rotate(strict(second, token(), at(T0 + 2))).await,
        "NotFound",
    );
    assert!(!is_live(&s, sess.id, at(T0 + 2)).await);
}

async fn revoke_by_unknown_token_is_false(s: Stores) {
    assert!(!revoke_local(&s, token()).await);
}

async fn a_local_revocation_names_the_session_and_its_user(s: Stores) {
    let uid = owner(&s).await;
    let (sess, first) = session(&s, uid).await;
    let ended = s
        .sessions
        .revoke_by_token(first, LogoutScope::Local, at(T0), 0)
        .await
        .unwrap();
    assert_eq!(ended.revoked, 1);
    assert_eq!(ended.session, Some((sess.id, uid)));
}

async fn revoke_user_sessions_counts_live_ones_and_spares_others(s: Stores) {
    let (alice, bob) = (owner(&s).await, owner(&s).await);
    let (a1, a1_first) = session(&s, alice).await;
    let (a2, _) = session(&s, alice).await;
    let (a3, a3_first) = session(&s, alice).await;
    let (b1, b1_first) = session(&s, bob).await;
    revoke_local(&s, a3_first).await;
    assert_eq!(s.sessions.revoke_user_sessions(alice).await.unwrap(), 2);
    for id in [a1.id, a2.id, a3.id] {
        assert!(!is_live(&s, id, at(T0 + 1)).await);
    }
    assert_refused(
        s.sessions
            .rotate(strict(a1_first, token(), at(T0 + 1)))
            .await,
        "NotFound",
    );
    assert!(is_live(&s, b1.id, at(T0 + 1)).await);
    s.sessions
        .rotate(strict(b1_first, token(), at(T0 + 1)))
        .await
        .unwrap();
    assert_eq!(s.sessions.revoke_user_sessions(alice).await.unwrap(), 0);
    assert_eq!(
        s.sessions
            .revoke_user_sessions(UserId::new_random())
            .await
            .unwrap(),
        0
    );
}

async fn purge_is_bounded_by_its_limit_and_spares_live_sessions(s: Stores) {
    let uid = owner(&s).await;
    // Three sessions that end at T0 + 30 days and one that lives longer.
    let mut ended = Vec::new();
    for _ in 0..3 {
        ended.push(session(&s, uid).await);
    }
    let live = Session {
        id: SessionId::new_random(),
        user_id: uid,
        created_at: at(T0),
        expires_at: at(T0 + 60 * DAY),
        idle_expires_at: None,
    };
    let live_first = token();
    assert!(s
        .sessions
        .create_session(&live, live_first, &origin(), 20)
        .await
        .unwrap());

    let now = at(T0 + 30 * DAY);
    assert_eq!(s.sessions.purge(now, 0).await.unwrap(), 0);
    assert_eq!(s.sessions.purge(now, 2).await.unwrap(), 2, "bounded");
    assert_eq!(s.sessions.purge(now, 100).await.unwrap(), 1, "the rest");
    assert_eq!(s.sessions.purge(now, 100).await.unwrap(), 0);
    for (_, first) in &ended {
        assert_refused(
            s.sessions.rotate(strict(*first, token(), now)).await,
            "NotFound",
        );
    }
    assert!(is_live(&s, live.id, now).await);
    s.sessions
        .rotate(strict(live_first, token(), now))
        .await
        .unwrap();
}

async fn purge_forgets_revoked_sessions(s: Stores) {
    let uid = owner(&s).await;
    let (sess, first) = session(&s, uid).await;
    let second = token();
    s.sessions
        .rotate(strict(first, second, at(T0 + 1)))
        .await
        .unwrap();
    revoke_local(&s, second).await;
    // The in-memory store forgets a revoked session at once (0 here); a database keeps the
    // row until the purge (1). Either way nothing of it is left afterwards.
    assert!(s.sessions.purge(at(T0 + 2), 100).await.unwrap() <= 1);
    assert_eq!(s.sessions.purge(at(T0 + 2), 100).await.unwrap(), 0);
    assert!(!is_live(&s, sess.id, at(T0 + 2)).await);
    for t in [first, second] {
        assert_refused(
            s.sessions.rotate(strict(t, token(), at(T0 + 3))).await,
            "NotFound",
        );
        assert!(!revoke_local(&s, t).await);
    }
}

async fn concurrent_rotations_of_one_token_yield_exactly_one_success(s: Stores) {
    let uid = owner(&s).await;
    let (sess, first) = session(&s, uid).await;
    let sessions = s.sessions.clone();
    let mut tasks = tokio::task::JoinSet::new();
    let barrier = Arc::new(tokio::sync::Barrier::new(24));
    for _ in 0..24 {
        let (sessions, barrier) = (sessions.clone(), barrier.clone());
        tasks.spawn(async move {
            let successor = token();
            barrier.wait().await;
            (
                successor,
                sessions.rotate(strict(first, successor, at(T0 + 5))).await,
            )
        });
    }
    let mut winners = Vec::new();
    let mut refusals = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined.unwrap() {
            (successor, Ok(session)) => {
                assert_eq!(session.session.id, sess.id);
                winners.push(successor);
            }
            (_, Err(e)) => refusals.push(name(&e)),
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one success; refusals: {refusals:?}"
    );
    let kinds: HashSet<_> = refusals.iter().copied().collect();
    assert!(
        kinds.is_subset(&HashSet::from(["Reused", "NotFound"])),
        "{refusals:?}"
    );
    assert!(kinds.contains("Reused"), "the first loser detected reuse");
    // Reuse revoked the family: the winner's successor is dead too.
    assert_refused(
        s.sessions
            .rotate(strict(winners[0], token(), at(T0 + 6)))
            .await,
        "NotFound",
    );
}

/// Rotation chains on several sessions while other tasks revoke half of them and purge:
/// every call either succeeds or is refused as the contract says (a revoked or purged
/// session's token is `NotFound`), never a store error such as a deadlock.
async fn rotations_racing_revocation_and_purge_never_fail(s: Stores) {
    // The revoked half belongs to its own user, so that revoking them all at the end still
    // races the chains once their first token is forgotten (bounded history).
    let (uid, doomed) = (owner(&s).await, owner(&s).await);
    let mut firsts = Vec::new();
    for i in 0..8 {
        let user = if i % 2 == 0 { doomed } else { uid };
        firsts.push(session(&s, user).await.1);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for &first in &firsts {
        let sessions = s.sessions.clone();
        tasks.spawn(async move {
            let (mut current, mut consumed) = (first, None);
            for i in 0..25 {
                let next = token();
                match sessions
                    .rotate(strict(current, next, at(T0 + 10 + i)))
                    .await
                {
                    Ok(_) => (consumed, current) = (Some(current), next),
                    Err(RotateError::Refused {
                        why: RotationRefusal::NotFound,
                        ..
                    }) => break,
                    Err(e) => return Err(format!("rotate: {} ({e})", name(&e))),
                }
            }
            Ok(Some((first, consumed)))
        });
    }
    let sessions = s.sessions.clone();
    let revoked: Vec<_> = firsts.iter().copied().step_by(2).collect();
    tasks.spawn(async move {
        for t in revoked {
            tokio::task::yield_now().await;
            sessions
                .revoke_by_token(t, LogoutScope::Local, at(T0), 0)
                .await
                .map_err(|e| format!("revoke: {e}"))?;
        }
        sessions
            .revoke_user_sessions(doomed)
            .await
            .map_err(|e| format!("revoke_user_sessions: {e}"))?;
        Ok(None)
    });
    let sessions = s.sessions.clone();
    tasks.spawn(async move {
        for _ in 0..20 {
            sessions
                .purge(at(T0 + 100), 3)
                .await
                .map_err(|e| format!("purge: {e}"))?;
        }
        Ok(None)
    });
    let mut last_consumed = std::collections::HashMap::new();
    while let Some(joined) = tasks.join_next().await {
        if let Some((first, consumed)) = joined.unwrap().unwrap() {
            last_consumed.insert(first, consumed);
        }
    }
    // The sessions nobody revoked are alive and rotated all 25 times: their latest consumed
    // token is kept, so presenting it is reuse. (Their first token is forgotten by now: the
    // history is bounded, see `every_session_keeps_a_bounded_token_history`.)
    for t in firsts.iter().skip(1).step_by(2) {
        let consumed = last_consumed[t].expect("a live session rotated");
        assert_refused(
            s.sessions
                .rotate(strict(consumed, token(), at(T0 + 50)))
                .await,
            "Reused",
        );
    }
}

/// Token hashes the store holds, of every session.
async fn stored_hashes(s: &Stores) -> u64 {
    match (&s.memory, &s.db) {
        (Some(memory), _) => u64::try_from(memory.counts().1).unwrap(),
        (None, Some(db)) => db
            .db
            .query_i64("SELECT count(*) FROM refresh_tokens")
            .await
            .unwrap()
            .try_into()
            .unwrap(),
        (None, None) => unreachable!("a test store"),
    }
}

/// Finding: every rotation kept its consumed token for the session's life, so one session's
/// cost grew with each refresh. Now it is the current token and `KEPT_CONSUMED_TOKENS`
/// consumed ones, however long the chain; an older token is forgotten (unknown, the session
/// unharmed) while a kept one is still caught as reuse.
async fn every_session_keeps_a_bounded_token_history(s: Stores) {
    let uid = owner(&s).await;
    let (sess, first) = session(&s, uid).await;
    let mut chain = vec![first];
    for i in 0..1_000 {
        let next = token();
        s.sessions
            .rotate(strict(chain[chain.len() - 1], next, at(T0 + 1 + i / 10)))
            .await
            .unwrap();
        chain.push(next);
        if i == 10 {
            assert_eq!(stored_hashes(&s).await, KEPT_CONSUMED_TOKENS + 1);
        }
    }
    assert_eq!(
        stored_hashes(&s).await,
        KEPT_CONSUMED_TOKENS + 1,
        "constant after 1,000 rotations"
    );
    let now = at(T0 + 200);
    let kept = usize::try_from(KEPT_CONSUMED_TOKENS).unwrap();
    // Forgotten: refused as unknown, and the session lives on.
    for old in [chain[0], chain[chain.len() - 2 - kept]] {
        assert_refused(
            s.sessions.rotate(strict(old, token(), now)).await,
            "NotFound",
        );
        assert!(!revoke_local(&s, old).await);
    }
    assert!(is_live(&s, sess.id, now).await);
    // The oldest kept consumed token is still reuse: the session is revoked.
    assert_refused(
        s.sessions
            .rotate(strict(chain[chain.len() - 1 - kept], token(), now))
            .await,
        "Reused",
    );
    assert!(!is_live(&s, sess.id, now).await);
}

/// Finding: a refresh consumed its token before the user was checked, so a failure there left
/// a spent cookie. The rotation checks the user itself: a disabled user's token is refused
/// with nothing consumed, and every session of theirs is revoked in the same call.
async fn rotation_for_a_disabled_user_consumes_nothing_and_revokes_their_sessions(s: Stores) {
    let (alice, bob) = (owner(&s).await, owner(&s).await);
    let (a1, a1_first) = session(&s, alice).await;
    let (a2, a2_first) = session(&s, alice).await;
    let (b1, b1_first) = session(&s, bob).await;
    let alice_email = s.users.find_by_id(alice).await.unwrap().unwrap().email;
    s.users.set_disabled(&alice_email, true).await.unwrap();
    let before = stored_hashes(&s).await;
    assert_refused(
        s.sessions
            .rotate(strict(a1_first, token(), at(T0 + 1)))
            .await,
        "UserInactive",
    );
    assert!(stored_hashes(&s).await <= before, "no successor stored");
    for id in [a1.id, a2.id] {
        assert!(!is_live(&s, id, at(T0 + 1)).await);
    }
    assert!(is_live(&s, b1.id, at(T0 + 1)).await);
    // Enabled again, the revoked sessions stay dead; the other user's session rotates.
    s.users.set_disabled(&alice_email, false).await.unwrap();
    for t in [a1_first, a2_first] {
        assert_refused(
            s.sessions.rotate(strict(t, token(), at(T0 + 2))).await,
            "NotFound",
        );
    }
    s.sessions
        .rotate(strict(b1_first, token(), at(T0 + 2)))
        .await
        .unwrap();
}

/// A login that checked the password before the account was disabled must not open a session
/// the disabling missed: the store refuses it for a disabled or unknown user, stores nothing,
/// and enabling the account again brings nothing back.
async fn create_session_for_a_disabled_or_unknown_user_stores_nothing(s: Stores) {
    let alice = owner(&s).await;
    let email = s.users.find_by_id(alice).await.unwrap().unwrap().email;
    s.users.set_disabled(&email, true).await.unwrap();
    let before = stored_hashes(&s).await;
    let refused = Session {
        id: SessionId::new_random(),
        user_id: alice,
        created_at: at(T0),
        expires_at: at(T0 + 30 * DAY),
        idle_expires_at: None,
    };
    let first = token();
    assert!(!s
        .sessions
        .create_session(&refused, first, &origin(), 20)
        .await
        .unwrap());
    assert_eq!(stored_hashes(&s).await, before, "no token stored");
    assert!(!is_live(&s, refused.id, at(T0)).await);
    s.users.set_disabled(&email, false).await.unwrap();
    assert!(
        !is_live(&s, refused.id, at(T0)).await,
        "not live after enable"
    );
    assert_refused(
        s.sessions.rotate(strict(first, token(), at(T0 + 1))).await,
        "NotFound",
    );
    assert!(!revoke_local(&s, first).await);
    // The same session id is free to be created now that the account is enabled.
    assert!(s
        .sessions
        .create_session(&refused, token(), &origin(), 20)
        .await
        .unwrap());
    assert!(is_live(&s, refused.id, at(T0)).await);
    let nobody = Session {
        user_id: UserId::new_random(),
        id: SessionId::new_random(),
        ..refused
    };
    assert!(!s
        .sessions
        .create_session(&nobody, token(), &origin(), 20)
        .await
        .unwrap());
    assert!(!is_live(&s, nobody.id, at(T0)).await);
}

/// Finding: `/auth/me` checked that the token's session was live, not whose it was. The store
/// answers the live session's owner, so the use case can bind `sid` to `sub`.
async fn live_session_user_is_the_owner_of_a_live_session_only(s: Stores) {
    let (alice, bob) = (owner(&s).await, owner(&s).await);
    let (sess, first) = session(&s, alice).await;
    let (other, _) = session(&s, bob).await;
    let owner_of = |id, t| {
        let sessions = s.sessions.clone();
        async move {
            sessions
                .live_session_user(id, at(t))
                .await
                .unwrap()
                .map(|u| u.id)
        }
    };
    assert_eq!(owner_of(sess.id, T0).await, Some(alice));
    assert_eq!(owner_of(other.id, T0).await, Some(bob));
    assert_eq!(owner_of(sess.id, T0 + 30 * DAY - 1).await, Some(alice));
    assert_eq!(owner_of(sess.id, T0 + 30 * DAY).await, None, "ended");
    assert_eq!(owner_of(SessionId::new_random(), T0).await, None);
    // A disabled owner is still answered (the caller refuses it); a revoked session is not.
    let email = s.users.find_by_id(alice).await.unwrap().unwrap().email;
    let disabled = s.users.set_disabled(&email, true).await.unwrap().unwrap();
    assert_eq!(
        s.sessions.live_session_user(sess.id, at(T0)).await.unwrap(),
        Some(disabled)
    );
    revoke_local(&s, first).await;
    assert_eq!(owner_of(sess.id, T0).await, None, "revoked");
}

/// Finding: one stored account that no longer parsed (an email longer than the limit once
/// lower-cased, written by an older version or by hand) failed every listing and answered
/// 500 where it was read. It is skipped by `list` and absent for the look-ups.
async fn a_stored_account_that_does_not_parse_is_skipped_and_absent(s: Stores) {
    let Some(db) = &s.db else {
        return; // The in-memory store holds parsed values only.
    };
    let good = user("good@example.com", T0 + 1);
    s.users.create(good.clone()).await.unwrap();
    let bad = UserId::from_uuid(db.insert_unreadable_user().await);
    assert_eq!(s.users.list().await.unwrap(), vec![good]);
    assert_eq!(s.users.find_by_id(bad).await.unwrap(), None);
    let (sess, _) = session(&s, bad).await;
    assert_eq!(
        s.sessions.live_session_user(sess.id, at(T0)).await.unwrap(),
        None
    );
}

async fn both_stores_answer_a_ping(s: Stores) {
    s.users.ping().await.unwrap();
    s.sessions.ping().await.unwrap();
}

// ---- grace window, idle end, cap, list, scoped revocation ----

/// A rotation with the default window, to a successor that stands for the derived one (the
/// store only compares hashes).
fn graced(presented: RefreshTokenHash, successor: RefreshTokenHash, now: u64) -> Rotation {
    Rotation {
        reuse_grace_secs: 5,
        ..strict(presented, successor, at(now))
    }
}

async fn a_replay_within_the_window_is_answered_and_changes_nothing(s: Stores) {
    let uid = owner(&s).await;
    let (sess, first) = session(&s, uid).await;
    let second = token();
    let done = s
        .sessions
        .rotate(graced(first, second, T0 + 10))
        .await
        .unwrap();
    assert!(!done.replayed);
    for now in [T0 + 10, T0 + 14] {
        let again = s.sessions.rotate(graced(first, second, now)).await.unwrap();
        assert!(again.replayed, "at {now}");
        assert_eq!(again.session, sess);
    }
    // Nothing was written: the successor is still the one current token and rotates on.
    let third = token();
    let on = s
        .sessions
        .rotate(graced(second, third, T0 + 15))
        .await
        .unwrap();
    assert!(!on.replayed);
    assert!(is_live(&s, sess.id, at(T0 + 15)).await);
}

async fn a_replay_after_the_window_or_for_another_successor_is_reuse(s: Stores) {
    let uid = owner(&s).await;
    let (sess, first) = session(&s, uid).await;
    let second = token();
    s.sessions.rotate(graced(first, second, T0)).await.unwrap();
    // A successor that is not the current one (another key, a forged request): reuse.
    assert_refused(
        s.sessions.rotate(graced(first, token(), T0 + 1)).await,
        "Reused",
    );
    assert!(!is_live(&s, sess.id, at(T0 + 1)).await);

    let (sess, first) = session(&s, uid).await;
    let second = token();
    s.sessions.rotate(graced(first, second, T0)).await.unwrap();
    assert_refused(
        s.sessions.rotate(graced(first, second, T0 + 5)).await,
        "Reused",
    );
    assert!(!is_live(&s, sess.id, at(T0 + 5)).await);
}

async fn a_token_two_generations_old_is_reuse_inside_the_window(s: Stores) {
    let uid = owner(&s).await;
    let (sess, first) = session(&s, uid).await;
    let (second, third) = (token(), token());
    s.sessions.rotate(graced(first, second, T0)).await.unwrap();
    s.sessions.rotate(graced(second, third, T0)).await.unwrap();
    assert_refused(
        s.sessions.rotate(graced(first, second, T0 + 1)).await,
        "Reused",
    );
    assert!(!is_live(&s, sess.id, at(T0 + 1)).await);
    assert_refused(
        s.sessions.rotate(graced(third, token(), T0 + 1)).await,
        "NotFound",
    );
}

async fn concurrent_rotations_with_a_window_consume_once_and_replay_the_rest(s: Stores) {
    let uid = owner(&s).await;
    let (sess, first) = session(&s, uid).await;
    let successor = token();
    let barrier = Arc::new(tokio::sync::Barrier::new(24));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..24 {
        let (sessions, barrier) = (s.sessions.clone(), barrier.clone());
        tasks.spawn(async move {
            barrier.wait().await;
            sessions.rotate(graced(first, successor, T0 + 5)).await
        });
    }
    let (mut consumed, mut replayed) = (0, 0);
    while let Some(joined) = tasks.join_next().await {
        match joined.unwrap() {
            Ok(r) if r.replayed => replayed += 1,
            Ok(_) => consumed += 1,
            Err(e) => panic!("every caller is answered: {e:?}"),
        }
    }
    assert_eq!((consumed, replayed), (1, 23));
    s.sessions
        .rotate(graced(successor, token(), T0 + 6))
        .await
        .unwrap();
    assert!(is_live(&s, sess.id, at(T0 + 6)).await);
}

async fn the_idle_end_is_reached_at_its_second_and_moved_by_each_rotation(s: Stores) {
    let uid = owner(&s).await;
    let sess = Session {
        id: SessionId::new_random(),
        user_id: uid,
        created_at: at(T0),
        expires_at: at(T0 + 30 * DAY),
        idle_expires_at: Some(at(T0 + DAY)),
    };
    let first = token();
    assert!(s
        .sessions
        .create_session(&sess, first, &origin(), 20)
        .await
        .unwrap());
    assert!(is_live(&s, sess.id, at(T0 + DAY - 1)).await);
    assert!(
        !is_live(&s, sess.id, at(T0 + DAY)).await,
        "idle end reached"
    );
    let second = token();
    let moved = s
        .sessions
        .rotate(Rotation {
            idle_expires_at: Some(at(T0 + 2 * DAY - 1)),
            ..strict(first, second, at(T0 + DAY - 1))
        })
        .await
        .unwrap();
    assert_eq!(moved.session.idle_expires_at, Some(at(T0 + 2 * DAY - 1)));
    assert!(is_live(&s, sess.id, at(T0 + DAY + 10)).await);
    // Never past the absolute end.
    let third = token();
    let clamped = s
        .sessions
        .rotate(Rotation {
            idle_expires_at: Some(at(T0 + 90 * DAY)),
            ..strict(second, third, at(T0 + DAY + 10))
        })
        .await
        .unwrap();
    assert_eq!(clamped.session.idle_expires_at, Some(sess.expires_at));
    assert_refused(
        s.sessions
            .rotate(strict(third, token(), at(T0 + 30 * DAY)))
            .await,
        "Expired",
    );
    // An idle-ended session: refused as expired, and then gone.
    let idle = Session {
        id: SessionId::new_random(),
        idle_expires_at: Some(at(T0 + 10)),
        ..sess.clone()
    };
    let idle_first = token();
    s.sessions
        .create_session(&idle, idle_first, &origin(), 20)
        .await
        .unwrap();
    assert_refused(
        s.sessions
            .rotate(strict(idle_first, token(), at(T0 + 10)))
            .await,
        "Expired",
    );
    assert_refused(
        s.sessions
            .rotate(strict(idle_first, token(), at(T0 + 1)))
            .await,
        "NotFound",
    );
    assert!(s.sessions.purge(at(T0 + 11), 10).await.is_ok());
}

async fn a_new_session_beyond_the_cap_ends_the_least_recently_used(s: Stores) {
    let (uid, other) = (owner(&s).await, owner(&s).await);
    let theirs = session(&s, other).await.0;
    let mut made = Vec::new();
    for i in 0..3 {
        let sess = Session {
            id: SessionId::new_random(),
            user_id: uid,
            created_at: at(T0 + i),
            expires_at: at(T0 + 30 * DAY),
            idle_expires_at: None,
        };
        let first = token();
        s.sessions
            .create_session(&sess, first, &origin(), 3)
            .await
            .unwrap();
        made.push((sess, first));
    }
    // The oldest is used again: the second is now the least recently used.
    s.sessions
        .rotate(strict(made[0].1, token(), at(T0 + 10)))
        .await
        .unwrap();
    let fourth = Session {
        id: SessionId::new_random(),
        user_id: uid,
        created_at: at(T0 + 20),
        expires_at: at(T0 + 30 * DAY),
        idle_expires_at: None,
    };
    s.sessions
        .create_session(&fourth, token(), &origin(), 3)
        .await
        .unwrap();
    let now = at(T0 + 20);
    assert!(!is_live(&s, made[1].0.id, now).await, "the LRU one ended");
    for live in [&made[0].0, &made[2].0, &fourth, &theirs] {
        assert!(is_live(&s, live.id, now).await);
    }
    // A cap of one keeps only the newest, even when every time is the same.
    let fifth = Session {
        id: SessionId::new_random(),
        created_at: at(T0 + 20),
        ..fourth.clone()
    };
    s.sessions
        .create_session(&fifth, token(), &origin(), 1)
        .await
        .unwrap();
    let listed = s.sessions.list_sessions(uid, now, 100).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].session.id, fifth.id);
    assert!(
        is_live(&s, theirs.id, now).await,
        "another user's are spared"
    );
}

async fn the_list_has_live_sessions_only_newest_use_first_with_their_origin(s: Stores) {
    let (uid, other) = (owner(&s).await, owner(&s).await);
    session(&s, other).await;
    let (a, a_first) = session(&s, uid).await;
    let b = Session {
        id: SessionId::new_random(),
        created_at: at(T0 + 5),
        ..a.clone()
    };
    let b_origin = SessionOrigin {
        user_agent: UserAgent::parse("Browser/1"),
        client: ClientAddress::from_ip([192, 0, 2, 7].into()),
    };
    s.sessions
        .create_session(&b, token(), &b_origin, 20)
        .await
        .unwrap();
    let (ended, ended_first) = session(&s, uid).await;
    revoke_local(&s, ended_first).await;
    let listed = s
        .sessions
        .list_sessions(uid, at(T0 + 6), 100)
        .await
        .unwrap();
    let ids: Vec<_> = listed.iter().map(|i| i.session.id).collect();
    assert_eq!(
        ids,
        vec![b.id, a.id],
        "newest use first, ended ones left out"
    );
    assert_eq!(listed[0].user_agent.as_deref(), Some("Browser/1"));
    assert_eq!(listed[0].client_address.as_deref(), Some("192.0.2.7"));
    assert_eq!(listed[0].last_used_at, at(T0 + 5));
    assert_eq!(listed[1].user_agent, None);
    assert_ne!(ended.id, a.id);
    // A refresh is a use.
    s.sessions
        .rotate(strict(a_first, token(), at(T0 + 9)))
        .await
        .unwrap();
    let listed = s.sessions.list_sessions(uid, at(T0 + 9), 1).await.unwrap();
    assert_eq!(listed.len(), 1, "bounded by the limit");
    assert_eq!(listed[0].session.id, a.id);
    assert_eq!(listed[0].last_used_at, at(T0 + 9));
    assert!(s
        .sessions
        .list_sessions(uid, at(T0 + 30 * DAY), 100)
        .await
        .unwrap()
        .is_empty());
}

async fn a_session_is_ended_by_id_only_by_its_owner_and_only_while_live(s: Stores) {
    let (uid, other) = (owner(&s).await, owner(&s).await);
    let (mine, first) = session(&s, uid).await;
    let now = at(T0 + 1);
    assert!(!s
        .sessions
        .revoke_session(other, mine.id, now)
        .await
        .unwrap());
    assert!(
        is_live(&s, mine.id, now).await,
        "someone else's id ends nothing"
    );
    assert!(!s
        .sessions
        .revoke_session(uid, SessionId::new_random(), now)
        .await
        .unwrap());
    assert!(s.sessions.revoke_session(uid, mine.id, now).await.unwrap());
    assert!(!is_live(&s, mine.id, now).await);
    assert!(!s.sessions.revoke_session(uid, mine.id, now).await.unwrap());
    assert_refused(
        s.sessions.rotate(strict(first, token(), now)).await,
        "NotFound",
    );
}

async fn scoped_revocation_by_token_reaches_as_far_as_its_scope(s: Stores) {
    let (uid, other) = (owner(&s).await, owner(&s).await);
    let (theirs, _) = session(&s, other).await;
    let (here, here_first) = session(&s, uid).await;
    let (b, _) = session(&s, uid).await;
    let (c, _) = session(&s, uid).await;
    let now = at(T0 + 1);
    let ended = s
        .sessions
        .revoke_by_token(here_first, LogoutScope::Others, now, 5)
        .await
        .unwrap();
    assert_eq!(ended.revoked, 2);
    assert_eq!(
        ended.session,
        Some((here.id, uid)),
        "names the token's session"
    );
    assert!(is_live(&s, here.id, now).await);
    assert!(!is_live(&s, b.id, now).await && !is_live(&s, c.id, now).await);
    assert!(is_live(&s, theirs.id, now).await);
    // A stale token (rotated, window over) reaches its own session only.
    let (d, _) = session(&s, uid).await;
    let second = token();
    s.sessions
        .rotate(graced(here_first, second, T0 + 2))
        .await
        .unwrap();
    let late = at(T0 + 20);
    let ended = s
        .sessions
        .revoke_by_token(here_first, LogoutScope::Global, late, 5)
        .await
        .unwrap();
    assert_eq!(ended.revoked, 1);
    assert_eq!(ended.session, Some((here.id, uid)));
    assert!(!is_live(&s, here.id, late).await);
    assert!(
        is_live(&s, d.id, late).await,
        "the stale cookie's reach ends here"
    );
    // The current one reaches everything of its user.
    let (e, e_first) = session(&s, uid).await;
    let ended = s
        .sessions
        .revoke_by_token(e_first, LogoutScope::Global, late, 5)
        .await
        .unwrap();
    assert_eq!(ended.revoked, 2);
    assert_eq!(ended.session, Some((e.id, uid)));
    let again = s
        .sessions
        .revoke_by_token(e_first, LogoutScope::Local, late, 5)
        .await
        .unwrap();
    assert_eq!(
        again,
        jwt_auth::ports::LoggedOut::default(),
        "an ended session's token names nothing"
    );
    assert!(!is_live(&s, d.id, late).await && !is_live(&s, e.id, late).await);
    assert!(is_live(&s, theirs.id, late).await);
    assert_eq!(
        s.sessions
            .revoke_by_token(token(), LogoutScope::Global, late, 5)
            .await
            .unwrap(),
        jwt_auth::ports::LoggedOut::default()
    );
}

macro_rules! contract {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    super::run(super::Store::Memory, super::$case).await;
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    super::run(super::Store::Sqlite, super::$case).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                #[cfg_attr(no_postgres, ignore = "TEST_DATABASE_URL not set")]
                async fn $case() {
                    super::run(super::Store::Postgres, super::$case).await;
                }
            )*
        }
    };
}

async fn run<F, Fut>(store: Store, case: F)
where
    F: FnOnce(Stores) -> Fut,
    Fut: Future<Output = ()>,
{
    if let Some(stores) = Stores::new(store).await {
        case(stores).await;
    }
}

contract!(
    created_user_is_found_by_email_and_id,
    unknown_users_are_none,
    email_taken_for_case_variants,
    disabling_and_enabling_round_trip,
    email_verification_round_trips_and_marks_only_its_account,
    a_password_hash_is_replaced_only_while_it_is_still_the_current_one,
    list_is_oldest_first,
    a_new_session_is_live_until_exactly_its_end,
    rotation_succeeds_and_the_successor_is_usable,
    unknown_token_is_not_found,
    reuse_revokes_the_session_and_the_newest_token,
    expired_at_exactly_expires_at_and_then_revoked,
    a_consumed_token_of_an_expired_session_is_expired,
    revoked_session_token_is_not_found,
    revoke_by_token_accepts_a_consumed_token,
    revoke_by_unknown_token_is_false,
    a_local_revocation_names_the_session_and_its_user,
    revoke_user_sessions_counts_live_ones_and_spares_others,
    purge_is_bounded_by_its_limit_and_spares_live_sessions,
    purge_forgets_revoked_sessions,
    concurrent_rotations_of_one_token_yield_exactly_one_success,
    rotations_racing_revocation_and_purge_never_fail,
    both_stores_answer_a_ping,
    every_session_keeps_a_bounded_token_history,
    rotation_for_a_disabled_user_consumes_nothing_and_revokes_their_sessions,
    live_session_user_is_the_owner_of_a_live_session_only,
    create_session_for_a_disabled_or_unknown_user_stores_nothing,
    a_stored_account_that_does_not_parse_is_skipped_and_absent,
    a_replay_within_the_window_is_answered_and_changes_nothing,
    a_replay_after_the_window_or_for_another_successor_is_reuse,
    a_token_two_generations_old_is_reuse_inside_the_window,
    concurrent_rotations_with_a_window_consume_once_and_replay_the_rest,
    the_idle_end_is_reached_at_its_second_and_moved_by_each_rotation,
    a_new_session_beyond_the_cap_ends_the_least_recently_used,
    the_list_has_live_sessions_only_newest_use_first_with_their_origin,
    a_session_is_ended_by_id_only_by_its_owner_and_only_while_live,
    scoped_revocation_by_token_reaches_as_far_as_its_scope,
);

/// Every method of both ports on a database nobody answers for: `Unavailable`, quickly.
/// Needs no server, so it runs for PostgreSQL (a closed port) even without
/// `TEST_DATABASE_URL`, and for SQLite (a file in a directory that does not exist).
async fn every_method_is_unavailable_when_the_store_is_unreachable(store: Store) {
    let s = Stores::unreachable(store).expect("a real adapter");
    let started = std::time::Instant::now();
    let email = Email::parse("x@example.com").unwrap();
    let unavailable = |r: Result<(), StoreError>, what: &str| match r {
        Err(StoreError::Unavailable(_)) => {}
        other => panic!("{what}: expected Unavailable, got {other:?}"),
    };
    unavailable(
        s.users.find_by_email(&email).await.map(drop),
        "find_by_email",
    );
    unavailable(
        s.users.find_by_id(UserId::new_random()).await.map(drop),
        "find_by_id",
    );
    match s.users.create(user("x@example.com", T0)).await {
        Err(CreateUserError::Store(StoreError::Unavailable(_))) => {}
        other => panic!("create: expected Store(Unavailable), got {other:?}"),
    }
    unavailable(
        s.users.set_disabled(&email, true).await.map(drop),
        "set_disabled",
    );
    let hash = PasswordHash::new("$2b$04$x".into());
    unavailable(
        s.users
            .replace_password_hash(UserId::new_random(), &hash, &hash)
            .await
            .map(drop),
        "replace_password_hash",
    );
    unavailable(
        s.users
            .mark_email_verified(UserId::new_random())
            .await
            .map(drop),
        "mark_email_verified",
    );
    unavailable(s.users.list().await.map(drop), "list");
    let sess = Session {
        id: SessionId::new_random(),
        user_id: UserId::new_random(),
        created_at: at(T0),
        expires_at: at(T0 + DAY),
        idle_expires_at: None,
    };
    unavailable(
        s.sessions
            .create_session(&sess, token(), &origin(), 20)
            .await
            .map(drop),
        "create_session",
    );
    assert_refused(
        s.sessions.rotate(strict(token(), token(), at(T0))).await,
        "Unavailable",
    );
    unavailable(
        s.sessions
            .revoke_by_token(token(), LogoutScope::Local, at(T0), 0)
            .await
            .map(drop),
        "revoke_by_token",
    );
    unavailable(
        s.sessions
            .revoke_user_sessions(UserId::new_random())
            .await
            .map(drop),
        "revoke_user_sessions",
    );
    unavailable(
        s.sessions
            .live_session_user(sess.id, at(T0))
            .await
            .map(drop),
        "live_session_user",
    );
    unavailable(
        s.sessions
            .change_password(UserId::new_random(), &hash, &hash, Some(sess.id), at(T0))
            .await
            .map(drop),
        "change_password",
    );
    unavailable(s.sessions.purge(at(T0), 10).await.map(drop), "purge");
    unavailable(s.users.ping().await, "users.ping");
    unavailable(s.sessions.ping().await, "sessions.ping");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "fails fast, not a hang: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn postgres_on_a_closed_port_is_unavailable() {
    every_method_is_unavailable_when_the_store_is_unreachable(Store::Postgres).await;
}

#[tokio::test]
async fn sqlite_in_a_missing_directory_is_unavailable() {
    every_method_is_unavailable_when_the_store_is_unreachable(Store::Sqlite).await;
}

#[tokio::test]
async fn database_debug_and_errors_never_show_the_password() {
    use jwt_auth::adapters::outbound::db::{Database, PoolSettings};
    let url = "postgres://postgres:pw-canary@127.0.0.1:1/x";
    let db = Database::connect_lazy(url, PoolSettings::default()).unwrap();
    let shown = format!("{db:?} {}", db.describe());
    assert!(!shown.contains("pw-canary"), "{shown}");
    assert!(shown.contains("postgres@127.0.0.1:1/x"), "{shown}");
    let fast = PoolSettings {
        acquire_timeout: std::time::Duration::from_millis(500),
        ..PoolSettings::default()
    };
    let err = format!("{:#}", Database::connect(url, fast).await.unwrap_err());
    assert!(!err.contains("pw-canary"), "{err}");
    assert!(err.contains("cannot connect"), "{err}");
    assert!(!err.contains('\n'), "one line: {err}");
    let err = format!(
        "{:#}",
        Database::connect("postgres://u:pw-canary@host:notaport/x", fast)
            .await
            .unwrap_err()
    );
    assert!(!err.contains("pw-canary"), "{err}");
}
