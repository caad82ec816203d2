//! The `ResetTokens` contract, the same cases on every store.

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
    let s = Stores::new(store).await?;
    let tokens: Arc<dyn ResetTokens> = match &s.db {
        Some(db) => db.db.reset_tokens(),
        None => Arc::new(InMemoryResetTokens::new()),
    };
    Some((s, tokens))
}

async fn account(s: &Stores) -> UserId {
    let u = User {
        id: UserId::new_random(),
        email: Email::parse(&format!("{}@example.com", uuid::Uuid::new_v4())).unwrap(),
        password_hash: PasswordHash::new("$2b$04$contract".into()),
        disabled: false,
        created_at: at(T0),
    };
    s.users.create(u.clone()).await.unwrap();
    u.id
}

on_every_store!(
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
