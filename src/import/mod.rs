//! Bulk CSV import into a campaign, for the command line (`dialerd import`)
//! and the API (`POST .../imports`). One thread reads and validates rows
//! into chunks while the previous chunk loads: `COPY` into a staging table
//! and one merge per chunk, each chunk its own transaction with its counts
//! and refused rows (an all-or-nothing import: every chunk in one
//! transaction, committed only if no row was refused). Dialing goes on
//! meanwhile; a chunk's contacts are claimable once it commits.

pub mod command;
pub mod dnc;
pub mod mapping;

use std::collections::HashSet;
use std::io::Read;
use std::path::Path;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::db::contacts::NewContact;
use crate::db::imports::{self as store, RowError, Target};
use crate::db::DbError;
use crate::domain::phone::Country;
use mapping::{Columns, Fault, Override};

/// Rows per chunk: each merge stays far under the 60 s statement timeout
/// (about a second on a small machine) and a chunk's rows show up at once.
pub const CHUNK_ROWS: usize = 10_000;

/// A CSV file opened past its header, with its columns mapped.
pub struct Source<R: Read> {
    reader: csv::Reader<R>,
    pub columns: Columns,
}

impl<R: Read> Source<R> {
    /// Reads the header row and maps it; refused (with why) when the
    /// header cannot be read or mapped.
    pub fn new(input: R, overrides: &[Override]) -> Result<Source<R>, String> {
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .has_headers(true)
            .from_reader(input);
        let header = reader
            .byte_headers()
            .map_err(|e| format!("cannot read the header row: {e}"))?
            .clone();
        let mut names = Vec::with_capacity(header.len());
        for (i, raw) in header.iter().enumerate() {
            let raw = if i == 0 {
                raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(raw)
            } else {
                raw
            };
            let name = std::str::from_utf8(raw)
                .map_err(|_| format!("column {} of the header is not UTF-8", i + 1))?;
            names.push(name.to_owned());
        }
        let columns = Columns::new(&names, overrides)?;
        Ok(Source { reader, columns })
    }
}

/// Opens a file for [`run`].
pub fn open(
    path: &Path,
    overrides: &[Override],
) -> Result<Source<std::io::BufReader<std::fs::File>>, String> {
    let file =
        std::fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    Source::new(std::io::BufReader::with_capacity(1 << 20, file), overrides)
}

/// What to import, where.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: Uuid,
    pub org: Uuid,
    pub campaign: Uuid,
    /// The campaign configuration's `default_country`, for national numbers.
    pub country: Option<Country>,
    pub all_or_nothing: bool,
}

/// Counts so far.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes of the file read.
    pub bytes: u64,
    pub read: u64,
    pub created: u64,
    pub updated: u64,
    pub refused: u64,
}

/// How an import ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Completed(Progress),
    /// Stopped, with why; the counts are what was committed.
    Failed(Progress, String),
}

struct Chunk {
    rows: Vec<NewContact>,
    errors: Vec<RowError>,
    /// Data rows of the file this chunk covers.
    read: u64,
    /// Where in the file the chunk ends.
    bytes: u64,
}

