//! CSV columns to contact fields, and one CSV row to a contact, validated
//! as the upsert validates (the same number normalization, zone names,
//! external id length, agent_config an object).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::db::contacts::NewContact;
use crate::domain::agent::AgentFields;
use crate::domain::phone::{Country, E164};
use chrono::{DateTime, Utc};

/// Most numbers a contact holds (`phone`, `phone_2` .. `phone_10`).
pub const MAX_PHONES: usize = 10;

/// What a CSV column fills.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// The nth number (0-based): `phone` (or `phone_1`), `phone_2`, ...
    Phone(usize),
    ExternalId,
    Timezone,
    ScheduledAt,
    AgentId,
    AgentVersion,
    AgentNumber,
    AgentConfig,
    InitialContext,
    /// A key of `data`: `data.KEY`, and every column no other field claims.
    Data(String),
    /// Not loaded.
    Ignore,
}

impl FromStr for Field {
    type Err = String;

    fn from_str(s: &str) -> Result<Field, String> {
        if let Some(key) = s.strip_prefix("data.") {
            return if key.is_empty() {
                Err("`data.` needs a key after the dot".into())
            } else {
                Ok(Field::Data(key.to_owned()))
            };
        }
        Ok(match s {
            "phone" | "phone_1" => Field::Phone(0),
            "external_id" => Field::ExternalId,
            "timezone" => Field::Timezone,
            "scheduled_at" => Field::ScheduledAt,
            "agent_id" => Field::AgentId,
            "agent_version" => Field::AgentVersion,
            "agent_number" => Field::AgentNumber,
            "agent_config" => Field::AgentConfig,
            "initial_context" => Field::InitialContext,
            "ignore" => Field::Ignore,
            other => match other.strip_prefix("phone_").map(str::parse::<usize>) {
                Some(Ok(n)) if (2..=MAX_PHONES).contains(&n) => Field::Phone(n - 1),
                _ => {
                    return Err(format!(
                        "`{other}` is not a field (phone, phone_2 .. phone_10, external_id, \
                         timezone, scheduled_at, agent_id, agent_version, agent_number, \
                         agent_config, initial_context, data.KEY, ignore)"
                    ))
                }
            },
        })
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::Phone(0) => f.write_str("phone"),
            Field::Phone(n) => write!(f, "phone_{}", n + 1),
            Field::ExternalId => f.write_str("external_id"),
            Field::Timezone => f.write_str("timezone"),
            Field::ScheduledAt => f.write_str("scheduled_at"),
            Field::AgentId => f.write_str("agent_id"),
            Field::AgentVersion => f.write_str("agent_version"),
            Field::AgentNumber => f.write_str("agent_number"),
            Field::AgentConfig => f.write_str("agent_config"),
            Field::InitialContext => f.write_str("initial_context"),
            Field::Data(key) => write!(f, "data.{key}"),
            Field::Ignore => f.write_str("ignore"),
        }
    }
}

/// One `--map column=field` (or `map=column=field` query parameter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    pub column: String,
    pub field: Field,
}

impl FromStr for Override {
    type Err = String;

    fn from_str(s: &str) -> Result<Override, String> {
        let (column, field) = s
            .rsplit_once('=')
            .ok_or_else(|| format!("`{s}` is not COLUMN=FIELD"))?;
        if column.is_empty() {
            return Err(format!("`{s}` names no column"));
        }
        Ok(Override {
            column: column.to_owned(),
            field: field.parse()?,
        })
    }
}

/// The fields of a file's columns, in column order.
#[derive(Debug, Clone)]
pub struct Columns {
    names: Vec<String>,
    fields: Vec<Field>,
}

