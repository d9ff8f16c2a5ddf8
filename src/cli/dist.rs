//! `signalbox dist --out DIR` (hidden): the files a package installs that
//! are made from the command-line definition itself, so they never drift
//! from it — man pages (`signalbox.8` and one `signalbox-<command>.8` per
//! subcommand, by clap_mangen) and shell completions for bash, zsh and fish
//! (by clap_complete). `scripts/package` runs it; `signalbox.toml(5)` is
//! written by hand (dist/signalbox.toml.5).

use std::{fs, io, path::Path};

use clap::CommandFactory;
use clap_complete::Shell;

use super::{Cli, EXIT_OK, EXIT_WARNINGS};

/// Writes `DIR/man/*.8` and `DIR/completions/{signalbox.bash,_signalbox,signalbox.fish}`.
pub fn run(out: &Path) -> u8 {
    match write_all(out) {
        Ok(()) => EXIT_OK,
        Err(e) => {
            eprintln!("error: cannot write into {}: {e}", out.display());
            EXIT_WARNINGS
        }
    }
}

fn write_all(out: &Path) -> io::Result<()> {
    let man = out.join("man");
    fs::create_dir_all(&man)?;
    let cli = Cli::command().name("signalbox");
    write_man(&man, "signalbox", &cli)?;
    for sub in cli.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("signalbox-{}", sub.get_name());
        write_man(&man, &name, &sub.clone().name(name.clone()))?;
    }
    let completions = out.join("completions");
    fs::create_dir_all(&completions)?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let mut cli = Cli::command();
        clap_complete::generate_to(shell, &mut cli, "signalbox", &completions)?;
    }
    Ok(())
}

/// One page in section 8 (system administration: signalbox is a daemon).
fn write_man(dir: &Path, name: &str, command: &clap::Command) -> io::Result<()> {
    let page = clap_mangen::Man::new(command.clone()).section("8");
    let mut text = Vec::new();
    page.render(&mut text)?;
    fs::write(dir.join(format!("{name}.8")), text)
}
