//! Importing users from Django: what `manage.py dumpdata <app>.<UserModel>` writes, read
//! as a stream and written in batches through the core (`Accounts::import_batch`).
//! HTTP-free; the CLI's `tollgate user import` drives it.
//!
//! Passwords keep their Django hash (login verifies it and replaces it with argon2id);
//! hashes tollgate would never verify are refused here, by the same parser login uses.
//! Nothing in a report or an error carries a hash or a password.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::Read;

use chrono::{DateTime, NaiveDateTime};
use serde::de::{self, DeserializeSeed, SeqAccess, Visitor};
use serde_json::{Map, Value};
use tollgate_django_hash::{DjangoHash, DjangoHashError};
use uuid::Uuid;

use crate::auth::rules::{
    ADMIN_ROLE, InvalidRole, RESERVED_ROLES, STAFF_ROLE, parse_roles, validate_email, validate_username,
};
use crate::db::DbError;
use crate::db::accounts::NewAccount;
use crate::db::models::{DbUuid, NewUser};

/// Users written per transaction: an interrupted import leaves whole batches, never half
/// a user, and a batch is large enough that commits do not dominate.
pub const BATCH: usize = 1000;
/// A pk longer than this is cut in reports (it is the record's name there, nothing more).
const MAX_PK_CHARS: usize = 64;
/// Django's flags that grant a reserved role: the only way an import gives one.
const FLAG_ROLES: [(&str, &str); 2] = [("is_staff", STAFF_ROLE), ("is_superuser", ADMIN_ROLE)];

pub struct ImportOptions {
    /// The field holding the login name: `username`, or e.g. `email` for custom models.
    pub username_field: String,
    /// Group names by pk, from `dumpdata auth.group`, for dumps whose `groups` are ids.
    pub groups: Option<HashMap<i64, String>>,
    /// The addresses count as verified (`--emails-verified`).
    pub emails_verified: bool,
    /// `created_at` for records without `date_joined`, and every `updated_at`.
    pub now: NaiveDateTime,
}

/// A record that was not imported, and why.
#[derive(Debug, PartialEq, Eq)]
pub struct Rejection {
    /// The record's `pk` as JSON (`?` when it has none).
    pub pk: String,
    pub reason: String,
}

/// A group of an imported record whose name maps to a reserved role (a group "Admin"):
/// the user came over without that role.
#[derive(Debug, PartialEq, Eq)]
pub struct Withheld {
    pub pk: String,
    /// The group's name in Django.
    pub group: String,
    pub role: &'static str,
}

#[derive(Debug, Default)]
pub struct Report {
    pub imported: u64,
    /// Already present (by username): an import run again changes nothing.
    pub skipped: u64,
    pub rejected: Vec<Rejection>,
    /// Of the records imported (not those skipped, which got nothing).
    pub withheld: Vec<Withheld>,
}

impl fmt::Display for Report {
    /// The counts line, then one line per rejected record, then one per withheld group.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "imported {}, skipped {}, rejected {}", self.imported, self.skipped, self.rejected.len())?;
        for Rejection { pk, reason } in &self.rejected {
            write!(f, "\npk {pk}: {reason}")?;
        }
        for Withheld { pk, group, role } in &self.withheld {
            write!(f, "\npk {pk}: imported without group {group:?}: role {role:?} is reserved")?;
            if let Some((flag, _)) = FLAG_ROLES.iter().find(|(_, r)| r == role) {
                write!(f, " for {flag}")?;
            }
        }
        Ok(())
    }
}

/// Why an import stopped before the end of its input.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The input is unreadable or not a JSON array (with serde_json's line and column).
    #[error("{what} is not a dumpdata JSON array: {cause}")]
    Input { what: &'static str, cause: String },
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Reads `dumpdata auth.group`: group names by pk.
pub fn read_groups(reader: impl Read) -> Result<HashMap<i64, String>, ImportError> {
    let bad = |cause: String| ImportError::Input { what: "the groups file", cause };
    let records: Vec<Value> = serde_json::from_reader(reader).map_err(|e| bad(e.to_string()))?;
    records
        .iter()
        .map(|record| match (record["pk"].as_i64(), record["fields"]["name"].as_str()) {
            (Some(pk), Some(name)) => Ok((pk, name.to_owned())),
            _ => Err(bad(format!("record {} has no numeric pk and fields.name", pk_of(record)))),
        })
        .collect()
}

/// Imports the records of `reader`, one at a time as they are parsed: memory holds one
/// batch and the usernames seen so far, never the file. Returns the report so far with
/// the error that stopped it, if one did; the batches written until then stay written.
pub fn import(
    reader: impl Read,
    options: &ImportOptions,
    write: &mut dyn FnMut(Vec<NewAccount>) -> Result<HashSet<String>, DbError>,
) -> (Report, Result<(), ImportError>) {
    let mut importer = Importer {
        write,
        options,
        report: Report::default(),
        batch: Vec::new(),
        seen: HashSet::new(),
        failed: None,
    };
    let mut stream = serde_json::Deserializer::from_reader(std::io::BufReader::new(reader));
    let parsed = RecordStream(&mut importer).deserialize(&mut stream).and_then(|()| stream.end());
    let result = match (importer.failed.take(), parsed) {
        (Some(db), _) => Err(ImportError::Db(db)),
        (None, Err(e)) => Err(ImportError::Input { what: "the input", cause: e.to_string() }),
        (None, Ok(())) => importer.flush().map_err(ImportError::Db),
    };
    (importer.report, result)
}

/// A record ready to be written, with the groups it comes without.
struct Pending {
    account: NewAccount,
    withheld: Vec<Withheld>,
}

struct Importer<'a> {
    /// Writes a batch, leaving out the usernames already present, and answers those
    /// (`auth::accounts::Accounts::import_batch`).
    write: &'a mut dyn FnMut(Vec<NewAccount>) -> Result<HashSet<String>, DbError>,
    options: &'a ImportOptions,
    report: Report,
    batch: Vec<Pending>,
    /// Usernames of this input (stored form), so that a second user differing only in
    /// case is rejected, not taken for one imported earlier.
    seen: HashSet<String>,
    /// The database error that stopped the stream.
    failed: Option<DbError>,
}

