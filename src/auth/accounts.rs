//! The accounts file: a CSV the admin edits, loaded whole and swapped on reload.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use super::pin::parse_phc;

const REQUIRED: [&str; 6] = [
    "account_id",
    "name",
    "phones",
    "pin_hash",
    "tier",
    "priority",
];
/// Far more than any contact centre's account list; stops a wrong `--accounts` path (a WAV, a
/// log file) from being read into memory whole.
const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;
/// Problems reported per load; past this the admin has the wrong file, not a few typos.
const MAX_PROBLEMS: usize = 50;

/// One account. `fields` holds every CSV column except `pin_hash` (account_id, name, phones,
/// tier, priority and any extra column); flows read them as `account.<column>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Account {
    pub id: String,
    pub name: String,
    /// As written in the file.
    pub phones: Vec<String>,
    pub(super) pin_hash: String,
    pub fields: BTreeMap<String, String>,
}

impl fmt::Debug for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Account")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("phones", &self.phones)
            .field("pin_hash", &"<redacted>")
            .field("fields", &self.fields)
            .finish()
    }
}

impl Account {
    /// Checks a PIN against this account's hash (for `simulate` and `check`, which count
    /// lockouts in memory; the server goes through [`super::Authenticator`]).
    pub fn verify_pin(&self, pin: &str) -> bool {
        super::pin::verify_pin(&self.pin_hash, pin)
    }
}

/// Every account, with lookups by id and by phone number.
#[derive(Clone, Default)]
pub struct Accounts {
    list: Vec<Account>,
    by_id: HashMap<String, usize>,
    by_phone: HashMap<String, usize>,
}

impl fmt::Debug for Accounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Accounts")
            .field("len", &self.list.len())
            .finish_non_exhaustive()
    }
}

/// One problem in the accounts file, displayed as `path:line: message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountsProblem {
    pub line: u64,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccountsError {
    #[error("{}: cannot read the accounts file: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: the accounts file is larger than {limit} bytes", path.display())]
    TooLarge { path: PathBuf, limit: u64 },
    #[error("{}", problems.iter()
        .map(|p| format!("{}:{}: {}", path.display(), p.line, p.message))
        .collect::<Vec<_>>().join("\n"))]
    Invalid {
        path: PathBuf,
        problems: Vec<AccountsProblem>,
    },
}

impl Accounts {
    /// Loads `account_id,name,phones,pin_hash,tier,priority` (+ any extra columns, in any
    /// order). An empty file or a header alone means no accounts. Every problem found is
    /// reported with its line, and none of them repeats a hash.
    pub fn load_csv(path: &Path) -> Result<Accounts, AccountsError> {
        let read_err = |source| AccountsError::Read {
            path: path.to_path_buf(),
            source,
        };
        let len = std::fs::metadata(path).map_err(read_err)?.len();
        if len > MAX_FILE_BYTES {
            return Err(AccountsError::TooLarge {
                path: path.to_path_buf(),
                limit: MAX_FILE_BYTES,
            });
        }
        let bytes = std::fs::read(path).map_err(read_err)?;
        Self::parse(&bytes).map_err(|problems| AccountsError::Invalid {
            path: path.to_path_buf(),
            problems,
        })
    }

