//! taskreset-controller: reset Huawei Cloud ROMA Connect FDI combined-task progress
//! declaratively, exactly once per generation of a `TaskReset` object.
//!
//! Data flows one way: watch -> decide -> claim -> call -> record.

// Lets the tests' fixture (tests/fixture/) name this crate the same way from unit tests.
extern crate self as taskreset_controller;

pub mod api;
pub mod cli;
pub mod ledger;
pub mod reconciler;
pub mod roma;
pub mod telemetry;

#[cfg(test)]
#[path = "../tests/fixture/mod.rs"]
pub(crate) mod fixture;
