//! Micro-benchmarks: access-token issue and verify; refresh-store consume (rotate) with 1,000
//! and 1,000,000 live sessions; the audit trail's `record` (p50/p99 printed).
//!
//! `cargo bench --bench micro`

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

use jwt_auth::adapters::outbound::jose_issuer::{IssuerConfig, JoseTokenIssuer};
use jwt_auth::adapters::outbound::memory::{InMemoryRefreshStore, InMemoryUserRepo};
use jwt_auth::adapters::outbound::verified_cache::{self, VerifiedCache};
use jwt_auth::domain::{
    AccessClaims, ClientAddress, Email, PasswordHash, RefreshTokenHash, Session, SessionId,
    SessionOrigin, SigningAlgorithm, Timestamp, User, UserId,
};
use jwt_auth::ports::{RefreshStore, Rotation, TokenIssuer, UserRepo};

const NOW: u64 = 1_800_000_000;

/// The in-memory store's futures are ready at once; poll them without a runtime so the
/// figures hold the store's work only.
fn ready<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => unreachable!("in-memory store futures never wait"),
    }
}

/// SplitMix64: cheap, well-spread bytes standing in for SHA-256 outputs.
struct Bytes32(u64);

impl Bytes32 {
    fn next(&mut self) -> RefreshTokenHash {
        let mut out = [0u8; 32];
        for chunk in out.chunks_mut(8) {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            chunk.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes());
        }
        RefreshTokenHash::from_bytes(out)
    }
}

/// A store with `n` live sessions, each holding one unconsumed token; returns those tokens.
fn populated(n: usize, rng: &mut Bytes32) -> (InMemoryRefreshStore, Vec<RefreshTokenHash>) {
    // Rotation checks the session's user: it must exist.
    let users = InMemoryUserRepo::new();
    let user = User {
        id: UserId::new_random(),
        email: Email::parse("bench@example.com").unwrap(),
        password_hash: PasswordHash::new("$2b$04$bench".into()),
        disabled: false,
        email_verified: true,
        created_at: Timestamp::from_unix(NOW),
    };
    let user_id = user.id;
    ready(users.create(user)).unwrap();
    let store = InMemoryRefreshStore::new(&users);
    let user = user_id;
    let mut tokens = Vec::with_capacity(n);
    for _ in 0..n {
        let session = Session {
            id: SessionId::new_random(),
            user_id: user,
            created_at: Timestamp::from_unix(NOW),
            expires_at: Timestamp::from_unix(NOW + 30 * 86_400),
            idle_expires_at: None,
        };
        let token = rng.next();
        let origin = SessionOrigin {
            user_agent: None,
            client: ClientAddress::unknown(),
        };
        assert!(ready(store.create_session(&session, token, &origin, usize::MAX)).unwrap());
        tokens.push(token);
    }
    (store, tokens)
}

fn tokens(c: &mut Criterion) {
    let jose = JoseTokenIssuer::new(IssuerConfig {
        algorithm: SigningAlgorithm::HS256,
        secret: b"bench-secret-0123456789-abcdefghijklmnopqrstuvwxyz".to_vec(),
        previous_secret: None,
        issuer: "jwt-auth".into(),
        audience: "jwt-auth-clients".into(),
        leeway_secs: 0,
    })
    .unwrap();
    // As the service wires it: josekit behind the verified-token cache.
    let issuer = VerifiedCache::new(Arc::new(jose), 0, verified_cache::DEFAULT_ENTRIES);
    let claims = AccessClaims {
        sub: UserId::new_random(),
        sid: SessionId::new_random(),
        iat: Timestamp::from_unix(NOW),
        exp: Timestamp::from_unix(NOW + 900),
        nbf: None,
        jti: uuid::Uuid::new_v4(),
    };
    let token = issuer.issue_access(&claims).unwrap();
    let mut group = c.benchmark_group("access_token");
    group.bench_function("issue", |b| {
        b.iter(|| issuer.issue_access(&claims).unwrap())
    });
    group.bench_function("verify (repeated token, cached)", |b| {
        b.iter(|| {
            issuer
                .verify_access(token.as_str(), Timestamp::from_unix(NOW + 1))
                .unwrap()
        })
    });
    // A token never seen before: the full decode, MAC and claim checks.
    group.bench_function("verify (new token, full check)", |b| {
        b.iter_batched(
            || {
                issuer
                    .issue_access(&AccessClaims {
                        jti: uuid::Uuid::new_v4(),
                        ..claims.clone()
                    })
                    .unwrap()
            },
            |fresh| {
                issuer
                    .verify_access(fresh.as_str(), Timestamp::from_unix(NOW + 1))
                    .unwrap()
            },
            criterion::BatchSize::SmallInput,
        )
    });
    group.finish();
}

