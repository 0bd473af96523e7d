//! `dialerd dnc load`: a do-not-call file into a list, through `COPY`,
//! with a progress bar and a count of refused lines; `--replace` swaps the
//! list's numbers for the file's atomically (`db::dnc::Load`).

use std::io::BufRead;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use uuid::Uuid;

use crate::db::dnc::{self as store, Load};
use crate::domain::phone::{list_number, Country};

/// Numbers read between updates of the progress bar.
const BATCH: u64 = 200_000;
/// Refused lines named in the output; all are counted.
const SHOWN: usize = 20;

#[derive(Debug, clap::Args)]
pub struct DncLoadArgs {
    /// The list's name; made when missing.
    #[arg(long)]
    pub list: String,
    /// The organization whose list it is.
    #[arg(long, required_unless_present = "global", conflicts_with = "global")]
    pub org: Option<Uuid>,
    /// A global list, applied to every organization (e.g. the national registry).
    #[arg(long)]
    pub global: bool,
    /// Replace the list's numbers with the file's, atomically; refused
    /// unless every line of the file reads.
    #[arg(long)]
    pub replace: bool,
    /// With --replace, accept a file with no number (empties the list).
    #[arg(long)]
    pub allow_empty: bool,
    /// Country of national numbers (besides E.164 and the FTC's 10 digits).
    #[arg(long, value_name = "CC")]
    pub country: Option<String>,
    /// One number a line: E.164, or 10 North American digits (the FTC
    /// registry's download: `2125550123` or `212,5550123`).
    pub file: PathBuf,
}

pub async fn run(pool: &sqlx::PgPool, args: DncLoadArgs) -> anyhow::Result<()> {
    let country = args
        .country
        .as_deref()
        .map(Country::parse)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let org = if args.global { None } else { args.org };
    if let Some(org) = org {
        anyhow::ensure!(
            crate::db::organizations::exists(pool, org).await?,
            "no organization with id {org}"
        );
    }
    let list = match store::by_name(pool, org, &args.list).await? {
        Some(list) => list,
        None => store::create(pool, org, &args.list, args.country.as_deref()).await?,
    };
    let file = std::fs::File::open(&args.file)
        .with_context(|| format!("cannot open {}", args.file.display()))?;
    let size = file.metadata()?.len();
    let bar = ProgressBar::new(size).with_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {percent:>3}% {msg} (ETA {eta})",
        )
        .expect("a valid template"),
    );
    let began = Instant::now();
    let mut load = Load::begin(pool, &list, org);
    let (mut read, mut refused, mut bytes) = (0u64, Vec::new(), 0u64);
    let mut refused_count = 0u64;
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let mut line = Vec::new();
    let mut number = 0u64;
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        number += 1;
        bytes += n as u64;
        let text = String::from_utf8_lossy(&line);
        let text = text.trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        match list_number(text, country) {
            Ok(n) => {
                read += 1;
                load.push(n);
                if read % BATCH == 0 {
                    bar.set_position(bytes);
                    let rate = read as f64 / began.elapsed().as_secs_f64().max(1e-3);
                    bar.set_message(format!("{read} numbers, {rate:.0}/s"));
                }
            }
            Err(why) => {
                refused_count += 1;
                if refused.len() < SHOWN {
                    refused.push(format!("line {number}: {why}"));
                }
            }
        }
    }
    bar.finish_and_clear();
    for r in &refused {
        eprintln!("refused {r}");
    }
    if refused_count > refused.len() as u64 {
        eprintln!("... {} more refused", refused_count - refused.len() as u64);
    }
    if args.replace {
        anyhow::ensure!(
            refused_count == 0,
            "{refused_count} lines refused; with --replace the file must be whole: nothing loaded"
        );
        anyhow::ensure!(
            read > 0 || args.allow_empty,
            "the file holds no number; --replace would empty list `{}`: add --allow-empty",
            args.list
        );
    }
    let reading = began.elapsed().as_secs_f64();
    let size = load.commit(args.replace).await?.ok_or_else(|| {
        anyhow::anyhow!(
            "list `{}` was deleted during the load: nothing loaded",
            args.list
        )
    })?;
    let seconds = began.elapsed().as_secs_f64();
    println!(
        "list `{}` ({}): {read} numbers read in {seconds:.1} s ({:.0}/s; reading {reading:.1} s, \
         writing {:.1} s), {refused_count} lines refused; {size} numbers on the list{}",
        args.list,
        list.id,
        read as f64 / seconds.max(1e-3),
        seconds - reading,
        if args.replace { " (replaced)" } else { "" }
    );
    Ok(())
}
