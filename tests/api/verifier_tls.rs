//! The library's verifier over `https://`: the real app behind a TLS listener whose certificate
//! a CA made in the test issued. Trusting that CA it verifies and honours a logout (polled and
//! pushed); without it, or for a certificate of another name, it does not start, and a started
//! one answered with an untrusted certificate takes nothing from it. And what a
//! hostile or broken auth service can answer: plain `http://` beyond loopback is refused
//! before any connection, an oversized JWKS or feed is refused without being read whole, a
//! redirect is not followed and a service that never answers does not hang it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

use jwt_auth::adapters::inbound::http::MAX_ENTRIES;
use jwt_auth::config::Settings;
use jwt_auth::domain::SigningAlgorithm;
use jwt_auth::startup::{Adapters, Application};
use jwt_auth::verifier::{Verifier, VerifierConfig, VerifyError, MAX_FEED_BYTES, MAX_JWKS_BYTES};

use crate::helpers::{DEMO_EMAIL, DEMO_PASSWORD};

const ALG: SigningAlgorithm = SigningAlgorithm::EdDSA;
/// With push the feed is polled this rarely: a refusal sooner came by the stream.
const PUSH_POLL: Duration = Duration::from_secs(2);
const POLL: Duration = Duration::from_millis(200);

/// A CA and a server certificate it issued for `names`.
struct Pki {
    ca_pem: String,
    chain: Vec<CertificateDer<'static>>,
    key: PrivatePkcs8KeyDer<'static>,
}

fn issue(names: &[&str]) -> Pki {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "jwt-auth test CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    Pki {
        ca_pem: ca.pem(),
        chain: vec![leaf.der().clone(), ca.der().clone()],
        key: PrivatePkcs8KeyDer::from(leaf_key.serialize_der()),
    }
}

fn acceptor(pki: &Pki) -> TlsAcceptor {
    // ring, as reqwest's rustls uses: no process-wide provider to pick.
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(pki.chain.clone(), PrivateKeyDer::Pkcs8(pki.key.clone_key()))
        .unwrap();
    TlsAcceptor::from(Arc::new(config))
}

/// The certificate a TLS front presents from its next connection on.
type Presents = Arc<std::sync::RwLock<TlsAcceptor>>;

/// A TLS listener on loopback passing each connection on to `backend`; its port.
async fn tls_front(pki: &Pki, backend: u16) -> u16 {
    tls_front_swappable(pki, backend).await.0
}

async fn tls_front_swappable(pki: &Pki, backend: u16) -> (u16, Presents) {
    let presents: Presents = Arc::new(std::sync::RwLock::new(acceptor(pki)));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let current = presents.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = current.read().unwrap().clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut app) = TcpStream::connect(("127.0.0.1", backend)).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut app).await;
            });
        }
    });
    (port, presents)
}

