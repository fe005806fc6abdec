//! `ballast truncate`: drops old segments (`--before`) or a suffix of records (`--from`).
//!
//! Both take the directory's lock as the writer does, and hold it from the moment the log is
//! opened until the truncation is durable, the confirmation question included: what the
//! question names is what is dropped, and no writer can append in between.

use ballast_log::{Log, Lsn};
use clap::Args;
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use crate::disk::{writer_open_existing, DirArgs};

#[derive(Args, Debug)]
#[command(group = clap::ArgGroup::new("which").required(true).args(["before", "from"]))]
pub struct TruncateArgs {
    #[command(flatten)]
    dir: DirArgs,

    /// Drop every whole segment whose records are all below LSN (retention). Records at and
    /// after LSN always stay; so do earlier records that share a segment with them. LSN may
    /// not pass the end of the log.
    #[arg(long, value_name = "LSN")]
    before: Option<Lsn>,

    /// Drop every record at and after LSN: the next append gets LSN. Asks for confirmation
    /// on stdin unless `--yes` is given.
    #[arg(long, value_name = "LSN")]
    from: Option<Lsn>,

    /// Do not ask before dropping records with `--from`.
    #[arg(long, short = 'y')]
    yes: bool,
}

/// `ballast truncate`.
pub fn truncate(args: &TruncateArgs) -> Result<ExitCode, String> {
    let mut log = writer_open_existing(&args.dir)?;
    match (args.before, args.from) {
        (Some(lsn), None) => prefix(&mut log, lsn)?,
        (None, Some(lsn)) => {
            if !suffix(&mut log, lsn, args.yes)? {
                return Ok(ExitCode::FAILURE);
            }
        }
        _ => unreachable!("clap requires exactly one of --before and --from"),
    }
    log.close().map_err(|error| error.to_string())?;
    Ok(ExitCode::SUCCESS)
}

fn prefix(log: &mut Log<impl ballast_log::storage::Storage>, lsn: Lsn) -> Result<(), String> {
    let lsn_next = log.next_lsn();
    if lsn > lsn_next {
        return Err(format!(
            "lsn {lsn} is past the end of the log (next lsn {lsn_next}); \
             `--before {lsn_next}` drops every segment but the last"
        ));
    }
    let lsn_first = log.first_lsn();
    let segment_count = log.segment_count();
    log.truncate_prefix(lsn)
        .map_err(|error| format!("dropping segments before lsn {lsn}: {error}"))?;
    let dropped = segment_count - log.segment_count();
    let held = log.first_lsn();
    let segments = if dropped == 1 { "segment" } else { "segments" };
    match dropped {
        0 => println!(
            "nothing dropped: lsn {lsn} lies in the first segment the log holds, and segments \
             are dropped whole; the log holds lsn {held}..{lsn_next}"
        ),
        _ => println!(
            "dropped {dropped} {segments} (lsn {lsn_first}..{held}); the log holds lsn \
             {held}..{lsn_next}"
        ),
    }
    Ok(())
}

/// Returns false if the user declined.
fn suffix(
    log: &mut Log<impl ballast_log::storage::Storage>,
    lsn: Lsn,
    yes: bool,
) -> Result<bool, String> {
    let (lsn_first, lsn_next) = (log.first_lsn(), log.next_lsn());
    if lsn < lsn_first || lsn > lsn_next {
        return Err(format!(
            "lsn {lsn} is outside the log (lsn {lsn_first}..{lsn_next})"
        ));
    }
    let count = lsn_next - lsn;
    if !yes && !confirmed(count, lsn, lsn_next)? {
        eprintln!("ballast: nothing dropped");
        return Ok(false);
    }
    log.truncate_suffix(lsn)
        .map_err(|error| format!("dropping records from lsn {lsn}: {error}"))?;
    println!(
        "dropped {count} records (lsn {lsn}..{lsn_next}); the log holds lsn {lsn_first}..{lsn}, \
         durable"
    );
    Ok(true)
}

/// Asks on stderr, reads the answer from stdin: only `y` or `yes` confirms. The question is
/// asked with the lock held, so what it names is what is dropped.
fn confirmed(count: u64, lsn: Lsn, lsn_next: Lsn) -> Result<bool, String> {
    let mut stderr = std::io::stderr();
    write!(
        stderr,
        "drop {count} records (lsn {lsn}..{lsn_next})? This cannot be undone. [y/N] "
    )
    .and_then(|()| stderr.flush())
    .map_err(|error| format!("writing to stderr: {error}"))?;
    let mut answer = String::new();
    let read = std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|error| format!("reading the answer from stdin: {error}"))?;
    if read == 0 {
        return Err("no answer on stdin; pass --yes to truncate without asking".to_string());
    }
    if !std::io::stdin().is_terminal() {
        // The answer came from a pipe: end the question's line.
        eprintln!();
    }
    let answer = answer.trim();
    Ok(answer.eq_ignore_ascii_case("y") || answer.eq_ignore_ascii_case("yes"))
}
