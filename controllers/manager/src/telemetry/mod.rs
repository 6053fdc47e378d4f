//! What the manager tells about itself: logs, Events, Prometheus metrics (and the per-object
//! reconcile rates of the busiest objects), and the health and readiness endpoints.

pub mod events;
pub mod health;
pub mod hot_objects;
pub mod logging;
pub mod metrics;
