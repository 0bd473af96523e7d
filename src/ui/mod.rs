//! The web dashboard at `/ui`: one page whose few lines of JavaScript ask
//! for a token once (kept in the browser session), then fetch the view of
//! the moment as HTML rendered here, every two seconds. Buttons call the
//! API itself, so they keep its semantics. Every asset is in the binary.
//!
//! The HTML parts answer to the same bearer tokens and scopes as the API
//! (`campaigns:read`), for the token's organization only.

use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use maud::{html, Markup, DOCTYPE};
use uuid::Uuid;

use crate::api::error::ApiError;
use crate::api::extract::{ApiPath, Auth, CampaignsRead, Query};
use crate::api::AppState;
use crate::db::contacts::Contact;
use crate::db::dashboard::{self, CampaignRow};
use crate::db::{attempts, configurations};
use crate::domain::explain::{Explanation, Verdict};
use crate::domain::phone::E164;
use crate::domain::status::CampaignStatus;

const SCRIPT: &str = include_str!("app.js");
const STYLE: &str = include_str!("app.css");

/// The dashboard's routes, under `/ui`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ui", get(page))
        .route("/ui/", get(page))
        .route("/ui/app.js", get(script))
        .route("/ui/app.css", get(style))
        .route("/ui/parts/campaigns", get(campaigns))
        .route("/ui/parts/campaigns/{campaign_id}", get(campaign))
        .route("/ui/parts/lines", get(lines))
        .route("/ui/parts/limits", get(limits))
}

async fn page() -> Html<String> {
    Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { "dialerd" }
                    link rel="stylesheet" href="/ui/app.css";
                    script src="/ui/app.js" defer {}
                }
                body {
                    header {
                        strong { "dialerd" }
                        nav {
                            a href="#/campaigns" { "Campaigns" }
                            a href="#/lines" { "Lines" }
                            a href="#/limits" { "Limits" }
                        }
                        span id="live" {}
                        button id="logout" type="button" hidden { "Log out" }
                    }
                    form id="login" hidden {
                        h1 { "Sign in" }
                        p { "An API token of your organization (scope campaigns:read; campaigns:manage to start, pause and close). It is kept for this browser tab only." }
                        input id="token" type="password" autocomplete="off" placeholder="API token" required;
                        button type="submit" { "Sign in" }
                    }
                    div id="toolbar" {}
                    p id="error" role="alert" hidden {}
                    main id="view" {}
                }
            }
        }
        .into_string(),
    )
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
        .into_response()
}

async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response()
}

fn time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

fn percent(part: i64, total: i64) -> f64 {
    if total == 0 {
        0.0
    } else {
        part as f64 * 100.0 / total as f64
    }
}

/// Completed, exhausted and pending (with calls in flight) as one bar.
fn progress(row: &CampaignRow) -> Markup {
    let t = row.total;
    html! {
        div.bar title={ (row.completed) " completed, " (row.exhausted) " exhausted, " (row.pending + row.active) " pending or in a call, of " (t) } {
            span.completed style={ "width:" (format!("{:.2}", percent(row.completed, t))) "%" } {}
            span.exhausted style={ "width:" (format!("{:.2}", percent(row.exhausted, t))) "%" } {}
        }
        small { (row.completed) " / " (row.exhausted) " / " (row.pending + row.active) " of " (t) }
    }
}

/// Start, pause and close as the API allows them for `status`; each calls
/// the API's own route.
fn actions(row: &CampaignRow) -> Markup {
    let id = row.id.to_string();
    html! {
        @if row.status == CampaignStatus::Paused {
            button data-action="start" data-campaign=(id) { "Start" }
        }
        @if row.status == CampaignStatus::Active {
            button data-action="pause" data-campaign=(id) { "Pause" }
        }
        @if row.status != CampaignStatus::Closed {
            button.danger data-action="close" data-campaign=(id) data-confirm={ "Close " (row.name) " for good?" } { "Close" }
        }
    }
}

fn rate(row: &CampaignRow) -> String {
    row.answer_rate()
        .map_or_else(|| "–".into(), |r| format!("{:.0}%", r * 100.0))
}

