//! Exit codes shared by the subcommands.

/// Exit code for a usage or configuration error (BSD `EX_USAGE`).
pub const EXIT_USAGE: u8 = 64;
