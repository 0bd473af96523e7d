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

    /// Its digits as one integer, as do-not-call lists store numbers.
    pub fn as_integer(&self) -> i64 {
        self.0[1..]
            .parse()
            .expect("E.164 is + and at most 15 digits")
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

/// One line of a do-not-call file as the integer lists store: `+` and
/// 7 to 15 digits (E.164, shape checked only), 10 digits of a North
/// American number as the FTC registry writes them (`2125550123`, or
/// area code and number apart, `212,5550123`), or a national number read
/// with `country`. Checked by shape, not against numbering plans, so ten
/// million lines load in seconds; a number no plan allows is never dialed
/// anyway, and listing it harms nothing.
pub fn list_number(line: &str, country: Option<Country>) -> Result<i64, String> {
    let line = line.trim();
    if let Some(digits) = line.strip_prefix('+') {
        let shaped = (7..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        return if shaped {
            Ok(digits.parse().expect("at most 15 digits"))
        } else {
            Err(format!("`{}` is not a number in E.164 form", mask(line)))
        };
    }
    let digits: String = line
        .chars()
        .filter(|c| !matches!(c, ',' | '-' | ' '))
        .collect();
    if digits.len() == 10
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (b'2'..=b'9').contains(&digits.as_bytes()[0])
    {
        return Ok(10_000_000_000 + digits.parse::<i64>().expect("10 digits"));
    }
    match country {
        Some(_) => E164::normalize(line, country).map(|n| n.as_integer()),
        None => Err(format!(
            "`{}` is neither E.164 (+ and digits) nor 10 North American digits",
            mask(line)
        )),
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
    fn list_lines_read_as_integers() {
        assert_eq!(list_number("+14155550123", None), Ok(14155550123));
        assert_eq!(list_number(" 2125550123 ", None), Ok(12125550123));
        assert_eq!(list_number("212,5550123", None), Ok(12125550123));
        assert_eq!(list_number("+33612345678", None), Ok(33612345678));
        let fr = Country::parse("FR").ok();
        assert_eq!(list_number("06 12 34 56 78", fr), Ok(33612345678));
        assert!(list_number("1125550123", None).is_err());
        assert!(list_number("+0123", None).is_err());
        assert!(list_number("hello", None).is_err());
        assert_eq!(
            E164::strict("+14155550123").unwrap().as_integer(),
            14155550123
        );
    }

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
