//! Settings: `config/default.toml` (built in), an optional `--config` file,
//! then `DIALERD_SECTION__KEY` environment variables and `DATABASE_URL`.

use std::net::SocketAddr;
use std::path::Path;

use config::{Config, Environment, File, FileFormat};
use serde::Deserialize;

const DEFAULTS: &str = include_str!("../config/default.toml");

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read settings: {0}")]
    Load(#[from] config::ConfigError),
    #[error("bad setting `{key}`: {reason}")]
    Invalid { key: &'static str, reason: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub http: HttpSettings,
    pub metrics: MetricsSettings,
    pub log: LogSettings,
    pub dialer: DialerSettings,
    pub telephony: TelephonySettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DialerSettings {
    pub lines: u32,
    pub global_concurrency_limit: u32,
    pub claim_interval_ms: u64,
    pub idle_recheck_ms: u64,
    pub status_poll_ms: u64,
    pub plan_refresh_seconds: u64,
    pub heartbeat_seconds: u64,
    pub lease_seconds: u64,
    pub drain_timeout_seconds: u64,
    pub result_batch: usize,
    pub result_flush_ms: u64,
    pub vacuum_seconds: u64,
    pub attempts_vacuum_seconds: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Simulated,
    Http,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelephonySettings {
    pub backend: Backend,
    pub simulated: SimulatedSettings,
    pub http: PlatformSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    pub url: String,
    pub max_connections: u32,
    pub acquire_timeout_seconds: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    pub listen: SocketAddr,
    pub max_body_bytes: usize,
    /// Largest CSV body `POST .../imports` accepts (spooled to a file).
    pub max_import_bytes: u64,
    pub request_timeout_seconds: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    pub enabled: bool,
    pub listen: SocketAddr,
    /// Seconds between recounts of the due backlog (`dialerd_contacts_due`,
    /// `dialerd_contacts_callable`).
    pub backlog_seconds: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Auto,
    Human,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub level: String,
    pub format: LogFormat,
}

impl Settings {
    /// Loads the layered settings; `file` must exist when given.
    pub fn load(file: Option<&Path>) -> Result<Settings, SettingsError> {
        let mut builder = Config::builder().add_source(File::from_str(DEFAULTS, FileFormat::Toml));
        if let Some(path) = file {
            builder = builder.add_source(File::from(path).required(true));
        }
        builder = builder.add_source(
            Environment::with_prefix("DIALERD")
                .prefix_separator("_")
                .separator("__")
                .try_parsing(true),
        );
        if let Ok(url) = std::env::var("DATABASE_URL") {
            builder = builder.set_override("database.url", url)?;
        }
        let settings: Settings = builder.build()?.try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    /// `[telephony.http]`, checked only when it is the backend in use.
    fn validate_http(&self) -> Result<(), SettingsError> {
        let h = &self.telephony.http;
        let invalid = |key, reason: &str| SettingsError::Invalid {
            key,
            reason: reason.into(),
        };
        let http_url = |url: &str| {
            (url.starts_with("http://") || url.starts_with("https://"))
                && url.len() > "https://".len()
                && !url.contains(char::is_whitespace)
        };
        if !http_url(&h.base_url) {
            return Err(invalid(
                "telephony.http.base_url",
                "must be an http:// or https:// URL",
            ));
        }
        if !http_url(&h.callback_base_url) {
            return Err(invalid(
                "telephony.http.callback_base_url",
                "must be an http:// or https:// URL",
            ));
        }
        if h.token.trim().is_empty() {
            return Err(invalid(
                "telephony.http.token",
                "must be set for the http backend",
            ));
        }
        if h.signing_secret.len() < 16 {
            return Err(invalid(
                "telephony.http.signing_secret",
                "must be at least 16 characters for the http backend",
            ));
        }
        check(
            "telephony.http.request_timeout_ms",
            h.request_timeout_ms,
            100,
            120_000,
        )?;
        check("telephony.http.request_retries", h.request_retries, 0, 10)?;
        check(
            "telephony.http.max_call_seconds",
            h.max_call_seconds,
            1,
            86_400,
        )?;
        check(
            "telephony.http.status_check_seconds",
            h.status_check_seconds,
            1,
            3600,
        )?;
        Ok(())
    }

    fn validate(&self) -> Result<(), SettingsError> {
        check(
            "database.max_connections",
            self.database.max_connections,
            1,
            1000,
        )?;
        check(
            "database.acquire_timeout_seconds",
            self.database.acquire_timeout_seconds,
            1,
            600,
        )?;
        check(
            "http.max_body_bytes",
            self.http.max_body_bytes,
            1024,
            256 << 20,
        )?;
        check(
            "http.max_import_bytes",
            self.http.max_import_bytes,
            1024,
            64 << 30,
        )?;
        check(
            "http.request_timeout_seconds",
            self.http.request_timeout_seconds,
            1,
            3600,
        )?;
        check(
            "metrics.backlog_seconds",
            self.metrics.backlog_seconds,
            1,
            3600,
        )?;
        let d = &self.dialer;
        check("dialer.lines", d.lines, 1, 200_000)?;
        check(
            "dialer.global_concurrency_limit",
            d.global_concurrency_limit,
            1,
            1_000_000,
        )?;
        check("dialer.claim_interval_ms", d.claim_interval_ms, 1, 1000)?;
        check("dialer.idle_recheck_ms", d.idle_recheck_ms, 1, 60_000)?;
        check("dialer.status_poll_ms", d.status_poll_ms, 50, 1000)?;
        check(
            "dialer.plan_refresh_seconds",
            d.plan_refresh_seconds,
            1,
            3600,
        )?;
        check("dialer.heartbeat_seconds", d.heartbeat_seconds, 1, 60)?;
        check(
            "dialer.lease_seconds",
            d.lease_seconds,
            d.heartbeat_seconds + 1,
            600,
        )?;
        check(
            "dialer.drain_timeout_seconds",
            d.drain_timeout_seconds,
            0,
            3600,
        )?;
        check("dialer.result_batch", d.result_batch, 1, 10_000)?;
        check("dialer.result_flush_ms", d.result_flush_ms, 1, 1000)?;
        check("dialer.vacuum_seconds", d.vacuum_seconds, 0, 86_400)?;
        check(
            "dialer.attempts_vacuum_seconds",
            d.attempts_vacuum_seconds,
            0,
            86_400,
        )?;
        let sim = &self.telephony.simulated;
        if !(0.0..=1.0).contains(&sim.answer_rate) {
            return Err(SettingsError::Invalid {
                key: "telephony.simulated.answer_rate",
                reason: format!("{} is outside 0.0 to 1.0", sim.answer_rate),
            });
        }
        check(
            "telephony.simulated.mean_call_ms",
            sim.mean_call_ms,
            0,
            86_400_000,
        )?;
        sim.unanswered
            .validate()
            .map_err(|reason| SettingsError::Invalid {
                key: "telephony.simulated.unanswered",
                reason,
            })?;
        if self.telephony.backend == Backend::Http {
            self.validate_http()?;
        }
        if !self.database.url.starts_with("postgres://")
            && !self.database.url.starts_with("postgresql://")
        {
            return Err(SettingsError::Invalid {
                key: "database.url",
                reason: "must be a postgres:// or postgresql:// URL".into(),
            });
        }
        tracing_subscriber::EnvFilter::try_new(&self.log.level).map_err(|e| {
            SettingsError::Invalid {
                key: "log.level",
                reason: e.to_string(),
            }
        })?;
        Ok(())
    }
}

fn check<T: PartialOrd + std::fmt::Display>(
    key: &'static str,
    value: T,
    min: T,
    max: T,
) -> Result<(), SettingsError> {
    if value < min || value > max {
        return Err(SettingsError::Invalid {
            key,
            reason: format!("{value} is outside {min} to {max}"),
        });
    }
    Ok(())
}

/// `[telephony.http]`. Its `Debug` hides the token and the secret.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformSettings {
    /// The platform's API base; calls are placed with `POST {base_url}/calls`.
    pub base_url: String,
    /// Bearer token for the platform's API.
    pub token: String,
    pub request_timeout_ms: u64,
    /// Further tries of a call request after a time-out, a connection error,
    /// 408, 429 or 5xx, with the same Idempotency-Key.
    pub request_retries: u32,
    /// dialerd's public base URL; callbacks go to `{callback_base_url}/telephony/callbacks`.
    pub callback_base_url: String,
    /// HMAC-SHA256 key of the callback signatures.
    pub signing_secret: String,
    /// A call with no final status after this long is closed as `failed`.
    pub max_call_seconds: u64,
    /// How often a waiting line checks its attempt in the database, in case
    /// the notification of a callback settled elsewhere was missed.
    pub status_check_seconds: u64,
}

impl std::fmt::Debug for PlatformSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |s: &str| if s.is_empty() { "" } else { "<redacted>" };
        f.debug_struct("PlatformSettings")
            .field("base_url", &self.base_url)
            .field("token", &hidden(&self.token))
            .field("request_timeout_ms", &self.request_timeout_ms)
            .field("request_retries", &self.request_retries)
            .field("callback_base_url", &self.callback_base_url)
            .field("signing_secret", &hidden(&self.signing_secret))
            .field("max_call_seconds", &self.max_call_seconds)
            .field("status_check_seconds", &self.status_check_seconds)
            .finish()
    }
}

/// How call durations are drawn around `mean_call_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DurationShape {
    /// Always the mean.
    Fixed,
    /// Uniform between 0 and twice the mean.
    Uniform,
    /// Exponential with that mean.
    Exponential,
}

