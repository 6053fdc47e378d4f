//! Jobsmith API types.
