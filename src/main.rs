//! dbfleet's entry point: parse, run, and map the outcome to an exit code. Nothing else.
//! 0 success or no changes; 1 any error (rendered as a miette diagnostic, or clap's usage
//! message); 2 changes pending with `plan --detailed-exitcode` (Terraform's convention).

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use dbfleet::cli::{Cli, Exit};

/// The log's writer: each formatted event goes through the process-wide redactor.
struct RedactingStderr;

impl std::io::Write for RedactingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = dbfleet::secrets::redact_everywhere(&String::from_utf8_lossy(buf));
        std::io::stderr().write_all(text.as_bytes())?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

fn main() -> ExitCode {
    // Usage errors exit 1, not clap's 2: 2 means "changes pending" to CI
    // (`plan --detailed-exitcode`, Terraform's convention). --help and --version exit 0.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let color = dbfleet::cli::color(std::io::stderr().is_terminal());
    let _ = miette::set_hook(Box::new(move |_| {
        Box::new(
            miette::MietteHandlerOpts::new()
                .color(color)
                .unicode(true)
                .terminal_links(false)
                .width(100)
                .build(),
        )
    }));
    let level = match (cli.global.quiet, cli.global.verbose) {
        (true, _) => "error",
        (_, 0) => "warn",
        (_, 1) => "info",
        _ => "debug",
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DBFLEET_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("dbfleet={level}"))),
        )
        .with_writer(|| RedactingStderr)
        .with_ansi(color)
        .without_time()
        .try_init();
    match dbfleet::cli::run(cli) {
        Ok(Exit::Ok) => ExitCode::SUCCESS,
        Ok(Exit::ChangesPending) => ExitCode::from(2),
        Err(e) => {
            // Errors carry remote stderr and runbook messages: redacted here, at the edge,
            // whatever path they took.
            let text = format!("{:?}", miette::Report::new(e));
            eprintln!("{}", dbfleet::secrets::redact_everywhere(&text));
            ExitCode::from(1)
        }
    }
}