impl Columns {
    /// Maps a header row: an override wins, then a header that names a
    /// field (any case, spaces around ignored), then `data.<header>`.
    /// Refused: an empty header, a column named twice, an override of a
    /// column the header lacks, two columns for one field, no phone column.
    pub fn new(header: &[String], overrides: &[Override]) -> Result<Columns, String> {
        let names: Vec<String> = header.iter().map(|h| h.trim().to_owned()).collect();
        if names.is_empty() || names.iter().all(String::is_empty) {
            return Err("the file has no header row".into());
        }
        for (i, name) in names.iter().enumerate() {
            if name.is_empty() {
                return Err(format!("column {} of the header has no name", i + 1));
            }
            if name.contains('\0') {
                return Err(format!("column {} of the header holds a NUL", i + 1));
            }
            if names[..i].contains(name) {
                return Err(format!("the header names column `{name}` twice"));
            }
        }
        for o in overrides {
            if !names.contains(&o.column) {
                return Err(format!(
                    "--map names column `{}`, which the header lacks",
                    o.column
                ));
            }
        }
        let fields: Vec<Field> = names
            .iter()
            .map(
                |name| match overrides.iter().rev().find(|o| &o.column == name) {
                    Some(o) => o.field.clone(),
                    None => match name.to_ascii_lowercase().parse::<Field>() {
                        Ok(Field::Data(_) | Field::Ignore) | Err(_) => Field::Data(name.clone()),
                        Ok(field) => field,
                    },
                },
            )
            .collect();
        for (i, field) in fields.iter().enumerate() {
            if *field != Field::Ignore && fields[..i].contains(field) {
                return Err(format!(
                    "columns `{}` and `{}` both map to {field}",
                    names[fields.iter().position(|f| f == field).unwrap_or(0)],
                    names[i]
                ));
            }
        }
        if !fields.contains(&Field::Phone(0)) {
            return Err(
                "no column maps to phone (name one `phone`, or give --map COLUMN=phone)".into(),
            );
        }
        Ok(Columns { names, fields })
    }

    /// Column name -> field, as applied; stored with the import.
    pub fn applied(&self) -> BTreeMap<String, String> {
        self.names
            .iter()
            .zip(&self.fields)
            .map(|(n, f)| (n.clone(), f.to_string()))
            .collect()
    }

    /// The name of column `i` (0-based).
    pub fn name(&self, i: usize) -> Option<&str> {
        self.names.get(i).map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// Why a row was refused: the column at fault (when one is) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub column: Option<String>,
    pub reason: String,
}

impl Fault {
    fn at(column: &str, reason: impl Into<String>) -> Fault {
        Fault {
            column: Some(column.to_owned()),
            reason: reason.into(),
        }
    }

