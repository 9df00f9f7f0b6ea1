//! The audit spool on a filesystem that fills up for real (a small tmpfs):
//! a record that only half fits is cut back at once, so nothing partial is
//! left to glue the next record to; records held in memory meanwhile are
//! written first once space returns; nothing complete is lost across a
//! reopen. Needs root for `mount` (CI runs as root); fails loudly without.

mod common;

use std::process::Command;

use common::tmpfs::Tmpfs;
use sspr_ivr::audit::{AuditRecord, CallFacts, FixedClock, Spool};
use time::macros::datetime;

fn record(n: u32) -> AuditRecord {
    let clock = FixedClock(datetime!(2026-11-26 08:00:00 UTC));
    let ani = format!("+1555010{n:04}");
    let call = format!("call-{n}@full-disk");
    AuditRecord::new(
        &clock,
        &CallFacts {
            ani: &ani,
            call_id: &call,
            flow: "sspr",
            flow_version: "7",
        },
        "success",
        "pin_reset",
    )
}

fn page_size() -> u64 {
    let out = Command::new("getconf").arg("PAGESIZE").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

fn line_len(r: &AuditRecord) -> u64 {
    serde_json::to_vec(r).unwrap().len() as u64 + 1
}

/// The tests here run one at a time: a `mount`/`umount` one test forks holds
/// (until its exec) a copy of every descriptor the other test has open, so a
/// removed filler file could keep its space for a moment and the "room again"
/// check would race with it.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn a_record_that_half_fits_is_cut_back_and_nothing_complete_is_lost() {
    let _serial = one_at_a_time();
    let fs = Tmpfs::mount(256 * 1024, "fill the filesystem under the audit spool");
    let dir = fs.path().join("spool");
    let records = dir.join("records.jsonl");
    let spool = Spool::open(&dir).unwrap();
    let page = page_size();

    // Append until the next record would straddle a page boundary: its
    // first bytes fit in the page the file already has, the rest needs a
    // new page — which a full tmpfs cannot give (a short write).
    let mut written = Vec::new();
    let mut n = 0;
    let next = loop {
        n += 1;
        let r = record(n);
        let size = std::fs::metadata(&records).unwrap().len();
        let room = (page - size % page) % page;
        if room > 16 && room < line_len(&r) {
            break r;
        }
        spool.append(&r).unwrap();
        written.push(r);
    };
    let before = std::fs::read(&records).unwrap();
    let filler = fs.fill("filler");

    let err = spool.append(&next).expect_err("the disk is full");
    assert!(err.to_string().contains("records.jsonl"), "{err}");
    assert!(!spool.is_healthy());
    assert_eq!(
        std::fs::read(&records).unwrap(),
        before,
        "the half-written record was cut back"
    );
    // A record that must not be lost is held in memory instead.
    let held = record(1000);
    assert!(spool.append_or_hold(&held).is_err());
    assert_eq!(spool.held(), 1);
    assert!(!spool.recover(), "still full");
    assert_eq!(std::fs::read(&records).unwrap(), before);

    // Space returns: the held record is written first, then new ones.
    std::fs::remove_file(&filler).unwrap();
    assert!(spool.recover());
    assert!(spool.is_healthy());
    assert_eq!(spool.held(), 0);
    let after = record(1001);
    spool.append(&after).unwrap();
    drop(spool);

    let mut want = written.clone();
    want.push(held);
    want.push(after);
    let text = std::fs::read_to_string(&records).unwrap();
    assert!(text.ends_with('\n'));
    assert_eq!(
        text.lines().count(),
        want.len(),
        "every line is one whole record"
    );
    assert_eq!(Spool::open(&dir).unwrap().pending(), want);
}

#[test]
fn a_full_disk_without_held_records_recovers_by_probing() {
    let _serial = one_at_a_time();
    let fs = Tmpfs::mount(128 * 1024, "fill the filesystem under the audit spool");
    let dir = fs.path().join("spool");
    let spool = Spool::open(&dir).unwrap();
    let filler = fs.fill("filler");
    // An empty records file has no page to spare: the first record fails
    // outright, and it is not held (the write-ahead case).
    assert!(spool.append(&record(1)).is_err());
    assert_eq!(spool.held(), 0);
    assert!(!spool.recover(), "the probe cannot write either");
    std::fs::remove_file(&filler).unwrap();
    assert!(spool.recover(), "the probe proves there is room again");
    assert_eq!(
        std::fs::read_to_string(dir.join("records.jsonl")).unwrap(),
        ""
    );
    spool.append(&record(2)).unwrap();
    assert_eq!(spool.pending().len(), 1);
}
