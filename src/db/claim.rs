//! The claim: due contacts taken under every gate (calling windows,
//! organization and global limits, fair shares, priority), locked for one
//! instance with `FOR UPDATE SKIP LOCKED`, and claims handed back when
//! their calls are never placed.

use crate::domain::evidence::{Evidence, ListChecked};
use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{FromRow, PgPool, Postgres, Row, Transaction};
use uuid::Uuid;

use super::attempts::Attempts;
use super::DbError;
use crate::domain::agent::AgentFields;
use crate::domain::plan::Gate;
use crate::domain::slots::{allocate, fair_rooms, Claimant, Load};

/// Serializes claim cycles of every instance, so counted limits hold.
pub const CLAIM_LOCK: i64 = 0x6469_616c_6572;

/// The open gates of every running campaign, by organization: a claim
/// lists the organizations that have any, and each claim statement sends
/// only the gates of the organizations it claims from. Set a campaign at a
/// time, so thousands of campaigns cost a campaign's gates per change.
#[derive(Debug, Default, Clone)]
pub struct OpenGates {
    /// Each campaign's organization and open gates (none: not listed).
    campaigns: HashMap<Uuid, (Uuid, Vec<Gate>)>,
    /// The campaigns of each organization with an open gate.
    of_organization: HashMap<Uuid, Vec<Uuid>>,
}

/// Gates column by column, as a claim statement binds them.
#[derive(Debug, Default)]
struct GateColumns {
    campaigns: Vec<Uuid>,
    zones: Vec<String>,
    first_scheduled: Vec<bool>,
}

impl OpenGates {
    /// A campaign's open gates now, in place of those it had.
    pub fn set(&mut self, organization: Uuid, campaign: Uuid, gates: &[Gate]) {
        self.remove(campaign);
        if gates.is_empty() {
            return;
        }
        self.campaigns
            .insert(campaign, (organization, gates.to_vec()));
        self.of_organization
            .entry(organization)
            .or_default()
            .push(campaign);
    }

    /// A campaign no longer running here: none of its gates is open.
    pub fn remove(&mut self, campaign: Uuid) {
        let Some((organization, _)) = self.campaigns.remove(&campaign) else {
            return;
        };
        if let Some(theirs) = self.of_organization.get_mut(&organization) {
            theirs.retain(|c| *c != campaign);
            if theirs.is_empty() {
                self.of_organization.remove(&organization);
            }
        }
    }

    /// Whether `org` has an open gate.
    fn has(&self, org: Uuid) -> bool {
        self.of_organization.contains_key(&org)
    }

    /// The gates of `orgs` alone.
    fn of<'a>(&self, orgs: impl IntoIterator<Item = &'a Uuid>) -> GateColumns {
        let mut some = GateColumns::default();
        let campaigns = orgs
            .into_iter()
            .filter_map(|o| self.of_organization.get(o))
            .flatten();
        for campaign in campaigns {
            for g in &self.campaigns[campaign].1 {
                some.campaigns.push(*campaign);
                some.zones.push(g.zone.clone());
                some.first_scheduled.push(g.first_scheduled);
            }
        }
        some
    }

    /// Every open gate.
    fn all(&self) -> GateColumns {
        self.of(self.of_organization.keys())
    }
}

/// A contact claimed for this instance.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Claimed {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub campaign_id: Option<Uuid>,
    pub phone_numbers: Vec<String>,
    pub retired_numbers: Vec<i32>,
    /// Indexes of its numbers on a do-not-call list that applies to it.
    pub suppressed: Vec<i32>,
    /// What its attempt's write compares (see `dnc_epoch` in the schema).
    pub dnc_epoch: i32,
    /// Its stated zone, as stored.
    pub timezone: Option<String>,
    /// The candidate zones of its numbers, as stored.
    pub number_zones: Option<String>,
    pub scheduled_at: Option<DateTime<Utc>>,
    /// The do-not-call lists that apply to it, as this claim read them.
    #[sqlx(skip)]
    pub dnc_lists: Vec<ListChecked>,
    pub next_number_index: i32,
    /// Attempts made, the one being claimed for included.
    pub attempt_count: i32,
    /// When the contact became due, for dispatch lag.
    pub next_attempt_at: DateTime<Utc>,
    /// As stored, unparsed: no stored value can fail the claim.
    pub data: Json<Box<serde_json::value::RawValue>>,
    #[sqlx(flatten)]
    pub agent: AgentFields,
}

/// A listed organization: its limit and its calls in progress.
#[derive(sqlx::FromRow)]
struct OrgRoom {
    id: Uuid,
    concurrency_limit: i32,
    active: i64,
    /// Calls in progress of every organization.
    all_active: i64,
    /// Its ad-hoc bound has passed.
    ad_hoc: bool,
}

/// Why a claimed contact gets no call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoCall {
    /// Not now (its campaign's plan is not loaded here): handed back to
    /// `pending` untouched, for a later claim.
    NotNow,
    /// Never, as it is stored (no usable number, a row that does not
    /// decode): set aside, `exhausted` with this reason, no attempt counted.
    SetAside(String),
}

