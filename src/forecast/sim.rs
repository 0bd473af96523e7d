//! The engine's rules over virtual time: a discrete-event simulation of
//! lines claiming due contacts and calls ending. It decides nothing of its
//! own: calling windows are [`Schedule::is_open_in`] per zone key, as the
//! campaign actors open gates; the order of a claim is the claim's
//! (campaign priority, fresh before retries, oldest due first); slots are
//! shared among organizations by [`fair_rooms`] and [`allocate`] in the
//! claim's two passes; what follows a call is [`DialingPolicy::after`];
//! calls are drawn by the simulated network's [`draw`] or from recorded
//! call lengths.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::domain::number_zones::Zones;
use crate::domain::policy::{AttemptResult, DialingPolicy, Next};
use crate::domain::schedule::Schedule;
use crate::domain::slots::{allocate, fair_rooms, Claimant, Load};
use crate::domain::status::Outcome;
use crate::settings::{DurationShape, OutcomeMix};
use crate::telephony::simulated::draw;

/// How a campaign's calls go.
#[derive(Debug, Clone)]
pub struct Behaviour {
    /// Share of calls answered (and so `completed`).
    pub answer_rate: f64,
    /// How unanswered calls end, by weight.
    pub unanswered: OutcomeMix,
    pub lengths: Lengths,
}

/// How long a call holds its line.
#[derive(Debug, Clone)]
pub enum Lengths {
    /// Drawn around a mean, as the simulated network draws them.
    Shape { mean_s: f64, shape: DurationShape },
    /// Drawn from recorded call lengths, in seconds (never empty).
    Recorded(Vec<f64>),
}

