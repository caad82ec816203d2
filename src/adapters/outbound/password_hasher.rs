//! `PasswordHasher` over the stored formats of `password_formats`: verifies each kind, makes
//! new hashes under the configured `Policy` (bcrypt over a pre-hash by default, Argon2id with
//! `PASSWORD_HASH=argon2id`), and says when a stored hash should be replaced.
//!
//! Hashing runs on a pool of `max_concurrent` dedicated threads with a lower scheduling
//! priority (nice 10), so a flood of logins queues here and uses the cores only when the async
//! workers serving `/auth/me` and refresh leave them idle. The queue is bounded: past
//! `queue_max` waiting jobs a request is refused at once (`HashError::busy`), and a job whose
//! caller has gone (the request was dropped) is skipped instead of hashed for nobody.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::password_formats::{self, Policy};
use crate::domain::{Password, PasswordHash};
use crate::ports::{HashError, PasswordHasher};

/// Nice value of the hashing threads: well below the async workers under contention, yet they
/// take every idle cycle.
const HASH_THREAD_NICE: i32 = 10;

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of low-priority threads taking jobs from one bounded queue.
struct HashPool {
    jobs: mpsc::SyncSender<Job>,
    /// Jobs that ran (not skipped), for the tests.
    ran: Arc<AtomicUsize>,
    /// The queue depth and each job's wait for a thread, for the metrics.
    observed: Option<(metrics::Gauge, metrics::Histogram)>,
}

impl HashPool {
    fn new(threads: usize, queue_max: usize) -> anyhow::Result<Self> {
        let (jobs, queue) = mpsc::sync_channel::<Job>(queue_max);
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..threads {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("hasher-{i}"))
                .spawn(move || {
                    lower_own_priority();
                    loop {
                        let next = queue
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .recv();
                        let Ok(job) = next else { break }; // the hasher was dropped
                                                           // A panicking job drops its result sender, which the caller sees as an
                                                           // error; the thread itself lives on.
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                    }
                })?;
        }
        Ok(Self {
            jobs,
            ran: Arc::new(AtomicUsize::new(0)),
            observed: None,
        })
    }

    /// Runs `job` on the pool. A full queue is refused at once; a job whose caller dropped
    /// this future before a thread took it never runs.
    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let (done, result) = tokio::sync::oneshot::channel();
        let ran = self.ran.clone();
        let observed = self.observed.clone();
        let queued = std::time::Instant::now();
        let job: Job = Box::new(move || {
            if let Some((depth, wait)) = &observed {
                depth.decrement(1.0);
                wait.record(queued.elapsed().as_secs_f64());
            }
            if done.is_closed() {
                return; // the request is gone: nobody would read the answer
            }
            ran.fetch_add(1, Ordering::Relaxed);
            let _ = done.send(job());
        });
        // Counted before it is queued (a thread may take it at once and count it down,
        // skipped jobs too); taken back if it was refused.
        if let Some((depth, _)) = &self.observed {
            depth.increment(1.0);
        }
        self.jobs.try_send(job).map_err(|e| {
            if let Some((depth, _)) = &self.observed {
                depth.decrement(1.0);
            }
            match e {
                mpsc::TrySendError::Full(_) => HashError::busy(),
                mpsc::TrySendError::Disconnected(_) => {
                    HashError(anyhow::anyhow!("hashing pool stopped"))
                }
            }
        })?;
        result
            .await
            .map_err(|_| HashError(anyhow::anyhow!("hashing job failed")))
    }
}

