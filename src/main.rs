//! The `taskreset-controller` binary: see `taskreset-controller --help`.

use std::process::ExitCode;

use clap::Parser;
use taskreset_controller::cli::{Cli, EXIT_USAGE};

fn main() -> ExitCode {
    match Cli::try_parse() {
        Ok(cli) => cli.execute(),
        Err(err) => {
            // --help and --version print to stdout and succeed; usage errors exit 64
            // (EX_USAGE), keeping 2 and 3 free for the outcomes of `reset`.
            let _ = err.print();
            if err.use_stderr() {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::SUCCESS
            }
        }
    }
}
