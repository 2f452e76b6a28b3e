//! Password hashes: Argon2id in the PHC string format, computed on a small
//! pool of threads of their own (one per core) that keep Argon2's working
//! memory between runs, so sign-ups and logins neither block the async
//! runtime nor fragment the allocator.

use crate::core::error::ApiError;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{self, Output, ParamsString, PasswordHash, Salt, SaltString};
use argon2::{Argon2, Params};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};

/// A password computation for a hashing thread.
type HashJob = Box<dyn FnOnce() + Send>;

/// Password hashes run on their own threads, one per core, fed by a queue.
/// Each Argon2 run takes 19 MiB and a core: more at once adds no throughput,
/// and on the shared blocking pool successive runs landed on ever new threads,
/// each leaving its 19 MiB in its own allocator arena (2 000 sign-ups left
/// the process at ~800 MB). A fixed thread reuses its arena's buffer.
fn hashing_threads() -> &'static mpsc::Sender<HashJob> {
    static JOBS: OnceLock<mpsc::Sender<HashJob>> = OnceLock::new();
    JOBS.get_or_init(|| {
        let (jobs, queue) = mpsc::channel::<HashJob>();
        let queue = Arc::new(Mutex::new(queue));
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        for n in 0..cores {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("sori-argon2-{n}"))
                .spawn(move || run_hash_jobs(&queue));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a password hashing thread");
            }
        }
        jobs
    })
}

/// One hashing thread's loop, until the queue is gone.
fn run_hash_jobs(queue: &Mutex<mpsc::Receiver<HashJob>>) {
    loop {
        let next = match queue.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        let Ok(job) = next else { return };
        // A panicking job drops its answer (the caller sees an error); the
        // thread carries on.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
    }
}

/// Password computations queued or running per hashing thread, at most.
/// Past this a sign-up or login is refused at once (503, retry in a second)
/// instead of waiting behind a burst: 16 runs of ~30 ms each is half a second
/// of waiting, and a flood of logins cannot starve everyone else's.
const QUEUE_PER_THREAD: usize = 16;

/// Counts the computations admitted to the hashing threads against a limit.
struct Admission {
    admitted: AtomicUsize,
    limit: usize,
}

/// A place in the [`Admission`] count, given back when dropped.
struct Admitted<'a>(&'a Admission);

impl Admission {
    const fn new(limit: usize) -> Self {
        Self {
            admitted: AtomicUsize::new(0),
            limit,
        }
    }

    fn enter(&self) -> Option<Admitted<'_>> {
        let limit = self.limit;
        self.admitted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .ok()
            .map(|_| Admitted(self))
    }
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        self.0.admitted.fetch_sub(1, Ordering::AcqRel);
    }
}

fn admission() -> &'static Admission {
    static ADMISSION: OnceLock<Admission> = OnceLock::new();
    ADMISSION.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Admission::new(cores * QUEUE_PER_THREAD)
    })
}

/// Why a password computation gave no answer: the queue was full, no
/// hashing thread could take it, or it panicked.
#[derive(Debug, thiserror::Error)]
enum HashingFailed {
    #[error("password hashing is busy")]
    Busy,
    #[error("password hashing is unavailable")]
    Unavailable,
}

impl From<HashingFailed> for ApiError {
    fn from(e: HashingFailed) -> Self {
        match e {
            HashingFailed::Busy => ApiError::Busy { retry_after: 1 },
            HashingFailed::Unavailable => ApiError::Internal(Box::new(e)),
        }
    }
}

/// Runs one Argon2 computation on a [`hashing_threads`] thread, if the
/// queue has room.
async fn argon2_job<T: Send + 'static>(
    job: impl FnOnce() -> T + Send + 'static,
) -> Result<T, HashingFailed> {
    let _place = admission().enter().ok_or(HashingFailed::Busy)?;
    let (answer, answered) = tokio::sync::oneshot::channel();
    let job: HashJob = Box::new(move || {
        let _ = answer.send(job());
    });
    hashing_threads()
        .send(job)
        .map_err(|_| HashingFailed::Unavailable)?;
    answered.await.map_err(|_| HashingFailed::Unavailable)
}

/// A PHC-format Argon2id hash (OWASP's parameters: 19 MiB, 2 passes). CPU
/// heavy, so it runs on a hashing thread.
pub async fn hash_password(password: String) -> Result<String, ApiError> {
    argon2_job(move || phc_hash(password.as_bytes()))
        .await?
        .map_err(|e| ApiError::Internal(e.to_string().into()))
}

