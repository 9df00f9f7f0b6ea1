//! Shell completions and man pages, generated from the command-line definition itself
//! (`clap_complete`, `clap_mangen`), so they list exactly the commands and flags the binary
//! has. `deploy/build-deb.sh` runs these to ship them in the .deb.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::CommandFactory;
use clap_complete::Shell;

use super::Cli;

/// The completion script for `shell`.
pub fn completions(shell: Shell) -> Vec<u8> {
    let mut cmd = Cli::command();
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, "sspr-ivr", &mut buf);
    buf
}

/// Writes `bytes` to standard output; a reader that stopped early (`| head`) is not an error.
pub fn to_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// The man page of `sspr-ivr` (section 1), as roff.
pub fn man_page() -> anyhow::Result<Vec<u8>> {
    let mut buf = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut buf)?;
    Ok(buf)
}

/// Writes `sspr-ivr.1` and one `sspr-ivr-COMMAND.1` per subcommand into `dir`; returns the
/// files written.
pub fn write_man_pages(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let cmd = Cli::command();
    let mut written = Vec::new();
    let mut write = |name: String, page: clap::Command| -> anyhow::Result<()> {
        let path = dir.join(format!("{name}.1"));
        let mut buf = Vec::new();
        clap_mangen::Man::new(page)
            .title(name.clone())
            .render(&mut buf)?;
        std::fs::write(&path, buf).with_context(|| format!("{}: cannot write", path.display()))?;
        written.push(path);
        Ok(())
    };
    write("sspr-ivr".into(), cmd.clone())?;
    for sub in cmd.get_subcommands() {
        if sub.is_hide_set() {
            continue;
        }
        let name = format!("sspr-ivr-{}", sub.get_name());
        let page = sub
            .clone()
            .display_name(name.clone())
            .bin_name(format!("sspr-ivr {}", sub.get_name()));
        write(name, page)?;
    }
    Ok(written)
}