/// The attempt to write for a claimed contact: the call about to be placed.
#[derive(Debug, Clone)]
pub struct NewAttempt {
    pub attempt_id: Uuid,
    pub phone_number: String,
    pub agent: AgentFields,
    /// Why the call is allowed, kept with the attempt.
    pub evidence: Option<Evidence>,
}

/// A claim or an attempt write that failed. No call was placed for any of
/// `maybe_committed`, but their claims (and, for [`start`], some of their
/// attempts) may stand: a lost commit answer, or a claim whose attempts
/// were never written. They are for recovery ([`crate::db::recovery`]).
#[derive(Debug)]
pub struct ClaimFailed {
    pub error: DbError,
    pub maybe_committed: Vec<Uuid>,
}

impl From<sqlx::Error> for ClaimFailed {
    fn from(e: sqlx::Error) -> Self {
        ClaimFailed {
            error: e.into(),
            maybe_committed: Vec::new(),
        }
    }
}

/// A committed claim: the caller's calls, and their attempts, which
/// [`start`] writes before any of the calls may be placed.
pub struct Batch<T> {
    pub calls: Vec<T>,
    pub attempts: Attempts,
    /// Contacts set aside by this claim, with the reason.
    pub set_aside: Vec<(Uuid, String)>,
    /// Organizations listed as due that had nothing due: left out of the
    /// shares, their bounds raised by the claim.
    pub idle: Vec<Uuid>,
    /// The global limit left fewer free slots than were asked for: more
    /// may be claimed as soon as results of calls that ended are written.
    pub capped: bool,
    /// No organization's bound had passed: nothing is due before this
    /// (the earliest bound, or a day on when there is none), unless a
    /// statement lowers a bound meanwhile (NOTIFY `db::notify::DUE`).
    pub quiet_until: Option<DateTime<Utc>>,
}

