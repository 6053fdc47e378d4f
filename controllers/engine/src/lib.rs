//! The Jobsmith engine.
