//! The `taskreset-controller` binary: see `taskreset-controller --help`.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    taskreset_controller::cli::Cli::parse().execute()
}