/// Raises the `organization_due` bound of `orgs` to their earliest due
/// contact (or 'infinity'), so later claims pass them by until then; for a
/// claim, of the organizations it found or left with nothing due. An
/// organization whose row a writer of new pending contacts holds is
/// skipped: its bound stays, and a later claim looks again. Never waits
/// for a lock.
async fn raise_bounds(
    tx: &mut Transaction<'_, Postgres>,
    orgs: &[Uuid],
) -> Result<(), sqlx::Error> {
    let locked: Vec<Uuid> = sqlx::query_scalar(
        "SELECT organization_id FROM organization_due WHERE organization_id = ANY($1)
          ORDER BY organization_id FOR UPDATE SKIP LOCKED",
    )
    .bind(orgs)
    .fetch_all(&mut **tx)
    .await?;
    // A statement of its own: its snapshot sees every writer that held a
    // row just locked.
    sqlx::query(
        "UPDATE organization_due
            SET next_due = coalesce(organization_earliest_due(organization_id), 'infinity'),
                ad_hoc_due = coalesce(organization_earliest_ad_hoc_due(organization_id), 'infinity')
          WHERE organization_id = ANY($1)",
    )
    .bind(&locked)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Claims up to `want` due contacts for `owner`, within every organization's
/// limit and the `global_limit` of all instances together, shared by SPEC 4's
/// rule. Only contacts that pass every gate at `now` are taken.
///
/// One transaction, under the lock that serializes every instance's claims:
/// the claimed contacts go straight to `in_progress` with their attempt
/// count raised (so they count against the limits at once), and `prepare`
/// turns each into the caller's call and the attempt to write (or `None`:
/// the contact cannot be called and is handed back untouched). The
/// `Claimed::attempt_count` seen by `prepare` includes the new attempt.
///
/// The attempts are written afterwards by [`start`], outside the lock, so
/// the next claim need not wait for them. Until then the claimed contacts
/// are `in_progress` with no open attempt: no call is placed for them, and
/// recovery hands them back with nothing counted ([`release`]).
pub async fn claim<T>(
    pool: &PgPool,
    owner: Uuid,
    now: DateTime<Utc>,
    gates: &OpenGates,
    want: u32,
    global_limit: u32,
    mut prepare: impl FnMut(Claimed) -> Result<(T, NewAttempt), NoCall>,
) -> Result<Batch<T>, ClaimFailed> {
    let nothing = |capped, quiet_until| Batch {
        calls: Vec::new(),
        attempts: Attempts::default(),
        set_aside: Vec::new(),
        idle: Vec::new(),
        capped,
        quiet_until,
    };
    // With no organization's bound passed, nothing can be due until the
    // earliest: one index probe, no lock, none of the gates sent. An idle
    // daemon costs this, and sleeps until then.
    // Otherwise the calls in progress, counted with no lock: with the
    // global limit reached, nothing can be claimed, and the claim lock is
    // not taken to find that out (calls end, but their slots free only
    // when their results are written). A count that is stale by then only
    // delays a claim to the next wake; the claim itself counts again under
    // the lock.
    let (earliest, active): (DateTime<Utc>, Option<i64>) = sqlx::query_as(
        "SELECT least(d.next_due, $1 + interval '1 day'),
                CASE WHEN d.next_due <= $1
                     THEN (SELECT count(*) FROM contacts WHERE status IN ('locked', 'in_progress')) END
           FROM (SELECT min(next_due) AS next_due FROM organization_due) d",
    )
    .bind(now)
    .fetch_one(pool)
    .await?;
    match active {
        None => return Ok(nothing(false, Some(earliest))),
        Some(active) if active >= i64::from(global_limit) => return Ok(nothing(true, None)),
        Some(_) => {}
    }
    let mut tx = pool.begin().await?;
    // The claim's commit need not wait for its WAL to reach disk, so the
    // lock every claim waits on is held that much shorter. Nothing is
    // called on the strength of the claim alone: a call is placed only once
    // its attempt is written by [`start`], whose commit does wait, and the
    // WAL reaches disk in order, so the claim is on disk before any of its
    // calls is placed. Lost in a server crash, the claim never happened:
    // its contacts are still waiting, as before it.
    sqlx::query("SELECT pg_advisory_xact_lock($1), set_config('synchronous_commit', 'off', true)")
        .bind(CLAIM_LOCK)
        .execute(&mut *tx)
        .await?;
    // Active calls of every organization, and in all, from one scan of the
    // active contacts (at most the global limit of them). Only the
    // organizations whose `organization_due` bound has passed are listed
    // (none: nothing to claim, whatever the number of organizations), and
    // of those only the ones with an open calling window in some campaign
    // or ad-hoc contacts due (which no window gates), picked here: sent as
    // an array parameter, thousands of organizations with open gates would
    // be tested one by one against every row under a generic plan (0.5 s
    // for 10,000 here). Which of their contacts are due is asked only of
    // those the shares give a slot to, not of every one listed.
    let listed: Vec<OrgRoom> = sqlx::query_as(
        "WITH busy AS (
             SELECT organization_id, count(*) AS n FROM contacts
              WHERE status IN ('locked', 'in_progress') GROUP BY organization_id)
         SELECT d.organization_id AS id, d.concurrency_limit, coalesce(b.n, 0) AS active,
                (SELECT coalesce(sum(n), 0) FROM busy)::int8 AS all_active,
                d.ad_hoc_due <= $1 AS ad_hoc
           FROM organization_due d LEFT JOIN busy b ON b.organization_id = d.organization_id
          WHERE d.next_due <= $1",
    )
    .bind(now)
    .fetch_all(&mut *tx)
    .await?;
    let Some(active) = listed.first().map(|o| o.all_active) else {
        tx.commit().await?;
        return Ok(nothing(false, None));
    };
    let orgs: Vec<OrgRoom> = listed
        .into_iter()
        .filter(|o| o.ad_hoc || gates.has(o.id))
        .collect();
    let free = want.min(u32::try_from(i64::from(global_limit) - active).unwrap_or(0));
    let capped = free < want;
    // The shares are exact over the organizations with due work. A listed
    // organization may have none (contacts made done or deleted since its
    // bound was last raised): found while sharing, it is struck off, what
    // was claimed so far is rolled back, and the slots are shared again
    // without it. Claims raise the bounds of the organizations they empty
    // (below), so this is rare: each found is raised too, and struck off
    // the listing of later claims.
    let mut taken = Taken::default();
    sqlx::query("SAVEPOINT shares").execute(&mut *tx).await?;
    loop {
        let listed: Vec<&OrgRoom> = orgs
            .iter()
            .filter(|o| !taken.idle.contains(&o.id))
            .collect();
        let known_idle = taken.idle.len();
        share(
            &mut tx,
            owner,
            now,
            gates,
            free,
            global_limit,
            &listed,
            &mut taken,
        )
        .await?;
        let claimed_any = !taken.claimed.is_empty() || !taken.undecodable.is_empty();
        if taken.idle.len() == known_idle || !claimed_any {
            break;
        }
        sqlx::query("ROLLBACK TO SAVEPOINT shares")
            .execute(&mut *tx)
            .await?;
        taken.start_over();
    }

    let mut claimed = taken.claimed;
    if !claimed.is_empty() {
        lists_checked(&mut tx, &mut claimed).await?;
    }
    let mut calls = Vec::with_capacity(claimed.len());
    let mut attempts = Attempts::default();
    let mut not_now = Vec::new();
    let mut set_aside = taken.undecodable;
    for c in claimed {
        let (id, org, campaign, number, epoch) = (
            c.id,
            c.organization_id,
            c.campaign_id,
            c.attempt_count,
            c.dnc_epoch,
        );
        match prepare(c) {
            Ok((call, a)) => {
                calls.push(call);
                attempts.push(id, org, campaign, number, epoch, a);
            }
            Err(NoCall::NotNow) => not_now.push(id),
            Err(NoCall::SetAside(reason)) => set_aside.push((id, reason)),
        }
    }
    if !not_now.is_empty() {
        hand_back(&mut tx, owner, &not_now).await?;
    }
    if !set_aside.is_empty() {
        put_aside(&mut tx, owner, &set_aside).await?;
    }
    // The bounds of the organizations this claim found or left with nothing
    // due are raised before the lock is released, so no claim after it
    // counts them in its shares. Last: nothing waits on a lock after this.
    let idle: Vec<Uuid> = taken.idle.into_iter().collect();
    let emptied = taken.claimed_from.iter().filter(|(_, more)| !**more);
    let raise: Vec<Uuid> = idle
        .iter()
        .chain(emptied.map(|(org, _)| org))
        .copied()
        .collect();
    if !raise.is_empty() {
        raise_bounds(&mut tx, &raise).await?;
    }
    if let Err(e) = tx.commit().await {
        return Err(ClaimFailed {
            error: e.into(),
            maybe_committed: attempts.contacts,
        });
    }
    Ok(Batch {
        calls,
        attempts,
        set_aside,
        idle,
        capped,
        quiet_until: None,
    })
}

