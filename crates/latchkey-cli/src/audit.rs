//! `latchkey audit`: the daemon's audit trail, read straight from the file (no daemon needed:
//! the file is the user's own). A table for people, or the records as JSON lines; `--service`
//! and `--since` filter, `--follow` keeps printing new records across rotation.
//!
//! The file is read as untrusted input: malformed lines are skipped and counted on stderr,
//! and every text field is escaped before it reaches a terminal.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, Context};
use latchkey_audit::filter::{parse_since, Filter};
use latchkey_audit::reader::{self, Follower, Line};
use latchkey_audit::Record;

use crate::out::note;
use crate::{output, Failure};

/// How often `--follow` looks for new records.
const POLL: Duration = Duration::from_millis(200);

/// `latchkey audit`'s options.
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// Keep printing records as they are written (across rotation) until interrupted.
    #[arg(short, long)]
    follow: bool,
    /// Only records of this service.
    #[arg(long, value_name = "SERVICE")]
    service: Option<String>,
    /// Only records since TIME: RFC 3339 (2026-12-02T10:00:00Z) or an age (30s, 10m, 2h, 1d).
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Print the records as JSON lines.
    #[arg(long)]
    json: bool,
}

/// Prints records that match, and counts the malformed lines.
struct Printer {
    filter: Filter,
    json: bool,
    header_shown: bool,
    malformed: u64,
    /// The first failure to print (stdout gone): printing stops there.
    failed: Option<Failure>,
}

impl Printer {
    /// Takes one line; after a failure, nothing more is printed.
    fn accept(&mut self, line: Line) {
        if self.failed.is_none() {
            if let Err(err) = self.line(line) {
                self.failed = Some(err);
            }
        }
    }

    /// The failure that stopped printing, if any.
    fn check(&mut self) -> Result<(), Failure> {
        self.failed.take().map_or(Ok(()), Err)
    }

    fn line(&mut self, line: Line) -> Result<(), Failure> {
        let record = match line {
            Line::Record(record) => record,
            Line::Malformed => {
                self.malformed += 1;
                return Ok(());
            }
        };
        if !self.filter.matches(&record) {
            return Ok(());
        }
        if self.json {
            let text = serde_json::to_string(&*record).map_err(|e| crate::failure(e.into()))?;
            crate::out::line(output::json_safe(&text))?;
            return Ok(());
        }
        if !self.header_shown {
            crate::out::line(row(&[
                "TIME", "VIA", "PID", "METHOD", "OUTCOME", "ENTRY", "EXE",
            ]))?;
            self.header_shown = true;
        }
        crate::out::line(human(&record))?;
        Ok(())
    }

    /// Says on stderr how many lines were skipped since it last said so.
    fn report_malformed(&mut self, path: &Path) {
        if self.malformed > 0 {
            note!(
                "latchkey: skipped {} malformed line{} in {}",
                self.malformed,
                if self.malformed == 1 { "" } else { "s" },
                output::sanitize(&path.display().to_string())
            );
            self.malformed = 0;
        }
    }
}

/// Fixed-width columns (a followed trail cannot be measured first); the last one runs on.
fn row(cells: &[&str; 7]) -> String {
    let [time, via, pid, method, outcome, entry, exe] = cells;
    format!("{time:<20}  {via:<6}  {pid:>7}  {method:<15}  {outcome:<22}  {entry:<28}  {exe}")
        .trim_end()
        .to_owned()
}

fn human(record: &Record) -> String {
    let time = record.ts.format("%Y-%m-%d %H:%M:%SZ").to_string();
    let pid = record.pid.map_or_else(|| "-".to_owned(), |p| p.to_string());
    let entry = match &record.entry {
        None => "-".to_owned(),
        Some(e) => match &e.account {
            Some(account) => format!("{}/{}", e.service, account),
            None => format!("{}/*", e.service),
        },
    };
    let exe = record.exe.as_deref().unwrap_or("-");
    let mut outcome = output::sanitize(&record.outcome);
    if let Some(grant) = &record.grant {
        outcome = format!("{outcome} (grant {})", output::sanitize(grant));
    }
    row(&[
        &time,
        record.transport.as_str(),
        &pid,
        &output::sanitize(&record.method),
        &outcome,
        &output::sanitize(&entry),
        &output::sanitize(exe),
    ])
}

/// The audit file.
fn path() -> Result<PathBuf, Failure> {
    latchkey_audit::default_path().ok_or_else(|| {
        crate::failure(anyhow!(
            "cannot find a home folder, so there is no audit file to read"
        ))
    })
}

/// Runs `latchkey audit`.
pub fn run(args: &AuditArgs) -> Result<(), Failure> {
    let since = args
        .since
        .as_deref()
        .map(|text| parse_since(text, chrono::Utc::now()))
        .transpose()
        .map_err(|e| crate::usage(e.into()))?;
    let mut printer = Printer {
        filter: Filter {
            service: args.service.clone(),
            since,
        },
        json: args.json,
        header_shown: false,
        malformed: 0,
        failed: None,
    };
    let path = path()?;
    let shown = output::sanitize(&path.display().to_string());
    // The rotated files first; the current one is read (and, with --follow, followed) next.
    for file in reader::rotated_files(&path) {
        match reader::read_file(&file, &mut |line| printer.accept(line)) {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            other => other
                .with_context(|| {
                    format!(
                        "cannot read {}",
                        output::sanitize(&file.display().to_string())
                    )
                })
                .map_err(crate::failure)?,
        }
    }
    printer.check()?;
    if !args.follow {
        match reader::read_file(&path, &mut |line| printer.accept(line)) {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                note!("latchkey: no audit records yet ({shown} does not exist)");
            }
            other => other
                .with_context(|| format!("cannot read {shown}"))
                .map_err(crate::failure)?,
        }
        printer.check()?;
        printer.report_malformed(&path);
        return Ok(());
    }
    let mut follower = Follower::new(&path);
    loop {
        follower
            .poll(&mut |line| printer.accept(line))
            .with_context(|| format!("cannot read {shown}"))
            .map_err(crate::failure)?;
        printer.check()?;
        printer.report_malformed(&path);
        std::thread::sleep(POLL);
    }
}
