//! The `rnnt` command line: argument parsing and printing only; every computation is the `rnnt`
//! crate's and every file format the `rnnt-cases` crate's.
//!
//! Exit status: 0 on success, 1 when `rnnt check` finds a failing case, 2 on bad input or a bad
//! command line (with a one-line `error: …` on stderr). A panic (status 101) is a bug.

mod align;
mod bench;
mod bench_variant;
mod case_input;
mod check;
mod demo;
mod loss;
mod picture;
mod variant_case;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exact, fast RNN-Transducer loss: run it on files, check it against golden cases, see it work.
#[derive(Debug, Parser)]
#[command(name = "rnnt", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Worked examples, a random batch checked against the reference, and a speed comparison.
    Demo(demo::Args),
    /// Losses and gradient of one batch stored as .npz.
    Loss(loss::Args),
    /// Runs every golden-format .npz in a folder through the fast path and compares with its truth.
    Check(check::Args),
    /// Best path, emission frames and occupancy heatmap of each item of a .npz batch.
    Align(align::Args),
    /// Times the CPU loss on the benchmark shapes against the memory-bandwidth floor.
    Bench(bench::Args),
}

/// Lets a closed pipe (`rnnt align … | head`) end the process quietly, as it does for other Unix
/// tools, instead of making `println!` panic.
#[cfg(unix)]
fn die_quietly_on_closed_pipe() {
    // SAFETY: restoring the default disposition of SIGPIPE at start-up, before any thread is
    // spawned, has no effect on memory; the default action only terminates the process.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(not(unix))]
fn die_quietly_on_closed_pipe() {}

fn main() -> ExitCode {
    die_quietly_on_closed_pipe();
    let cli = Cli::parse();
    let outcome = match &cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Loss(args) => loss::run(args),
        Command::Check(args) => check::run(args),
        Command::Align(args) => align::run(args),
        Command::Bench(args) => bench::run(args),
    };
    outcome.unwrap_or_else(|error| {
        eprintln!("error: {error:#}");
        ExitCode::from(2)
    })
}
