//! Process hardening at start-up: no core dumps, and not dumpable.
//!
//! A core file of this process could hold PINs and one-time codes that were
//! in memory when it crashed (secret buffers are zeroed when dropped, but a
//! crash does not drop them). [`harden`] sets `RLIMIT_CORE` to 0 and clears
//! the dumpable flag (`prctl(PR_SET_DUMPABLE, 0)`), which also stops other
//! processes of the same user from attaching with ptrace or reading
//! `/proc/<pid>/mem` and `/proc/<pid>/environ` (where the secrets from
//! `secrets.env` live); `/proc/<pid>/*` then belongs to root. The systemd
//! unit sets `LimitCORE=0` as well, so a core limit is in place before the
//! first instruction runs.
//!
//! It does not lock memory (`mlock`): swap is the host's to encrypt.

/// What [`harden`] could not do (it never stops start-up: an unprivileged
/// or filtered environment may refuse, and the unit's limits still apply).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HardeningError {
    #[error("cannot set RLIMIT_CORE to 0: {0}")]
    CoreLimit(nix::Error),
    #[error("cannot clear the dumpable flag: {0}")]
    Dumpable(nix::Error),
}

/// No core dumps, not dumpable. Call first thing in `main`, before any
/// secret is read.
/// Both steps are tried even if one fails (a seccomp filter may refuse
/// `setrlimit`; the unit's `LimitCORE=0` has then already set the limit,
/// and the call is skipped when the limit is 0).
pub fn harden() -> Result<(), HardeningError> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let dumpable = nix::sys::prctl::set_dumpable(false).map_err(HardeningError::Dumpable);
    let core = match getrlimit(Resource::RLIMIT_CORE) {
        Ok((0, 0)) => Ok(()),
        _ => setrlimit(Resource::RLIMIT_CORE, 0, 0).map_err(HardeningError::CoreLimit),
    };
    dumpable.and(core)
}

/// Whether the process is dumpable (false after [`harden`]).
pub fn is_dumpable() -> bool {
    nix::sys::prctl::get_dumpable().unwrap_or(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn harden_turns_dumping_off() {
        // The flag is per process, and every test of this binary may run
        // after this one: being non-dumpable only changes who may read
        // /proc/<pid>, which no unit test does.
        harden().expect("harden");
        assert!(!is_dumpable());
        let (soft, hard) =
            nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_CORE).unwrap();
        assert_eq!((soft, hard), (0, 0));
    }
}