/// Shares `free` slots among the `listed` organizations and claims them
/// into `taken`: first up to each one's fair share of the global limit,
/// then what is left up to each one's own limit.
#[allow(clippy::too_many_arguments)]
async fn share(
    tx: &mut Transaction<'_, Postgres>,
    owner: Uuid,
    now: DateTime<Utc>,
    gates: &OpenGates,
    free: u32,
    global_limit: u32,
    listed: &[&OrgRoom],
    taken: &mut Taken,
) -> Result<(), sqlx::Error> {
    let loads: Vec<Load> = listed
        .iter()
        .map(|o| Load {
            limit: o.concurrency_limit as u32,
            active: o.active.max(0) as u32,
        })
        .collect();
    let fair = fair_rooms(global_limit, &loads);
    let mut hungry: Vec<(Uuid, Claimant)> = listed
        .iter()
        .zip(&loads)
        .zip(fair)
        .map(|((o, l), room)| {
            (
                o.id,
                Claimant {
                    limit: l.limit,
                    room: room.min(l.limit.saturating_sub(l.active)),
                },
            )
        })
        .collect();
    let free = fill(tx, owner, now, gates, free, &mut hungry, taken).await?;
    // Second pass: what the fair shares left over, up to each organization's
    // own limit, for organizations that may have more due (not those that
    // found fewer contacts than they asked for).
    let mut hungry: Vec<(Uuid, Claimant)> = listed
        .iter()
        .zip(&loads)
        .filter(|(o, _)| !matches!(taken.groups.get(&o.id), Some(None)))
        .map(|(o, l)| {
            let got = taken
                .claimed
                .iter()
                .filter(|c| c.organization_id == o.id)
                .count() as u32;
            (
                o.id,
                Claimant {
                    limit: l.limit,
                    room: l.limit.saturating_sub(l.active + got),
                },
            )
        })
        .collect();
    fill(tx, owner, now, gates, free, &mut hungry, taken).await?;
    Ok(())
}

/// Gives each claimed contact the do-not-call lists that apply to it, with
/// their versions as this transaction sees them (its evidence).
async fn lists_checked(
    tx: &mut Transaction<'_, Postgres>,
    claimed: &mut [Claimed],
) -> Result<(), sqlx::Error> {
    let mut orgs: Vec<Uuid> = claimed.iter().map(|c| c.organization_id).collect();
    orgs.sort_unstable();
    orgs.dedup();
    let lists: Vec<(Option<Uuid>, Uuid, String, i64)> = sqlx::query_as(
        "SELECT organization_id, id, name, version FROM dnc_lists
          WHERE organization_id IS NULL OR organization_id = ANY($1)
          ORDER BY organization_id NULLS LAST, name",
    )
    .bind(&orgs)
    .fetch_all(&mut **tx)
    .await?;
    if lists.is_empty() {
        return Ok(());
    }
    for c in claimed {
        c.dnc_lists = lists
            .iter()
            .filter(|(org, ..)| org.is_none_or(|o| o == c.organization_id))
            .map(|(_, id, name, version)| ListChecked {
                id: *id,
                name: name.clone(),
                version: *version,
            })
            .collect();
    }
    Ok(())
}

/// What a claim's passes took, and where each organization's due contacts
/// go on: the group to claim from next, `None` once it has no more due (an
/// organization not asked yet has no entry).
#[derive(Default)]
struct Taken {
    claimed: Vec<Claimed>,
    /// Claimed rows that do not decode, with the error: set aside.
    undecodable: Vec<(Uuid, String)>,
    groups: HashMap<Uuid, Option<Group>>,
    /// Organizations found with a due contact that no claim statement has
    /// asked yet.
    has_due: HashSet<Uuid>,
    /// Organizations listed as due that had nothing due at all: their
    /// `organization_due` bound is stale.
    idle: HashSet<Uuid>,
    /// Organizations claimed from, each with whether its last claim
    /// statement saw a due contact past those it took. `false`: this claim
    /// may have left it with none, so it raises its bound before the next
    /// claim lists it.
    claimed_from: HashMap<Uuid, bool>,
}

