//! The on-disk spool: `records.jsonl` (one record per line),
//! `acked.log` (one delivered id per line) and `dead-letter.jsonl` (records
//! the receiver kept rejecting, in the format of `records.jsonl`), all
//! append-only and fsynced (see [`AppendLog`] for how a failed or torn write
//! is cut off, at start-up and on every write).
//!
//! A dead letter is written before its id is acknowledged; a crash between
//! the two leaves the record in both files, and opening the spool treats a
//! dead-lettered id as done.
//!
//! When a record cannot be written (full disk, I/O error) the spool turns
//! *unhealthy*. A record written with [`Spool::append_or_hold`] is then held
//! in memory (bounded) and written before anything else once the disk takes
//! writes again — [`Spool::recover`] retries, and proves with a probe write
//! that space is back. [`Spool::append`] holds nothing: the write-ahead
//! record of a reset attempt either is on disk or the attempt does not start.
//!
//! Compaction writes the still-pending records to a temporary file, fsyncs
//! it, renames it over `records.jsonl`, fsyncs the directory, and only then
//! empties the ack log the same way — a crash between the two steps leaves
//! acks for ids that no longer exist, which is harmless. A compaction that
//! fails (full disk) is retried after a later ack; nothing is lost.

use std::collections::{HashSet, VecDeque};
use std::fs;
use std::path::Path;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use super::log::{io_err, sync_dir, AppendLog};
use super::{AuditError, AuditRecord};

const RECORDS: &str = "records.jsonl";
const ACKS: &str = "acked.log";
/// Records moved aside after repeated rejection; never compacted.
pub const DEAD_LETTERS: &str = "dead-letter.jsonl";
/// Compact once this many acknowledged records sit in the records file.
const COMPACT_AFTER: usize = 1024;
/// Records kept in memory while the disk refuses them; beyond this the
/// oldest is dropped (with an error line).
const MAX_HELD: usize = 10_000;
/// Bytes a probe must be able to write: more than any record line (every
/// field is bounded; a record is well under 1 KiB).
const PROBE_BYTES: usize = 4096;

struct Inner {
    records: AppendLog,
    acks: AppendLog,
    dead: AppendLog,
    pending: VecDeque<AuditRecord>,
    /// Records in `records.jsonl` already acknowledged.
    acked_in_file: usize,
    /// Records not yet written because the disk refused them, oldest first.
    held: VecDeque<AuditRecord>,
}

/// The audit spool. Share it as `Arc<Spool>`; methods take `&self`.
pub struct Spool {
    dir: PathBuf,
    inner: Mutex<Inner>,
    notify: Arc<Notify>,
    /// False from a failed write until a write or probe succeeds.
    healthy: AtomicBool,
    counts: Counts,
}

/// Queue lengths, readable without the lock (which a hung disk can hold).
#[derive(Default)]
struct Counts {
    pending: AtomicUsize,
    held: AtomicUsize,
}

/// The locked spool; publishes the queue lengths when released.
struct Locked<'a> {
    inner: MutexGuard<'a, Inner>,
    counts: &'a Counts,
}

impl std::ops::Deref for Locked<'_> {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.inner
    }
}

impl std::ops::DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut Inner {
        &mut self.inner
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        self.counts
            .pending
            .store(self.inner.pending.len(), Ordering::SeqCst);
        self.counts
            .held
            .store(self.inner.held.len(), Ordering::SeqCst);
    }
}

fn encode(record: &AuditRecord) -> Result<Vec<u8>, AuditError> {
    let mut line = serde_json::to_vec(record).map_err(|e| AuditError::Encode(e.to_string()))?;
    line.push(b'\n');
    Ok(line)
}