    fn parse(bytes: &[u8]) -> Result<Accounts, Vec<AccountsProblem>> {
        let mut problems = Problems::default();
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(bytes);
        let mut records = rdr.byte_records();

        let header = match records.next() {
            None => return Ok(Accounts::default()),
            Some(Err(e)) => return Err(vec![csv_problem(&e, 1)]),
            Some(Ok(h)) => h,
        };
        let mut columns: Vec<String> = Vec::with_capacity(header.len());
        for raw in header.iter() {
            let name = String::from_utf8_lossy(raw)
                .trim_start_matches('\u{feff}')
                .to_string();
            if name.is_empty() {
                problems.add(1, "the header has an empty column name".into());
            } else if columns.contains(&name) {
                problems.add(1, format!("column `{name}` appears twice in the header"));
            }
            columns.push(name);
        }
        for required in REQUIRED {
            if !columns.iter().any(|c| c == required) {
                problems.add(1, format!("missing column `{required}`"));
            }
        }
        if !problems.0.is_empty() {
            return Err(problems.0);
        }

        let mut accounts = Accounts::default();
        let mut phone_line: HashMap<String, (u64, String)> = HashMap::new();
        let mut id_line: HashMap<String, u64> = HashMap::new();
        for record in records {
            if problems.full() {
                break;
            }
            let record = match record {
                Ok(r) => r,
                Err(e) => {
                    let line = e.position().map_or(0, |p| p.line());
                    problems.0.push(csv_problem(&e, line));
                    continue;
                }
            };
            let line = record.position().map_or(0, |p| p.line());
            if record.iter().all(|f| f.is_empty()) {
                continue; // a blank line, common at the end of hand-edited files
            }
            let mut values = Vec::with_capacity(record.len());
            for (i, raw) in record.iter().enumerate() {
                match std::str::from_utf8(raw) {
                    Ok(value) => values.push(value.to_string()),
                    Err(_) => {
                        problems.add(line, format!("field {} is not valid UTF-8", i + 1));
                        break;
                    }
                }
            }
            if values.len() != record.len() {
                continue;
            }
            let hash_at = columns.iter().position(|c| c == "pin_hash");
            let Some(values) = rejoin_unquoted_hash(values, columns.len(), hash_at) else {
                problems.add(
                    line,
                    format!(
                        "expected {} fields as in the header, found {} (quote values that contain commas)",
                        columns.len(),
                        record.len()
                    ),
                );
                continue;
            };
            let mut fields: BTreeMap<String, String> =
                columns.iter().cloned().zip(values).collect();
            let pin_hash = fields.remove("pin_hash").unwrap_or_default();
            let take = |k: &str| fields.get(k).cloned().unwrap_or_default();
            let (id, name, phones_raw) = (take("account_id"), take("name"), take("phones"));
            let priority = take("priority");

            let mut ok = true;
            if id.is_empty() {
                problems.add(line, "account_id is empty".into());
                ok = false;
            } else if let Some(first) = id_line.get(&id) {
                problems.add(
                    line,
                    format!("duplicate account_id `{id}` (first on line {first})"),
                );
                ok = false;
            }
            if parse_phc(&pin_hash).is_none() {
                problems.add(
                    line,
                    "pin_hash is not a valid argon2 PHC string (make one with `switchboard pin-hash`)"
                        .into(),
                );
                ok = false;
            }
            if !priority.is_empty() && priority.parse::<i64>().is_err() {
                problems.add(line, format!("priority `{priority}` is not a whole number"));
                ok = false;
            }
            let phones: Vec<String> = phones_raw
                .split(';')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect();
            let mut keys = Vec::with_capacity(phones.len());
            for phone in &phones {
                let Some(key) = normalise_phone(phone) else {
                    problems.add(line, format!("phone `{phone}` is not a phone number"));
                    ok = false;
                    continue;
                };
                match phone_line.get(&key) {
                    Some((_, owner)) if *owner == id => {} // listed twice for one account: harmless
                    Some((first, owner)) => {
                        problems.add(
                            line,
                            format!("phone `{phone}` is already claimed by account `{owner}` (line {first})"),
                        );
                        ok = false;
                    }
                    None => keys.push(key),
                }
            }
            if !ok {
                continue;
            }
            let index = accounts.list.len();
            id_line.insert(id.clone(), line);
            accounts.by_id.insert(id.clone(), index);
            for key in keys {
                phone_line.insert(key.clone(), (line, id.clone()));
                accounts.by_phone.insert(key, index);
            }
            accounts.list.push(Account {
                id,
                name,
                phones,
                pin_hash,
                fields,
            });
        }
        if problems.0.is_empty() {
            Ok(accounts)
        } else {
            Err(problems.0)
        }
    }

    /// Finds the account that owns `number`. Accepts what a SIP From header or a form gives
    /// (`sip:+5511…@host;user=phone`, `tel:+55 11 …`, `+55-11-…`) and compares the digits
    /// exactly, with or without the leading `+`. No national/international rewriting: list every
    /// form a customer calls from in the file.
    pub fn by_phone(&self, number: &str) -> Option<&Account> {
        let key = normalise_phone(number)?;
        self.by_phone.get(&key).and_then(|&i| self.list.get(i))
    }

