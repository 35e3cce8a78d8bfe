//! A small items service on a typed, observable pool: CRUD at `/items`,
//! pool health at `/health/db_pool`, Prometheus text at `/metrics`.
//!
//! It runs with no setup on an embedded SQLite file and against PostgreSQL
//! when `DATABASE_URL` says so; the backend is picked from the URL scheme.

pub mod batch;
pub mod config;
pub mod debug;
pub mod error;
pub mod items;
pub mod server;
pub mod store;
pub mod telemetry;

pub use config::ServiceConfig;
pub use server::run;