async fn campaigns(
    State(state): State<AppState>,
    auth: Auth<CampaignsRead>,
) -> Result<Html<String>, ApiError> {
    let rows = dashboard::campaigns(&state.pool, auth.org).await?;
    Ok(Html(
        html! {
            h1 { "Campaigns" }
            @if rows.is_empty() {
                p { "No campaigns yet: create one through the API (POST /campaign/campaigns)." }
            } @else {
                table id="campaigns" {
                    thead { tr {
                        th { "Campaign" } th { "Status" } th { "Priority" } th { "Progress: completed / exhausted / pending" }
                        th { "Calls/min" } th { "Answered (1 h)" } th { "In a call" } th {}
                    } }
                    tbody {
                        @for row in &rows {
                            tr data-campaign=(row.id) data-status=(row.status.as_str()) {
                                td { a href={ "#/campaigns/" (row.id) } { (row.name) } }
                                td { span class={ "status " (row.status.as_str()) } { (row.status.as_str()) } }
                                td.num { (row.priority) }
                                td { (progress(row)) }
                                td.num { (row.calls_last_minute) }
                                td.num { (rate(row)) }
                                td.num { (row.active) }
                                td.actions { (actions(row)) }
                            }
                        }
                    }
                }
            }
        }
        .into_string(),
    ))
}

fn contact_rows(
    campaign: Uuid,
    contacts: &[Contact],
    by_contact: &std::collections::HashMap<Uuid, Vec<attempts::Attempt>>,
    explained: Option<(Uuid, &Explanation)>,
    query: &str,
) -> Markup {
    html! {
        table id="contacts" {
            thead { tr {
                th { "External id" } th { "Numbers" } th { "Status" } th { "Attempts: outcomes" }
                th { "Next attempt" } th {}
            } }
            tbody {
                @for c in contacts {
                    tr data-contact=(c.id) {
                        td { (c.external_id.as_deref().unwrap_or("–")) }
                        td { (c.phone_numbers.join(", ")) }
                        td { span class={ "status " (c.status.as_str()) } { (c.status.as_str()) } }
                        td {
                            @let list = by_contact.get(&c.id).map(Vec::as_slice).unwrap_or(&[]);
                            @if list.is_empty() { "none" }
                            @for a in list {
                                span.attempt title={ (time(a.created_at)) " to " (a.phone_number) } {
                                    "#" (a.attempt_number) " " (a.outcome.map_or("in progress", |o| o.as_str()))
                                }
                            }
                        }
                        td { (time(c.next_attempt_at)) }
                        td { a href={ "#/campaigns/" (campaign) "?q=" (query) "&explain=" (c.id) } { "Why?" } }
                    }
                    @if let Some((id, e)) = explained {
                        @if id == c.id {
                            tr.explain { td colspan="6" { (explanation(e)) } }
                        }
                    }
                }
            }
        }
    }
}

fn explanation(e: &Explanation) -> Markup {
    let verdict = match e.verdict {
        Verdict::DialableNow => "dialable now: the next claim with room takes it".to_owned(),
        Verdict::Waiting => match e.waiting_until {
            Some(at) => format!("waiting, until {}", time(at)),
            None => "waiting".to_owned(),
        },
        Verdict::Never => "never dialed as it stands".to_owned(),
    };
    html! {
        p.verdict { strong { "Verdict: " } (verdict) }
        ul.checks {
            @for check in &e.checks {
                li class=(if check.pass { "pass" } else { "fail" }) {
                    strong { (check.gate) } ": " (check.detail)
                    @if let Some(at) = check.next_pass { " (passes " (time(at)) ")" }
                }
            }
        }
    }
}