impl Lengths {
    pub fn mean_s(&self) -> f64 {
        match self {
            Lengths::Shape { mean_s, .. } => *mean_s,
            Lengths::Recorded(v) => v.iter().sum::<f64>() / v.len().max(1) as f64,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Organization {
    pub name: String,
    pub limit: u32,
}

#[derive(Debug, Clone)]
pub struct Campaign {
    pub name: String,
    pub organization: usize,
    pub priority: i32,
    pub schedule: Schedule,
    pub policy: DialingPolicy,
    pub behaviour: Behaviour,
}

/// A contact still to be finished, as the claim sees it.
#[derive(Debug, Clone)]
pub struct Contact {
    pub campaign: usize,
    /// `contacts.zone_key`: its stated zone, or `~` and its numbers' zones, or "".
    pub zone_key: String,
    pub due: DateTime<Utc>,
    pub attempts: u32,
    pub number_index: usize,
    pub numbers: usize,
    pub retired: Vec<usize>,
    /// It has `scheduled_at`, so its first attempt uses the scheduled windows.
    pub scheduled: bool,
}

/// Everything one run needs.
#[derive(Debug, Clone)]
pub struct Model {
    pub start: DateTime<Utc>,
    pub horizon: DateTime<Utc>,
    /// Lines across every daemon.
    pub lines: u32,
    /// `dialer.global_concurrency_limit`.
    pub global_limit: u32,
    pub organizations: Vec<Organization>,
    pub campaigns: Vec<Campaign>,
    pub contacts: Vec<Contact>,
    /// Limits of organizations outside the simulation that have due work
    /// now: each is taken to keep its fair share of the global limit busy
    /// throughout, as it stands.
    pub others: Vec<u32>,
    pub seed: u64,
}

/// What a run found for one campaign.
#[derive(Debug, Clone, PartialEq)]
pub struct CampaignRun {
    pub contacts: u64,
    pub completed: u64,
    pub exhausted: u64,
    pub calls: u64,
    /// When its last contact was finished; None when some are not by the horizon.
    pub finished_at: Option<DateTime<Utc>>,
}

/// One hour of the run, from `start` on.
#[derive(Debug, Clone, PartialEq)]
pub struct Hour {
    pub calls: u64,
    /// Mean busy lines over the hour.
    pub busy_lines: f64,
    /// Contacts not yet finished at the hour's end.
    pub backlog: u64,
}

/// Seconds of the run in which due contacts in an open window waited,
/// by what held them back; and in which every unfinished contact waited
/// for a window or its due time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Waits {
    pub lines: f64,
    pub global_limit: f64,
    pub organization_limit: f64,
    pub windows: f64,
    pub due_times: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub campaigns: Vec<CampaignRun>,
    pub hours: Vec<Hour>,
    pub waits: Waits,
    /// Lines the organizations outside the simulation are taken to hold.
    pub held_by_others: u32,
    /// When the run stopped: the last contact finished, or the horizon.
    pub ended_at: DateTime<Utc>,
}

/// Contacts of one campaign in one zone key, first attempt by scheduled
/// windows or not: what the campaign actors open and close as one.
struct Gate {
    campaign: usize,
    zones: Option<Zones>,
    first_scheduled: bool,
    open: bool,
    /// Due contacts in the claim's order within a campaign: fresh before
    /// retries, then the oldest due.
    ready: BinaryHeap<Reverse<(bool, i64, u32)>>,
}

struct State<'m> {
    model: &'m Model,
    rng: StdRng,
    now: i64,
    gates: Vec<Gate>,
    gate_of: HashMap<(usize, String, bool), usize>,
    /// Gates of each organization, highest campaign priority first.
    org_gates: Vec<Vec<usize>>,
    active: Vec<u32>,
    busy: u32,
    capacity: u32,
    held: u32,
    contacts: Vec<Contact>,
    waiting: BinaryHeap<Reverse<(i64, u32)>>,
    calls: BinaryHeap<Reverse<(i64, u32, Outcome)>>,
    result: Vec<CampaignRun>,
    unfinished: Vec<u64>,
    finished_by_hour: Vec<u64>,
    hours: Vec<Hour>,
    waits: Waits,
}

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 3_600_000;

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Runs the model from `start` until every contact is finished or the
/// horizon passes.
pub fn run(model: &Model) -> Run {
    let mut s = State::new(model);
    s.simulate();
    s.finish()
}

impl<'m> State<'m> {
    fn new(model: &'m Model) -> State<'m> {
        let claimants: Vec<Load> = model
            .others
            .iter()
            .map(|&limit| Load { limit, active: 0 })
            .chain(model.organizations.iter().map(|o| Load {
                limit: o.limit,
                active: 0,
            }))
            .collect();
        // Others hold what their fair share with every simulated
        // organization also due would give them.
        let shares = fair_rooms(model.global_limit, &claimants);
        let held: u32 = shares[..model.others.len()].iter().sum();
        let capacity = model
            .lines
            .min(model.global_limit)
            .saturating_sub(held.min(model.global_limit));
        let mut s = State {
            model,
            rng: StdRng::seed_from_u64(model.seed),
            now: ms(model.start),
            gates: Vec::new(),
            gate_of: HashMap::new(),
            org_gates: vec![Vec::new(); model.organizations.len()],
            active: vec![0; model.organizations.len()],
            busy: 0,
            capacity,
            held,
            contacts: model.contacts.clone(),
            waiting: BinaryHeap::with_capacity(model.contacts.len()),
            calls: BinaryHeap::new(),
            result: model
                .campaigns
                .iter()
                .map(|_| CampaignRun {
                    contacts: 0,
                    completed: 0,
                    exhausted: 0,
                    calls: 0,
                    finished_at: None,
                })
                .collect(),
            unfinished: vec![0; model.campaigns.len()],
            finished_by_hour: Vec::new(),
            hours: Vec::new(),
            waits: Waits::default(),
        };
        for i in 0..s.contacts.len() {
            let c = s.contacts[i].campaign;
            s.result[c].contacts += 1;
            s.unfinished[c] += 1;
            let due = ms(s.contacts[i].due).max(s.now);
            s.waiting.push(Reverse((due, i as u32)));
        }
        for (c, run) in s.result.iter_mut().enumerate() {
            if s.unfinished[c] == 0 {
                run.finished_at = Some(model.start);
            }
        }
        s
    }

    fn gate(&mut self, contact: usize) -> usize {
        let c = &self.contacts[contact];
        let first = c.scheduled && c.attempts == 0;
        let key = (c.campaign, c.zone_key.clone(), first);
        if let Some(&g) = self.gate_of.get(&key) {
            return g;
        }
        let campaign = &self.model.campaigns[c.campaign];
        let zones = campaign.schedule.zones_of(&c.zone_key);
        let open = zones
            .as_ref()
            .is_some_and(|z| campaign.schedule.is_open_in(z, first, at(self.now)));
        let g = self.gates.len();
        self.gates.push(Gate {
            campaign: c.campaign,
            zones,
            first_scheduled: first,
            open,
            ready: BinaryHeap::new(),
        });
        self.gate_of.insert(key, g);
        let org = campaign.organization;
        let list = &mut self.org_gates[org];
        list.push(g);
        let campaigns = &self.model.campaigns;
        let gates = &self.gates;
        list.sort_by_key(|&g| Reverse(campaigns[gates[g].campaign].priority));
        g
    }

    /// Re-evaluates every gate's window at the current whole minute.
    fn windows(&mut self) {
        let now = at(self.now);
        for g in &mut self.gates {
            let schedule = &self.model.campaigns[g.campaign].schedule;
            g.open = g
                .zones
                .as_ref()
                .is_some_and(|z| schedule.is_open_in(z, g.first_scheduled, now));
        }
    }

    fn simulate(&mut self) {
        let horizon = ms(self.model.horizon);
        let mut next_minute = self.now.div_euclid(MINUTE_MS) * MINUTE_MS;
        let mut last = self.now;
        while self.unfinished.iter().any(|&n| n > 0) && self.now <= horizon {
            self.account(last, self.now);
            last = self.now;
            while let Some(&Reverse((end, i, outcome))) = self.calls.peek() {
                if end > self.now {
                    break;
                }
                self.calls.pop();
                self.ended(i as usize, outcome);
            }
            while let Some(&Reverse((due, i))) = self.waiting.peek() {
                if due > self.now {
                    break;
                }
                self.waiting.pop();
                let i = i as usize;
                let g = self.gate(i);
                let retry = self.contacts[i].attempts > 0;
                self.gates[g].ready.push(Reverse((retry, due, i as u32)));
            }
            if self.now >= next_minute {
                self.windows();
                next_minute = (self.now.div_euclid(MINUTE_MS) + 1) * MINUTE_MS;
            }
            self.claim();
            let mut next = next_minute;
            if let Some(&Reverse((end, ..))) = self.calls.peek() {
                next = next.min(end);
            }
            if let Some(&Reverse((due, _))) = self.waiting.peek() {
                next = next.min(due);
            }
            // Nothing moves before the next whole minute unless a call ends
            // or a contact falls due; when nothing is in flight, due or
            // ready, skip to the next due time's minute.
            if self.calls.is_empty() && !self.any_ready() {
                if let Some(&Reverse((due, _))) = self.waiting.peek() {
                    let due_minute = due.div_euclid(MINUTE_MS) * MINUTE_MS;
                    if due_minute > next_minute {
                        next = due;
                        next_minute = due_minute;
                    }
                }
            }
            self.now = next.max(self.now + 1).min(horizon + 1);
        }
        self.now = self.now.min(horizon);
        self.account(last, self.now);
    }

    fn any_ready(&self) -> bool {
        self.gates.iter().any(|g| !g.ready.is_empty())
    }

    /// Adds the span [from, to) to the hourly series and the waits.
    fn account(&mut self, from: i64, to: i64) {
        if to <= from {
            return;
        }
        let start = ms(self.model.start);
        let mut t = from;
        while t < to {
            let hour = ((t - start) / HOUR_MS) as usize;
            let hour_end = start + (hour as i64 + 1) * HOUR_MS;
            let until = to.min(hour_end);
            self.hour(hour).busy_lines +=
                f64::from(self.busy) * (until - t) as f64 / HOUR_MS as f64;
            t = until;
        }
        let secs = (to - from) as f64 / 1000.0;
        let due_open = self.gates.iter().any(|g| g.open && !g.ready.is_empty());
        if due_open {
            let room = self.model.organizations.iter().enumerate().any(|(o, org)| {
                self.active[o] < org.limit
                    && self.org_gates[o]
                        .iter()
                        .any(|&g| self.gates[g].open && !self.gates[g].ready.is_empty())
            });
            if self.busy >= self.capacity {
                if self.model.lines <= self.model.global_limit.saturating_sub(self.held) {
                    self.waits.lines += secs;
                } else {
                    self.waits.global_limit += secs;
                }
            } else if !room {
                self.waits.organization_limit += secs;
            }
        } else if self.any_ready() {
            self.waits.windows += secs;
        } else if self.busy == 0 && !self.waiting.is_empty() {
            self.waits.due_times += secs;
        }
    }

    fn hour(&mut self, hour: usize) -> &mut Hour {
        while self.hours.len() <= hour {
            self.hours.push(Hour {
                calls: 0,
                busy_lines: 0.0,
                backlog: 0,
            });
        }
        &mut self.hours[hour]
    }

    /// One claim: free lines shared among organizations with due contacts
    /// in open windows, in the claim's two passes.
    fn claim(&mut self) {
        let free = self.capacity.saturating_sub(self.busy);
        if free == 0 {
            return;
        }
        let due: Vec<usize> = (0..self.model.organizations.len())
            .filter(|&o| {
                self.org_gates[o]
                    .iter()
                    .any(|&g| self.gates[g].open && !self.gates[g].ready.is_empty())
            })
            .collect();
        if due.is_empty() {
            return;
        }
        let others = self.model.others.len();
        let loads: Vec<Load> = self
            .model
            .others
            .iter()
            .map(|&limit| Load { limit, active: 0 })
            .chain(due.iter().map(|&o| Load {
                limit: self.model.organizations[o].limit,
                active: self.active[o],
            }))
            .collect();
        let fair = fair_rooms(self.model.global_limit, &loads);
        let mut hungry: Vec<(usize, Claimant)> = due
            .iter()
            .zip(&fair[others..])
            .map(|(&o, &room)| {
                let limit = self.model.organizations[o].limit;
                let left = limit.saturating_sub(self.active[o]);
                (
                    o,
                    Claimant {
                        limit,
                        room: room.min(left),
                    },
                )
            })
            .collect();
        let mut dry = Vec::new();
        let free = self.fill(free, &mut hungry, &mut dry);
        let mut hungry: Vec<(usize, Claimant)> = due
            .iter()
            .filter(|o| !dry.contains(o))
            .map(|&o| {
                let limit = self.model.organizations[o].limit;
                let room = limit.saturating_sub(self.active[o]);
                (o, Claimant { limit, room })
            })
            .collect();
        self.fill(free, &mut hungry, &mut dry);
    }

    /// Rounds of shares until the slots or the hungry run out; an
    /// organization that finds fewer due than its share goes to `dry`.
    fn fill(
        &mut self,
        mut free: u32,
        hungry: &mut Vec<(usize, Claimant)>,
        dry: &mut Vec<usize>,
    ) -> u32 {
        hungry.retain(|(_, c)| c.room > 0);
        while free > 0 && !hungry.is_empty() {
            let shares = allocate(free, &hungry.iter().map(|(_, c)| *c).collect::<Vec<_>>());
            let mut still = Vec::new();
            let mut progress = false;
            for ((org, mut claimant), n) in hungry.drain(..).zip(shares) {
                if n == 0 {
                    still.push((org, claimant));
                    continue;
                }
                let got = self.take(org, n);
                progress |= got > 0;
                free -= got;
                claimant.room -= got;
                if got == n && claimant.room > 0 {
                    still.push((org, claimant));
                } else if got < n {
                    dry.push(org);
                    progress = true;
                }
            }
            *hungry = still;
            if !progress {
                break;
            }
        }
        free
    }

    /// Starts up to `n` calls for the organization's best due contacts.
    fn take(&mut self, org: usize, n: u32) -> u32 {
        let mut got = 0;
        while got < n {
            let mut best: Option<(Reverse<i32>, bool, i64, usize)> = None;
            for &g in &self.org_gates[org] {
                let gate = &self.gates[g];
                if !gate.open {
                    continue;
                }
                if let Some(&Reverse((retry, due, _))) = gate.ready.peek() {
                    let priority = self.model.campaigns[gate.campaign].priority;
                    let key = (Reverse(priority), retry, due, g);
                    if best.as_ref().is_none_or(|b| key < *b) {
                        best = Some(key);
                    }
                }
            }
            let Some((.., g)) = best else { break };
            let Some(Reverse((.., i))) = self.gates[g].ready.pop() else {
                break;
            };
            self.dial(i as usize);
            got += 1;
        }
        got
    }

    fn dial(&mut self, i: usize) {
        let campaign = self.contacts[i].campaign;
        let org = self.model.campaigns[campaign].organization;
        let b = &self.model.campaigns[campaign].behaviour;
        let (outcome, length) = match &b.lengths {
            Lengths::Shape { mean_s, shape } => {
                let (o, d) = draw(
                    &mut self.rng,
                    b.answer_rate,
                    mean_s * 1000.0,
                    *shape,
                    &b.unanswered,
                );
                (o, d.as_millis() as i64)
            }
            Lengths::Recorded(lengths) => {
                let (o, _) = draw(
                    &mut self.rng,
                    b.answer_rate,
                    0.0,
                    DurationShape::Fixed,
                    &b.unanswered,
                );
                let s = lengths[self.rng.random_range(0..lengths.len())];
                (o, (s * 1000.0) as i64)
            }
        };
        self.busy += 1;
        self.active[org] += 1;
        self.result[campaign].calls += 1;
        let start = ms(self.model.start);
        let hour = ((self.now - start) / HOUR_MS) as usize;
        self.hour(hour).calls += 1;
        self.calls
            .push(Reverse((self.now + length.max(0), i as u32, outcome)));
    }

    fn ended(&mut self, i: usize, outcome: Outcome) {
        let campaign = self.contacts[i].campaign;
        let org = self.model.campaigns[campaign].organization;
        self.busy -= 1;
        self.active[org] -= 1;
        let c = &mut self.contacts[i];
        c.attempts += 1;
        let result = AttemptResult {
            outcome,
            attempt_count: c.attempts,
            number_index: c.number_index,
            number_count: c.numbers.max(1),
            retired: std::mem::take(&mut c.retired),
        };
        let now = at(self.now);
        match self.model.campaigns[campaign].policy.after(&result, now) {
            Next::Completed => self.finished(campaign, true),
            Next::Exhausted { .. } => self.finished(campaign, false),
            Next::Retry {
                at: due,
                number_index,
                retired,
            } => {
                c.number_index = number_index;
                c.retired = retired;
                c.due = due;
                self.waiting.push(Reverse((ms(due), i as u32)));
            }
        }
    }

    fn finished(&mut self, campaign: usize, completed: bool) {
        let run = &mut self.result[campaign];
        if completed {
            run.completed += 1;
        } else {
            run.exhausted += 1;
        }
        self.unfinished[campaign] -= 1;
        let hour = ((self.now - ms(self.model.start)) / HOUR_MS) as usize;
        if self.finished_by_hour.len() <= hour {
            self.finished_by_hour.resize(hour + 1, 0);
        }
        self.finished_by_hour[hour] += 1;
        if self.unfinished[campaign] == 0 {
            run.finished_at = Some(at(self.now));
        }
    }

    fn finish(mut self) -> Run {
        let start = ms(self.model.start);
        let hours = ((self.now - start) / HOUR_MS + 1) as usize;
        self.hour(hours - 1);
        let mut backlog: u64 = self.result.iter().map(|r| r.contacts).sum();
        for (h, done) in self.hours.iter_mut().zip(&self.finished_by_hour) {
            backlog -= done;
            h.backlog = backlog;
        }
        for h in self.hours.iter_mut().skip(self.finished_by_hour.len()) {
            h.backlog = backlog;
        }
        Run {
            campaigns: self.result,
            hours: self.hours,
            waits: self.waits,
            held_by_others: self.held,
            ended_at: at(self.now),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// Monday 2026-12-07 14:00 UTC: 09:00 in New York, 03:00 in Pago Pago.
    fn monday() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 7, 14, 0, 0).unwrap()
    }

    fn campaign(name: &str, priority: i32, policy: &str, answer_rate: f64) -> Campaign {
        Campaign {
            name: name.into(),
            organization: 0,
            priority,
            schedule: serde_json::from_str(
                r#"{"default_windows": [{"days": ["mon","tue","wed","thu","fri","sat","sun"],
                    "start": "09:00", "end": "21:00"}]}"#,
            )
            .unwrap(),
            policy: serde_json::from_str(policy).unwrap(),
            behaviour: Behaviour {
                answer_rate,
                unanswered: OutcomeMix::only_no_answer(),
                lengths: Lengths::Shape {
                    mean_s: 60.0,
                    shape: DurationShape::Fixed,
                },
            },
        }
    }

    fn contacts(campaign: usize, zone: &str, n: usize) -> Vec<Contact> {
        (0..n)
            .map(|_| Contact {
                campaign,
                zone_key: zone.into(),
                due: monday(),
                attempts: 0,
                number_index: 0,
                numbers: 1,
                retired: vec![],
                scheduled: false,
            })
            .collect()
    }

    fn model(lines: u32, limit: u32, campaigns: Vec<Campaign>, contacts: Vec<Contact>) -> Model {
        Model {
            start: monday(),
            horizon: monday() + chrono::Duration::days(7),
            lines,
            global_limit: 10_000,
            organizations: vec![Organization {
                name: "o".into(),
                limit,
            }],
            campaigns,
            contacts,
            others: vec![],
            seed: 1,
        }
    }

    #[test]
    fn a_backlog_whose_window_opens_six_hours_later_finishes_six_hours_later() {
        let mut all = contacts(0, "America/New_York", 1000);
        all.extend(contacts(1, "Pacific/Pago_Pago", 1000));
        let m = model(
            50,
            100,
            vec![campaign("ny", 1, "{}", 1.0), campaign("pago", 1, "{}", 1.0)],
            all,
        );
        let run = run(&m);
        let ny = run.campaigns[0].finished_at.unwrap();
        let pago = run.campaigns[1].finished_at.unwrap();
        // 1,000 calls of 60 s on 50 lines: 20 minutes from each opening.
        assert_eq!(ny, monday() + chrono::Duration::minutes(20));
        assert_eq!(pago, monday() + chrono::Duration::minutes(6 * 60 + 20));
        assert_eq!(run.campaigns[0].completed, 1000);
        assert!(run.waits.windows >= 5.0 * 3600.0, "{:?}", run.waits);
    }

    #[test]
    fn lines_beyond_the_organization_limit_change_nothing() {
        let at = |lines| {
            let m = model(
                lines,
                20,
                vec![campaign("c", 1, "{}", 1.0)],
                contacts(0, "", 400),
            );
            run(&m)
        };
        let (twenty, hundred) = (at(20), at(100));
        assert_eq!(twenty.campaigns, hundred.campaigns);
        assert!(twenty.waits.lines > 0.0 && twenty.waits.organization_limit == 0.0);
        assert!(hundred.waits.organization_limit > 0.0 && hundred.waits.lines == 0.0);
        assert!(hundred.hours[0].busy_lines <= 20.0 + 1e-9);
    }

    #[test]
    fn retries_follow_the_policy_until_exhausted() {
        let policy = r#"{"max_attempts": 3, "retry_delay_seconds": 600}"#;
        let m = model(
            10,
            10,
            vec![campaign("c", 1, policy, 0.0)],
            contacts(0, "", 10),
        );
        let run = run(&m);
        let c = &run.campaigns[0];
        assert_eq!((c.calls, c.exhausted, c.completed), (30, 10, 0));
        // Three rounds of 60 s calls, 600 s apart.
        assert_eq!(
            c.finished_at,
            Some(monday() + chrono::Duration::seconds(60 + 660 + 660))
        );
        assert!(run.waits.due_times >= 1000.0);
    }

    #[test]
    fn the_higher_priority_campaign_is_dialed_first_and_shares_follow_the_limits() {
        let mut all = contacts(0, "", 200);
        all.extend(contacts(1, "", 200));
        let m = model(
            10,
            10,
            vec![
                campaign("low", 1, "{}", 1.0),
                campaign("high", 2, "{}", 1.0),
            ],
            all,
        );
        let r = run(&m);
        assert_eq!(
            r.campaigns[1].finished_at,
            Some(monday() + chrono::Duration::minutes(20))
        );
        assert_eq!(
            r.campaigns[0].finished_at,
            Some(monday() + chrono::Duration::minutes(40))
        );

        // Two organizations of limits 30 and 10 on 40 lines: busy 30 and 10.
        let mut m = model(
            40,
            30,
            vec![campaign("a", 1, "{}", 1.0), campaign("b", 1, "{}", 1.0)],
            {
                let mut all = contacts(0, "", 3000);
                all.extend(contacts(1, "", 1000));
                all
            },
        );
        m.organizations.push(Organization {
            name: "p".into(),
            limit: 10,
        });
        m.campaigns[1].organization = 1;
        m.global_limit = 40;
        let r = run(&m);
        // Each at its share: 3,000 / 30 and 1,000 / 10 calls a minute, 100 minutes both.
        assert_eq!(r.campaigns[0].finished_at, r.campaigns[1].finished_at);
        assert_eq!(
            r.campaigns[0].finished_at,
            Some(monday() + chrono::Duration::minutes(100))
        );
    }

    #[test]
    fn the_same_seed_gives_the_same_forecast() {
        let make = || {
            let mut c = campaign(
                "c",
                1,
                r#"{"max_attempts": 4, "retry_delay_seconds": 300}"#,
                0.4,
            );
            c.behaviour.lengths = Lengths::Shape {
                mean_s: 45.0,
                shape: DurationShape::Exponential,
            };
            model(25, 100, vec![c], contacts(0, "America/Chicago", 2000))
        };
        assert_eq!(run(&make()), run(&make()));
        let mut other = make();
        other.seed = 2;
        assert_ne!(run(&make()).campaigns, run(&other).campaigns);
    }
}