/// Reads and validates the whole file into chunks on this (blocking)
/// thread; a chunk ends early where its rows would repeat an external id,
/// so the rows of a file apply in file order. Stops when `chunks` closes.
fn parse<R: Read>(
    mut source: Source<R>,
    country: Option<Country>,
    chunks: mpsc::Sender<Result<Chunk, String>>,
) {
    let columns = source.columns;
    let mut record = csv::ByteRecord::new();
    let fresh = || Chunk {
        rows: Vec::with_capacity(CHUNK_ROWS),
        errors: Vec::new(),
        read: 0,
        bytes: 0,
    };
    let mut chunk = fresh();
    let mut ids: HashSet<String> = HashSet::new();
    loop {
        match source.reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let _ = chunks.blocking_send(Err(format!("cannot read the file: {e}")));
                return;
            }
        }
        let line = record.position().map_or(0, |p| p.line());
        let mut cells: Vec<&str> = Vec::with_capacity(columns.len());
        let mut fault = None;
        for (i, raw) in record.iter().enumerate() {
            match std::str::from_utf8(raw) {
                Ok(cell) => cells.push(cell),
                Err(_) => {
                    fault = Some(Fault {
                        column: Some(columns.name(i).unwrap_or("?").to_owned()),
                        reason: "is not valid UTF-8".into(),
                    });
                    break;
                }
            }
        }
        let checked = match fault {
            Some(f) => Err(f),
            None => mapping::contact(&columns, &cells, country),
        };
        match checked {
            Ok(contact) => {
                let repeats = contact
                    .external_id
                    .as_ref()
                    .is_some_and(|id| ids.contains(id));
                if repeats {
                    ids.clear();
                    let full = std::mem::replace(&mut chunk, fresh());
                    if chunks.blocking_send(Ok(full)).is_err() {
                        return;
                    }
                }
                if let Some(id) = &contact.external_id {
                    ids.insert(id.clone());
                }
                chunk.rows.push(contact);
            }
            Err(f) => chunk.errors.push(RowError {
                line,
                column: f.column,
                reason: f.reason,
            }),
        }
        chunk.read += 1;
        chunk.bytes = record.position().map_or(0, |p| p.byte());
        if chunk.rows.len() + chunk.errors.len() >= CHUNK_ROWS {
            ids.clear();
            let full = std::mem::replace(&mut chunk, fresh());
            if chunks.blocking_send(Ok(full)).is_err() {
                return;
            }
        }
    }
    chunk.bytes = source.reader.position().byte();
    let _ = chunks.blocking_send(Ok(chunk));
}

/// Runs an import whose record `store::create` has made: loads every chunk,
/// calls `progress` after each, and records how it ended. Stops at the
/// next chunk boundary (a chunk in flight rolls back) when `cancel` fires.
pub async fn run<R: Read + Send + 'static>(
    pool: &sqlx::PgPool,
    job: &Job,
    source: Source<R>,
    cancel: &CancellationToken,
    mut progress: impl FnMut(Progress),
) -> Result<Outcome, DbError> {
    let renewing = {
        let (pool, id) = (pool.clone(), job.id);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(store::LEASE / 5).await;
                if let Err(e) = store::renew(&pool, id).await {
                    tracing::warn!(import = %id, error = %e, "cannot renew the import's lease");
                }
            }
        })
    };
    let (tx, mut chunks) = mpsc::channel(2);
    let country = job.country;
    let parser = tokio::task::spawn_blocking(move || parse(source, country, tx));
    let outcome = tokio::select! {
        outcome = load_all(pool, job, &mut chunks, &mut progress) => outcome,
        () = cancel.cancelled() => Ok(Err(
            "interrupted: the daemon shut down; the counts are what was committed".to_owned(),
        )),
    };
    drop(chunks);
    renewing.abort();
    let _ = parser.await;
    let done = current(pool, job.id).await;
    match outcome {
        Ok(Ok(())) => {
            store::finish(pool, job.id, None).await?;
            Ok(Outcome::Completed(done?))
        }
        Ok(Err(why)) => {
            store::finish(pool, job.id, Some(&why)).await?;
            Ok(Outcome::Failed(done?, why))
        }
        Err(e) => {
            let why = format!("stopped by a database error: {e}");
            // Best effort: if the database is gone, the lease runs out.
            let _ = store::finish(pool, job.id, Some(&why)).await;
            Err(e)
        }
    }
}

/// The committed counts of an import.
async fn current(pool: &sqlx::PgPool, id: Uuid) -> Result<Progress, DbError> {
    let (read, created, updated, refused): (i64, i64, i64, i64) =
        sqlx::query_as("SELECT rows_read, created, updated, refused FROM imports WHERE id = $1")
            .bind(id)
            .fetch_one(pool)
            .await?;
    Ok(Progress {
        bytes: 0,
        read: read as u64,
        created: created as u64,
        updated: updated as u64,
        refused: refused as u64,
    })
}

