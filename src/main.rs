//! The `sspr-ivr` binary: everything is in the library (`cli`).
fn main() -> std::process::ExitCode {
    sspr_ivr::cli::main()
}
