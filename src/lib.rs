//! dialerd: an outbound campaign dialer daemon.

pub mod actors;
pub mod admin;
pub mod api;
pub mod app;
pub mod cli;
pub mod clock;
pub mod db;
pub mod demo;
pub mod domain;
pub mod forecast;
pub mod import;
pub mod monitoring;
pub mod settings;
pub mod shutdown;
pub mod systemd;
pub mod telemetry;
pub mod telephony;
pub mod ui;
