//! `taskreset-controller crd`: print the CRD that `deploy/crd.yaml` holds.

use std::io::Write;
use std::process::ExitCode;

use crate::api::crd_yaml;

/// Print the CRD YAML on standard output.
pub fn print() -> ExitCode {
    let yaml = match crd_yaml() {
        Ok(yaml) => yaml,
        Err(err) => {
            eprintln!("error: cannot serialise the CRD: {err}");
            return ExitCode::FAILURE;
        }
    };
    match std::io::stdout().lock().write_all(yaml.as_bytes()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: cannot write the CRD: {err}");
            ExitCode::FAILURE
        }
    }
}