impl Taken {
    /// `org`'s first group with a contact due, as found; `None`: nothing
    /// due, so its bound is stale unless this claim took its last.
    fn first_group(&mut self, org: Uuid, group: Option<Group>) {
        if group.is_none() && !self.claimed_from.contains_key(&org) {
            self.idle.insert(org);
        }
        self.groups.insert(org, group);
    }

    /// Forgets what was claimed (rolled back): each organization asked has
    /// its due contacts back, and is known to have some. What is known of
    /// those with nothing due stays.
    fn start_over(&mut self) {
        for (org, _) in self.groups.drain() {
            if !self.idle.contains(&org) {
                self.has_due.insert(org);
            }
        }
        self.claimed.clear();
        self.undecodable.clear();
        self.claimed_from.clear();
    }
}

/// A (priority, retry) group of an organization's waiting contacts with
/// one due, as `next_due_group` found it.
#[derive(Debug, Clone, Copy, sqlx::FromRow)]
struct Group {
    #[sqlx(rename = "group_priority")]
    priority: i32,
    #[sqlx(rename = "group_retry")]
    retry: bool,
    /// Its earliest due contact's due time: none of its waiting contacts is
    /// due before, so the claim's scan starts here, past the index entries
    /// of the contacts claimed since the last vacuum.
    #[sqlx(rename = "group_first_due")]
    first_due: DateTime<Utc>,
}

/// Shares `free` slots among `hungry` organizations, claiming each one's
/// share; one that finds fewer contacts than its share gives the rest back
/// to the others and has no more due. Returns the slots left.
async fn fill(
    tx: &mut Transaction<'_, Postgres>,
    owner: Uuid,
    now: DateTime<Utc>,
    gates: &OpenGates,
    mut free: u32,
    hungry: &mut Vec<(Uuid, Claimant)>,
    taken: &mut Taken,
) -> Result<u32, sqlx::Error> {
    hungry.retain(|(_, c)| c.room > 0);
    while free > 0 && !hungry.is_empty() {
        if !taken.idle.is_empty() {
            look_ahead(tx, now, free, hungry, taken).await?;
        }
        let shares = allocate(free, &hungry.iter().map(|(_, c)| *c).collect::<Vec<_>>());
        let mut still_hungry = Vec::new();
        // Organizations asked for the first time are claimed from in one
        // statement, from each one's first due group; only those that get
        // fewer than their share there go on group by group below.
        let fresh: Vec<(Uuid, u32)> = hungry
            .iter()
            .zip(&shares)
            .filter(|((org, _), &n)| n > 0 && !taken.groups.contains_key(org))
            .map(|((org, _), &n)| (*org, n))
            .collect();
        let mut first: HashMap<Uuid, u32> = HashMap::new();
        for row in claim_first_groups(tx, owner, now, gates, &fresh).await? {
            let org: Uuid = row.try_get("organization_id")?;
            *first.entry(org).or_default() += 1;
            take(row, taken)?;
        }
        // Those that got less go on from their first group with a contact
        // due, found for all of them in one statement, not a round trip
        // each: most have none at all (their last contacts were claimed,
        // and their bound is not raised yet).
        let short: Vec<Uuid> = fresh
            .iter()
            .filter(|(org, n)| first.get(org).copied().unwrap_or(0) < *n)
            .map(|(org, _)| *org)
            .collect();
        for (org, group) in first_groups(tx, now, &short).await? {
            taken.first_group(org, group);
        }
        // Each round claims something or finds an organization with no
        // more due, which leaves the round: so the rounds end.
        let mut progress = false;
        for ((org, mut claimant), n) in hungry.drain(..).zip(shares) {
            if n == 0 {
                still_hungry.push((org, claimant));
                continue;
            }
            let early = first.get(&org).copied().unwrap_or(0);
            let got = if early == n {
                n
            } else {
                early + claim_in_org(tx, owner, org, now, gates, n - early, taken).await?
            };
            progress |= got > 0;
            free -= got;
            claimant.room -= got;
            if got == n && claimant.room > 0 {
                still_hungry.push((org, claimant));
            } else {
                progress |= got < n;
            }
        }
        *hungry = still_hungry;
        if !progress {
            break;
        }
    }
    Ok(free)
}

