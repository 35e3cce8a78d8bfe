//! The example service and its pieces, as a library so the integration
//! tests and the `env-docs` binary reuse the same config type and routes.

pub mod service;