    pub fn by_id(&self, id: &str) -> Option<&Account> {
        self.by_id.get(id.trim()).and_then(|&i| self.list.get(i))
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Account> {
        self.list.iter()
    }
}

/// `switchboard pin-hash` prints `$argon2id$v=19$m=19456,t=2,p=1$…`, and an admin pasting it
/// into the file unquoted splits it at the commas. When a row has too many fields and gluing the
/// extras back onto `pin_hash` yields a well-formed hash, that is what was meant.
fn rejoin_unquoted_hash(
    mut values: Vec<String>,
    expected: usize,
    hash_at: Option<usize>,
) -> Option<Vec<String>> {
    if values.len() == expected {
        return Some(values);
    }
    let extra = values.len().checked_sub(expected).filter(|&n| n > 0)?;
    let at = hash_at?;
    let glued = values.get(at..=at + extra)?.join(",");
    parse_phc(&glued)?;
    values.splice(at..=at + extra, [glued]);
    Some(values)
}

#[derive(Default)]
struct Problems(Vec<AccountsProblem>);

impl Problems {
    fn add(&mut self, line: u64, message: String) {
        if !self.full() {
            self.0.push(AccountsProblem { line, message });
        }
    }
    fn full(&self) -> bool {
        self.0.len() >= MAX_PROBLEMS
    }
}

/// Describes a CSV syntax error without quoting the field, which may be a hash.
fn csv_problem(e: &csv::Error, line: u64) -> AccountsProblem {
    let message = match e.kind() {
        csv::ErrorKind::Utf8 { .. } => "not valid UTF-8".to_string(),
        csv::ErrorKind::Io(_) => "cannot read this line".to_string(),
        _ => "malformed CSV (check the quotes)".to_string(),
    };
    AccountsProblem { line, message }
}

/// Digits only, or None when it is not a number. Strips a URI scheme, the host part, URI
/// parameters, a display name's angle brackets and the usual visual separators.
pub(super) fn normalise_phone(raw: &str) -> Option<String> {
    const MAX_LEN: usize = 256;
    if raw.len() > MAX_LEN {
        return None;
    }
    let mut s = raw.trim();
    if let (Some(open), Some(close)) = (s.find('<'), s.rfind('>')) {
        s = s.get(open + 1..close).unwrap_or(s);
    }
    for scheme in ["sips:", "sip:", "tel:"] {
        if s.len() >= scheme.len()
            && s.get(..scheme.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(scheme))
        {
            s = s.get(scheme.len()..).unwrap_or_default();
            break;
        }
    }
    let s = s.split(['@', ';']).next().unwrap_or_default();
    let s = s.strip_prefix('+').unwrap_or(s);
    let mut digits = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' | '.' | '(' | ')' => {}
            _ => return None,
        }
    }
    (!digits.is_empty()).then_some(digits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::pin::DUMMY_HASH;

    fn write(contents: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let path = dir.path().join("accounts.csv");
        std::fs::write(&path, contents).unwrap_or_else(|e| panic!("write: {e}"));
        (dir, path)
    }

    fn load(contents: &str) -> Result<Accounts, String> {
        let (_dir, path) = write(contents);
        Accounts::load_csv(&path).map_err(|e| {
            let shown = e.to_string();
            // Whatever the problem, the hash must not be echoed back.
            assert!(!shown.contains("argon2id$v="), "{shown}");
            assert!(!format!("{e:?}").contains("argon2id$v="));
            shown.replace(&path.display().to_string(), "FILE")
        })
    }

    #[test]
    fn good_file_gives_lookups_and_flow_fields() {
        let csv = format!(
            "\u{feff}account_id,name,phones,pin_hash,tier,priority,region\n\
             M-1001,Padaria Sol,+5511987650000;+55 11 3000-1000,{DUMMY_HASH},gold,10,SP\n\
             \n\
             M-1002,\"Loja, Centro\",,\"{DUMMY_HASH}\",silver,,RJ\n"
        );
        let accounts = load(&csv).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(accounts.len(), 2);
        let gold = accounts
            .by_id("M-1001")
            .unwrap_or_else(|| panic!("no M-1001"));
        assert_eq!(gold.name, "Padaria Sol");
        assert_eq!(gold.phones, vec!["+5511987650000", "+55 11 3000-1000"]);
        assert_eq!(gold.fields.get("tier").map(String::as_str), Some("gold"));
        assert_eq!(gold.fields.get("priority").map(String::as_str), Some("10"));
        assert_eq!(gold.fields.get("region").map(String::as_str), Some("SP"));
        assert_eq!(
            gold.fields.get("account_id").map(String::as_str),
            Some("M-1001")
        );
        assert!(!gold.fields.contains_key("pin_hash"));
        let found = |n: &str| accounts.by_phone(n).map(|a| a.id.as_str());
        assert_eq!(found("+5511987650000"), Some("M-1001"));
        assert_eq!(found("5511987650000"), Some("M-1001"), "with or without +");
        assert_eq!(
            found("sip:+5511987650000@pbx.example;user=phone"),
            Some("M-1001")
        );
        assert_eq!(
            found("\"Sol\" <sip:+5511987650000@pbx.example>"),
            Some("M-1001")
        );
        assert_eq!(found("tel:+55-11-3000-1000"), Some("M-1001"));
        assert_eq!(found("11987650000"), None, "no national-form guessing");
        assert_eq!(found("sip:alice@example.com"), None);
        assert_eq!(found(""), None);
        assert_eq!(
            accounts.by_id("M-1002").map(|a| a.name.as_str()),
            Some("Loja, Centro")
        );
    }

    #[test]
    fn empty_file_or_header_alone_means_no_accounts() {
        assert_eq!(load("").map(|a| a.len()), Ok(0));
        let header = "account_id,name,phones,pin_hash,tier,priority\n";
        assert_eq!(load(header).map(|a| a.is_empty()), Ok(true));
    }

    #[test]
    fn problems_are_reported_with_their_lines() {
        let csv = format!(
            "account_id,name,phones,pin_hash,tier,priority\n\
             A1,Ann,+15550001,{DUMMY_HASH},gold,1\n\
             A2,Bob,+15550002,$argon2id$v=19$m=1,tier,2\n\
             A1,Again,+15550003,{DUMMY_HASH},gold,3\n\
             A4,Dan,+1 555 0001,{DUMMY_HASH},gold,4\n\
             A5,Eve,+15550005,{DUMMY_HASH},gold\n\
             A6,Fay,+15550006,{DUMMY_HASH},gold,high\n\
             A7,Gus,call-me,{DUMMY_HASH},gold,7\n"
        );
        let err = load(&csv).err().unwrap_or_default();
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(
            lines,
            [
                "FILE:3: pin_hash is not a valid argon2 PHC string (make one with `switchboard pin-hash`)",
                "FILE:4: duplicate account_id `A1` (first on line 2)",
                "FILE:5: phone `+1 555 0001` is already claimed by account `A1` (line 2)",
                "FILE:6: expected 6 fields as in the header, found 7 (quote values that contain commas)",
                "FILE:7: priority `high` is not a whole number",
                "FILE:8: phone `call-me` is not a phone number",
            ]
        );
    }

    #[test]
    fn missing_columns_are_named() {
        let err = load("account_id,name,pin_hash\nA1,Ann,x\n")
            .err()
            .unwrap_or_default();
        assert_eq!(
            err,
            "FILE:1: missing column `phones`\nFILE:1: missing column `tier`\nFILE:1: missing column `priority`"
        );
    }

    #[test]
    fn debug_output_never_shows_the_hash() {
        let csv =
            format!("account_id,name,phones,pin_hash,tier,priority\nA1,Ann,+1555,{DUMMY_HASH},,\n");
        let accounts = load(&csv).unwrap_or_else(|e| panic!("{e}"));
        let shown = format!("{accounts:?} {:?}", accounts.by_id("A1"));
        assert!(shown.contains("Ann"), "{shown}");
        assert!(
            !shown.contains(DUMMY_HASH) && !shown.contains("argon2"),
            "{shown}"
        );
    }

    #[test]
    fn unreadable_file_names_the_path() {
        let err = Accounts::load_csv(Path::new("/nonexistent/accounts.csv"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.starts_with("/nonexistent/accounts.csv: cannot read"),
            "{err}"
        );
    }
}
