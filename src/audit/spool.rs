//! The on-disk spool: `records.jsonl` (one record per line) and
//! `acked.log` (one delivered id per line), both append-only and fsynced.
//!
//! Crash safety: a record line is written with one `write_all` and then
//! `sync_data`; a torn last line (no newline) left by a crash is cut off when
//! the spool is reopened, before anything new is appended. Compaction writes
//! the still-pending records to a temporary file, fsyncs it, renames it over
//! `records.jsonl`, fsyncs the directory, and only then empties the ack log
//! the same way — a crash between the two steps leaves acks for ids that no
//! longer exist, which is harmless.

use std::collections::{HashSet, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use super::{AuditError, AuditRecord};

const RECORDS: &str = "records.jsonl";
const ACKS: &str = "acked.log";
/// Compact once this many acknowledged records sit in the records file.
const COMPACT_AFTER: usize = 1024;

struct Inner {
    records: File,
    acks: File,
    pending: VecDeque<AuditRecord>,
    /// Records in `records.jsonl` already acknowledged.
    acked_in_file: usize,
}

/// The audit spool. Share it as `Arc<Spool>`; methods take `&self`.
pub struct Spool {
    dir: PathBuf,
    inner: Mutex<Inner>,
    notify: Arc<Notify>,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> AuditError + '_ {
    move |source| AuditError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn sync_dir(dir: &Path) -> Result<(), AuditError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// Open `path` for appending, creating it (and fsyncing the directory) if
/// needed, after cutting off a torn last line. Returns the file and its
/// complete lines.
fn open_log(dir: &Path, name: &str) -> Result<(File, Vec<String>), AuditError> {
    let path = dir.join(name);
    let existed = path.exists();
    let mut file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(&path)
        .map_err(io_err(&path))?;
    if !existed {
        file.sync_all().map_err(io_err(&path))?;
        sync_dir(dir)?;
    }
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0)).map_err(io_err(&path))?;
    file.read_to_end(&mut bytes).map_err(io_err(&path))?;
    let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    if complete < bytes.len() {
        tracing::warn!(
            file = %path.display(),
            bytes = bytes.len() - complete,
            "audit spool: dropping a torn last line left by a crash"
        );
        file.set_len(complete as u64).map_err(io_err(&path))?;
        file.sync_all().map_err(io_err(&path))?;
    }
    let lines = String::from_utf8_lossy(&bytes[..complete])
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    Ok((file, lines))
}

/// Replace `dir/name` atomically with `contents`.
fn replace(dir: &Path, name: &str, contents: &[u8]) -> Result<File, AuditError> {
    let tmp = dir.join(format!("{name}.tmp"));
    let path = dir.join(name);
    {
        let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
        f.write_all(contents).map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
    }
    fs::rename(&tmp, &path).map_err(io_err(&path))?;
    sync_dir(dir)?;
    OpenOptions::new()
        .append(true)
        .open(&path)
        .map_err(io_err(&path))
}

impl Spool {
    /// Open (or create) the spool in `dir`. Records appended and not
    /// acknowledged before are pending again, in their original order.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, AuditError> {
        let dir = dir.as_ref().to_path_buf();
        if !dir.exists() {
            fs::create_dir_all(&dir).map_err(io_err(&dir))?;
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent)?;
            }
        }
        let (records, record_lines) = open_log(&dir, RECORDS)?;
        let (acks, ack_lines) = open_log(&dir, ACKS)?;
        let acked: HashSet<String> = ack_lines.into_iter().map(|l| l.trim().to_string()).collect();
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
        Ok(Spool {
            dir,
            inner: Mutex::new(Inner {
                records,
                acks,
                pending,
                acked_in_file,
            }),
            notify: Arc::new(Notify::new()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the files half-written
        // in a way reopening does not repair; keep going.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Write `record` durably (fsync) and queue it for delivery. Blocking
    /// file IO: from async code call it inside `spawn_blocking` if the
    /// latency of an fsync matters.
    pub fn append(&self, record: &AuditRecord) -> Result<(), AuditError> {
        let mut line =
            serde_json::to_vec(record).map_err(|e| AuditError::Encode(e.to_string()))?;
        line.push(b'\n');
        let path = self.dir.join(RECORDS);
        {
            let mut inner = self.lock();
            inner.records.write_all(&line).map_err(io_err(&path))?;
            inner.records.sync_data().map_err(io_err(&path))?;
            inner.pending.push_back(record.clone());
        }
        self.notify.notify_one();
        Ok(())
    }

    /// Mark `id` delivered (fsynced). Returns false if it was not pending.
    pub fn ack(&self, id: &str) -> Result<bool, AuditError> {
        let path = self.dir.join(ACKS);
        let mut inner = self.lock();
        let Some(pos) = inner.pending.iter().position(|r| r.id == id) else {
            return Ok(false);
        };
        let mut line = id.as_bytes().to_vec();
        line.push(b'\n');
        inner.acks.write_all(&line).map_err(io_err(&path))?;
        inner.acks.sync_data().map_err(io_err(&path))?;
        inner.pending.remove(pos);
        inner.acked_in_file += 1;
        if inner.acked_in_file > 0
            && (inner.pending.is_empty() || inner.acked_in_file >= COMPACT_AFTER)
        {
            self.compact(&mut inner)?;
        }
        Ok(true)
    }

    fn compact(&self, inner: &mut Inner) -> Result<(), AuditError> {
        let mut text = Vec::new();
        for r in &inner.pending {
            serde_json::to_writer(&mut text, r).map_err(|e| AuditError::Encode(e.to_string()))?;
            text.push(b'\n');
        }
        inner.records = replace(&self.dir, RECORDS, &text)?;
        inner.acks = replace(&self.dir, ACKS, b"")?;
        inner.acked_in_file = 0;
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
        self.lock().pending.len()
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
