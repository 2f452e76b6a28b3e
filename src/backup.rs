//! `sori backup --out DIR`: an online copy of an embedded installation (the
//! SQLite database and the blob directory) taken while `sori serve` runs.
//!
//! # Why the database first, then the blobs
//!
//! `VACUUM INTO` copies the database inside one read transaction: in WAL mode
//! that is a consistent snapshot at one instant T, and writers keep going
//! meanwhile. Every blob the snapshot references was complete before T: the
//! local store writes a temporary file and renames it into place, and the
//! database only refers to an object (an upload marked complete, a `ready`
//! media with its outputs) after that rename. Objects are never modified in
//! place, so copying the blob directory after T finds each of them whole.
//! Objects written after T are copied too, or not: the snapshot does not
//! refer to them, so either way is harmless. Copying blobs first would be
//! wrong: a media made `ready` between the two copies would be in the
//! database without its audio.
//!
//! One case remains: an object deleted after T (the cleanup of uploads never
//! posted, past `SORI_MEDIA_TTL_SECS`) is skipped and counted. Its row,
//! deleted in the live database, is restored expired, and the first cleanup
//! pass after a restore deletes it again.
//!
//! PostgreSQL and S3 have their own tools (`pg_dump`, bucket versioning):
//! this command refuses those settings instead of copying half an installation.

use crate::cli::{BackupArgs, QueueKind, Settings, StoreKind};
use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sori_db::Db;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The file names inside the data directory that a backup holds.
const DB_FILE: &str = "sori.db";
const BLOBS_DIR: &str = "blobs";
const SECRET_FILE: &str = "secret";

/// What was copied, for the closing line.
#[derive(Debug, Default)]
struct Copied {
    files: u64,
    bytes: u64,
    /// Objects deleted between the snapshot and their copy.
    vanished: u64,
}

/// `sori backup --out DIR`.
pub fn run(settings: &Settings, args: &BackupArgs) -> anyhow::Result<()> {
    let source_db = embedded_database(settings)?;
    prepare_out(&args.out)?;
    let out_db = args.out.join(DB_FILE);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(snapshot_database(&source_db, &out_db))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // SQLite created it with the default mode; it holds password hashes.
        fs::set_permissions(&out_db, fs::Permissions::from_mode(PRIVATE_FILE))
            .with_context(|| format!("{}: cannot make private", out_db.display()))?;
    }
    let db_bytes = sync_file(&out_db)?;
    eprintln!(
        "backup: database snapshot written ({})",
        human_bytes(db_bytes)
    );
    let secret = settings.data_dir.join(SECRET_FILE);
    if secret.exists() {
        // The signing secret keeps URLs handed out before a restore valid.
        copy_file(&secret, &args.out.join(SECRET_FILE))?;
    }
    let blobs = settings.data_dir.join(BLOBS_DIR);
    let copied = copy_blobs(&blobs, &args.out.join(BLOBS_DIR))?;
    sync_dir(&args.out)?;
    eprintln!(
        "backup: {} blobs ({}) copied to {}{}",
        copied.files,
        human_bytes(copied.bytes),
        args.out.display(),
        if copied.vanished > 0 {
            format!("; {} deleted during the copy were skipped", copied.vanished)
        } else {
            String::new()
        }
    );
    Ok(())
}

/// The SQLite file of an embedded installation, or a one-line refusal
/// naming the setting and the right tool.
fn embedded_database(settings: &Settings) -> anyhow::Result<PathBuf> {
    if settings.store == StoreKind::S3 {
        bail!(
            "SORI_STORE=s3: sori backup copies embedded installations only; \
             back up S3 with bucket versioning or replication (see docs/RELIABILITY.md)"
        );
    }
    if settings.queue == QueueKind::Sqs {
        bail!(
            "SORI_QUEUE=sqs: sori backup copies embedded installations only; \
             queued SQS messages are not in the database (see docs/RELIABILITY.md)"
        );
    }
    let path = match &settings.database_url {
        None => settings.data_dir.join(DB_FILE),
        Some(url) => match sqlite_path(url) {
            Some(path) => path,
            None => bail!(
                "DATABASE_URL={}: sori backup copies SQLite only; \
                 back up PostgreSQL with pg_dump (see docs/RELIABILITY.md)",
                sori_db::redact(url)
            ),
        },
    };
    if !path.is_file() {
        bail!(
            "no database at {}: is SORI_DATA_DIR (or DATABASE_URL) the one `sori serve` uses?",
            path.display()
        );
    }
    Ok(path)
}

/// `sqlite://PATH?…` or `sqlite:PATH` → PATH; None for other schemes.
fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let path = rest.split('?').next().unwrap_or_default();
    Some(PathBuf::from(path))
}

