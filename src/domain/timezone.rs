//! IANA time zones as a parsed type.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An IANA time zone name that chrono-tz knows, e.g. `America/New_York`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Timezone(pub chrono_tz::Tz);

impl Timezone {
    pub fn name(&self) -> &'static str {
        self.0.name()
    }

    /// Every zone name dialerd accepts, sorted.
    pub fn all_names() -> Vec<&'static str> {
        let mut names: Vec<_> = chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name()).collect();
        names.sort_unstable();
        names
    }
}

impl Default for Timezone {
    fn default() -> Self {
        Timezone(chrono_tz::America::New_York)
    }
}

impl FromStr for Timezone {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse::<chrono_tz::Tz>()
            .map(Timezone)
            .map_err(|_| format!("unknown IANA time zone `{s}`"))
    }
}

impl fmt::Display for Timezone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Timezone {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Timezone {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        raw.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_zones_parse_and_unknown_ones_are_refused() {
        assert_eq!(
            "Europe/Paris".parse::<Timezone>().unwrap().name(),
            "Europe/Paris"
        );
        assert!("Mars/Olympus".parse::<Timezone>().is_err());
        assert!("".parse::<Timezone>().is_err());
    }

    #[test]
    fn the_zone_list_is_sorted_and_holds_new_york() {
        let names = Timezone::all_names();
        assert!(names.windows(2).all(|w| w[0] <= w[1]));
        assert!(names.contains(&"America/New_York"));
    }
}
