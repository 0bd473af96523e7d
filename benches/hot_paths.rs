//! Criterion micro-benchmarks of the engine's pure hot paths: calling-window
//! evaluation and slot allocation. `cargo bench --bench hot_paths`.

use chrono::{TimeZone, Utc};
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use dialerd::domain::plan::CampaignPlan;
use dialerd::domain::schedule::Schedule;
use dialerd::domain::slots::{allocate, fair_rooms, Claimant, Load};
use dialerd::domain::timezone::Timezone;

const ZONES: [&str; 12] = [
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "America/Sao_Paulo",
    "Europe/London",
    "Europe/Berlin",
    "Africa/Lagos",
    "Asia/Kolkata",
    "Asia/Tokyo",
    "Australia/Sydney",
    "Pacific/Auckland",
];

fn schedule() -> Schedule {
    serde_json::from_value(serde_json::json!({
        "default_timezone": "America/New_York",
        "default_windows": [
            {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "12:30"},
            {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "13:30", "end": "20:00"},
            {"days": ["sat"], "start": "10:00", "end": "14:00"}
        ],
        "overrides": [
            {"timezone": "Europe/Berlin", "windows": [{"days": ["fri"], "start": "22:30", "end": "03:30"}]},
            {"timezone": "Asia/Tokyo", "windows": [{"days": ["mon", "wed"], "start": "18:00", "end": "21:00"}]}
        ],
        "scheduled_windows": [{"days": ["sun"], "start": "11:00", "end": "15:00"}]
    }))
    .expect("a valid schedule")
}

fn windows(c: &mut Criterion) {
    let schedule = schedule();
    let zones: Vec<Timezone> = ZONES.iter().map(|z| z.parse().unwrap()).collect();
    let now = Utc.with_ymd_and_hms(2026, 3, 29, 0, 45, 0).unwrap(); // a DST change in Europe
    c.bench_function("window: is_open, one contact zone", |b| {
        b.iter(|| schedule.is_open(black_box(Some(zones[6])), false, black_box(now)))
    });
    let plan = CampaignPlan {
        schedule: schedule.clone(),
        ..CampaignPlan::ad_hoc(uuid::Uuid::nil())
    };
    let stored: Vec<String> = ZONES
        .iter()
        .map(|z| z.to_string())
        .chain([String::new()])
        .collect();
    c.bench_function("window: open_gates, 13 zones in use", |b| {
        b.iter(|| plan.open_gates(black_box(&stored), black_box(now)))
    });
}

fn slots(c: &mut Criterion) {
    let claimants: Vec<Claimant> = (0..100)
        .map(|i| Claimant {
            limit: 10 + i * 7,
            room: (i * 13) % 50,
        })
        .collect();
    c.bench_function("slots: allocate 1000 among 100 organizations", |b| {
        b.iter(|| allocate(black_box(1000), black_box(&claimants)))
    });
    let loads: Vec<Load> = (0..100)
        .map(|i| Load {
            limit: 10 + i * 7,
            active: (i * 11) % 40,
        })
        .collect();
    c.bench_function("slots: fair_rooms of 100 organizations", |b| {
        b.iter(|| fair_rooms(black_box(10_000), black_box(&loads)))
    });
}

criterion_group!(benches, windows, slots);
criterion_main!(benches);