/// Creates DIR, refusing one that already holds files: a backup never
/// overwrites or mixes with another. DIR is made private (0700), since a
/// backup holds the signing secret, password hashes and private chat media.
fn prepare_out(out: &Path) -> anyhow::Result<()> {
    let occupied = fs::read_dir(out).is_ok_and(|mut entries| entries.next().is_some());
    if occupied {
        bail!(
            "--out {}: directory is not empty; choose a new one",
            out.display()
        );
    }
    private_dir(out).with_context(|| format!("--out {}: cannot create", out.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // An empty folder that already existed keeps its mode otherwise.
        fs::set_permissions(out, fs::Permissions::from_mode(PRIVATE_DIR))
            .with_context(|| format!("--out {}: cannot make private", out.display()))?;
    }
    Ok(())
}

/// Modes of what a backup writes: readable by its owner only.
#[cfg(unix)]
const PRIVATE_DIR: u32 = 0o700;
#[cfg(unix)]
const PRIVATE_FILE: u32 = 0o600;

/// `create_dir_all`, with new folders private (0700 on Unix).
fn private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, PRIVATE_DIR);
    builder.create(dir)
}

/// Creates (or truncates) a file readable by its owner only (0600 on Unix)
/// from the start, never briefly readable by others.
fn private_file(path: &Path) -> io::Result<fs::File> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, PRIVATE_FILE);
    options.open(path)
}

/// `VACUUM INTO`: a consistent copy from one read transaction, taken while
/// other processes keep writing (WAL mode).
async fn snapshot_database(source: &Path, out: &Path) -> anyhow::Result<()> {
    // mode=rw: never create a database that is not there.
    let url = format!("sqlite://{}?mode=rw", source.display());
    let db = Db::connect(&url, 1)
        .await
        .with_context(|| format!("{}: cannot open the database", source.display()))?;
    let result = sqlx::query("VACUUM INTO $1")
        .bind(out.display().to_string())
        .execute(db.pool())
        .await;
    db.close().await;
    result.with_context(|| format!("{}: VACUUM INTO {}", source.display(), out.display()))?;
    Ok(())
}

/// Copies every object under `from` to `to`, skipping the store's temporary
/// files (names starting with `.`), with a progress bar on a terminal.
fn copy_blobs(from: &Path, to: &Path) -> anyhow::Result<Copied> {
    let mut files = Vec::new();
    if from.is_dir() {
        list_files(from, &mut files).with_context(|| format!("{}: cannot list", from.display()))?;
    }
    let total: u64 = files.iter().map(|(_, len)| len).sum();
    let progress = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    progress.set_style(
        ProgressStyle::with_template("blobs {bar:30} {bytes}/{total_bytes} {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut copied = Copied::default();
    for (path, len) in files {
        let relative = path.strip_prefix(from).unwrap_or(&path);
        match copy_file(&path, &to.join(relative)) {
            Ok(bytes) => {
                copied.files += 1;
                copied.bytes += bytes;
            }
            Err(e) if is_not_found(&e) => copied.vanished += 1,
            Err(e) => return Err(e),
        }
        progress.inc(len);
    }
    progress.finish_and_clear();
    Ok(copied)
}

fn is_not_found(e: &anyhow::Error) -> bool {
    e.downcast_ref::<io::Error>()
        .is_some_and(|e| e.kind() == io::ErrorKind::NotFound)
}

/// Regular files under `dir` with their lengths, skipping dot-names.
fn list_files(dir: &Path, out: &mut Vec<(PathBuf, u64)>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let kind = entry.file_type()?;
        if kind.is_dir() {
            list_files(&entry.path(), out)?;
        } else if kind.is_file() {
            // Deleted since listing: counted when the copy finds it gone.
            let len = entry.metadata().map(|m| m.len()).unwrap_or(0);
            out.push((entry.path(), len));
        }
    }
    Ok(())
}

/// Copies one file and makes it durable. A source that vanished is reported
/// as the bare `NotFound` io error so the caller can tell it apart.
fn copy_file(from: &Path, to: &Path) -> anyhow::Result<u64> {
    let mut source = match fs::File::open(from) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(e.into()),
        Err(e) => return Err(e).with_context(|| format!("{}: cannot read", from.display())),
    };
    if let Some(parent) = to.parent() {
        private_dir(parent).with_context(|| format!("{}: cannot create", parent.display()))?;
    }
    let mut target =
        private_file(to).with_context(|| format!("{}: cannot create", to.display()))?;
    let bytes = io::copy(&mut source, &mut target)
        .with_context(|| format!("{} → {}", from.display(), to.display()))?;
    target
        .sync_all()
        .with_context(|| format!("{}: cannot sync", to.display()))?;
    Ok(bytes)
}

/// fsyncs a written file; returns its length.
fn sync_file(path: &Path) -> anyhow::Result<u64> {
    let file = fs::File::open(path).with_context(|| format!("{}", path.display()))?;
    file.sync_all()
        .with_context(|| format!("{}: cannot sync", path.display()))?;
    Ok(file.metadata()?.len())
}

/// Makes the directory entries durable (on Unix; a no-op elsewhere).
fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("{}: cannot sync", dir.display()))?;
    Ok(())
}

fn human_bytes(n: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    if n >= 1024 * 1024 {
        format!("{:.1} MiB", n as f64 / MIB)
    } else {
        format!("{:.1} KiB", n as f64 / 1024.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_paths_come_out_of_urls() {
        assert_eq!(
            sqlite_path("sqlite://data/sori.db?mode=rwc"),
            Some(PathBuf::from("data/sori.db"))
        );
        assert_eq!(
            sqlite_path("sqlite:///abs/sori.db"),
            Some(PathBuf::from("/abs/sori.db"))
        );
        assert_eq!(sqlite_path("postgres://u@h/db"), None);
    }
}