/// Each timed call consumes a token never consumed before (so every call is a success), and
/// the store is rebuilt, untimed, once every session has been rotated: the live-session count
/// stays `n` and stored hashes stay between `n` and `2n`.
fn consume(c: &mut Criterion) {
    let mut group = c.benchmark_group("refresh_store_consume");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(4));
    for n in [1_000usize, 1_000_000] {
        let mut rng = Bytes32(n as u64);
        let (mut store, mut tokens) = populated(n, &mut rng);
        let mut cursor = 0;
        let now = Timestamp::from_unix(NOW + 60);
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    if cursor == n {
                        (store, tokens) = populated(n, &mut rng);
                        cursor = 0;
                    }
                    let successor = rng.next();
                    let started = Instant::now();
                    let session = ready(store.rotate(Rotation {
                        presented: tokens[cursor],
                        successor,
                        previous_successor: None,
                        now,
                        idle_expires_at: None,
                        reuse_grace_secs: 5,
                    }));
                    total += started.elapsed();
                    assert!(session.is_ok());
                    cursor += 1;
                }
                total
            });
        });
    }
    group.finish();
}

/// One `record` call per sample, timed alone: with the writer draining into the in-memory
/// ring (flushed, untimed, every 5,000 so the queue never fills), and into a full queue (the
/// drop path a hung store leaves). Prints p50/p99; criterion reports the mean.
fn audit_record(c: &mut Criterion) {
    use jwt_auth::adapters::outbound::audit::{AuditTrail, InMemoryAuditLog};
    use jwt_auth::domain::{EventKind, SecurityEvent, UserAgent};
    use jwt_auth::ports::SecurityEvents;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let event = SecurityEvent::new(EventKind::LoginSucceeded, Timestamp::from_unix(NOW))
        .user(UserId::new_random())
        .session(SessionId::new_random())
        .client(ClientAddress::from_ip("203.0.113.7".parse().unwrap()))
        .user_agent(UserAgent::parse(
            "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0",
        ));
    let percentiles = |mut samples: Vec<Duration>| {
        samples.sort_unstable();
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
        (at(0.5), at(0.99))
    };

    let trail = AuditTrail::new(Arc::new(InMemoryAuditLog::new()));
    trail.start();
    let mut samples = Vec::with_capacity(200_000);
    for _ in 0..40 {
        for _ in 0..5_000 {
            let e = event.clone();
            let started = Instant::now();
            trail.record(e);
            samples.push(started.elapsed());
        }
        rt.block_on(trail.flush()).unwrap();
    }
    let (p50, p99) = percentiles(samples);
    println!(
        "audit_record (queued): p50 {p50:?}, p99 {p99:?}, dropped {}",
        trail.dropped()
    );

    let full = AuditTrail::with_capacity(Arc::new(InMemoryAuditLog::new()), 1);
    full.record(event.clone());
    let mut samples = Vec::with_capacity(100_000);
    for _ in 0..100_000 {
        let e = event.clone();
        let started = Instant::now();
        full.record(e);
        samples.push(started.elapsed());
    }
    let (p50, p99) = percentiles(samples);
    println!("audit_record (queue full, dropped): p50 {p50:?}, p99 {p99:?}");

    c.bench_function("audit_record", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for i in 0..iters {
                if i % 5_000 == 4_999 {
                    rt.block_on(trail.flush()).unwrap();
                }
                let e = event.clone();
                let started = Instant::now();
                trail.record(e);
                total += started.elapsed();
            }
            total
        });
    });
}

criterion_group!(benches, tokens, consume, audit_record);
criterion_main!(benches);
