//! The `ResetTokens` contract, the same cases on every store, for both purposes it serves:
//! password-reset tokens and email-verification tokens (`verification::`), which must never
//! be found in each other's store.

use std::sync::Arc;

use jwt_auth::adapters::outbound::memory_reset::InMemoryResetTokens;
use jwt_auth::domain::{Email, PasswordHash, ResetToken, Timestamp, User, UserId};
use jwt_auth::ports::ResetTokens;

use crate::helpers::{Store, Stores};

const T0: u64 = 1_800_000_000;

fn at(secs: u64) -> Timestamp {
    Timestamp::from_unix(secs)
}

/// The stores (kept alive: a database is dropped with them) and the reset tokens on them.
async fn tokens(store: Store) -> Option<(Stores, Arc<dyn ResetTokens>)> {
    Some(both(store).await?).map(|(s, reset, _)| (s, reset))
}

/// The stores, their reset tokens and their verification tokens.
async fn both(store: Store) -> Option<(Stores, Arc<dyn ResetTokens>, Arc<dyn ResetTokens>)> {
    let s = Stores::new(store).await?;
    let (reset, verify): (Arc<dyn ResetTokens>, Arc<dyn ResetTokens>) = match &s.db {
        Some(db) => (db.db.reset_tokens(), db.db.verification_tokens()),
        None => (
            Arc::new(InMemoryResetTokens::new()),
            Arc::new(InMemoryResetTokens::new()),
        ),
    };
    Some((s, reset, verify))
}

async fn account(s: &Stores) -> UserId {
    let u = User {
        id: UserId::new_random(),
        email: Email::parse(&format!("{}@example.com", uuid::Uuid::new_v4())).unwrap(),
        password_hash: PasswordHash::new("$2b$04$contract".into()),
        disabled: false,
        email_verified: false,
        created_at: at(T0),
    };
    s.users.create(u.clone()).await.unwrap();
    u.id
}

on_every_store!(
    a_token_of_one_purpose_is_unknown_to_the_other,
    a_token_is_consumed_once_for_its_user,
    a_newer_token_voids_the_older_one,
    an_expired_or_unknown_token_is_none,
    concurrent_consumes_of_one_token_have_one_winner,
);

async fn a_token_is_consumed_once_for_its_user(store: Store) {
    let Some((s, tokens)) = tokens(store).await else {
        return;
    };
    let (alice, bob) = (account(&s).await, account(&s).await);
    let (a, b) = (ResetToken::generate(), ResetToken::generate());
    tokens.issue(alice, a.hash(), at(T0 + 60)).await.unwrap();
    tokens.issue(bob, b.hash(), at(T0 + 60)).await.unwrap();
    assert_eq!(tokens.consume(a.hash(), at(T0)).await.unwrap(), Some(alice));
    assert_eq!(tokens.consume(a.hash(), at(T0)).await.unwrap(), None);
    // Bob's token is untouched by Alice's use.
    assert_eq!(
        tokens.consume(b.hash(), at(T0 + 59)).await.unwrap(),
        Some(bob)
    );
}

async fn a_newer_token_voids_the_older_one(store: Store) {
    let Some((s, tokens)) = tokens(store).await else {
        return;
    };
    let user = account(&s).await;
    let (old, new) = (ResetToken::generate(), ResetToken::generate());
    tokens.issue(user, old.hash(), at(T0 + 60)).await.unwrap();
    tokens.issue(user, new.hash(), at(T0 + 60)).await.unwrap();
    assert_eq!(tokens.consume(old.hash(), at(T0)).await.unwrap(), None);
    assert_eq!(
        tokens.consume(new.hash(), at(T0)).await.unwrap(),
        Some(user)
    );
}

async fn an_expired_or_unknown_token_is_none(store: Store) {
    let Some((s, tokens)) = tokens(store).await else {
        return;
    };
    let user = account(&s).await;
    let t = ResetToken::generate();
    tokens.issue(user, t.hash(), at(T0 + 60)).await.unwrap();
    assert_eq!(
        tokens
            .consume(ResetToken::generate().hash(), at(T0))
            .await
            .unwrap(),
        None
    );
    // Expiry is exclusive: at `expires_at` the token is gone.
    assert_eq!(tokens.consume(t.hash(), at(T0 + 60)).await.unwrap(), None);
    // And it stays gone: an expired token is not revived by a clock going back.
    assert_eq!(tokens.consume(t.hash(), at(T0)).await.unwrap(), None);
}