/// Drops from `hungry` the organizations with nothing due among those the
/// next shares could reach, found in one statement. Called once some
/// organization listed as due was found with nothing due (its last
/// contacts were claimed, and its bound is not raised yet): such
/// organizations come in runs, and found one share at a time each would
/// hand its slot back for another round. Dropped first, they leave the
/// slots to the organizations with due work in one round.
async fn look_ahead(
    tx: &mut Transaction<'_, Postgres>,
    now: DateTime<Utc>,
    free: u32,
    hungry: &mut Vec<(Uuid, Claimant)>,
    taken: &mut Taken,
) -> Result<(), sqlx::Error> {
    // The organizations a share of several times the free slots reaches.
    let wider = allocate(
        free.saturating_mul(8).max(64),
        &hungry.iter().map(|(_, c)| *c).collect::<Vec<_>>(),
    );
    let unknown: Vec<Uuid> = hungry
        .iter()
        .zip(wider)
        .filter(|((org, _), n)| {
            *n > 0 && !taken.groups.contains_key(org) && !taken.has_due.contains(org)
        })
        .map(|((org, _), _)| *org)
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    for (org, group) in first_groups(tx, now, &unknown).await? {
        if group.is_none() {
            taken.first_group(org, None);
        } else {
            // Left to be claimed from in one statement with the others.
            taken.has_due.insert(org);
        }
    }
    hungry.retain(|(org, _)| !matches!(taken.groups.get(org), Some(None)));
    Ok(())
}

/// Claims up to `n` due contacts of `org` into `taken`, group by group
/// from its next group on (its first, found now, when it is asked for the
/// first time); returns how many. Fewer than `n`: the organization has no
/// more due.
async fn claim_in_org(
    tx: &mut Transaction<'_, Postgres>,
    owner: Uuid,
    org: Uuid,
    now: DateTime<Utc>,
    gates: &OpenGates,
    n: u32,
    taken: &mut Taken,
) -> Result<u32, sqlx::Error> {
    if !taken.groups.contains_key(&org) {
        let first = next_group(tx, org, now, None).await?;
        taken.first_group(org, first);
    }
    let mut got = 0;
    while let Some(&Some(group)) = taken.groups.get(&org) {
        let rows = claim_in_group(tx, owner, org, now, gates, group, n - got).await?;
        got += rows.len() as u32;
        for row in rows {
            take(row, taken)?;
        }
        if got == n {
            break;
        }
        // This group has no more due: on to the next that has.
        let next = next_group(tx, org, now, Some(group)).await?;
        taken.groups.insert(org, next);
    }
    Ok(got)
}

/// Keeps a claimed row. Each row is decoded on its own: one that does not
/// decode is set aside, and never fails the claim of the others. Its
/// `more` says whether its statement saw another due contact of its
/// organization past those it claimed.
fn take(row: PgRow, taken: &mut Taken) -> Result<(), sqlx::Error> {
    let (org, more): (Uuid, bool) = (row.try_get("organization_id")?, row.try_get("more")?);
    taken.claimed_from.insert(org, more);
    match Claimed::from_row(&row) {
        Ok(claimed) => taken.claimed.push(claimed),
        Err(e) => taken.undecodable.push((
            row.try_get("id")?,
            format!("stored row does not decode: {e}"),
        )),
    }
    Ok(())
}

/// Claims up to `n` due contacts of each listed organization from its
/// first (priority, retry) group, when that group has one due, all in one
/// statement: the same scan as [`claim_in_group`], pinned to the group of
/// the organization's first waiting contact in `contacts_due` order, for
/// many organizations at the cost of one round trip and no function call
/// per organization. An organization whose first group has nothing due
/// yet gets nothing here, and is claimed from group by group.
///
/// Each statement that claims looks one contact past those it claims (and
/// locks it, untouched, until the claim commits): each row's `more` says
/// whether there was one, so the claim knows which organizations it may
/// have left with nothing due.
async fn claim_first_groups(
    tx: &mut Transaction<'_, Postgres>,
    owner: Uuid,
    now: DateTime<Utc>,
    gates: &OpenGates,
    shares: &[(Uuid, u32)],
) -> Result<Vec<PgRow>, sqlx::Error> {
    if shares.is_empty() {
        return Ok(Vec::new());
    }
    let (orgs, ns): (Vec<Uuid>, Vec<i64>) = shares.iter().map(|&(o, n)| (o, i64::from(n))).unzip();
    let gates = gates.of(&orgs);
    let gated = gated(4);
    sqlx::query(&format!(
        "WITH found AS (
             SELECT s.n, d.id, count(*) OVER w AS found,
                    row_number() OVER (w ORDER BY d.next_attempt_at, d.id) AS k
               FROM unnest($1::uuid[], $2::int8[]) AS s(org, n)
                  CROSS JOIN LATERAL (
                      SELECT c.priority AS group_priority, c.attempt_count > 0 AS group_retry,
                             c.next_attempt_at AS group_first_due
                        FROM contacts c WHERE c.organization_id = s.org AND c.status = 'pending'
                       ORDER BY c.priority DESC, (c.attempt_count > 0), c.next_attempt_at
                       LIMIT 1) g
                  CROSS JOIN LATERAL (
                      SELECT c.id, c.next_attempt_at FROM contacts c
                       WHERE c.organization_id = s.org AND c.status = 'pending'
                         AND c.next_attempt_at BETWEEN g.group_first_due AND $3
                         AND c.priority = g.group_priority AND (c.attempt_count > 0) = g.group_retry
                         AND {gated}
                       ORDER BY c.priority DESC, (c.attempt_count > 0), c.next_attempt_at
                       LIMIT s.n + 1
                         FOR UPDATE OF c SKIP LOCKED) d
              WHERE g.group_first_due <= $3
             WINDOW w AS (PARTITION BY s.org)),
         due AS (SELECT id, found > n AS more FROM found WHERE k <= n)
         UPDATE contacts c SET {CLAIMED}
           FROM due WHERE c.id = due.id
       RETURNING {RETURNED}, due.more"
    ))
    .bind(&orgs)
    .bind(&ns)
    .bind(now)
    .bind(&gates.campaigns)
    .bind(&gates.zones)
    .bind(&gates.first_scheduled)
    .bind(owner)
    .fetch_all(&mut **tx)
    .await
}

