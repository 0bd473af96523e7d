//! Rebuilds when a migration is added or changed: `sqlx::migrate!` embeds
//! the migrations directory, but stable Rust cannot tell cargo it read it.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
