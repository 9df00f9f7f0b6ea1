//! A small tmpfs mounted for one test, to fill a filesystem for real.
//! Needs root (`mount`); CI runs as root. Without it the test fails with a
//! message saying so — it never skips silently.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A mounted tmpfs; unmounted on drop.
pub struct Tmpfs {
    pub dir: PathBuf,
    _parent: tempfile::TempDir,
}

fn require_root(why: &str) {
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    assert_eq!(
        uid, "0",
        "this test mounts a tmpfs to {why}: run it as root (`sudo -E cargo test …`; CI runs as root)"
    );
}

impl Tmpfs {
    /// Mount a tmpfs of `bytes` (rounded up to pages) on a fresh directory.
    pub fn mount(bytes: u64, why: &str) -> Tmpfs {
        require_root(why);
        let parent = tempfile::tempdir().expect("tempdir");
        let dir = parent.path().join("fs");
        std::fs::create_dir(&dir).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes},mode=0700")])
            .arg("tmpfs")
            .arg(&dir)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mount -t tmpfs on {} failed",
            dir.display()
        );
        Tmpfs {
            dir,
            _parent: parent,
        }
    }

    /// Fill the filesystem with a file named `name` until it refuses more
    /// (ENOSPC); returns the file's path. Remove the file to give the space
    /// back.
    pub fn fill(&self, name: &str) -> PathBuf {
        use std::io::Write;
        let path = self.dir.join(name);
        let mut f = std::fs::File::create(&path).unwrap();
        for chunk in [65536usize, 4096, 512, 1] {
            let buf = vec![0xa5u8; chunk];
            while f.write_all(&buf).is_ok() {}
        }
        let _ = f.sync_all();
        path
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Something still has a file open (a server being killed): detach.
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}
