//! What the commands print, pure: plain data read from the cluster goes in, text comes out
//! (the tree, the tables of `list`, the `status` block, the step graph, and their colours).

pub mod color;
pub mod graph;
pub mod status;
pub mod table;
pub mod tree;
