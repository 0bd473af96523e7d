//! The simulated network's own record of the calls it was asked to place
//! (`telephony.simulated.call_log`), read back, and exact checks over time
//! intervals: what dialerd's guarantees are checked against, rather than
//! the rows dialerd itself writes.

use std::collections::HashMap;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

/// A time interval: a start, and an end unless it is still open.
pub type Span = (DateTime<Utc>, Option<DateTime<Utc>>);

/// A call as the network recorded it.
#[derive(Debug, Clone)]
pub struct Call {
    pub attempt: Uuid,
    pub contact: Uuid,
    pub campaign: Option<Uuid>,
    pub number: String,
    pub placed: DateTime<Utc>,
    /// When it ended; `None` if its process died first.
    pub ended: Option<DateTime<Utc>>,
}

/// A call log file of one test, removed when dropped.
pub struct CallLog {
    path: PathBuf,
}

impl CallLog {
    pub fn new() -> CallLog {
        let name = format!("dialerd-calls-{}.jsonl", Uuid::new_v4().simple());
        CallLog {
            path: std::env::temp_dir().join(name),
        }
    }

    /// The value for `telephony.simulated.call_log`.
    pub fn path(&self) -> &str {
        self.path
            .to_str()
            .expect("the temporary directory is UTF-8")
    }

    /// Every call recorded so far, in the order placed.
    pub fn calls(&self) -> Vec<Call> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
            Err(e) => panic!("cannot read the call log: {e}"),
        };
        let mut calls: Vec<Call> = Vec::new();
        let mut index: HashMap<Uuid, usize> = HashMap::new();
        // A line cut short by a kill mid-write would not parse: there is
        // none, as each line is one write, so every line must parse.
        for line in text.lines() {
            let e: Value = serde_json::from_str(line).expect("a whole JSON line");
            let uuid = |k: &str| e[k].as_str().map(|s| s.parse::<Uuid>().unwrap());
            let at: DateTime<Utc> = e["at"].as_str().unwrap().parse().unwrap();
            let attempt = uuid("attempt_id").unwrap();
            match e["event"].as_str().unwrap() {
                "placed" => {
                    assert!(
                        !index.contains_key(&attempt),
                        "attempt {attempt} was placed twice"
                    );
                    index.insert(attempt, calls.len());
                    calls.push(Call {
                        attempt,
                        contact: uuid("contact_id").unwrap(),
                        campaign: uuid("campaign_id"),
                        number: e["number"].as_str().unwrap().to_owned(),
                        placed: at,
                        ended: None,
                    });
                }
                "ended" => calls[index[&attempt]].ended = Some(at),
                other => panic!("unknown call log event {other}"),
            }
        }
        calls
    }

    /// Calls placed after `at`.
    pub fn placed_after(&self, at: DateTime<Utc>) -> Vec<Call> {
        self.calls().into_iter().filter(|c| c.placed > at).collect()
    }
}

impl Drop for CallLog {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The most intervals open at one instant. An interval is open from its
/// start up to, not including, its end; `None` ends never.
pub fn max_overlap(intervals: impl IntoIterator<Item = Span>) -> usize {
    // Ends sort before starts at the same instant: a slot freed and taken
    // again at once is not two calls.
    let mut edges: Vec<(DateTime<Utc>, i8)> = Vec::new();
    for (start, end) in intervals {
        edges.push((start, 1));
        if let Some(end) = end {
            assert!(end >= start, "an interval ends before it starts");
            edges.push((end, -1));
        }
    }
    edges.sort();
    let (mut open, mut most) = (0i64, 0i64);
    for (_, step) in edges {
        open += i64::from(step);
        most = most.max(open);
    }
    most as usize
}

/// Asserts no contact was in two calls at once: calls without an end are
/// taken to last until `cut` (when their process was killed).
pub fn assert_no_contact_in_two_calls(calls: &[Call], cut: Option<DateTime<Utc>>) {
    let mut by_contact: HashMap<Uuid, Vec<Span>> = HashMap::new();
    for c in calls {
        by_contact
            .entry(c.contact)
            .or_default()
            .push((c.placed, c.ended.or(cut)));
    }
    for (contact, calls) in by_contact {
        assert!(
            max_overlap(calls.clone()) <= 1,
            "contact {contact} was in two calls at once: {calls:?}"
        );
    }
}

/// Asserts every recorded call has its attempt row: the same contact and
/// number, written before the call was placed.
pub async fn assert_calls_have_attempts(pool: &PgPool, calls: &[Call]) {
    let rows: Vec<(Uuid, Uuid, String, DateTime<Utc>)> =
        sqlx::query_as("SELECT id, contact_id, phone_number, created_at FROM attempts")
            .fetch_all(pool)
            .await
            .unwrap();
    let attempts: HashMap<Uuid, (Uuid, String, DateTime<Utc>)> = rows
        .into_iter()
        .map(|(id, contact, number, at)| (id, (contact, number, at)))
        .collect();
    for c in calls {
        let Some((contact, number, written)) = attempts.get(&c.attempt) else {
            panic!("a call without its attempt row: {c:?}");
        };
        assert_eq!((contact, number), (&c.contact, &c.number), "{c:?}");
        assert!(
            *written <= c.placed,
            "placed before its attempt was written: {c:?}"
        );
    }
}

/// The most attempts open at once, per organization and in all, swept
/// over the start and end of every attempt open at or after `since` (all
/// when `None`); attempts still open count as open to the end.
pub async fn attempt_concurrency(
    pool: &PgPool,
    since: Option<DateTime<Utc>>,
) -> (HashMap<Uuid, usize>, usize) {
    let rows: Vec<(Uuid, DateTime<Utc>, Option<DateTime<Utc>>)> = sqlx::query_as(
        "SELECT organization_id, greatest(created_at, coalesce($1, '-infinity')), ended_at
           FROM attempts WHERE ended_at IS NULL OR ended_at > coalesce($1, '-infinity')",
    )
    .bind(since)
    .fetch_all(pool)
    .await
    .unwrap();
    let mut by_org: HashMap<Uuid, Vec<Span>> = HashMap::new();
    for (org, start, end) in &rows {
        by_org.entry(*org).or_default().push((*start, *end));
    }
    let per_org = by_org
        .into_iter()
        .map(|(org, spans)| (org, max_overlap(spans)))
        .collect();
    let total = max_overlap(rows.into_iter().map(|(_, s, e)| (s, e)));
    (per_org, total)
}

#[test]
fn overlap_counts_touching_intervals_once() {
    let t = |s: i64| DateTime::<Utc>::from_timestamp(s, 0).unwrap();
    assert_eq!(max_overlap([(t(0), Some(t(2))), (t(2), Some(t(4)))]), 1);
    assert_eq!(max_overlap([(t(0), Some(t(3))), (t(2), Some(t(4)))]), 2);
    assert_eq!(
        max_overlap([(t(0), None), (t(5), Some(t(6))), (t(1), Some(t(2)))]),
        2
    );
    assert_eq!(max_overlap(Vec::new()), 0);
}
