//! The Jobsmith manager: the shared plumbing of the five controllers (module map in
//! docs/architecture.md, behaviour in docs/manager.md) and the reconcilers in `controllers/`.

pub mod apply;
pub mod backoff;
pub mod cache;
pub mod cli;
pub mod context;
pub mod controller;
pub mod controllers;
pub mod events;
pub mod generate;
pub mod health;
pub mod hot_objects;
pub mod jobs;
pub mod leader;
pub mod memory;
pub mod metrics;
pub mod nodes;
pub mod ratelimit;
pub mod run;
pub mod shutdown;
pub mod status;
pub mod telemetry;
pub mod templates;