#[cfg(target_os = "linux")]
fn lower_own_priority() {
    // SAFETY: setpriority only reads its integer arguments. On Linux, PRIO_PROCESS with who = 0
    // changes the calling thread alone. Raising one's own nice value needs no privilege;
    // failure just leaves the default priority.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, HASH_THREAD_NICE);
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_own_priority() {}

pub struct PolicyHasher {
    policy: Policy,
    pool: HashPool,
    /// Verified against when the user does not exist: made under the policy, so an unknown
    /// account costs what a known one does.
    dummy_hash: String,
}

impl std::fmt::Debug for PolicyHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyHasher")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// Jobs allowed to wait per hashing thread when no queue bound is given.
pub const QUEUE_PER_THREAD: usize = 64;

impl PolicyHasher {
    /// bcrypt at `cost`, `max_concurrent` threads with `QUEUE_PER_THREAD` waiting jobs each.
    ///
    /// # Errors
    /// When `cost` is outside 4 to 16.
    pub fn new(cost: u32, max_concurrent: usize) -> anyhow::Result<Self> {
        let threads = max_concurrent.max(1);
        Self::with_queue(cost, threads, QUEUE_PER_THREAD * threads)
    }

    /// bcrypt at `cost`, `max_concurrent` threads and at most `queue_max` jobs waiting.
    ///
    /// # Errors
    /// When `cost` is outside 4 to 16.
    pub fn with_queue(cost: u32, max_concurrent: usize, queue_max: usize) -> anyhow::Result<Self> {
        Self::with_policy(Policy::Bcrypt { cost }, max_concurrent, queue_max)
    }

    /// New hashes under `policy`, `max_concurrent` threads and at most `queue_max` jobs
    /// waiting for one.
    ///
    /// # Errors
    /// When the policy's parameters are outside the limits.
    pub fn with_policy(
        policy: Policy,
        max_concurrent: usize,
        queue_max: usize,
    ) -> anyhow::Result<Self> {
        policy.check().map_err(anyhow::Error::msg)?;
        let dummy_hash = password_formats::hash(policy, b"no such user: dummy")?;
        Ok(Self {
            policy,
            pool: HashPool::new(max_concurrent.max(1), queue_max)?,
            dummy_hash,
        })
    }

    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// Reports the queue depth to `depth` and each job's wait for a thread to `wait`.
    #[must_use]
    pub fn observed(mut self, depth: metrics::Gauge, wait: metrics::Histogram) -> Self {
        self.pool.observed = Some((depth, wait));
        self
    }
}

#[async_trait]
impl PasswordHasher for PolicyHasher {
    async fn hash(&self, password: &Password) -> Result<PasswordHash, HashError> {
        let input = password.expose().as_bytes().to_vec();
        let policy = self.policy;
        self.pool
            .run(move || password_formats::hash(policy, &input))
            .await?
            .map(PasswordHash::new)
            .map_err(HashError)
    }

    async fn verify(
        &self,
        password: &Password,
        hash: Option<PasswordHash>,
    ) -> Result<bool, HashError> {
        let input = password.expose().as_bytes().to_vec();
        let (stored, real) = match hash {
            Some(h) => (h.as_str().to_owned(), true),
            None => (self.dummy_hash.clone(), false),
        };
        let dummy = self.dummy_hash.clone();
        // A malformed or over-cost stored hash is a mismatch, not an outage; the dummy is
        // checked instead so that it takes as long as a real check.
        let matches = self
            .pool
            .run(move || {
                if password_formats::readable(&stored) {
                    password_formats::verify(&input, &stored)
                } else {
                    let _ = password_formats::verify(&input, &dummy);
                    password_formats::verify(&input, &stored)
                }
            })
            .await?;
        Ok(real && matches)
    }

    fn needs_rehash(&self, hash: &PasswordHash) -> bool {
        !password_formats::matches_policy(hash.as_str(), self.policy)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn pw(s: &str) -> Password {
        Password::parse(s.to_owned()).unwrap()
    }

    #[tokio::test]
    async fn hash_is_prehashed_bcrypt_at_the_configured_cost_and_verifies() {
        // Checklist case 48.
        let hasher = PolicyHasher::new(10, 2).unwrap();
        let hash = hasher.hash(&pw("correct horse")).await.unwrap();
        assert!(
            hash.as_str().starts_with("$bcrypt-hmac-sha256$v=1$r=10$"),
            "{}",
            hash.as_str()
        );
        assert!(hasher
            .verify(&pw("correct horse"), Some(hash.clone()))
            .await
            .unwrap());
        assert!(!hasher
            .verify(&pw("correct horsE"), Some(hash))
            .await
            .unwrap());
    }

    #[tokio::test]
    async fn bytes_past_72_still_count() {
        // Checklist cases 53 and 54: no prefix authenticates.
        let hasher = PolicyHasher::new(4, 2).unwrap();
        let long = format!("{}{}", "a".repeat(72), "tail-one");
        let hash = hasher.hash(&pw(&long)).await.unwrap();
        let other = format!("{}{}", "a".repeat(72), "tail-two");
        assert!(!hasher
            .verify(&pw(&other), Some(hash.clone()))
            .await
            .unwrap());
        assert!(!hasher
            .verify(&pw(&"a".repeat(72)), Some(hash.clone()))
            .await
            .unwrap());
        assert!(hasher.verify(&pw(&long), Some(hash)).await.unwrap());

        let emoji = "😀".repeat(20); // 80 bytes
        let hash = hasher.hash(&pw(&emoji)).await.unwrap();
        assert!(!hasher
            .verify(&pw(&"😀".repeat(18)), Some(hash.clone()))
            .await
            .unwrap());
        assert!(hasher.verify(&pw(&emoji), Some(hash)).await.unwrap());
        let ascii_then_emoji = format!("{}😀", "b".repeat(72));
        let hash = hasher.hash(&pw(&ascii_then_emoji)).await.unwrap();
        assert!(!hasher
            .verify(&pw(&format!("{}😃", "b".repeat(72))), Some(hash))
            .await
            .unwrap());
    }

    #[tokio::test]
    async fn nfc_and_nfd_are_different_passwords_and_nul_is_fine() {
        // Checklist case 54: verified as received, no normalization.
        let hasher = PolicyHasher::new(4, 2).unwrap();
        let nfc = "caf\u{e9}";
        let nfd = "cafe\u{301}";
        let hash = hasher.hash(&pw(nfc)).await.unwrap();
        assert!(hasher.verify(&pw(nfc), Some(hash.clone())).await.unwrap());
        assert!(!hasher.verify(&pw(nfd), Some(hash)).await.unwrap());
        let with_nul = "before\u{0}after";
        let hash = hasher.hash(&pw(with_nul)).await.unwrap();
        assert!(!hasher
            .verify(&pw("before"), Some(hash.clone()))
            .await
            .unwrap());
        assert!(hasher.verify(&pw(with_nul), Some(hash)).await.unwrap());
    }

    #[tokio::test]
    async fn missing_user_and_malformed_hash_never_match() {
        let hasher = PolicyHasher::new(4, 2).unwrap();
        assert!(!hasher
            .verify(&pw("no such user: dummy"), None)
            .await
            .unwrap());
        assert!(!hasher
            .verify(&pw("x"), Some(PasswordHash::new("not a hash".into())))
            .await
            .unwrap());
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn hashing_threads_run_at_lower_priority() {
        let hasher = PolicyHasher::new(4, 2).unwrap();
        // SAFETY: getpriority only reads its integer arguments.
        let nice = hasher
            .pool
            .run(|| unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) })
            .await
            .unwrap();
        assert_eq!(nice, HASH_THREAD_NICE);
    }

    #[tokio::test]
    async fn a_full_queue_is_refused_at_once() {
        // One thread, one waiting job; cost 12 keeps the first hash running meanwhile.
        let hasher = Arc::new(PolicyHasher::with_queue(12, 1, 1).unwrap());
        let spawn = |h: &Arc<PolicyHasher>| {
            let h = h.clone();
            tokio::spawn(async move { h.hash(&pw("a long passphrase")).await.map(drop) })
        };
        let running = spawn(&hasher);
        tokio::time::sleep(Duration::from_millis(30)).await;
        let queued = spawn(&hasher);
        tokio::time::sleep(Duration::from_millis(30)).await;
        let started = std::time::Instant::now();
        let refused = hasher.verify(&pw("x"), None).await.unwrap_err();
        assert!(refused.is_busy(), "{refused}");
        assert!(started.elapsed() < Duration::from_millis(50), "at once");
        assert!(matches!(
            crate::domain::InfraError::from(refused),
            crate::domain::InfraError::Unavailable(_)
        ));
        running.await.unwrap().unwrap();
        queued.await.unwrap().unwrap();
        assert_eq!(hasher.pool.ran.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn a_job_whose_caller_is_gone_never_runs() {
        let hasher = Arc::new(PolicyHasher::with_queue(12, 1, 4).unwrap());
        let running = {
            let h = hasher.clone();
            tokio::spawn(async move { h.hash(&pw("a long passphrase")).await.map(drop) })
        };
        tokio::time::sleep(Duration::from_millis(30)).await;
        // Queued behind the running hash, then dropped, as a request future is when its
        // client disconnects.
        let gave_up =
            tokio::time::timeout(Duration::from_millis(10), hasher.hash(&pw("abandoned"))).await;
        assert!(gave_up.is_err(), "still queued when dropped");
        running.await.unwrap().unwrap();
        // A later job runs after the abandoned one's turn: only two ever ran.
        hasher.hash(&pw("after")).await.unwrap();
        assert_eq!(hasher.pool.ran.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn rehash_is_needed_for_another_cost_or_scheme_only() {
        let hasher = PolicyHasher::new(5, 1).unwrap();
        let same = hasher.hash(&pw("correct horse")).await.unwrap();
        assert!(!hasher.needs_rehash(&same));
        let older = PolicyHasher::new(4, 1).unwrap();
        let cheaper = older.hash(&pw("correct horse")).await.unwrap();
        assert!(
            hasher.needs_rehash(&cheaper),
            "a cost-4 hash under a cost-5 policy"
        );
        assert!(!older.needs_rehash(&cheaper));
        let dearer = PolicyHasher::new(6, 1)
            .unwrap()
            .hash(&pw("x"))
            .await
            .unwrap();
        assert!(
            hasher.needs_rehash(&dearer),
            "a higher cost is another policy too"
        );
        let other_scheme = same
            .as_str()
            .replacen("bcrypt-hmac-sha256$v=1", "bcrypt", 1);
        assert!(hasher.needs_rehash(&PasswordHash::new(other_scheme)));
        assert!(hasher.needs_rehash(&PasswordHash::new("not a hash".into())));
        let legacy = bcrypt::non_truncating_hash(password_formats::prehash(b"x"), 5).unwrap();
        assert!(hasher.needs_rehash(&PasswordHash::new(legacy)));
    }

    #[tokio::test]
    async fn argon2id_policy_hashes_verifies_and_rehashes_other_formats() {
        let policy = Policy::Argon2id {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        };
        let hasher = PolicyHasher::with_policy(policy, 1, 4).unwrap();
        let hash = hasher.hash(&pw("correct horse")).await.unwrap();
        assert!(hash.as_str().starts_with("$argon2id$v=19$m=1024,t=1,p=1$"));
        assert!(!hasher.needs_rehash(&hash));
        assert!(hasher
            .verify(&pw("correct horse"), Some(hash.clone()))
            .await
            .unwrap());
        assert!(!hasher.verify(&pw("wrong"), Some(hash)).await.unwrap());
        assert!(!hasher
            .verify(&pw("no such user: dummy"), None)
            .await
            .unwrap());
        // A bcrypt hash from before the switch still verifies, and is to be replaced.
        let old = PolicyHasher::new(4, 1)
            .unwrap()
            .hash(&pw("pw"))
            .await
            .unwrap();
        assert!(hasher.verify(&pw("pw"), Some(old.clone())).await.unwrap());
        assert!(hasher.needs_rehash(&old));
    }

    #[tokio::test]
    async fn the_dummy_follows_the_policy() {
        let argon = PolicyHasher::with_policy(
            Policy::Argon2id {
                memory_kib: 1024,
                iterations: 1,
                parallelism: 1,
            },
            1,
            4,
        )
        .unwrap();
        assert!(!argon.needs_rehash(&PasswordHash::new(argon.dummy_hash.clone())));
        let bcrypt = PolicyHasher::new(5, 1).unwrap();
        assert!(!bcrypt.needs_rehash(&PasswordHash::new(bcrypt.dummy_hash.clone())));
    }

    #[tokio::test]
    async fn an_unreadable_stored_hash_costs_what_a_real_check_costs() {
        let hasher = PolicyHasher::new(10, 1).unwrap();
        let real = hasher.hash(&pw("pw")).await.unwrap();
        let over_cost = PasswordHash::new(real.as_str().replacen("r=10", "r=31", 1));
        let timed = |hash: PasswordHash| {
            let hasher = &hasher;
            async move {
                let started = std::time::Instant::now();
                assert!(!hasher.verify(&pw("wrong"), Some(hash)).await.unwrap());
                started.elapsed()
            }
        };
        let genuine = timed(real).await;
        for bad in [over_cost, PasswordHash::new("garbage".into())] {
            let took = timed(bad).await;
            // Without the dummy check these return in microseconds.
            assert!(took * 4 > genuine, "{took:?} against {genuine:?}");
        }
    }

    #[test]
    fn out_of_range_cost_is_refused() {
        assert!(PolicyHasher::new(3, 1).is_err());
        assert!(PolicyHasher::new(17, 1).is_err());
        assert!(PolicyHasher::new(32, 1).is_err());
    }
}
