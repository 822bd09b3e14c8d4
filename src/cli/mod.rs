//! The command line: one binary, one subcommand per job.

mod crd;
mod duration;
mod exit;
pub mod reset;
pub mod run;
#[cfg(feature = "sandbox")]
pub mod sandbox;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use exit::EXIT_USAGE;

/// What `sandbox` says in a build without the `sandbox` feature.
#[cfg(not(feature = "sandbox"))]
pub const NO_SANDBOX: &str = "this build of taskreset-controller has no sandbox: it was built without the `sandbox` cargo feature, as the container image is. Run the sandbox from a default build: cargo run --release -- sandbox";

/// Reset ROMA Connect FDI combined-task progress from Kubernetes TaskReset objects.
#[derive(Debug, Parser)]
#[command(
    name = "taskreset-controller",
    version,
    about,
    long_about = None,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// What to do (default: run the controller).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Flags of `run`, accepted without the subcommand too.
    #[command(flatten)]
    pub run: run::RunArgs,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the controller (the default).
    Run(Box<run::RunArgs>),
    /// Print the TaskReset CustomResourceDefinition as YAML.
    Crd,
    /// Run the whole job on loopback: Kubernetes API and ROMA simulators, the controller,
    /// the examples.
    #[cfg(feature = "sandbox")]
    Sandbox(sandbox::SandboxArgs),
    /// `sandbox` in a build without it (the container image): says so instead of "unrecognized
    /// subcommand".
    #[cfg(not(feature = "sandbox"))]
    #[command(hide = true, disable_help_flag = true)]
    Sandbox {
        /// Whatever followed `sandbox`, ignored.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        args: Vec<String>,
    },
    /// Call ROMA's reset once from the command line (credentials from ROMA_* environment
    /// variables), to check credentials and connectivity.
    Reset(reset::ResetArgs),
}

impl Cli {
    /// Run the chosen subcommand and turn its outcome into the process exit code.
    pub fn execute(self) -> ExitCode {
        match self.command {
            None => run::execute(self.run),
            Some(Command::Run(args)) => run::execute(*args),
            Some(Command::Crd) => crd::print(),
            #[cfg(feature = "sandbox")]
            Some(Command::Sandbox(args)) => sandbox::execute(args),
            #[cfg(not(feature = "sandbox"))]
            Some(Command::Sandbox { .. }) => {
                eprintln!("{NO_SANDBOX}");
                ExitCode::from(EXIT_USAGE)
            }
            Some(Command::Reset(args)) => reset::run(args),
        }
    }
}