impl Importer<'_> {
    fn record(&mut self, record: Value) -> Result<(), DbError> {
        let pk = pk_of(&record);
        match self.account(record, &pk) {
            Ok(pending) => {
                self.batch.push(pending);
                if self.batch.len() >= BATCH {
                    return self.flush();
                }
            }
            Err(reason) => self.report.rejected.push(Rejection { pk, reason }),
        }
        Ok(())
    }

    /// The account a record describes, or why it cannot be imported. The case check comes
    /// right after the username, so the second of two names differing only in case is
    /// rejected for that whatever else is wrong with the first, on every run alike.
    fn account(&mut self, record: Value, pk: &str) -> Result<Pending, String> {
        let fields = fields_of(record)?;
        let field = &self.options.username_field;
        let username = match fields.get(field) {
            Some(Value::String(name)) => validate_username(name).map_err(|e| format!("{field}: {e}"))?,
            _ => return Err(format!("record has no {field:?} string")),
        };
        if !self.seen.insert(username.clone()) {
            return Err(format!(
                "username {username:?} differs only in case from an earlier record's; usernames are unique regardless of case"
            ));
        }
        account(&fields, username, self.options, pk)
    }

    /// Writes the batch, leaving out the usernames already present.
    fn flush(&mut self) -> Result<(), DbError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let (accounts, withheld): (Vec<NewAccount>, Vec<Vec<Withheld>>) =
            self.batch.drain(..).map(|pending| (pending.account, pending.withheld)).unzip();
        let names: Vec<String> = accounts.iter().map(|a| a.user.username.clone()).collect();
        let present = (self.write)(accounts)?;
        for (name, withheld) in names.iter().zip(withheld) {
            if present.contains(name) {
                self.report.skipped += 1;
            } else {
                self.report.imported += 1;
                self.report.withheld.extend(withheld);
            }
        }
        Ok(())
    }
}

/// The top level of a dump: a sequence whose elements go to the importer as they come.
struct RecordStream<'a, 'b>(&'a mut Importer<'b>);

impl<'de> DeserializeSeed<'de> for RecordStream<'_, '_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RecordStream<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON array of dumpdata records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(record) = seq.next_element::<Value>()? {
            if let Err(e) = self.0.record(record) {
                self.0.failed = Some(e);
                return Err(de::Error::custom("stopped by a database error"));
            }
        }
        Ok(())
    }
}

fn pk_of(record: &Value) -> String {
    match record.get("pk") {
        None | Some(Value::Null) => "?".into(),
        Some(pk) => pk.to_string().chars().take(MAX_PK_CHARS).collect(),
    }
}

fn fields_of(record: Value) -> Result<Map<String, Value>, String> {
    let Value::Object(mut record) = record else {
        return Err("record is not a JSON object".into());
    };
    match record.remove("fields") {
        Some(Value::Object(fields)) => Ok(fields),
        _ => Err("record has no \"fields\" object".into()),
    }
}

