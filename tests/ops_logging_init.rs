//! `init` installs the global subscriber exactly once and rejects bad filters.
//!
//! Alone in its binary: `Capture::set_default` (used elsewhere) also claims the process-wide
//! `log` bridge, which would make a concurrent `init` fail.

use sspr_ivr::ops::logging::{self, LogFormat, LoggingError};

#[test]
fn init_once_and_reject_bad_filters() {
    std::env::remove_var("RUST_LOG");
    match logging::init(LogFormat::Human, "sspr_ivr=chatty") {
        Err(LoggingError::Filter { source_name, .. }) => assert_eq!(source_name, "configuration"),
        other => panic!("expected a filter error, got {other:?}"),
    }
    logging::init(LogFormat::Json, "sspr_ivr=debug,info").expect("first init");
    assert!(matches!(
        logging::init(LogFormat::Human, "info"),
        Err(LoggingError::AlreadyInitialised(_))
    ));
}
