//! Time zones from phone numbers: libphonenumber's map from number
//! prefixes to zones (generated into `number_zones_table.rs` by
//! `scripts/number_zones.py`), and the rule a configuration applies to a
//! contact that states no zone of its own.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::phone::E164;
use super::timezone::Timezone;

#[allow(clippy::all)]
#[path = "number_zones_table.rs"]
mod table;

/// The zones libphonenumber gives a number: those of the longest prefix of
/// its digits the map holds (a US area code has one; a toll-free or
/// non-geographic number only its country's prefix, so every zone of the
/// country). Empty when the map has nothing.
pub fn candidates(number: &E164) -> Vec<Timezone> {
    let digits = &number.as_str()[1..];
    for len in (1..=digits.len().min(table::LONGEST_PREFIX)).rev() {
        let prefix = &digits[..len];
        if let Ok(i) = table::PREFIXES.binary_search_by(|(p, _)| (*p).cmp(prefix)) {
            return table::PREFIXES[i]
                .1
                .iter()
                .filter_map(|&z| table::ZONES[usize::from(z)].parse().ok())
                .collect();
        }
    }
    Vec::new()
}

/// What a contact stores of its numbers' zones: the candidates of its
/// first number in the map's order, then those of its other numbers not
/// named yet, space-separated; None when the map knows none of them.
pub fn stored(numbers: &[E164]) -> Option<String> {
    let mut zones: Vec<&'static str> = Vec::new();
    for number in numbers {
        for zone in candidates(number) {
            if !zones.contains(&zone.name()) {
                zones.push(zone.name());
            }
        }
    }
    (!zones.is_empty()).then(|| zones.join(" "))
}

/// How a configuration uses the zones of a contact's numbers when the
/// contact states no zone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Inference {
    /// Dial only while the window is open in every candidate zone.
    #[default]
    Strict,
    /// The first candidate zone of its first number.
    First,
    /// No inference: the configuration's default zone.
    Off,
}

/// Where the zones a contact is checked in come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Its stated `timezone`, which always wins.
    Contact,
    /// The candidates of its numbers.
    Number,
    /// The configuration's default zone.
    Default,
}

/// The zones a contact is checked in: a window is open for it when it is
/// open in every one of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zones {
    pub zones: Vec<Timezone>,
    pub source: Source,
}

/// A stated zone wins; then, unless `inference` is off, the candidates of
/// its numbers (`number_zones` as [`stored`] wrote it); then `default`.
pub fn resolve(
    stated: Option<Timezone>,
    number_zones: Option<&str>,
    inference: Inference,
    default: Timezone,
) -> Zones {
    if let Some(zone) = stated {
        return Zones {
            zones: vec![zone],
            source: Source::Contact,
        };
    }
    let mut candidates: Vec<Timezone> = number_zones
        .unwrap_or("")
        .split(' ')
        .filter_map(|z| z.parse().ok())
        .collect();
    if inference == Inference::First {
        candidates.truncate(1);
    }
    if inference == Inference::Off || candidates.is_empty() {
        return Zones {
            zones: vec![default],
            source: Source::Default,
        };
    }
    Zones {
        zones: candidates,
        source: Source::Number,
    }
}

/// The key a contact's zones are gated by, as the database computes it
/// (`contacts.zone_key`): its stated zone, or `~` and its numbers' zones,
/// or "" for neither. None for a stated zone that names none.
pub fn parse_key(key: &str) -> Option<(Option<Timezone>, Option<&str>)> {
    match key {
        "" => Some((None, None)),
        k if k.starts_with('~') => Some((None, Some(&k[1..]))),
        name => name.parse().ok().map(|z| (Some(z), None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn number(s: &str) -> E164 {
        E164::strict(s).unwrap()
    }

    fn names(zones: &[Timezone]) -> Vec<&str> {
        zones.iter().map(|z| z.name()).collect()
    }

    #[test]
    fn every_zone_of_the_table_is_one_chrono_tz_knows() {
        for name in table::ZONES {
            assert!(name.parse::<Timezone>().is_ok(), "{name}");
        }
        assert!(table::PREFIXES.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn a_number_has_the_zones_of_its_longest_known_prefix() {
        assert_eq!(
            names(&candidates(&number("+12125550123"))),
            ["America/New_York"]
        );
        assert_eq!(
            names(&candidates(&number("+14155550123"))),
            ["America/Los_Angeles"]
        );
        assert_eq!(
            names(&candidates(&number("+33612345678"))),
            ["Europe/Paris"]
        );
        // Toll-free: no area code, so every zone of the North American plan.
        let toll_free = candidates(&number("+18005550123"));
        assert!(toll_free.len() > 20, "{toll_free:?}");
        assert!(names(&toll_free).contains(&"Pacific/Honolulu"));
    }

    #[test]
    fn a_stated_zone_wins_then_the_numbers_then_the_default() {
        let ny: Timezone = "America/New_York".parse().unwrap();
        let stored = stored(&[number("+14155550123"), number("+12125550123")]);
        assert_eq!(
            stored.as_deref(),
            Some("America/Los_Angeles America/New_York")
        );
        let paris: Timezone = "Europe/Paris".parse().unwrap();
        let z = resolve(Some(paris), stored.as_deref(), Inference::Strict, ny);
        assert_eq!(
            (names(&z.zones), z.source),
            (vec!["Europe/Paris"], Source::Contact)
        );
        let z = resolve(None, stored.as_deref(), Inference::Strict, ny);
        assert_eq!(
            (names(&z.zones), z.source),
            (
                vec!["America/Los_Angeles", "America/New_York"],
                Source::Number
            )
        );
        let z = resolve(None, stored.as_deref(), Inference::First, ny);
        assert_eq!(names(&z.zones), ["America/Los_Angeles"]);
        let z = resolve(None, stored.as_deref(), Inference::Off, ny);
        assert_eq!(
            (names(&z.zones), z.source),
            (vec!["America/New_York"], Source::Default)
        );
        let z = resolve(None, None, Inference::Strict, ny);
        assert_eq!(z.source, Source::Default);
        assert_eq!(parse_key("~A B"), Some((None, Some("A B"))));
        assert_eq!(parse_key(""), Some((None, None)));
        assert!(parse_key("Mars/Base").is_none());
    }
}
