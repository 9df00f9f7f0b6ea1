fn main() -> std::process::ExitCode {
    sspr_ivr::cli::main()
}