/// The rest of the account whose username is `username`, record `pk`.
fn account(
    fields: &Map<String, Value>,
    username: String,
    options: &ImportOptions,
    pk: &str,
) -> Result<Pending, String> {
    let password_hash = match fields.get("password") {
        Some(Value::String(hash)) => hash,
        _ => return Err("record has no \"password\" string".into()),
    };
    match DjangoHash::parse(password_hash) {
        // An unusable password imports an account that cannot log in until set-password.
        Ok(_) | Err(DjangoHashError::Unusable) => {}
        Err(e) => return Err(format!("password: {e}")),
    }
    // Django's "no address" is the empty string.
    let email = match fields.get("email") {
        None | Some(Value::Null) => None,
        Some(Value::String(email)) if email.is_empty() => None,
        Some(Value::String(email)) => validate_email(Some(email)).map_err(|e| e.to_string())?,
        Some(_) => return Err("email is not a string".into()),
    };
    let flag = |name: &str, default: bool| match fields.get(name) {
        None => Ok(default),
        Some(Value::Bool(value)) => Ok(*value),
        Some(_) => Err(format!("{name} is not a boolean")),
    };
    let active = flag("is_active", true)?;
    let created_at = match fields.get("date_joined") {
        None | Some(Value::Null) => options.now,
        Some(Value::String(date)) => {
            parse_date(date).ok_or("date_joined is not an ISO 8601 date and time")?
        }
        Some(_) => return Err("date_joined is not a string".into()),
    };
    let mut roles = Vec::new();
    for (name, role) in FLAG_ROLES {
        if flag(name, false)? {
            roles.push(role.to_owned());
        }
    }
    // Group names are the Django project's own, not grants: "Admin" is no superuser.
    let mut withheld = Vec::new();
    for (group, role) in groups(fields, options.groups.as_ref())? {
        match RESERVED_ROLES.iter().find(|reserved| **reserved == role) {
            None => roles.push(role),
            // Its flag gives the role all the same: the group makes no difference.
            Some(_) if roles.contains(&role) => {}
            Some(reserved) => withheld.push(Withheld { pk: pk.to_owned(), group, role: reserved }),
        }
    }
    let roles =
        parse_roles(roles).map_err(|InvalidRole(role)| format!("group {role:?} makes no valid role name"))?;
    let email_verified = options.emails_verified && email.is_some();
    let user = NewUser {
        id: DbUuid(Uuid::new_v4()),
        username,
        email,
        password_hash: password_hash.clone(),
        refresh_token_hash: None,
        refresh_token_expires_at: None,
        created_at,
        updated_at: options.now,
        disabled: !active,
        email_verified,
    };
    Ok(Pending { account: NewAccount { user, roles }, withheld })
}

/// The record's groups, each as its name and its role's: natural keys `[["name"]]`, or
/// numeric pks looked up in `--groups`.
fn groups(
    fields: &Map<String, Value>,
    by_pk: Option<&HashMap<i64, String>>,
) -> Result<Vec<(String, String)>, String> {
    let groups = match fields.get("groups") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(groups)) => groups,
        Some(_) => return Err("groups is not an array".into()),
    };
    groups
        .iter()
        .map(|group| {
            let name = match group {
                Value::Array(key) if key.len() == 1 => {
                    key[0].as_str().ok_or("a group's natural key is not a name")?
                }
                Value::Number(pk) => {
                    let pk = pk.as_i64().ok_or("a group id is not an integer")?;
                    let by_pk = by_pk.ok_or_else(|| {
                        format!("group {pk} is an id: give the groups' dump with --groups FILE")
                    })?;
                    by_pk.get(&pk).ok_or_else(|| format!("group {pk} is not in the --groups file"))?
                }
                _ => return Err("a group is neither [\"name\"] nor an id".to_owned()),
            };
            Ok((name.to_owned(), role_of_group(name)))
        })
        .collect()
}

/// A group's role: its name lower-cased, every character outside the role alphabet
/// (`a-z 0-9 _ . : -`) as `_`. The role rule then decides (e.g. on the length).
pub fn role_of_group(name: &str) -> String {
    name.chars()
        .flat_map(char::to_lowercase)
        .map(|c| if matches!(c, 'a'..='z' | '0'..='9' | '_' | '.' | ':' | '-') { c } else { '_' })
        .collect()
}

/// Django writes `2026-12-02T01:34:12.550Z` with `USE_TZ`, and without it the naive
/// local time, which is stored as it is.
fn parse_date(text: &str) -> Option<NaiveDateTime> {
    DateTime::parse_from_rfc3339(text)
        .map(|date| date.naive_utc())
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f"))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_names_become_role_names() {
        assert_eq!(role_of_group("Support Team"), "support_team");
        assert_eq!(role_of_group("Éditeurs/Admins"), "éditeurs_admins".replace('é', "_"));
        assert_eq!(role_of_group("billing:read"), "billing:read");
    }

    #[test]
    fn every_reserved_role_has_the_flag_that_grants_it() {
        for reserved in RESERVED_ROLES {
            assert!(FLAG_ROLES.iter().any(|(_, role)| role == reserved), "{reserved}");
        }
    }

    #[test]
    fn djangos_dates_with_and_without_time_zones_parse() {
        let expected =
            NaiveDateTime::parse_from_str("2026-12-02T01:34:12.550", "%Y-%m-%dT%H:%M:%S%.f").unwrap();
        assert_eq!(parse_date("2026-12-02T01:34:12.550Z"), Some(expected));
        assert_eq!(parse_date("2026-12-02T02:34:12.550+01:00"), Some(expected));
        assert_eq!(parse_date("2026-12-02T01:34:12.550"), Some(expected));
        assert_eq!(parse_date("yesterday"), None);
    }
}