/// Loads chunks until the parser is done: `Ok(Err(why))` when the import
/// stopped for a reason its record should give.
async fn load_all(
    pool: &sqlx::PgPool,
    job: &Job,
    chunks: &mut mpsc::Receiver<Result<Chunk, String>>,
    progress: &mut impl FnMut(Progress),
) -> Result<Result<(), String>, DbError> {
    let target = Target {
        org: job.org,
        campaign: job.campaign,
    };
    let mut seen = Progress::default();
    if job.all_or_nothing {
        return all_or_nothing(pool, job, &target, chunks, progress).await;
    }
    while let Some(chunk) = chunks.recv().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(why) => return Ok(Err(why)),
        };
        let loaded = crate::db::retrying(|| async {
            let mut tx = pool.begin().await?;
            let counts = match store::load(&mut tx, &target, &chunk.rows).await? {
                Ok(counts) => counts,
                Err(refused) => return Ok(Err(refused)),
            };
            store::record(
                &mut tx,
                job.id,
                chunk.read,
                counts.0,
                counts.1,
                &chunk.errors,
            )
            .await?;
            tx.commit().await?;
            Ok(Ok(counts))
        })
        .await?;
        let (created, updated) = match loaded {
            Ok(counts) => counts,
            Err(refused) => return Ok(Err(refused.to_string())),
        };
        seen.bytes = chunk.bytes;
        seen.read += chunk.read;
        seen.created += created;
        seen.updated += updated;
        seen.refused += chunk.errors.len() as u64;
        metrics::counter!(crate::monitoring::IMPORT_ROWS, "result" => "created").increment(created);
        metrics::counter!(crate::monitoring::IMPORT_ROWS, "result" => "updated").increment(updated);
        metrics::counter!(crate::monitoring::IMPORT_ROWS, "result" => "refused")
            .increment(chunk.errors.len() as u64);
        progress(seen);
    }
    Ok(Ok(()))
}

/// Every chunk in one transaction, committed only when no row is refused;
/// after the first refusal the rest is only validated, for the report.
async fn all_or_nothing(
    pool: &sqlx::PgPool,
    job: &Job,
    target: &Target,
    chunks: &mut mpsc::Receiver<Result<Chunk, String>>,
    progress: &mut impl FnMut(Progress),
) -> Result<Result<(), String>, DbError> {
    let mut tx = pool.begin().await?;
    let mut seen = Progress::default();
    let mut errors = Vec::new();
    while let Some(chunk) = chunks.recv().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(why) => return Ok(Err(format!("{why}; nothing was loaded (all-or-nothing)"))),
        };
        seen.bytes = chunk.bytes;
        seen.read += chunk.read;
        seen.refused += chunk.errors.len() as u64;
        errors.extend(chunk.errors);
        if errors.is_empty() {
            match store::load(&mut tx, target, &chunk.rows).await? {
                Ok((created, updated)) => {
                    seen.created += created;
                    seen.updated += updated;
                }
                Err(refused) => return Ok(Err(refused.to_string())),
            }
        }
        store::progress(pool, job.id, seen.read).await?;
        progress(seen);
    }
    if errors.is_empty() {
        store::record(&mut tx, job.id, 0, seen.created, seen.updated, &[]).await?;
        tx.commit().await?;
        return Ok(Ok(()));
    }
    tx.rollback().await?;
    let mut tx = pool.begin().await?;
    store::record(&mut tx, job.id, 0, 0, 0, &errors).await?;
    tx.commit().await?;
    Ok(Err(format!(
        "{} of {} rows refused; nothing was loaded (all-or-nothing)",
        errors.len(),
        seen.read
    )))
}
