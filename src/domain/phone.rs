//! Phone numbers: normalization to E.164 on upload, masking for logs.

use std::fmt;

use phonenumber::country::Id as CountryId;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An ISO 3166 alpha-2 country code that phone numbering knows, e.g. `US`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Country(CountryId);

impl Country {
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.len() != 2 || !s.chars().all(|c| c.is_ascii_uppercase()) {
            return Err(format!("`{s}` is not an ISO 3166 alpha-2 country code"));
        }
        s.parse::<CountryId>()
            .map(Country)
            .map_err(|_| format!("`{s}` is not an ISO 3166 alpha-2 country code"))
    }
}

impl Serialize for Country {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.as_ref())
    }
}

impl<'de> Deserialize<'de> for Country {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Country::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// A valid phone number in E.164 form, e.g. `+14155550123`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct E164(String);

impl E164 {
    /// Normalizes `raw` with `country` for numbers written without `+`.
    pub fn normalize(raw: &str, country: Option<Country>) -> Result<Self, String> {
        let trimmed = raw.trim();
        if !trimmed.starts_with('+') && country.is_none() {
            return Err(format!(
                "`{}` is not in E.164 form and no default_country is set",
                mask(trimmed)
            ));
        }
        let parsed = phonenumber::parse(country.map(|c| c.0), trimmed)
            .map_err(|_| format!("`{}` is not a phone number", mask(trimmed)))?;
        if !phonenumber::is_valid(&parsed) {
            return Err(format!("`{}` is not a valid phone number", mask(trimmed)));
        }
        Ok(E164(
            parsed.format().mode(phonenumber::Mode::E164).to_string(),
        ))
    }

    /// Accepts only a number already written in valid E.164 form.
    pub fn strict(raw: &str) -> Result<Self, String> {
        let number = E164::normalize(raw, None)?;
        if number.0 != raw {
            return Err(format!("`{}` is not written in E.164 form", mask(raw)));
        }
        Ok(number)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The number with all but its last two digits hidden, for logs.
    pub fn masked(&self) -> String {
        mask(&self.0)
    }

    /// Wraps a number read back from the database, where only E.164 is
    /// stored through dialerd; `None` when the text does not have E.164's
    /// shape (`+`, then 8 to 15 digits, the first not 0), as a row written
    /// by other means could hold. A shape check only: cheap enough for
    /// every claimed contact.
    pub fn from_stored(s: String) -> Option<Self> {
        let digits = s.strip_prefix('+')?;
        let shaped = (8..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        shaped.then_some(E164(s))
    }
}

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Hides every digit of `s` but the last two.
pub fn mask(s: &str) -> String {
    let digits = s.chars().filter(char::is_ascii_digit).count();
    let mut seen = 0;
    s.chars()
        .map(|c| {
            if c.is_ascii_digit() {
                seen += 1;
                if seen + 2 <= digits {
                    '*'
                } else {
                    c
                }
            } else {
                c
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_number_is_used_only_when_it_has_the_shape_of_e164() {
        assert_eq!(
            E164::from_stored("+14155550100".into()).map(|n| n.0),
            Some("+14155550100".to_owned())
        );
        for bad in [
            "",
            "+",
            "14155550100",
            "+1415555010a",
            "+0415555010",
            "+1234567",
            "+1234567890123456",
            "not a number",
        ] {
            assert!(E164::from_stored(bad.into()).is_none(), "{bad}");
        }
    }

    fn us() -> Option<Country> {
        Some(Country::parse("US").unwrap())
    }

    #[test]
    fn national_numbers_are_normalized_with_the_default_country() {
        assert_eq!(
            E164::normalize("(415) 555-2671", us()).unwrap().as_str(),
            "+14155552671"
        );
        assert_eq!(
            E164::normalize(" 415.555.2671 ", us()).unwrap().as_str(),
            "+14155552671"
        );
        let gb = Some(Country::parse("GB").unwrap());
        assert_eq!(
            E164::normalize("020 7946 0958", gb).unwrap().as_str(),
            "+442079460958"
        );
    }

    #[test]
    fn international_numbers_keep_their_own_country() {
        assert_eq!(
            E164::normalize("+44 20 7946 0958", us()).unwrap().as_str(),
            "+442079460958"
        );
    }

    #[test]
    fn invalid_numbers_are_refused() {
        assert!(E164::normalize("12", us()).is_err());
        assert!(E164::normalize("not a number", us()).is_err());
        assert!(E164::normalize("+1 555", None).is_err());
        assert!(E164::normalize("4155552671", None)
            .unwrap_err()
            .contains("default_country"));
    }

    #[test]
    fn strict_parsing_wants_exact_e164() {
        assert!(E164::strict("+14155552671").is_ok());
        assert!(E164::strict("+1 415 555 2671").is_err());
        assert!(E164::strict("4155552671").is_err());
    }

    #[test]
    fn countries_must_be_upper_case_alpha_2() {
        assert!(Country::parse("US").is_ok());
        assert!(Country::parse("us").is_err());
        assert!(Country::parse("USA").is_err());
        assert!(Country::parse("ZZ").is_err());
    }

    #[test]
    fn masking_keeps_only_the_last_two_digits() {
        assert_eq!(mask("+14155552671"), "+*********71");
        assert_eq!(
            E164::strict("+14155552671").unwrap().masked(),
            "+*********71"
        );
    }
}
