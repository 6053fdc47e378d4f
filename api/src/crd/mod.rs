//! The CRDs as code: the schema helpers the kinds' types use ([`schema`]) and the rendering of
//! the CRD YAML and the API reference from those types ([`generate`]).

pub mod generate;
pub mod schema;
