//! taskreset-controller: reset Huawei Cloud ROMA Connect FDI combined-task progress
//! declaratively, exactly once per generation of a `TaskReset` object.
//!
//! Data flows one way: watch -> decide -> claim -> call -> record.

pub mod api;
pub mod cli;
pub mod ledger;
pub mod reconciler;
pub mod roma;
pub mod telemetry;