impl Spool {
    /// Open (or create) the spool in `dir`. Records appended and not
    /// acknowledged before are pending again, in their original order.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, AuditError> {
        let dir = dir.as_ref().to_path_buf();
        if !dir.exists() {
            let mut builder = fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            builder.create(&dir).map_err(io_err(&dir))?;
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent)?;
            }
        }
        let (records, record_lines) = AppendLog::open(&dir, RECORDS)?;
        let (acks, ack_lines) = AppendLog::open(&dir, ACKS)?;
        let (dead, dead_lines) = AppendLog::open(&dir, DEAD_LETTERS)?;
        let mut acked: HashSet<String> = ack_lines
            .into_iter()
            .map(|l| l.trim().to_string())
            .collect();
        acked.extend(
            dead_lines
                .iter()
                .filter_map(|l| serde_json::from_str::<AuditRecord>(l).ok())
                .map(|r| r.id),
        );
        let mut pending = VecDeque::new();
        let mut acked_in_file = 0;
        let mut seen = HashSet::new();
        for (n, line) in record_lines.iter().enumerate() {
            match serde_json::from_str::<AuditRecord>(line) {
                Ok(r) if acked.contains(&r.id) => acked_in_file += 1,
                Ok(r) => {
                    if seen.insert(r.id.clone()) {
                        pending.push_back(r);
                    }
                }
                Err(_) => tracing::warn!(
                    line = n + 1,
                    "audit spool: skipping a record line that does not parse"
                ),
            }
        }
        if !pending.is_empty() {
            tracing::info!(pending = pending.len(), "audit spool: records to redeliver");
        }
        let counts = Counts {
            pending: AtomicUsize::new(pending.len()),
            held: AtomicUsize::new(0),
        };
        Ok(Spool {
            dir,
            counts,
            inner: Mutex::new(Inner {
                records,
                acks,
                dead,
                pending,
                acked_in_file,
                held: VecDeque::new(),
            }),
            notify: Arc::new(Notify::new()),
            healthy: AtomicBool::new(true),
        })
    }

    fn lock(&self) -> Locked<'_> {
        // A panic while holding the lock cannot leave the files half-written
        // in a way reopening does not repair; keep going.
        Locked {
            inner: self.inner.lock().unwrap_or_else(|p| p.into_inner()),
            counts: &self.counts,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Write `record` durably (fsync) and queue it for delivery, after any
    /// held records. On error nothing of it is on disk and nothing of it is
    /// kept. Blocking file IO: from async code call it inside
    /// `spawn_blocking`.
    pub fn append(&self, record: &AuditRecord) -> Result<(), AuditError> {
        let line = encode(record)?;
        let mut inner = self.lock();
        let result = self
            .flush_held(&mut inner)
            .and_then(|()| inner.records.append(&line));
        if result.is_ok() {
            inner.pending.push_back(record.clone());
        }
        drop(inner);
        self.settle(result)
    }

    /// Like [`append`](Self::append), but a record the disk refuses is held
    /// in memory and written later (before anything else), so it is not
    /// lost unless the process ends first. The error still tells the
    /// caller the record is not on disk yet.
    pub fn append_or_hold(&self, record: &AuditRecord) -> Result<(), AuditError> {
        let line = encode(record)?;
        let mut inner = self.lock();
        let result = self
            .flush_held(&mut inner)
            .and_then(|()| inner.records.append(&line));
        match &result {
            Ok(()) => inner.pending.push_back(record.clone()),
            Err(_) => {
                if inner.held.len() >= MAX_HELD {
                    if let Some(lost) = inner.held.pop_front() {
                        tracing::error!(
                            id = %lost.id,
                            held = MAX_HELD,
                            "audit spool: too many records held in memory; dropping the oldest"
                        );
                    }
                }
                inner.held.push_back(record.clone());
            }
        }
        drop(inner);
        self.settle(result)
    }

    /// Write the held records, oldest first; stop at the first failure.
    fn flush_held(&self, inner: &mut Inner) -> Result<(), AuditError> {
        while let Some(record) = inner.held.front() {
            let line = encode(record)?;
            inner.records.append(&line)?;
            let record = inner.held.pop_front().expect("front exists");
            tracing::debug!(id = %record.id, "audit record spooled (held until now)");
            inner.pending.push_back(record);
        }
        Ok(())
    }

    /// Note the health a write showed; wake the deliverer after a success.
    fn settle(&self, result: Result<(), AuditError>) -> Result<(), AuditError> {
        self.healthy.store(result.is_ok(), Ordering::SeqCst);
        if result.is_ok() {
            self.notify.notify_one();
        }
        result
    }

    /// Try to get back to healthy: write the held records, and if none
    /// were held, prove with a probe write (cut off again) that a record
    /// would fit. Cheap when healthy (no IO). Returns the health.
    pub fn recover(&self) -> bool {
        if self.is_healthy() {
            return true;
        }
        let mut inner = self.lock();
        let result = if inner.held.is_empty() {
            inner.records.probe(PROBE_BYTES)
        } else {
            self.flush_held(&mut inner)
        };
        drop(inner);
        if result.is_ok() {
            tracing::info!("audit spool: writable again");
        }
        self.settle(result).is_ok()
    }

    /// False from a failed write until a write or [`recover`](Self::recover)
    /// succeeds.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::SeqCst)
    }

    /// Records held in memory because the disk refused them.
    pub fn held(&self) -> usize {
        self.counts.held.load(Ordering::SeqCst)
    }

    /// Mark `id` delivered (fsynced). Returns false if it was not pending.
    pub fn ack(&self, id: &str) -> Result<bool, AuditError> {
        Self::ack_locked(&mut self.lock(), id)
    }

    fn ack_locked(inner: &mut Inner, id: &str) -> Result<bool, AuditError> {
        let Some(pos) = inner.pending.iter().position(|r| r.id == id) else {
            return Ok(false);
        };
        let mut line = id.as_bytes().to_vec();
        line.push(b'\n');
        inner.acks.append(&line)?;
        inner.pending.remove(pos);
        inner.acked_in_file += 1;
        if inner.pending.is_empty() || inner.acked_in_file >= COMPACT_AFTER {
            if let Err(e) = Self::compact(inner) {
                // The ack is durable; compaction is only housekeeping.
                tracing::warn!(error = %e, "audit spool: compaction failed; will retry");
            }
        }
        Ok(true)
    }

    /// Move pending record `id` to the dead-letter file (fsynced), then
    /// acknowledge it. Returns false if it was not pending.
    pub fn dead_letter(&self, id: &str) -> Result<bool, AuditError> {
        let mut inner = self.lock();
        let Some(record) = inner.pending.iter().find(|r| r.id == id) else {
            return Ok(false);
        };
        let line = encode(record)?;
        inner.dead.append(&line)?;
        Self::ack_locked(&mut inner, id)
    }

    fn compact(inner: &mut Inner) -> Result<(), AuditError> {
        let mut text = Vec::new();
        for r in &inner.pending {
            text.extend(encode(r)?);
        }
        inner.records.replace(&text)?;
        inner.acked_in_file = 0;
        inner.acks.replace(b"")?;
        tracing::debug!(pending = inner.pending.len(), "audit spool compacted");
        Ok(())
    }

    /// Records appended and not yet acknowledged, oldest first.
    pub fn pending(&self) -> Vec<AuditRecord> {
        self.lock().pending.iter().cloned().collect()
    }

    /// The oldest pending record.
    pub fn front(&self) -> Option<AuditRecord> {
        self.lock().pending.front().cloned()
    }

    /// Number of records waiting for delivery.
    pub fn backlog(&self) -> usize {
        self.counts.pending.load(Ordering::SeqCst)
    }

    /// Woken on every append (the deliverer waits on it).
    pub fn notifier(&self) -> Arc<Notify> {
        self.notify.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{CallFacts, FixedClock};
    use std::fs::OpenOptions;
    use std::io::Write;
    use time::macros::datetime;

    fn record(n: u32) -> AuditRecord {
        let clock = FixedClock(datetime!(2026-11-26 08:00:00 UTC));
        let ani = format!("+1555010{n:04}");
        AuditRecord::new(
            &clock,
            &CallFacts {
                ani: &ani,
                call_id: "c1",
                flow: "sspr",
                flow_version: "1",
            },
            "success",
            "reset",
        )
    }

    #[test]
    fn append_ack_reopen_and_compact() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool");
        let (a, b, c) = (record(1), record(2), record(3));
        {
            let s = Spool::open(&path).unwrap();
            s.append(&a).unwrap();
            s.append(&b).unwrap();
            s.append(&c).unwrap();
            assert!(s.ack(&b.id).unwrap());
            assert!(!s.ack(&b.id).unwrap(), "second ack is a no-op");
            assert!(!s.ack("unknown").unwrap());
            // On disk right after append (read by another handle).
            let text = fs::read_to_string(path.join(RECORDS)).unwrap();
            assert_eq!(text.lines().count(), 3);
            assert!(text.contains(&c.id));
        }
        // Restart: a and c pending, in order.
        let s = Spool::open(&path).unwrap();
        assert_eq!(s.pending(), vec![a.clone(), c.clone()]);
        assert_eq!(s.backlog(), 2);
        s.ack(&a.id).unwrap();
        s.ack(&c.id).unwrap();
        assert_eq!(s.backlog(), 0);
        // Everything acked: both files compacted to empty.
        assert_eq!(fs::read_to_string(path.join(RECORDS)).unwrap(), "");
        assert_eq!(fs::read_to_string(path.join(ACKS)).unwrap(), "");
        // Still appendable after compaction (the handles were reopened).
        let d = record(4);
        s.append(&d).unwrap();
        drop(s);
        assert_eq!(Spool::open(&path).unwrap().pending(), vec![d]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for (p, want) in [
                (path.clone(), 0o700),
                (path.join(RECORDS), 0o600),
                (path.join(ACKS), 0o600),
            ] {
                let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
                assert_eq!(mode, want, "{}", p.display());
            }
        }
    }

    #[test]
    fn torn_last_line_is_dropped_and_appends_stay_clean() {
        let dir = tempfile::tempdir().unwrap();
        let a = record(1);
        {
            let s = Spool::open(dir.path()).unwrap();
            s.append(&a).unwrap();
        }
        // A crash in the middle of the next write.
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.path().join(RECORDS))
            .unwrap();
        f.write_all(b"{\"id\":\"dead").unwrap();
        drop(f);
        let s = Spool::open(dir.path()).unwrap();
        assert_eq!(s.pending(), vec![a.clone()]);
        let b = record(2);
        s.append(&b).unwrap();
        drop(s);
        let s = Spool::open(dir.path()).unwrap();
        assert_eq!(s.pending(), vec![a, b]);
    }
}