struct App {
    port: u16,
    settings: Settings,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn app() -> App {
    let settings = Settings::from_pairs(&[
        ("PORT", "0"),
        ("BCRYPT_COST", "4"),
        ("JWT_ALGORITHM", ALG.name()),
    ])
    .unwrap();
    let adapters = Adapters::in_memory(&settings).unwrap();
    let app = Application::build(&settings, &adapters).await.unwrap();
    let port = app.port();
    let server = tokio::spawn(app.run_until_stopped());
    App {
        port,
        settings,
        server,
    }
}

fn config(app: &App, base_url: String) -> VerifierConfig {
    VerifierConfig {
        poll_interval: POLL,
        push: false,
        ..VerifierConfig::new(
            base_url,
            app.settings.jwt_issuer.clone(),
            app.settings.jwt_audience.clone(),
            ALG,
        )
    }
}

/// The error with its causes, as a log line would show it.
fn refusal(result: anyhow::Result<Verifier>) -> String {
    match result {
        Ok(_) => panic!("the verifier started"),
        Err(e) => {
            let e = format!("{e:#}");
            println!("refused: {e}");
            e
        }
    }
}

async fn login(http: &reqwest::Client, base: &str) -> (String, String) {
    let resp = http
        .post(format!("{base}/auth/login"))
        .json(&serde_json::json!({ "email": DEMO_EMAIL, "password": DEMO_PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let cookie = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix("refresh_token="))
        .and_then(|c| c.split(';').next())
        .unwrap()
        .to_owned();
    let body: serde_json::Value = resp.json().await.unwrap();
    (body["access_token"].as_str().unwrap().to_owned(), cookie)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn over_tls_a_verifier_trusting_the_ca_refuses_a_logged_out_session() {
    let app = app().await;
    let pki = issue(&["localhost", "127.0.0.1"]);
    let front = tls_front(&pki, app.port).await;
    let plain = format!("http://127.0.0.1:{}", app.port);
    let http = reqwest::Client::new();
    for (push, base) in [
        (false, format!("https://localhost:{front}")),
        (true, format!("https://127.0.0.1:{front}")),
    ] {
        let verifier = Verifier::start(VerifierConfig {
            push,
            poll_interval: if push { PUSH_POLL } else { POLL },
            extra_root_pem: Some(pki.ca_pem.clone().into_bytes()),
            ..config(&app, base)
        })
        .await
        .unwrap();
        // The stream is opened in the background.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (token, cookie) = login(&http, &plain).await;
        let claims = verifier.verify(&token).expect("a fresh token verifies");
        assert!(!claims.sid.is_empty());
        let resp = http
            .post(format!("{plain}/auth/logout"))
            .header("cookie", format!("refresh_token={cookie}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 204);
        let start = Instant::now();
        while !matches!(verifier.verify(&token), Err(VerifyError::Revoked)) {
            assert!(start.elapsed() < Duration::from_secs(5), "not refused");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let delay = start.elapsed();
        println!("over TLS (push {push}): logout -> refused after {delay:?}");
        assert!(delay <= Duration::from_secs(1), "{delay:?}");
        if push {
            assert!(delay < PUSH_POLL / 2, "came by the stream: {delay:?}");
        }
    }

    // What a poll costs over TLS (a fresh connection each, the session resumed) and in plain.
    for base in [format!("https://localhost:{front}"), plain.clone()] {
        let verifier = Verifier::start(VerifierConfig {
            extra_root_pem: Some(pki.ca_pem.clone().into_bytes()),
            poll_interval: Duration::from_secs(3600),
            ..config(&app, base.clone())
        })
        .await
        .unwrap();
        let start = Instant::now();
        for _ in 0..20 {
            verifier.poll_feed().await.unwrap();
        }
        println!("{base}: a feed poll takes {:?}", start.elapsed() / 20);
    }
    app.server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_ca_trusted_the_verifier_does_not_start() {
    let app = app().await;
    let pki = issue(&["localhost", "127.0.0.1"]);
    let front = tls_front(&pki, app.port).await;
    let base = format!("https://127.0.0.1:{front}");

    // The webpki roots alone: the test CA is not among them.
    let e = refusal(Verifier::start(config(&app, base.clone())).await);
    assert!(e.contains("certificate"), "{e}");

    // Another CA trusted: the same.
    let other = issue(&["localhost", "127.0.0.1"]);
    let e = refusal(
        Verifier::start(VerifierConfig {
            extra_root_pem: Some(other.ca_pem.into_bytes()),
            ..config(&app, base.clone())
        })
        .await,
    );
    assert!(e.contains("certificate"), "{e}");

    // The right CA, but a certificate for another name.
    let elsewhere = issue(&["auth.example"]);
    let front_elsewhere = tls_front(&elsewhere, app.port).await;
    let e = refusal(
        Verifier::start(VerifierConfig {
            extra_root_pem: Some(elsewhere.ca_pem.into_bytes()),
            ..config(&app, format!("https://127.0.0.1:{front_elsewhere}"))
        })
        .await,
    );
    assert!(e.contains("certificate"), "{e}");

    // A CA file that holds no certificate is refused, not ignored.
    let e = refusal(
        Verifier::start(VerifierConfig {
            extra_root_pem: Some(b"not a certificate".to_vec()),
            ..config(&app, base.clone())
        })
        .await,
    );
    assert!(e.contains("extra_root_pem"), "{e}");

    // And plain HTTP to the TLS port is not taken for the service either.
    let e = refusal(Verifier::start(config(&app, format!("http://127.0.0.1:{front}"))).await);
    assert!(!e.is_empty());

    // The right CA: it starts, so the refusals above were the certificate's.
    let verifier = Verifier::start(VerifierConfig {
        extra_root_pem: Some(pki.ca_pem.clone().into_bytes()),
        ..config(&app, base)
    })
    .await;
    assert!(verifier.is_ok(), "{:?}", verifier.err());

    // Started, then answered with a certificate of a CA it does not trust (someone else took
    // the address): no key or revocation is taken from it, and what it holds stays.
    let (port, presents) = tls_front_swappable(&pki, app.port).await;
    let verifier = Verifier::start(VerifierConfig {
        extra_root_pem: Some(pki.ca_pem.clone().into_bytes()),
        poll_interval: Duration::from_secs(3600),
        ..config(&app, format!("https://localhost:{port}"))
    })
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let plain = format!("http://127.0.0.1:{}", app.port);
    let (token, _) = login(&http, &plain).await;
    assert!(verifier.verify(&token).is_ok());
    *presents.write().unwrap() = acceptor(&issue(&["localhost", "127.0.0.1"]));
    let e = format!("{:#}", verifier.refresh_keys().await.unwrap_err());
    assert!(e.contains("certificate"), "{e}");
    let e = format!("{:#}", verifier.poll_feed().await.unwrap_err());
    assert!(e.contains("certificate"), "{e}");
    assert!(
        verifier.verify(&token).is_ok(),
        "the keys held still verify"
    );
    assert!(verifier.verify("not.a.token").is_err());
    app.server.abort();
}

#[tokio::test]
async fn plain_http_to_a_host_beyond_loopback_is_refused_before_any_connection() {
    for url in [
        "http://auth.example:8000",
        "http://AUTH.example",
        "http://10.0.0.7:8000",
        "http://[2001:db8::1]:8000",
        "http://127.0.0.1.nip.example",
        "http://localhost.example",
    ] {
        let start = Instant::now();
        let e = refusal(
            Verifier::start(VerifierConfig::new(
                url,
                "jwt-auth",
                "jwt-auth-clients",
                ALG,
            ))
            .await,
        );
        assert!(e.contains("plain http"), "{url}: {e}");
        // Refused from the URL alone: no name was looked up, nothing was connected to.
        assert!(start.elapsed() < Duration::from_millis(100), "{url}");
    }
    for url in [
        "ftp://127.0.0.1/",
        "file:///etc/passwd",
        "127.0.0.1:8000",
        "https://",
    ] {
        let e = refusal(
            Verifier::start(VerifierConfig::new(
                url,
                "jwt-auth",
                "jwt-auth-clients",
                ALG,
            ))
            .await,
        );
        assert!(e.contains("base_url"), "{url}: {e}");
    }
}

/// What the hostile server answers for one path.
#[derive(Clone)]
enum Answer {
    Json(String),
    Redirect(String),
    /// A body without end (stopped at `ENDLESS`), announced by `Content-Length` or chunked.
    Endless {
        announced: bool,
    },
    /// Reads the request and never answers.
    Silent,
}

/// Bytes of an endless body the server sends at most: far beyond any bound of the verifier.
const ENDLESS: u64 = 1024 * 1024 * 1024;
/// What the server gets written before the verifier hangs up: the bound plus what the socket
/// buffers on both sides hold (the receiver's grows up to `tcp_rmem`'s 32 MiB here).
const WRITTEN_AT_MOST: u64 = 64 * 1024 * 1024;

#[derive(Default)]
struct Seen {
    requests: AtomicU64,
    body_bytes: AtomicU64,
}

/// A plain-HTTP server on loopback answering each path with `answer`, one request a
/// connection.
async fn hostile(answer: impl Fn(&str) -> Answer + Send + Sync + 'static) -> (u16, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Seen::default());
    let answer = Arc::new(answer);
    let counts = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let (answer, seen) = (answer.clone(), counts.clone());
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head);
                let path = head.split(' ').nth(1).unwrap_or("/");
                let path = path.split('?').next().unwrap_or(path).to_owned();
                seen.requests.fetch_add(1, Ordering::Relaxed);
                match answer(&path) {
                    Answer::Json(body) => {
                        let _ = tcp
                            .write_all(
                                format!(
                                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                                    body.len()
                                )
                                .as_bytes(),
                            )
                            .await;
                    }
                    Answer::Redirect(to) => {
                        let _ = tcp
                            .write_all(
                                format!(
                                    "HTTP/1.1 302 Found\r\nlocation: {to}\r\n\
                                     content-length: 0\r\nconnection: close\r\n\r\n"
                                )
                                .as_bytes(),
                            )
                            .await;
                    }
                    Answer::Endless { announced } => {
                        let length = if announced {
                            format!("content-length: {ENDLESS}")
                        } else {
                            "transfer-encoding: chunked".to_owned()
                        };
                        let head = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n{length}\r\n\r\n"
                        );
                        if tcp.write_all(head.as_bytes()).await.is_err() {
                            return;
                        }
                        let mut chunk = b"{\"keys\":[".to_vec();
                        chunk.resize(64 * 1024, b' ');
                        let mut sent = 0;
                        while sent < ENDLESS {
                            let frame = if announced {
                                chunk.clone()
                            } else {
                                let mut f = format!("{:x}\r\n", chunk.len()).into_bytes();
                                f.extend_from_slice(&chunk);
                                f.extend_from_slice(b"\r\n");
                                f
                            };
                            if tcp.write_all(&frame).await.is_err() {
                                return;
                            }
                            sent += chunk.len() as u64;
                            seen.body_bytes
                                .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                            chunk[..9].copy_from_slice(b"         ");
                        }
                    }
                    Answer::Silent => {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                    }
                }
            });
        }
    });
    (port, seen)
}

/// The real app's JWKS, for a hostile server to serve beside its bad answers.
async fn real_jwks(app: &App) -> String {
    reqwest::get(format!(
        "http://127.0.0.1:{}/.well-known/jwks.json",
        app.port
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_jwks_or_feed_is_refused_without_being_read_whole() {
    let app = app().await;
    let jwks = real_jwks(&app).await;
    // Well under the bounds: the real answers pass them. A full feed page at its longest
    // (every number at u64::MAX) is under a third of the feed's bound.
    assert!(jwks.len() < MAX_JWKS_BYTES / 100, "{}", jwks.len());
    let entry = serde_json::json!({
        "sid": uuid::Uuid::new_v4().to_string(),
        "revoked_at": u64::MAX,
        "until": u64::MAX,
    });
    let full = serde_json::json!({
        "cursor": u64::MAX,
        "entries": vec![entry; MAX_ENTRIES],
        "more": true,
        "window_secs": u64::MAX,
    });
    let full = serde_json::to_vec(&full).unwrap().len();
    println!("a full feed page: {full} bytes");
    assert!(full < MAX_FEED_BYTES / 3, "{full}");

    for announced in [true, false] {
        let (port, seen) = hostile(move |_| Answer::Endless { announced }).await;
        let start = Instant::now();
        let e = refusal(Verifier::start(config(&app, format!("http://127.0.0.1:{port}"))).await);
        let sent = seen.body_bytes.load(Ordering::Relaxed);
        println!(
            "oversized JWKS (content-length announced: {announced}): refused after {:?}, \
             {sent} bytes written by the server: {e}",
            start.elapsed()
        );
        assert!(e.contains(&format!("over {MAX_JWKS_BYTES}")), "{e}");
        // Announced, it is refused by its Content-Length before the body is read.
        assert_eq!(
            e.contains(&format!("an answer of {ENDLESS} bytes")),
            announced,
            "{e}"
        );
        // The bound plus the socket buffers, not the 1 GiB on offer.
        assert!(sent < WRITTEN_AT_MOST, "{sent}");
        assert!(start.elapsed() < Duration::from_secs(4));
    }

    for announced in [true, false] {
        let keys = jwks.clone();
        let (port, seen) = hostile(move |path| {
            if path == "/.well-known/jwks.json" {
                Answer::Json(keys.clone())
            } else {
                Answer::Endless { announced }
            }
        })
        .await;
        // The feed's failure at start is not fatal: the keys are there.
        let verifier = Verifier::start(config(&app, format!("http://127.0.0.1:{port}")))
            .await
            .unwrap();
        let before = seen.body_bytes.load(Ordering::Relaxed);
        let start = Instant::now();
        let e = format!("{:#}", verifier.poll_feed().await.unwrap_err());
        let sent = seen.body_bytes.load(Ordering::Relaxed) - before;
        println!(
            "oversized feed (content-length announced: {announced}): refused after {:?}, \
             {sent} bytes written by the server: {e}",
            start.elapsed()
        );
        assert!(e.contains(&format!("over {MAX_FEED_BYTES}")), "{e}");
        assert_eq!(
            e.contains(&format!("an answer of {ENDLESS} bytes")),
            announced,
            "{e}"
        );
        assert!(sent < WRITTEN_AT_MOST, "{sent}");
        assert_eq!(verifier.revoked_sessions(), 0);
        drop(verifier);
    }
    app.server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_is_not_followed() {
    let app = app().await;
    let jwks = real_jwks(&app).await;
    // Where a redirect points: a server with good keys and a feed, counting who comes.
    let keys = jwks.clone();
    let (elsewhere, seen_elsewhere) = hostile(move |path| {
        if path == "/.well-known/jwks.json" {
            Answer::Json(keys.clone())
        } else {
            Answer::Json(r#"{"cursor":1,"entries":[],"more":false,"window_secs":900}"#.into())
        }
    })
    .await;

    let to = format!("http://127.0.0.1:{elsewhere}");
    let target = to.clone();
    let (port, _) = hostile(move |path| Answer::Redirect(format!("{target}{path}"))).await;
    let e = refusal(Verifier::start(config(&app, format!("http://127.0.0.1:{port}"))).await);
    assert!(e.contains("302") && e.contains("not followed"), "{e}");

    // The keys at the origin, the feed and the stream redirected.
    let keys = jwks.clone();
    let (port, seen) = hostile(move |path| {
        if path == "/.well-known/jwks.json" {
            Answer::Json(keys.clone())
        } else {
            Answer::Redirect(format!("{to}{path}"))
        }
    })
    .await;
    let verifier = Verifier::start(VerifierConfig {
        push: true,
        ..config(&app, format!("http://127.0.0.1:{port}"))
    })
    .await
    .unwrap();
    let e = format!("{:#}", verifier.poll_feed().await.unwrap_err());
    assert!(e.contains("302"), "{e}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The JWKS, feed polls and at least one stream attempt reached the origin...
    assert!(seen.requests.load(Ordering::Relaxed) >= 4);
    // ...and nothing went where they pointed.
    assert_eq!(seen_elsewhere.requests.load(Ordering::Relaxed), 0);
    app.server.abort();
}

#[tokio::test]
async fn a_service_that_never_answers_does_not_hang_the_verifier() {
    let (port, seen) = hostile(|_| Answer::Silent).await;
    let start = Instant::now();
    let e = refusal(
        Verifier::start(VerifierConfig::new(
            format!("http://127.0.0.1:{port}"),
            "jwt-auth",
            "jwt-auth-clients",
            ALG,
        ))
        .await,
    );
    let waited = start.elapsed();
    println!("a silent service: refused after {waited:?}: {e}");
    assert_eq!(seen.requests.load(Ordering::Relaxed), 1);
    assert!(e.contains("no answer within 5 s"), "{e}");
    assert!(waited < Duration::from_secs(7), "{waited:?}");
}
