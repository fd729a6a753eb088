//! `loadgen`: a bounded load against the score ingest API. See `loadgen --help`.
//!
//! Progress goes to stderr once a second; the summary (human, or JSON with `--json`) to stdout.
//! Ctrl-C stops early and still prints the summary of what was sent.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use pipeline_tests::load::soak::{sample_line, soak};
use pipeline_tests::load::startup::startup_time;
use pipeline_tests::load::{Cli, Command, Plan, run};
use tokio::sync::watch;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::StartupTime(args)) => match startup_time(&args).await {
            Ok(report) => {
                if args.json {
                    out(&format!("{}\n", json(&report)));
                } else {
                    out(&report.render());
                }
                ExitCode::SUCCESS
            }
            Err(error) => fail(&error, 1),
        },
        Some(Command::Soak(args)) => {
            match soak(&args, |sample, args| {
                eprintln!("{}", sample_line(sample, args))
            })
            .await
            {
                Ok(report) => {
                    if args.json {
                        out(&format!("{}\n", json(&report)));
                    } else {
                        out(&report.render());
                    }
                    if report.passed() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(1)
                    }
                }
                Err(error) => fail(&error, 1),
            }
        }
        None => load(cli.load).await,
    }
}

async fn load(args: pipeline_tests::load::Args) -> ExitCode {
    let plan = match Plan::from_args(&args) {
        Ok(plan) => Arc::new(plan),
        Err(error) => return fail(&error, 2),
    };
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\nstopping: letting the requests in flight finish");
            let _ = stop.send(true);
        }
    });
    let quiet = args.quiet;
    let summary = match run(plan, stopped, move |progress| {
        if !quiet {
            eprintln!("{}", progress.line());
        }
    })
    .await
    {
        Ok(summary) => summary,
        Err(error) => return fail(&error.to_string(), 1),
    };
    if args.json {
        out(&format!("{}\n", json(&summary)));
    } else {
        out(&summary.render());
    }
    if summary.unexpected == 0 && summary.errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn json(value: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// Writes to stdout; a closed stdout (`loadgen ... | head`) is not worth a panic.
fn out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

fn fail(error: &str, code: u8) -> ExitCode {
    eprintln!("loadgen: {error}");
    ExitCode::from(code)
}
