//! SRTP master keys leave no copies in freed memory: this test binary's
//! allocator looks inside every block as it is freed (or moved by `realloc`)
//! for a marker key, raw or in its SDP (base64) form. Parsing the peer's
//! `a=crypto`, printing ours, cloning and dropping keys, and building and
//! dropping a call's SRTP transform must free nothing that holds it; the same
//! key kept in a plain `String` is caught, so the watch can fail.
//!
//! Not covered here, deliberately: the SDP body our answer is printed into and
//! the SIP message around it are ordinary strings of the SIP stack (sent only
//! inside TLS), and the session keys `webrtc-srtp` derives are its own.
//!
//! One `#[test]` only: the watch is global to the process.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use sspr_ivr::media::srtp::{CryptoAttr, SrtpKeys, SrtpTransform};

/// 30 bytes (master key + salt) and their base64, as `inline:` carries them.
const KEY: [u8; 30] = *b"srtp-marker-key-0123456789abcd";
const KEY_B64: &[u8] = b"c3J0cC1tYXJrZXIta2V5LTAxMjM0NTY3ODlhYmNk";

static ARMED: AtomicBool = AtomicBool::new(false);
static FOUND: AtomicUsize = AtomicUsize::new(0);

struct Watch;

fn holds_marker(ptr: *const u8, len: usize) -> bool {
    // SAFETY: `ptr` is a live block of `len` bytes handed to dealloc/realloc.
    let bytes = unsafe { std::slice::from_raw_parts(ptr, len) };
    bytes.windows(KEY.len()).any(|w| w == KEY) || bytes.windows(KEY_B64.len()).any(|w| w == KEY_B64)
}

unsafe impl GlobalAlloc for Watch {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        System.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if ARMED.load(Ordering::SeqCst) && holds_marker(ptr, layout.size()) {
            FOUND.fetch_add(1, Ordering::SeqCst);
        }
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Always move, so the old block is inspected as it is given up.
        let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
        let new = System.alloc(new_layout);
        if !new.is_null() {
            std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
            self.dealloc(ptr, layout);
        }
        new
    }
}

#[global_allocator]
static GLOBAL: Watch = Watch;

/// Run `f` with the watch on; how many freed blocks held the marker.
fn freed_with_marker(f: impl FnOnce()) -> usize {
    FOUND.store(0, Ordering::SeqCst);
    ARMED.store(true, Ordering::SeqCst);
    f();
    ARMED.store(false, Ordering::SeqCst);
    FOUND.load(Ordering::SeqCst)
}

#[test]
fn srtp_keys_leave_no_copies_in_freed_memory() {
    // The peer's attribute text is the SIP stack's, not ours to wipe: it lives
    // outside the watch.
    let theirs = format!(
        "1 AES_CM_128_HMAC_SHA1_80 inline:{}|2^31",
        std::str::from_utf8(KEY_B64).unwrap()
    );

    // The watch works: the key kept in a plain String is seen when it is freed.
    let plain = freed_with_marker(|| {
        let s = String::from_utf8(KEY_B64.to_vec()).unwrap();
        drop(s);
    });
    assert!(plain >= 1, "the watch sees a plain copy ({plain})");

    let ours = freed_with_marker(|| {
        let attr = CryptoAttr::parse(&theirs)
            .unwrap()
            .expect("a suite we speak");
        let line = attr.to_sdp();
        assert!(line.as_bytes().windows(KEY_B64.len()).any(|w| w == KEY_B64));
        drop(line);
        let keys = SrtpKeys {
            suite: attr.suite,
            local: attr.key.clone(),
            remote: attr.key.clone(),
        };
        let copy = keys.clone();
        assert_eq!(copy, keys);
        let mut transform = SrtpTransform::new(&keys);
        let mut packet = vec![0x80, 0, 0, 1, 0, 0, 0, 160, 1, 2, 3, 4];
        packet.extend_from_slice(&[0xff; 160]);
        transform.protect(&mut packet).unwrap();
        drop(transform);
        drop((keys, copy, attr));
    });
    assert_eq!(ours, 0, "an SRTP key was left in freed memory");
}
