//! Who may write, and how fast: the Lease loop and its write fence (a manager writes only while
//! it holds the Lease, stopping at the renew deadline on its own clock), the write budget every
//! write asks (and that asks the fence), and the per-object backoff of failed reconciles.

pub mod backoff;
pub mod lease;
pub mod ratelimit;