    pub fn row(reason: impl Into<String>) -> Fault {
        Fault {
            column: None,
            reason: reason.into(),
        }
    }
}

/// Validates one data row into a contact. Empty cells are
/// absent values; every `data` value is kept as the text of its cell.
pub fn contact(
    columns: &Columns,
    cells: &[&str],
    country: Option<Country>,
) -> Result<NewContact, Fault> {
    if cells.len() != columns.len() {
        return Err(Fault::row(format!(
            "has {} fields; the header has {}",
            cells.len(),
            columns.len()
        )));
    }
    let mut phones: [Option<(&str, &str)>; MAX_PHONES] = [None; MAX_PHONES];
    let mut contact = NewContact {
        id: None,
        external_id: None,
        phone_numbers: Vec::new(),
        data: serde_json::Value::Null,
        timezone: None,
        scheduled_at: None,
        agent: AgentFields::default(),
    };
    let mut data = serde_json::Map::new();
    for ((name, field), &cell) in columns.names.iter().zip(&columns.fields).zip(cells) {
        if cell.contains('\0') {
            return Err(Fault::at(
                name,
                "contains a NUL character, which cannot be stored",
            ));
        }
        let value = cell.trim();
        if value.is_empty() {
            continue;
        }
        match field {
            Field::Phone(n) => phones[*n] = Some((name, value)),
            Field::ExternalId => {
                if value.chars().count() > 200 {
                    return Err(Fault::at(name, "must be 1 to 200 characters"));
                }
                contact.external_id = Some(value.to_owned());
            }
            Field::Timezone => {
                contact.timezone = Some(value.parse().map_err(|e| Fault::at(name, e))?);
            }
            Field::ScheduledAt => {
                let at = DateTime::parse_from_rfc3339(value).map_err(|_| {
                    Fault::at(
                        name,
                        format!("`{value}` is not an RFC 3339 time (e.g. 2026-12-01T09:00:00Z)"),
                    )
                })?;
                contact.scheduled_at = Some(at.with_timezone(&Utc));
            }
            Field::AgentId => contact.agent.agent_id = Some(cell.to_owned()),
            Field::AgentVersion => contact.agent.agent_version = Some(cell.to_owned()),
            Field::AgentNumber => contact.agent.agent_number = Some(cell.to_owned()),
            Field::InitialContext => contact.agent.initial_context = Some(cell.to_owned()),
            Field::AgentConfig => match serde_json::from_str(value) {
                Ok(v @ serde_json::Value::Object(_)) => contact.agent.agent_config = Some(v),
                _ => return Err(Fault::at(name, "must be a JSON object")),
            },
            Field::Data(key) => {
                data.insert(key.clone(), serde_json::Value::String(cell.to_owned()));
            }
            Field::Ignore => {}
        }
    }
    for (name, raw) in phones.into_iter().flatten() {
        let number = E164::normalize(raw, country).map_err(|e| Fault::at(name, e))?;
        if contact.phone_numbers.contains(&number) {
            return Err(Fault::at(name, "repeats an earlier number of the row"));
        }
        contact.phone_numbers.push(number);
    }
    if contact.phone_numbers.is_empty() {
        return Err(Fault::row("has no phone number"));
    }
    contact.data = serde_json::Value::Object(data);
    Ok(contact)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn headers_name_fields_in_any_case_and_the_rest_is_data() {
        let cols =
            Columns::new(&header(&[" Phone ", "PHONE_2", "External_ID", "city"]), &[]).unwrap();
        assert_eq!(
            cols.fields,
            vec![
                Field::Phone(0),
                Field::Phone(1),
                Field::ExternalId,
                Field::Data("city".into())
            ]
        );
    }

    #[test]
    fn overrides_win_and_bad_mappings_are_refused() {
        let o = |s: &str| s.parse::<Override>().unwrap();
        let cols = Columns::new(
            &header(&["Mobile", "CRM id", "phone"]),
            &[
                o("Mobile=phone"),
                o("CRM id=external_id"),
                o("phone=ignore"),
            ],
        )
        .unwrap();
        assert_eq!(
            cols.fields,
            vec![Field::Phone(0), Field::ExternalId, Field::Ignore]
        );
        let no_phone = Columns::new(&header(&["number"]), &[]).unwrap_err();
        assert!(no_phone.contains("no column maps to phone"), "{no_phone}");
        let twice = Columns::new(&header(&["phone", "Mobile"]), &[o("Mobile=phone")]);
        assert!(twice.unwrap_err().contains("both map to phone"));
        let missing = Columns::new(&header(&["phone"]), &[o("Mobile=phone")]);
        assert!(missing.unwrap_err().contains("header lacks"));
        assert!("Mobile=phone_11".parse::<Override>().is_err());
        assert!("Mobile".parse::<Override>().is_err());
        assert!(Columns::new(&header(&["phone", "phone"]), &[]).is_err());
    }

    #[test]
    fn a_row_is_validated_and_its_fault_names_the_column() {
        let cols = Columns::new(
            &header(&["phone", "phone_2", "timezone", "scheduled_at", "note"]),
            &[],
        )
        .unwrap();
        let us = Some(Country::parse("US").unwrap());
        let ok = contact(
            &cols,
            &["(415) 555-0123", "", "America/Chicago", "", "hi"],
            us,
        )
        .unwrap();
        assert_eq!(ok.phone_numbers[0].as_str(), "+14155550123");
        assert_eq!(ok.data, serde_json::json!({"note": "hi"}));
        let bad_zone = contact(&cols, &["+14155550123", "", "Mars/Base", "", ""], us);
        assert_eq!(bad_zone.unwrap_err().column.as_deref(), Some("timezone"));
        let repeat = contact(&cols, &["+14155550123", "415 555 0123", "", "", ""], us);
        assert_eq!(repeat.unwrap_err().column.as_deref(), Some("phone_2"));
        let short = contact(&cols, &["+14155550123"], us).unwrap_err();
        assert_eq!(short.column, None);
        let none = contact(&cols, &["", "", "", "", "x"], us).unwrap_err();
        assert_eq!(none.reason, "has no phone number");
        let when = contact(&cols, &["+14155550123", "", "", "tomorrow", ""], us);
        assert_eq!(when.unwrap_err().column.as_deref(), Some("scheduled_at"));
    }
}
