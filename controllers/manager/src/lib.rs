//! The Jobsmith manager: the shared plumbing of the five controllers (module map in
//! docs/architecture.md, behaviour in docs/manager.md) and the reconcilers in `controllers/`.

pub mod apply;
pub mod cache;
pub mod cli;
pub mod context;
pub mod controller;
pub mod controllers;
pub mod generate;
pub mod leadership;
pub mod memory;
pub mod run;
pub mod shutdown;
pub mod status;
pub mod telemetry;
