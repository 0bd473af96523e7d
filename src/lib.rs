//! dialerd: an outbound campaign dialer daemon.

pub mod admin;
pub mod api;
pub mod app;
pub mod cli;
pub mod db;
pub mod domain;
pub mod settings;
pub mod shutdown;
pub mod telemetry;
