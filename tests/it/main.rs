//! The integration tests: one binary, a fresh PostgreSQL database per test.

mod api_auth;
mod api_campaigns;
mod api_configurations;
mod api_contacts;
mod claims;
mod cli;
mod daemon;
mod dashboard;
mod dnc;
mod engine;
mod explain;
mod fixtures;
mod forecast;
mod helpers;
mod hostile;
mod imports;
mod leases;
mod metrics;
mod openapi;
mod outage;
mod platform;
mod record;
mod restart;
mod schema;
mod systemd;
mod tenants;
