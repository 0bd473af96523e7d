//! `dialerd import`: a CSV file into a campaign, straight to the database,
//! with a progress bar, a summary, and the refused rows written to a file.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::mapping::Override;
use super::{Job, Outcome, Progress};
use crate::db::imports::{self as store, NewImport};
use crate::db::{campaigns, configurations};
use crate::domain::status::CampaignStatus;

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The campaign: its UUID or external_id.
    #[arg(long)]
    pub campaign: String,
    /// The campaign's organization; needed when several organizations use
    /// the campaign's external_id.
    #[arg(long)]
    pub org: Option<Uuid>,
    /// Maps a CSV column to a contact field, overriding the header's name:
    /// phone, phone_2..phone_10, external_id, timezone, scheduled_at,
    /// agent_id, agent_version, agent_number, agent_config, initial_context,
    /// data.KEY or ignore. Repeatable.
    #[arg(long = "map", value_name = "COLUMN=FIELD")]
    pub map: Vec<Override>,
    /// Refuse the whole file if any row is refused (default: load the good
    /// rows and report the bad ones).
    #[arg(long)]
    pub all_or_nothing: bool,
    /// Where to write the refused rows as CSV (line,column,reason);
    /// default FILE.errors.csv, written only when a row was refused.
    #[arg(long, value_name = "FILE")]
    pub errors: Option<PathBuf>,
    /// The CSV file, with a header row.
    pub file: PathBuf,
}

/// Runs the import; fails when the import does (an all-or-nothing file
/// with a bad row, a closed campaign, an interruption).
pub async fn run(pool: &sqlx::PgPool, args: ImportArgs) -> anyhow::Result<()> {
    let org = match args.org {
        Some(org) => org,
        None => match store::organizations_naming(pool, &args.campaign).await?[..] {
            [] => anyhow::bail!("no campaign with id or external_id `{}`", args.campaign),
            [org] => org,
            ref many => anyhow::bail!(
                "{} organizations have a campaign `{}`; name one with --org",
                many.len(),
                args.campaign
            ),
        },
    };
    let campaign = campaigns::resolve(pool, org, &args.campaign)
        .await?
        .with_context(|| format!("no campaign `{}` in organization {org}", args.campaign))?;
    anyhow::ensure!(
        campaign.status != CampaignStatus::Closed,
        "campaign `{}` is closed; it takes no more contacts",
        args.campaign
    );
    let country = configurations::get(pool, org, campaign.configuration_id)
        .await?
        .and_then(|c| c.dialing_policy.default_country);
    let size = std::fs::metadata(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?
        .len();
    let source = super::open(&args.file, &args.map).map_err(anyhow::Error::msg)?;
    let job = Job {
        id: Uuid::now_v7(),
        org,
        campaign: campaign.id,
        country,
        all_or_nothing: args.all_or_nothing,
    };
    let name = args.file.display().to_string();
    store::create(
        pool,
        &NewImport {
            id: job.id,
            org,
            campaign: campaign.id,
            source: &name,
            all_or_nothing: job.all_or_nothing,
            mapping: source.columns.applied(),
        },
    )
    .await?;
    let bar = ProgressBar::new(size).with_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {percent:>3}% {msg} (ETA {eta})",
        )
        .expect("a valid template"),
    );
    let began = Instant::now();
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    let signal = tokio::spawn(async move {
        crate::shutdown::signal().await;
        stop.cancel();
    });
    let outcome = super::run(pool, &job, source, &cancel, |p: Progress| {
        bar.set_position(p.bytes);
        let rate = p.read as f64 / began.elapsed().as_secs_f64().max(1e-3);
        bar.set_message(format!("{} rows, {rate:.0} rows/s", p.read));
    })
    .await;
    signal.abort();
    bar.finish_and_clear();
    let outcome = outcome?;
    let (done, failure) = match &outcome {
        Outcome::Completed(p) => (p, None),
        Outcome::Failed(p, why) => (p, Some(why)),
    };
    println!(
        "import {}: {} rows in {:.1} s: {} created, {} updated, {} refused",
        job.id,
        done.read,
        began.elapsed().as_secs_f64(),
        done.created,
        done.updated,
        done.refused
    );
    if done.refused > 0 {
        let path = args.errors.unwrap_or_else(|| {
            let mut p = args.file.clone().into_os_string();
            p.push(".errors.csv");
            p.into()
        });
        write_errors(pool, job.id, &path).await?;
        println!("refused rows: {}", path.display());
    }
    match failure {
        Some(why) => anyhow::bail!("import failed: {why}"),
        None => Ok(()),
    }
}

/// Writes an import's error report as CSV: line, column, reason.
async fn write_errors(pool: &sqlx::PgPool, id: Uuid, path: &std::path::Path) -> anyhow::Result<()> {
    let mut out =
        csv::Writer::from_path(path).with_context(|| format!("cannot write {}", path.display()))?;
    out.write_record(["line", "column", "reason"])?;
    for e in store::errors(pool, id).await? {
        out.write_record([
            e.line.to_string().as_str(),
            e.column.as_deref().unwrap_or(""),
            &e.reason,
        ])?;
    }
    out.flush()?;
    Ok(())
}
