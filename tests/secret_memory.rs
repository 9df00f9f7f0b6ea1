//! Secrets leave no copies in freed memory: this test binary's allocator
//! looks inside every block as it is freed (or moved by `realloc`) and counts
//! the blocks that still hold a marker PIN. A PIN typed key by key, a
//! request body rendered from a template in every escaping, and a buffer
//! grown in small writes must free nothing that holds it; the same work done
//! with plain `String`s is caught, so the watch can fail.
//!
//! One `#[test]` only: the watch is global to the process, and the steps
//! must not run in parallel with each other.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use sspr_ivr::secret::{Secret, SecretBuf};
use sspr_ivr::template::{Escaping, Template};
use sspr_ivr::vars::Vars;

/// The marker: the first digits of every secret below. Percent-encoding and
/// JSON leave digits as they are, so every rendering holds it too.
const MARKER: &[u8] = b"48291375";

static ARMED: AtomicBool = AtomicBool::new(false);
static FOUND: AtomicUsize = AtomicUsize::new(0);

struct Watch;

fn holds_marker(ptr: *const u8, len: usize) -> bool {
    // SAFETY: `ptr` is a live block of `len` bytes handed to dealloc/realloc.
    let bytes = unsafe { std::slice::from_raw_parts(ptr, len) };
    bytes.windows(MARKER.len()).any(|w| w == MARKER)
}

fn inspect(ptr: *const u8, len: usize) {
    if ARMED.load(Ordering::SeqCst) && holds_marker(ptr, len) {
        FOUND.fetch_add(1, Ordering::SeqCst);
    }
}

unsafe impl GlobalAlloc for Watch {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        System.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        inspect(ptr, layout.size());
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Always move, so the old block is inspected as it is given up (an
        // in-place realloc of the system allocator would hide it).
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

/// 40 digits starting with the marker: long enough to outgrow the first
/// allocations when typed one key at a time.
fn digits() -> impl Iterator<Item = char> {
    std::str::from_utf8(MARKER)
        .unwrap()
        .chars()
        .chain("0123456789".chars().cycle().take(32))
}

/// The PIN as `collect` builds it: one key at a time.
fn typed_pin() -> Secret {
    let mut pin = Secret::default();
    for c in digits() {
        pin.push(c);
    }
    pin
}

#[test]
fn secrets_leave_no_copies_in_freed_memory() {
    // The watch works: plain strings leave the marker behind, both in the
    // blocks a growing string gives up and in the one it frees last.
    let plain = freed_with_marker(|| {
        let mut s = String::new();
        for c in digits() {
            s.push(c);
        }
        drop(s);
    });
    assert!(plain >= 2, "the watch sees plain copies ({plain})");

    // A PIN typed key by key (how `collect` builds it), cloned, compared,
    // then dropped.
    let typed = freed_with_marker(|| {
        let pin = typed_pin();
        let copy = pin.clone();
        assert_eq!(copy, pin);
        assert_eq!(pin.len(), 40);
    });
    assert_eq!(typed, 0, "a secret typed key by key left copies");

    // Requests rendered from templates that read a secret: the context
    // (built for every render) and the output buffers are zeroed. The
    // templates are compiled first, as when the actions are loaded.
    let templates: Vec<Template> = [
        (
            r#"{"user": {{ user }}, "newPin": {{ pin }}}"#,
            Escaping::Json,
        ),
        (
            "/users/{{ user }}/pin/{{ pin }}?again={{ pin }}",
            Escaping::Url,
        ),
        ("Bearer {{ pin }}", Escaping::None),
    ]
    .into_iter()
    .map(|(source, escaping)| Template::compile(source, escaping).expect("compiles"))
    .collect();
    let rendered = freed_with_marker(|| {
        let mut vars = Vars::new();
        vars.set_plain("user", "u-123456");
        vars.set_secret("pin", typed_pin());
        for template in &templates {
            let out = template.render_secret(&vars, true).expect("render");
            assert!(out.expose().contains("48291375"), "{}", template.source());
            let mut buf = SecretBuf::with_capacity(1);
            template
                .render_into(&vars, true, &mut buf)
                .expect("render into");
            assert_eq!(buf.as_str(), Some(out.expose()));
        }
    });
    assert_eq!(rendered, 0, "rendering a secure request left copies");

    // The same template through the plain `render` (a `String`) is caught:
    // the zeroing above is what makes the difference.
    let bearer = &templates[2];
    let via_string = freed_with_marker(|| {
        let mut vars = Vars::new();
        vars.set_secret("pin", typed_pin());
        let s = bearer.render(&vars, true).expect("render");
        drop(s);
    });
    assert!(via_string >= 1, "the watch sees a rendered String");

    // A buffer grown by many small writes (a response body read in chunks).
    let grown = freed_with_marker(|| {
        use std::io::Write;
        let mut buf = SecretBuf::default();
        for _ in 0..200 {
            buf.write_all(b"{\"code\":\"").unwrap();
            buf.write_all(MARKER).unwrap();
            buf.write_all(b"\"},").unwrap();
        }
        assert_eq!(buf.len(), 200 * 20);
        let secret = buf.into_secret().expect("utf-8");
        assert_eq!(secret.len(), 200 * 20);
    });
    assert_eq!(grown, 0, "a growing SecretBuf left copies");
}