/// The gates a claimed contact passes: ad hoc, or its campaign's (zone,
/// first scheduled) gate is open and its campaign active. The open gates
/// are the statement's parameters `$first` to `$first + 2`, column by
/// column as [`OpenGates`] holds them.
fn gated(first: u8) -> String {
    let (campaigns, zones, scheduled) = (first, first + 1, first + 2);
    format!(
        "(c.campaign_id IS NULL
      OR ((c.campaign_id, c.zone_key, c.attempt_count = 0 AND c.scheduled_at IS NOT NULL)
            IN (SELECT * FROM unnest(${campaigns}::uuid[], ${zones}::text[], ${scheduled}::bool[]))
          AND EXISTS (SELECT 1 FROM campaigns k WHERE k.id = c.campaign_id AND k.status = 'active')))"
    )
}
/// A claimed contact: in progress, its attempt counted, owned by `$7`.
const CLAIMED: &str =
    "status = 'in_progress', attempt_count = c.attempt_count + 1, owner_instance = $7,
                claimed_at = now(), updated_at = now()";
/// What a claim returns of each contact ([`Claimed`]).
/// `suppressed` reads the do-not-call lists as this statement sees them:
/// after every list change that committed before the claim lock was taken
/// (a change takes the same lock; see `db::dnc`).
const RETURNED: &str = "c.id, c.organization_id, c.campaign_id, c.phone_numbers, c.retired_numbers,
                 c.next_number_index, c.attempt_count, c.next_attempt_at, c.data, c.agent_id,
                 c.agent_version, c.agent_number, c.agent_config, c.initial_context,
                 dnc_suppressed(c.phone_numbers, c.organization_id) AS suppressed, c.dnc_epoch,
                 c.timezone, c.number_zones, c.scheduled_at";

/// The first (priority, retry) group with a contact due by `now` of each
/// of `orgs`, by `next_due_group`, in one statement.
async fn first_groups(
    tx: &mut Transaction<'_, Postgres>,
    now: DateTime<Utc>,
    orgs: &[Uuid],
) -> Result<Vec<(Uuid, Option<Group>)>, sqlx::Error> {
    if orgs.is_empty() {
        return Ok(Vec::new());
    }
    type Row = (Uuid, Option<i32>, Option<bool>, Option<DateTime<Utc>>);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT s.org, g.group_priority, g.group_retry, g.group_first_due
           FROM unnest($1::uuid[]) AS s(org) CROSS JOIN LATERAL next_due_group(s.org, $2, NULL, NULL) g",
    )
    .bind(orgs)
    .bind(now)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(org, priority, retry, first_due)| {
            let group = match (priority, retry, first_due) {
                (Some(priority), Some(retry), Some(first_due)) => Some(Group {
                    priority,
                    retry,
                    first_due,
                }),
                _ => None,
            };
            (org, group)
        })
        .collect())
}

/// `org`'s first (priority, retry) group after `after` (from the top when
/// `None`) with a contact due by `now`, by `next_due_group`.
async fn next_group(
    tx: &mut Transaction<'_, Postgres>,
    org: Uuid,
    now: DateTime<Utc>,
    after: Option<Group>,
) -> Result<Option<Group>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM next_due_group($1, $2, $3, $4) WHERE group_priority IS NOT NULL")
        .bind(org)
        .bind(now)
        .bind(after.map(|g| g.priority))
        .bind(after.map(|g| g.retry))
        .fetch_optional(&mut **tx)
        .await
}