async fn concurrent_consumes_of_one_token_have_one_winner(store: Store) {
    let Some((s, tokens)) = tokens(store).await else {
        return;
    };
    let user = account(&s).await;
    let t = ResetToken::generate();
    tokens.issue(user, t.hash(), at(T0 + 60)).await.unwrap();
    let hash = t.hash();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let tokens = tokens.clone();
            tokio::spawn(async move { tokens.consume(hash, at(T0)).await.unwrap() })
        })
        .collect();
    let mut winners = 0;
    for task in tasks {
        if let Some(won) = task.await.unwrap() {
            assert_eq!(won, user);
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
}

async fn a_token_of_one_purpose_is_unknown_to_the_other(store: Store) {
    let Some((s, reset, verify)) = both(store).await else {
        return;
    };
    let user = account(&s).await;
    let (r, v) = (ResetToken::generate(), ResetToken::generate());
    reset.issue(user, r.hash(), at(T0 + 60)).await.unwrap();
    verify.issue(user, v.hash(), at(T0 + 60)).await.unwrap();
    assert_eq!(verify.consume(r.hash(), at(T0)).await.unwrap(), None);
    assert_eq!(reset.consume(v.hash(), at(T0)).await.unwrap(), None);
    // Neither failed lookup spent the token, and one purpose's issue did not void the other's.
    assert_eq!(reset.consume(r.hash(), at(T0)).await.unwrap(), Some(user));
    assert_eq!(verify.consume(v.hash(), at(T0)).await.unwrap(), Some(user));
}

/// The same contract on the verification-token store.
mod verification {
    use super::*;

    async fn verify_tokens(store: Store) -> Option<(Stores, Arc<dyn ResetTokens>)> {
        Some(both(store).await?).map(|(s, _, verify)| (s, verify))
    }

    on_every_store!(
        a_token_is_consumed_once_and_a_newer_one_voids_the_older,
        concurrent_consumes_of_one_token_have_one_winner,
    );

    async fn a_token_is_consumed_once_and_a_newer_one_voids_the_older(store: Store) {
        let Some((s, tokens)) = verify_tokens(store).await else {
            return;
        };
        let (alice, bob) = (account(&s).await, account(&s).await);
        let (old, new, b) = (
            ResetToken::generate(),
            ResetToken::generate(),
            ResetToken::generate(),
        );
        tokens.issue(alice, old.hash(), at(T0 + 60)).await.unwrap();
        tokens.issue(bob, b.hash(), at(T0 + 60)).await.unwrap();
        tokens.issue(alice, new.hash(), at(T0 + 60)).await.unwrap();
        assert_eq!(tokens.consume(old.hash(), at(T0)).await.unwrap(), None);
        assert_eq!(
            tokens.consume(new.hash(), at(T0)).await.unwrap(),
            Some(alice)
        );
        assert_eq!(tokens.consume(new.hash(), at(T0)).await.unwrap(), None);
        assert_eq!(
            tokens.consume(b.hash(), at(T0 + 60)).await.unwrap(),
            None,
            "expired"
        );
    }

    async fn concurrent_consumes_of_one_token_have_one_winner(store: Store) {
        let Some((s, tokens)) = verify_tokens(store).await else {
            return;
        };
        let user = account(&s).await;
        let t = ResetToken::generate();
        tokens.issue(user, t.hash(), at(T0 + 60)).await.unwrap();
        let hash = t.hash();
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let tokens = tokens.clone();
                tokio::spawn(async move { tokens.consume(hash, at(T0)).await.unwrap() })
            })
            .collect();
        let mut winners = 0;
        for task in tasks {
            winners += usize::from(task.await.unwrap().is_some());
        }
        assert_eq!(winners, 1);
    }
}