/// Relative weights of how unanswered calls end.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutcomeMix {
    pub no_answer: f64,
    pub busy: f64,
    pub voicemail: f64,
    pub rejected: f64,
    pub invalid_number: f64,
    pub failed: f64,
}

impl OutcomeMix {
    /// Every unanswered call ends `no_answer`.
    pub fn only_no_answer() -> OutcomeMix {
        OutcomeMix {
            no_answer: 1.0,
            busy: 0.0,
            voicemail: 0.0,
            rejected: 0.0,
            invalid_number: 0.0,
            failed: 0.0,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        let weights = [
            self.no_answer,
            self.busy,
            self.voicemail,
            self.rejected,
            self.invalid_number,
            self.failed,
        ];
        if weights.iter().any(|w| !w.is_finite() || *w < 0.0) {
            return Err("weights must be finite and not negative".into());
        }
        if weights.iter().sum::<f64>() <= 0.0 {
            return Err("at least one weight must be above 0".into());
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatedSettings {
    pub seed: u64,
    pub answer_rate: f64,
    pub mean_call_ms: u64,
    pub duration: DurationShape,
    pub unanswered: OutcomeMix,
    /// A file the network appends one JSON line to for every call placed
    /// and every call ended; empty for none.
    #[serde(default)]
    pub call_log: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The built-in defaults alone, not yet validated.
    fn defaults() -> Settings {
        Config::builder()
            .add_source(File::from_str(DEFAULTS, FileFormat::Toml))
            .build()
            .unwrap()
            .try_deserialize()
            .unwrap()
    }

    #[test]
    fn the_built_in_defaults_load_and_are_valid() {
        let s = defaults();
        s.validate().unwrap();
        assert_eq!(s.http.listen.to_string(), "127.0.0.1:8080");
    }

    #[test]
    fn a_backlog_recount_interval_out_of_range_is_refused_by_name() {
        let mut s = defaults();
        for bad in [0, 3601] {
            s.metrics.backlog_seconds = bad;
            let e = s.validate().unwrap_err().to_string();
            assert!(e.contains("metrics.backlog_seconds"), "{e}");
        }
        s.metrics.backlog_seconds = 1;
        s.validate().unwrap();
    }

    #[test]
    fn vacuum_intervals_out_of_range_are_refused_by_name() {
        let mut s = defaults();
        assert_eq!(s.dialer.vacuum_seconds, 30);
        assert_eq!(s.dialer.attempts_vacuum_seconds, 300);
        s.dialer.attempts_vacuum_seconds = 86_401;
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("dialer.attempts_vacuum_seconds"), "{e}");
        s.dialer.attempts_vacuum_seconds = 0;
        s.validate().unwrap();
    }
}