async fn campaign(
    State(state): State<AppState>,
    auth: Auth<CampaignsRead>,
    ApiPath(id): ApiPath<Uuid>,
    mut query: Query,
) -> Result<Html<String>, ApiError> {
    let search = query.one::<String>("q")?.unwrap_or_default();
    let explain = query.one::<Uuid>("explain")?;
    query.finish()?;
    let row = dashboard::campaign(&state.pool, auth.org, id)
        .await?
        .ok_or(ApiError::NotFound("campaign"))?;
    let search = search.trim().to_owned();
    let (external_id, number) = if search.is_empty() {
        (None, None)
    } else {
        let campaign = crate::db::campaigns::resolve(&state.pool, auth.org, &id.to_string())
            .await?
            .ok_or(ApiError::NotFound("campaign"))?;
        let country = configurations::get(&state.pool, auth.org, campaign.configuration_id)
            .await?
            .and_then(|c| c.dialing_policy.default_country);
        let number = E164::normalize(&search, country)
            .ok()
            .map(|n| n.as_str().to_owned());
        (Some(search.clone()), number)
    };
    let contacts = dashboard::contacts(
        &state.pool,
        auth.org,
        id,
        external_id.as_deref(),
        number.as_deref(),
        50,
    )
    .await?;
    let ids: Vec<Uuid> = contacts.iter().map(|c| c.id).collect();
    let mut by_contact: std::collections::HashMap<Uuid, Vec<_>> = Default::default();
    for a in attempts::for_contacts(&state.pool, &ids).await? {
        by_contact.entry(a.contact_id).or_default().push(a);
    }
    let explained = match explain.filter(|c| ids.contains(c)) {
        Some(contact) => {
            crate::db::contacts::explain_facts(&state.pool, auth.org, contact, state.global_limit)
                .await?
                .map(|facts| (contact, crate::domain::explain::explain(&facts, Utc::now())))
        }
        None => None,
    };
    Ok(Html(
        html! {
            h1 { (row.name) " " span class={ "status " (row.status.as_str()) } { (row.status.as_str()) } }
            div.summary {
                (progress(&row))
                span { "Priority " (row.priority) }
                span { (row.calls_last_minute) " calls in the last minute" }
                span { "Answered (1 h): " (rate(&row)) }
                span { (row.active) " in a call" }
                span.actions { (actions(&row)) }
            }
            h2 {
                @if search.is_empty() { "Contacts (the first 50)" }
                @else { "Contacts matching “" (search) "”" }
            }
            @if contacts.is_empty() { p { "No contact found." } }
            @else {
                (contact_rows(id, &contacts, &by_contact, explained.as_ref().map(|(c, e)| (*c, e)), &search))
            }
        }
        .into_string(),
    ))
}

async fn lines(
    State(state): State<AppState>,
    auth: Auth<CampaignsRead>,
) -> Result<Html<String>, ApiError> {
    let rows = dashboard::instances(&state.pool, auth.org).await?;
    Ok(Html(
        html! {
            h1 { "Lines and daemons" }
            @if rows.is_empty() { p { "No daemon is dialing on this database." } }
            @else {
                table id="instances" {
                    thead { tr {
                        th { "Daemon" } th { "Host (pid)" } th { "Lines busy / all" } th { "Of them your calls" }
                        th { "Idle lines" } th { "Since heartbeat" } th { "Lease" } th { "Started" }
                    } }
                    tbody {
                        @for i in &rows {
                            tr data-instance=(i.id) {
                                td { code { (i.id) } }
                                td { (i.hostname) " (" (i.pid) ")" }
                                td.num { (i.busy) " / " (i.lines) }
                                td.num { (i.busy_here) }
                                td.num { ((i64::from(i.lines) - i.busy).max(0)) }
                                td.num { (format!("{:.1} s", i.lease_age_seconds)) }
                                td { @if i.alive { "held until " (time(i.lease_expires_at)) } @else { span.status.closed { "expired" } } }
                                td { (time(i.started_at)) }
                            }
                        }
                    }
                }
            }
        }
        .into_string(),
    ))
}

async fn limits(
    State(state): State<AppState>,
    auth: Auth<CampaignsRead>,
) -> Result<Html<String>, ApiError> {
    let l = dashboard::limits(&state.pool, auth.org).await?;
    let global = i64::from(state.global_limit);
    let org = i64::from(l.concurrency_limit);
    Ok(Html(
        html! {
            h1 { "Limits" }
            table id="limits" {
                thead { tr { th {} th { "Calls now" } th { "Limit" } th { "Use" } } }
                tbody {
                    tr data-limit="organization" {
                        td { "Your organization (" (l.name) ")" }
                        td.num { (l.active) } td.num { (org) }
                        td { div.bar { span.completed style={ "width:" (format!("{:.2}", percent(l.active.min(org), org))) "%" } {} } }
                    }
                    tr data-limit="global" {
                        td { "All organizations (dialer.global_concurrency_limit)" }
                        td.num { (l.global_active) } td.num { (global) }
                        td { div.bar { span.completed style={ "width:" (format!("{:.2}", percent(l.global_active.min(global), global))) "%" } {} } }
                    }
                }
            }
            p { "Your limit is changed through PUT /campaign/concurrency-settings (scope concurrency:manage); the global limit is a setting of the daemons." }
        }
        .into_string(),
    ))
}
