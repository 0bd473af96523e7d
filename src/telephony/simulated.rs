//! The simulated phone network: seeded, with a configurable answer rate,
//! outcome mix for unanswered calls, and call durations. It drives the demo,
//! the tests and the benchmarks. It can keep the network's own record of
//! every call it was asked to place (`call_log`): what the tests check
//! dialerd's guarantees against, independently of dialerd's tables.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use super::{CallBackend, CallEnd, CallRequest};
use crate::domain::call::CallReport;
use crate::domain::status::Outcome;
use crate::settings::{DurationShape, OutcomeMix, SimulatedSettings};
use chrono::Utc;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub struct Simulated {
    settings: SimulatedSettings,
    rng: Mutex<StdRng>,
    log: Option<CallLog>,
}

impl Simulated {
    /// The network; fails only when the call log cannot be opened.
    pub fn new(settings: SimulatedSettings) -> std::io::Result<Self> {
        let rng = Mutex::new(StdRng::seed_from_u64(settings.seed));
        let log = match settings.call_log.as_str() {
            "" => None,
            path => Some(CallLog::open(path)?),
        };
        Ok(Simulated { settings, rng, log })
    }

    /// Draws the outcome and duration of one call.
    fn draw(&self) -> (Outcome, Duration) {
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        let s = &self.settings;
        draw(
            &mut *rng,
            s.answer_rate,
            s.mean_call_ms as f64,
            s.duration,
            &s.unanswered,
        )
    }
}

/// One call of the simulated network: answered with `answer_rate` (then
/// `completed`), else an outcome of `unanswered` by weight; its length
/// drawn around `mean_ms` by `shape`. The forecast draws its calls with it.
pub fn draw<R: Rng>(
    rng: &mut R,
    answer_rate: f64,
    mean_ms: f64,
    shape: DurationShape,
    unanswered: &OutcomeMix,
) -> (Outcome, Duration) {
    let answered = rng.random::<f64>() < answer_rate;
    let outcome = if answered {
        Outcome::Completed
    } else {
        pick(rng, unanswered)
    };
    let ms = match shape {
        DurationShape::Fixed => mean_ms,
        DurationShape::Uniform => rng.random::<f64>() * 2.0 * mean_ms,
        DurationShape::Exponential => -mean_ms * (1.0 - rng.random::<f64>()).ln(),
    };
    (outcome, Duration::from_micros((ms * 1000.0) as u64))
}

fn pick<R: Rng>(rng: &mut R, mix: &OutcomeMix) -> Outcome {
    let weights = [
        (Outcome::NoAnswer, mix.no_answer),
        (Outcome::Busy, mix.busy),
        (Outcome::Voicemail, mix.voicemail),
        (Outcome::Rejected, mix.rejected),
        (Outcome::InvalidNumber, mix.invalid_number),
        (Outcome::Failed, mix.failed),
    ];
    let total: f64 = weights.iter().map(|(_, w)| w).sum();
    let mut x = rng.random::<f64>() * total;
    for (outcome, w) in weights {
        if x < w {
            return outcome;
        }
        x -= w;
    }
    Outcome::NoAnswer
}

/// The network's record of calls: one line per event, each written with
/// one `write` to a file opened for appending, so the lines of several
/// processes sharing the file do not interleave, and a line written is
/// kept even if the process is killed the next instant.
struct CallLog(Mutex<File>);

impl CallLog {
    fn open(path: &str) -> std::io::Result<CallLog> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(CallLog(Mutex::new(file)))
    }

    fn append(&self, event: serde_json::Value) -> std::io::Result<()> {
        let mut line = event.to_string();
        line.push('\n');
        let mut file = self.0.lock().unwrap_or_else(|e| e.into_inner());
        file.write_all(line.as_bytes())
    }
}

