//! One append-only, line-oriented, fsynced file that never keeps a torn
//! tail: the building block of the audit spool (records, acks, dead letters).
//!
//! A line is written with one `write_all` and made durable with `sync_data`
//! before [`AppendLog::append`] returns. The log remembers how many bytes of
//! complete lines the file holds; when a write or its fsync fails (a full
//! disk gives a short write, then `ENOSPC`), the file is cut back to that
//! length at once, so what is on disk is exactly the lines reported written.
//! If even the cut fails, the log remembers it and cuts before the next
//! write — a later line is never glued to the remains of a failed one, which
//! would make a complete, fsynced record unreadable. Opening a file drops a
//! torn last line a crash (power loss, `kill -9` mid-write) left behind.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::AuditError;

pub(super) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> AuditError + '_ {
    move |source| AuditError::Io {
        path: path.display().to_string(),
        source,
    }
}

pub(super) fn sync_dir(dir: &Path) -> Result<(), AuditError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// Spool files hold caller numbers: owner read/write only.
fn private(o: &mut OpenOptions) -> &mut OpenOptions {
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(o, 0o600);
    o
}

/// An append-only file of complete lines.
pub(super) struct AppendLog {
    dir: PathBuf,
    name: &'static str,
    path: PathBuf,
    file: File,
    /// Bytes of complete lines in the file.
    len: u64,
    /// A failed write could not be cut back: cut before the next one.
    torn: bool,
}

impl AppendLog {
    /// Open `dir/name` for appending, creating it (and fsyncing the
    /// directory) if needed, after cutting off a torn last line. Returns the
    /// log and its complete, non-blank lines.
    pub fn open(dir: &Path, name: &'static str) -> Result<(Self, Vec<String>), AuditError> {
        let path = dir.join(name);
        let existed = path.exists();
        let mut file = private(OpenOptions::new().read(true).append(true).create(true))
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
        let log = AppendLog {
            dir: dir.to_path_buf(),
            name,
            path,
            file,
            len: complete as u64,
            torn: false,
        };
        Ok((log, lines))
    }

    #[cfg(test)]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append `line` (which must end in `\n`) durably. On error the file
    /// holds exactly what it held before.
    pub fn append(&mut self, line: &[u8]) -> Result<(), AuditError> {
        debug_assert!(line.ends_with(b"\n"));
        if self.torn {
            self.cut().map_err(io_err(&self.path))?;
        }
        let written = self
            .file
            .write_all(line)
            .and_then(|()| self.file.sync_data());
        match written {
            Ok(()) => {
                self.len += line.len() as u64;
                Ok(())
            }
            Err(e) => {
                if let Err(cut) = self.cut() {
                    tracing::error!(
                        file = %self.path.display(),
                        error = %cut,
                        "audit spool: cannot cut a failed write back; retrying before the next"
                    );
                }
                Err(io_err(&self.path)(e))
            }
        }
    }

    /// Prove that a line of `size` bytes fits right now: write a blank line
    /// that long (readers skip blank lines), fsync, then cut it off again.
    pub fn probe(&mut self, size: usize) -> Result<(), AuditError> {
        let mut blank = vec![b' '; size.max(1) - 1];
        blank.push(b'\n');
        self.append(&blank)?;
        self.len -= blank.len() as u64;
        // If the cut fails the blank line stays (harmless) and the next
        // append cuts first.
        let _ = self.cut();
        Ok(())
    }

    /// Truncate the file to its complete lines.
    fn cut(&mut self) -> io::Result<()> {
        self.torn = true;
        self.file.set_len(self.len)?;
        self.file.sync_data()?;
        self.torn = false;
        Ok(())
    }

    /// Replace the whole file atomically with `contents` (complete lines):
    /// temporary file, fsync, rename, fsync the directory. On error the old
    /// file stays in use.
    pub fn replace(&mut self, contents: &[u8]) -> Result<(), AuditError> {
        let tmp = self.dir.join(format!("{}.tmp", self.name));
        // The handle is opened on the temporary file and stays valid after
        // the rename: no window in which appends could go to an unlinked file.
        let written = (|| {
            let _ = fs::remove_file(&tmp);
            let mut f = private(OpenOptions::new().append(true).create_new(true))
                .open(&tmp)
                .map_err(io_err(&tmp))?;
            f.write_all(contents).map_err(io_err(&tmp))?;
            f.sync_all().map_err(io_err(&tmp))?;
            Ok(f)
        })();
        let file = match written {
            Ok(f) => f,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
        };
        if let Err(e) = fs::rename(&tmp, &self.path) {
            let _ = fs::remove_file(&tmp);
            return Err(io_err(&self.path)(e));
        }
        self.file = file;
        self.len = contents.len() as u64;
        self.torn = false;
        sync_dir(&self.dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(p: &Path) -> String {
        fs::read_to_string(p).unwrap()
    }

    #[test]
    fn a_failed_write_that_could_not_be_cut_is_cut_before_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, lines) = AppendLog::open(dir.path(), "x.log").unwrap();
        assert!(lines.is_empty());
        log.append(b"one\n").unwrap();
        // What a short write on a full disk leaves when the cut failed too.
        OpenOptions::new()
            .append(true)
            .open(log.path())
            .unwrap()
            .write_all(b"{\"half a rec")
            .unwrap();
        log.torn = true;
        log.append(b"two\n").unwrap();
        assert_eq!(read(log.path()), "one\ntwo\n");
        let (_, lines) = AppendLog::open(dir.path(), "x.log").unwrap();
        assert_eq!(lines, ["one", "two"]);
    }

    #[test]
    fn probe_leaves_the_file_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = AppendLog::open(dir.path(), "x.log").unwrap();
        log.append(b"one\n").unwrap();
        log.probe(2048).unwrap();
        assert_eq!(read(log.path()), "one\n");
        log.append(b"two\n").unwrap();
        assert_eq!(read(log.path()), "one\ntwo\n");
    }

    #[test]
    fn replace_swaps_the_file_and_keeps_appending_to_the_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = AppendLog::open(dir.path(), "x.log").unwrap();
        log.append(b"old\n").unwrap();
        log.replace(b"kept\n").unwrap();
        log.append(b"new\n").unwrap();
        assert_eq!(read(log.path()), "kept\nnew\n");
        assert!(!dir.path().join("x.log.tmp").exists());
    }
}
