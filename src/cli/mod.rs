//! The command line: one binary, one subcommand per job.

mod crd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit code for a usage or configuration error (BSD `EX_USAGE`).
pub const EXIT_USAGE: u8 = 64;

/// Reset ROMA Connect FDI combined-task progress from Kubernetes TaskReset objects.
#[derive(Debug, Parser)]
#[command(name = "taskreset-controller", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the TaskReset CustomResourceDefinition as YAML.
    Crd,
}

impl Cli {
    /// Run the chosen subcommand and turn its outcome into the process exit code.
    pub fn execute(self) -> ExitCode {
        match self.command {
            Command::Crd => crd::print(),
        }
    }
}