impl CallBackend for Simulated {
    async fn place(&self, call: &CallRequest) -> CallEnd {
        let (outcome, duration) = self.draw();
        let started = Utc::now();
        if let Some(log) = &self.log {
            let placed = log.append(serde_json::json!({
                "event": "placed",
                "at": started,
                "attempt_id": call.attempt_id,
                "contact_id": call.contact_id,
                "campaign_id": call.campaign_id,
                "number": call.number.as_str(),
            }));
            // A call the network cannot record is not placed.
            if let Err(e) = placed {
                let detail = format!("simulated network: cannot record the call: {e}");
                return CallEnd::Report(CallReport::failed(detail, Utc::now()));
            }
        }
        if duration.is_zero() {
            tokio::task::yield_now().await;
        } else {
            tokio::time::sleep(duration).await;
        }
        let answered = outcome == Outcome::Completed;
        let ended_at = Utc::now();
        if let Some(log) = &self.log {
            let ended = log.append(serde_json::json!({
                "event": "ended",
                "at": ended_at,
                "attempt_id": call.attempt_id,
                "outcome": outcome.as_str(),
            }));
            if let Err(e) = ended {
                tracing::warn!(error = %e, "the simulated network cannot record a call's end");
            }
        }
        CallEnd::Report(CallReport {
            outcome,
            conversation_id: answered.then(|| format!("sim-{}", call.attempt_id)),
            detail: Some(format!("simulated {}", outcome.as_str())),
            answered_at: answered.then_some(started),
            ended_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(answer_rate: f64) -> SimulatedSettings {
        SimulatedSettings {
            seed: 7,
            answer_rate,
            mean_call_ms: 100,
            duration: DurationShape::Exponential,
            unanswered: OutcomeMix {
                no_answer: 1.0,
                busy: 1.0,
                voicemail: 0.0,
                rejected: 0.0,
                invalid_number: 0.0,
                failed: 0.0,
            },
            call_log: String::new(),
        }
    }

    #[test]
    fn the_same_seed_draws_the_same_calls() {
        let a: Vec<_> = (0..50)
            .map({
                let s = Simulated::new(settings(0.5)).unwrap();
                move |_| s.draw()
            })
            .collect();
        let b: Vec<_> = (0..50)
            .map({
                let s = Simulated::new(settings(0.5)).unwrap();
                move |_| s.draw()
            })
            .collect();
        assert_eq!(a, b);
    }

    #[test]
    fn answer_rate_one_completes_every_call_and_zero_none() {
        let all = Simulated::new(settings(1.0)).unwrap();
        assert!((0..200).all(|_| all.draw().0 == Outcome::Completed));
        let none = Simulated::new(settings(0.0)).unwrap();
        let outcomes: Vec<_> = (0..200).map(|_| none.draw().0).collect();
        assert!(outcomes
            .iter()
            .all(|o| matches!(o, Outcome::NoAnswer | Outcome::Busy)));
        assert!(outcomes.contains(&Outcome::Busy) && outcomes.contains(&Outcome::NoAnswer));
    }

    #[test]
    fn durations_follow_the_configured_mean() {
        let s = Simulated::new(settings(0.5)).unwrap();
        let total: f64 = (0..4000).map(|_| s.draw().1.as_secs_f64() * 1000.0).sum();
        let mean = total / 4000.0;
        assert!((80.0..120.0).contains(&mean), "mean {mean}");
        let zero = Simulated::new(SimulatedSettings {
            mean_call_ms: 0,
            ..settings(0.5)
        })
        .unwrap();
        assert!((0..10).all(|_| zero.draw().1.is_zero()));
    }

    #[test]
    fn an_outcome_mix_needs_a_positive_weight() {
        let mut mix = settings(0.5).unanswered;
        assert!(mix.validate().is_ok());
        mix.no_answer = 0.0;
        mix.busy = 0.0;
        assert!(mix.validate().is_err());
        mix.busy = -1.0;
        assert!(mix.validate().is_err());
    }
}
