//! Pure dialing rules: no I/O here. Every value that crosses an edge (API,
//! database, settings) is parsed into one of these types once.

pub mod agent;
pub mod call;
pub mod evidence;
pub mod explain;
pub mod number_zones;
pub mod phone;
pub mod plan;
pub mod policy;
pub mod schedule;
pub mod scope;
pub mod slots;
pub mod status;
pub mod timezone;
pub mod window;
