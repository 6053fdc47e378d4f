//! What a run object's status says: the roll-up of its steps, its kstatus conditions and the
//! durable record of every step.

pub mod conditions;
pub mod record;
pub mod rollup;