/// Checks a password against a stored hash, or against a dummy hash when the
/// account does not exist, so both cases take the same time. Fails only when
/// the hashing queue is full (503) or hashing is broken.
pub async fn verify_password(password: String, hash: Option<String>) -> Result<bool, ApiError> {
    let checked = argon2_job(move || {
        let hash = hash.unwrap_or_else(|| dummy_hash().to_owned());
        phc_matches(password.as_bytes(), &hash) && hash != dummy_hash()
    })
    .await?;
    Ok(checked)
}

thread_local! {
    /// Argon2's working memory (19 MiB at the default parameters), kept by
    /// each hashing thread for its next run instead of allocated per run:
    /// freed and allocated again, it fragments the allocator's heap, which
    /// then keeps most of it (~350 KiB of resident memory per sign-up).
    static ARGON2_MEMORY: std::cell::RefCell<Vec<argon2::Block>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The raw Argon2 output of `password` and `salt`, `len` bytes, computed in
/// this thread's [`ARGON2_MEMORY`].
fn argon2_output(
    argon: &Argon2,
    password: &[u8],
    salt: Salt<'_>,
    len: usize,
) -> password_hash::Result<Output> {
    let mut salt_bytes = [0u8; Salt::MAX_LENGTH];
    let salt = salt.decode_b64(&mut salt_bytes)?;
    ARGON2_MEMORY.with_borrow_mut(|memory| {
        memory.resize(argon.params().block_count(), argon2::Block::default());
        Output::init_with(len, |out| {
            Ok(argon.hash_password_into_with_memory(password, salt, out, &mut memory[..])?)
        })
    })
}

/// A new PHC-format Argon2id hash of `password` (the default parameters,
/// a random salt): what `Argon2::hash_password` writes.
fn phc_hash(password: &[u8]) -> password_hash::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    let argon = Argon2::default();
    let output = argon2_output(&argon, password, salt.as_salt(), Params::DEFAULT_OUTPUT_LEN)?;
    let hash = PasswordHash {
        algorithm: argon2::Algorithm::default().ident(),
        version: Some(argon2::Version::default().into()),
        params: ParamsString::try_from(argon.params())?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(hash.to_string())
}

/// Whether `password` matches the PHC hash `stored`, with the algorithm,
/// version and parameters the hash names (as `PasswordVerifier` does);
/// the outputs are compared in constant time.
fn phc_matches(password: &[u8], stored: &str) -> bool {
    let check = || -> password_hash::Result<bool> {
        let parsed = PasswordHash::new(stored)?;
        let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
            return Ok(false);
        };
        let version = parsed
            .version
            .map(argon2::Version::try_from)
            .transpose()?
            .unwrap_or_default();
        let argon = Argon2::new(
            argon2::Algorithm::try_from(parsed.algorithm)?,
            version,
            Params::try_from(&parsed)?,
        );
        Ok(argon2_output(&argon, password, salt, expected.len())? == expected)
    };
    check().unwrap_or(false)
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| phc_hash(b"no account has this password").unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admission_is_bounded_and_given_back() {
        let queue = Admission::new(2);
        let a = queue.enter().unwrap();
        let b = queue.enter().unwrap();
        assert!(queue.enter().is_none());
        drop(a);
        let c = queue.enter().unwrap();
        assert!(queue.enter().is_none());
        drop((b, c));
        assert_eq!(queue.admitted.load(Ordering::Relaxed), 0);
    }

    /// The hashes written with reused memory are the standard PHC strings:
    /// the argon2 crate's own verifier accepts them, and the hashes it wrote
    /// (every account created before) still verify here.
    #[test]
    fn password_hashes_match_the_reference_implementation() {
        use argon2::{PasswordHasher, PasswordVerifier};
        let ours = phc_hash(b"correct horse").unwrap();
        assert!(
            ours.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{ours}"
        );
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default()
            .verify_password(b"correct horse", &parsed)
            .is_ok());
        assert!(Argon2::default()
            .verify_password(b"wrong", &parsed)
            .is_err());
        assert!(phc_matches(b"correct horse", &ours));
        assert!(!phc_matches(b"wrong", &ours));

        let salt = SaltString::generate(&mut OsRng);
        let reference = Argon2::default()
            .hash_password(b"battery staple", &salt)
            .unwrap()
            .to_string();
        assert!(phc_matches(b"battery staple", &reference));
        assert!(!phc_matches(b"battery stapler", &reference));
        // Other parameters (a smaller memory cost) are read from the hash.
        let light = Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            Params::new(1024, 1, 1, None).unwrap(),
        )
        .hash_password(b"light", &salt)
        .unwrap()
        .to_string();
        assert!(phc_matches(b"light", &light));
        assert!(!phc_matches(b"heavy", &light));
        assert!(!phc_matches(b"light", "not a hash"));
    }
}
