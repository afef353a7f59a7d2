//! `latchkey completions SHELL` and the hidden `latchkey man DIR`: shell completion scripts and
//! man pages, generated from the same clap definitions that parse the command line, so they
//! never disagree with it.

use std::path::Path;

use anyhow::Context;
use clap::CommandFactory;

use crate::cli::Cli;
use crate::{out, Failure};

/// Prints the completion script for `shell`. It completes the global options after every
/// subcommand too, so it starts from the command as declared, not from the help's copy.
pub fn completions(shell: clap_complete::Shell) -> Result<(), Failure> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "latchkey", &mut script);
    out::write(script)?;
    Ok(())
}

/// Writes `latchkey.1` and `latchkey-SUBCOMMAND.1` (`latchkey-provider-list.1`, ...) for every
/// subcommand that is not hidden into `dir`; the global options are on `latchkey.1`.
pub fn man(dir: &Path) -> Result<(), Failure> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create {}", dir.display()))
        .map_err(crate::failure)?;
    let mut written = 0;
    write_pages(&crate::cli::command(), dir, &mut written).map_err(crate::failure)?;
    out::line(format!("wrote {written} man pages to {}", dir.display()))?;
    Ok(())
}

fn write_pages(cmd: &clap::Command, dir: &Path, written: &mut usize) -> anyhow::Result<()> {
    let page = clap_mangen::Man::new(cmd.clone());
    let path = page
        .generate_to(dir)
        .with_context(|| format!("cannot write a man page into {}", dir.display()))?;
    *written += 1;
    debug_assert!(path.starts_with(dir));
    for sub in cmd
        .get_subcommands()
        .filter(|sub| !sub.is_hide_set() && sub.get_name() != "help")
    {
        write_pages(sub, dir, written)?;
    }
    Ok(())
}