/// Claims up to `n` due contacts of `org` in one (priority, retry) group,
/// which pins the index scan to contacts in due order: it starts at the
/// group's earliest due and stops at the first one not yet due.
async fn claim_in_group(
    tx: &mut Transaction<'_, Postgres>,
    owner: Uuid,
    org: Uuid,
    now: DateTime<Utc>,
    gates: &OpenGates,
    group: Group,
    n: u32,
) -> Result<Vec<PgRow>, sqlx::Error> {
    // "= (SELECT $9)", not "= $9": compared with a constant, the planner
    // rewrites the retry test to "attempt_count <= 0", which no longer
    // matches contacts_due's column, and the due time stops bounding the scan.
    let gates = gates.of([&org]);
    let gated = gated(4);
    sqlx::query(&format!(
        "WITH found AS (
             SELECT c.id, c.next_attempt_at FROM contacts c
              WHERE c.organization_id = $1 AND c.status = 'pending' AND c.next_attempt_at BETWEEN $10 AND $2
                AND c.priority = $8 AND (c.attempt_count > 0) = (SELECT $9::bool)
                AND {gated}
              ORDER BY c.priority DESC, (c.attempt_count > 0), c.next_attempt_at
              LIMIT $3 + 1
                FOR UPDATE OF c SKIP LOCKED),
         due AS (SELECT id, (SELECT count(*) FROM found) > $3 AS more FROM found
                  ORDER BY next_attempt_at, id LIMIT $3)
         UPDATE contacts c SET {CLAIMED}
           FROM due WHERE c.id = due.id
       RETURNING {RETURNED}, due.more"
    ))
    .bind(org)
    .bind(now)
    .bind(i64::from(n))
    .bind(&gates.campaigns)
    .bind(&gates.zones)
    .bind(&gates.first_scheduled)
    .bind(owner)
    .bind(group.priority)
    .bind(group.retry)
    .bind(group.first_due)
    .fetch_all(&mut **tx)
    .await
}

/// Sets claimed contacts aside for good: `exhausted` with their reason, the
/// attempt their claim counted taken back, no call placed.
async fn put_aside(
    conn: &mut sqlx::PgConnection,
    owner: Uuid,
    contacts: &[(Uuid, String)],
) -> Result<(), sqlx::Error> {
    let (ids, reasons): (Vec<Uuid>, Vec<String>) = contacts.iter().cloned().unzip();
    sqlx::query(
        "UPDATE contacts c SET status = 'exhausted', attempt_count = c.attempt_count - 1,
                set_aside_reason = r.reason, owner_instance = NULL, claimed_at = NULL,
                updated_at = now()
           FROM unnest($1::uuid[], $2::text[]) AS r(id, reason)
          WHERE c.id = r.id AND c.owner_instance = $3 AND c.status = 'in_progress'",
    )
    .bind(&ids)
    .bind(&reasons)
    .bind(owner)
    .execute(conn)
    .await?;
    Ok(())
}

/// Hands back claimed contacts that have no open attempt (no call was
/// placed for them): to `pending`, with the attempt their claim counted
/// taken back. Contacts with an open attempt are left alone.
pub async fn release(pool: &PgPool, owner: Uuid, contact_ids: &[Uuid]) -> Result<u64, DbError> {
    let mut tx = pool.begin().await?;
    // Waits out a [`start`] of these contacts still in flight, so the check
    // below (a new snapshot) sees the attempts it wrote; a start that comes
    // after finds the contacts no longer claimed.
    sqlx::query("SELECT 1 FROM contacts WHERE id = ANY($1) AND owner_instance = $2 FOR UPDATE")
        .bind(contact_ids)
        .bind(owner)
        .execute(&mut *tx)
        .await?;
    let released = hand_back(&mut tx, owner, contact_ids).await?;
    tx.commit().await?;
    Ok(released)
}

/// The claimed contacts of `owner` among `contact_ids` with no open attempt,
/// back to `pending` with the attempt their claim counted taken back.
async fn hand_back(
    conn: &mut sqlx::PgConnection,
    owner: Uuid,
    contact_ids: &[Uuid],
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE contacts c SET status = 'pending',
                attempt_count = c.attempt_count - (c.status = 'in_progress')::int,
                owner_instance = NULL, claimed_at = NULL, updated_at = now()
          WHERE c.id = ANY($1) AND c.owner_instance = $2
            AND (c.status = 'locked'
                 OR (c.status = 'in_progress'
                     AND NOT EXISTS (SELECT 1 FROM attempts a WHERE a.contact_id = c.id AND a.outcome IS NULL)))",
    )
    .bind(contact_ids)
    .bind(owner)
    .execute(conn)
    .await?
    .rows_affected())
}

/// The backlog as the claim sees it at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct Backlog {
    /// Pending contacts whose next attempt time has passed.
    pub due: i64,
    /// Of those, the ones a claim could take now if limits left room:
    /// ad-hoc contacts, and those of active campaigns inside an open gate.
    pub callable: i64,
}

/// Counts the due backlog, and the part of it inside `gates`, in one scan.
pub async fn backlog(
    pool: &PgPool,
    now: DateTime<Utc>,
    gates: &OpenGates,
) -> Result<Backlog, DbError> {
    // The claim's own gate test.
    let gated = gated(2);
    let gates = gates.all();
    Ok(sqlx::query_as(&format!(
        "SELECT count(*) AS due, count(*) FILTER (WHERE {gated}) AS callable
           FROM contacts c WHERE c.status = 'pending' AND c.next_attempt_at <= $1"
    ))
    .bind(now)
    .bind(&gates.campaigns)
    .bind(&gates.zones)
    .bind(&gates.first_scheduled)
    .fetch_one(pool)
    .await?)
}
