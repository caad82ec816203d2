//! The operator commands (`jwt-auth migrate`, `jwt-auth user …`): a driving adapter like the
//! HTTP edge, over the same use cases and ports. Each returns the text to print on stdout.
//! Passwords come from a prompt or standard input, never from an argument; hashes are never
//! shown.

use std::io::{IsTerminal, Read};

use crate::adapters::outbound::password_formats;
use crate::app::{Register, SetDisabled};
use crate::domain::{Email, Password, PasswordHash, RegisterError, Timestamp, User, UserId};
use crate::ports::{Clock, CreateUserError, UserRepo, WebhookOutbox};

/// `jwt-auth user add --email E`, with the same rules as `POST /auth/register`.
///
/// # Errors
/// A malformed email, a taken one, or a store failure.
pub async fn user_add(
    register: &Register,
    email: &str,
    password: &Password,
) -> anyhow::Result<String> {
    let email = Email::parse_new(email).map_err(anyhow::Error::msg)?;
    match register.execute(email, password).await {
        Ok(user) => Ok(format!("created user {} {}", user.id, user.email)),
        Err(RegisterError::EmailTaken) => {
            anyhow::bail!("an account with this email already exists")
        }
        Err(e) => Err(anyhow::Error::new(e)),
    }
}

/// `jwt-auth user disable|enable --email E`. Disabling revokes all the user's sessions.
///
/// # Errors
/// No account with this email, or a store failure.
pub async fn user_set_disabled(
    set_disabled: &SetDisabled,
    email: &str,
    disabled: bool,
) -> anyhow::Result<String> {
    let email = Email::parse(email).map_err(anyhow::Error::msg)?;
    match set_disabled.execute(&email, disabled).await? {
        None => anyhow::bail!("no account with the email {email}"),
        Some(out) if disabled => Ok(format!(
            "disabled {} ({} live session(s) revoked)",
            out.user.email, out.sessions_revoked
        )),
        Some(out) => Ok(format!("enabled {}", out.user.email)),
    }
}

/// `jwt-auth user list`: id, email, created, disabled, email_verified; oldest first; never a
/// hash.
///
/// # Errors
/// A store failure.
pub async fn user_list(users: &dyn UserRepo) -> anyhow::Result<String> {
    Ok(format_users(&users.list().await?))
}

/// Tab-separated, with a header line.
pub fn format_users(users: &[User]) -> String {
    let mut out = String::from("id\temail\tcreated\tdisabled\temail_verified\n");
    for u in users {
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\n",
            u.id,
            u.email,
            utc(u.created_at),
            u.disabled,
            u.email_verified
        ));
    }
    out.pop();
    out
}

/// `YYYY-MM-DDTHH:MM:SSZ` (days-to-civil from Howard Hinnant's date algorithms).
pub fn utc(t: Timestamp) -> String {
    let secs = t.unix();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let z = i64::try_from(days).unwrap_or(i64::MAX / 2) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The new account's password: prompted twice on a terminal, otherwise read from standard
/// input (one trailing newline dropped). Same policy as `/auth/register`.
///
/// # Errors
/// The prompts differ, the input cannot be read, or the password breaks the policy.
pub fn read_new_password() -> anyhow::Result<Password> {
    let raw = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ")?;
        let again = rpassword::prompt_password("Repeat the password: ")?;
        if first != again {
            anyhow::bail!("the two passwords differ");
        }
        first
    } else {
        password_from(std::io::stdin().lock())?
    };
    Password::parse_new(raw).map_err(anyhow::Error::msg)
}

/// Reads a password from a pipe: at most a little over the policy's limit, so a huge input
/// costs nothing; one trailing `\n` or `\r\n` is dropped.
///
/// # Errors
/// When the input cannot be read or is not UTF-8.
pub fn password_from(input: impl Read) -> anyhow::Result<String> {
    // Four bytes per character at most in UTF-8, plus a line ending and one byte to spare.
    let limit = 4 * crate::domain::MAX_PASSWORD_CHARS as u64 + 3;
    let mut raw = String::new();
    input
        .take(limit)
        .read_to_string(&mut raw)
        .map_err(|e| anyhow::anyhow!("cannot read the password from standard input: {e}"))?;
    if raw.ends_with('\n') {
        raw.pop();
        if raw.ends_with('\r') {
            raw.pop();
        }
    }
    Ok(raw)
}

/// Largest import file read: far beyond any real export, small enough to hold in memory.
const MAX_IMPORT_BYTES: u64 = 256 * 1024 * 1024;

/// The layout of a `user import` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ImportFormat {
    /// A JSON array of objects with `email` and `hash` (other fields are ignored).
    Json,
    /// CSV with a header row naming `email` and `hash` columns (others are ignored).
    Csv,
}

impl ImportFormat {
    /// From the file's extension: `.json` or `.csv`.
    pub fn of_path(path: &std::path::Path) -> Option<Self> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "json" => Some(Self::Json),
            "csv" => Some(Self::Csv),
            _ => None,
        }
    }
}

#[derive(serde::Deserialize)]
struct ImportRow {
    email: String,
    hash: String,
}

/// An account to import, checked: its row number (1 = the first account), normalized email
/// and hash in its stored form.
struct Checked {
    row: usize,
    email: Email,
    hash: PasswordHash,
}

/// Reads every row; a file that does not parse as a whole is refused.
fn read_rows(bytes: &[u8], format: ImportFormat) -> anyhow::Result<Vec<ImportRow>> {
    match format {
        ImportFormat::Json => serde_json::from_slice(bytes).map_err(|e| {
            // serde's message names the position, never a value of the file.
            anyhow::anyhow!("not a JSON array of {{\"email\", \"hash\"}} objects: {e}")
        }),
        ImportFormat::Csv => csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_reader(bytes)
            .deserialize()
            .enumerate()
            .map(|(i, row)| {
                row.map_err(|e| {
                    let why = match e.kind() {
                        csv::ErrorKind::Deserialize { err, .. } => err.to_string(),
                        _ => "malformed CSV".to_owned(),
                    };
                    anyhow::anyhow!(
                        "row {}: {why} (a header row with email and hash is needed)",
                        i + 1
                    )
                })
            })
            .collect(),
    }
}

/// Every problem of the file, one line each (row numbers and emails, never a hash), or the
/// accounts to insert.
fn check_rows(rows: Vec<ImportRow>) -> Result<Vec<Checked>, Vec<String>> {
    let mut problems = Vec::new();
    let mut seen = std::collections::HashMap::new();
    let mut checked = Vec::with_capacity(rows.len());
    for (i, row) in rows.into_iter().enumerate() {
        let n = i + 1;
        let email = match Email::parse_new(&row.email) {
            Ok(email) => email,
            Err(e) => {
                problems.push(format!("row {n}: email: {e}"));
                continue;
            }
        };
        if let Some(first) = seen.insert(email.clone(), n) {
            problems.push(format!("row {n}: {email} is also on row {first}"));
        }
        match password_formats::import(row.hash.trim()) {
            Ok(hash) => checked.push(Checked {
                row: n,
                email,
                hash: PasswordHash::new(hash),
            }),
            Err(e) => problems.push(format!("row {n} ({email}): hash: {e}")),
        }
    }
    if problems.is_empty() {
        Ok(checked)
    } else {
        Err(problems)
    }
}

/// `jwt-auth user import FILE`: accounts from a file of emails and password hashes (plain
/// `$2a$`/`$2b$`/`$2y$` bcrypt as passlib writes it, or a PHC string this service reads).
///
/// Every row is checked before anything is written; any bad row (email, unrecognised or
/// over-cost hash, an email twice in the file) refuses the whole file. Emails that already
/// have an account are skipped and listed, so a rerun after a partial import is safe. Plain
/// bcrypt hashes are stored marked as such and replaced at each account's next login.
///
/// # Errors
/// An unreadable or invalid file, or a store failure (the accounts before it are in).
pub async fn user_import(
    users: &dyn UserRepo,
    clock: &dyn Clock,
    path: &std::path::Path,
    format: Option<ImportFormat>,
) -> anyhow::Result<String> {
    let format = format
        .or_else(|| ImportFormat::of_path(path))
        .ok_or_else(|| {
            anyhow::anyhow!("give --format json or csv (the file name ends in neither)")
        })?;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_IMPORT_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    if bytes.len() as u64 > MAX_IMPORT_BYTES {
        anyhow::bail!("{} is larger than {MAX_IMPORT_BYTES} bytes", path.display());
    }
    let checked = check_rows(read_rows(&bytes, format)?).map_err(|problems| {
        anyhow::anyhow!(
            "nothing imported; {} problem(s):\n{}",
            problems.len(),
            problems.join("\n")
        )
    })?;
    let (mut imported, mut skipped) = (0usize, Vec::new());
    for account in checked {
        let user = User {
            id: UserId::new_random(),
            email: account.email.clone(),
            password_hash: account.hash,
            disabled: false,
            // Imported from an existing system that had the address: counted as verified.
            email_verified: true,
            created_at: clock.now(),
        };
        match users.create(user).await {
            Ok(()) => imported += 1,
            Err(CreateUserError::EmailTaken) => {
                skipped.push(format!(
                    "row {}: {} already has an account",
                    account.row, account.email
                ));
            }
            Err(CreateUserError::Store(e)) => {
                return Err(anyhow::Error::new(e).context(format!(
                    "stopped at row {} after importing {imported} account(s); a rerun skips them",
                    account.row
                )));
            }
        }
    }
    let mut out = format!(
        "imported {imported} account(s), skipped {} existing",
        skipped.len()
    );
    for line in skipped {
        out.push('\n');
        out.push_str(&line);
    }
    Ok(out)
}

/// `jwt-auth webhooks status`: what the outbox holds, dead letters included.
///
/// # Errors
/// When the store cannot be reached.
pub async fn webhooks_status(outbox: &dyn WebhookOutbox) -> anyhow::Result<String> {
    let stats = outbox.stats().await?;
    Ok(format!(
        "pending: {}\ndead-lettered: {}",
        stats.pending, stats.dead
    ))
}

/// `jwt-auth webhooks retry-dead`: every dead-lettered event is sent again by the running
/// instances, with fresh attempts.
///
/// # Errors
/// When the store cannot be reached.
pub async fn webhooks_retry_dead(outbox: &dyn WebhookOutbox) -> anyhow::Result<String> {
    let now = crate::adapters::outbound::webhooks::now_ms();
    let n = outbox.requeue_dead(now).await?;
    Ok(format!("{n} dead-lettered event(s) queued again"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formats_like_rfc3339() {
        assert_eq!(utc(Timestamp::from_unix(0)), "1970-01-01T00:00:00Z");
        assert_eq!(
            utc(Timestamp::from_unix(1_800_000_000)),
            "2027-01-15T08:00:00Z"
        );
        assert_eq!(
            utc(Timestamp::from_unix(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
    }

    #[test]
    fn piped_passwords_lose_one_newline_only() {
        assert_eq!(
            password_from("secret pw\n".as_bytes()).unwrap(),
            "secret pw"
        );
        assert_eq!(
            password_from("secret pw\r\n".as_bytes()).unwrap(),
            "secret pw"
        );
        assert_eq!(password_from("pw \n\n".as_bytes()).unwrap(), "pw \n");
        let huge = "x".repeat(100_000);
        let read = password_from(huge.as_bytes()).unwrap();
        assert!(Password::parse_new(read).is_err(), "too long is refused");
    }
}

/// Rows `jwt-auth audit` lists unless `--limit` says otherwise.
pub const AUDIT_DEFAULT_LIMIT: usize = 100;
/// The most rows one listing returns.
pub const AUDIT_MAX_LIMIT: usize = 10_000;

/// `--since` of `jwt-auth audit`: a point in time, or a span back from now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    At(Timestamp),
    Ago(u64),
}

impl Since {
    pub fn resolve(self, now: Timestamp) -> Timestamp {
        match self {
            Self::At(t) => t,
            Self::Ago(secs) => Timestamp::from_unix(now.unix().saturating_sub(secs)),
        }
    }
}

/// RFC 3339 (`2026-01-31T12:00:00Z`), Unix seconds, or a span back from now: a number and
/// `s`, `m`, `h`, `d` or `w` (`30m`, `24h`, `7d`, `2w`).
///
/// # Errors
/// Anything else, said in one line (clap prints it and exits with 2).
pub fn parse_since(raw: &str) -> Result<Since, String> {
    const HELP: &str = "expected RFC 3339 (2026-01-31T12:00:00Z), Unix seconds, or a span \
                        such as 30m, 24h, 7d, 2w";
    let raw = raw.trim();
    if let Ok(secs) = raw.parse::<u64>() {
        return Ok(Since::At(Timestamp::from_unix(secs)));
    }
    // A span is digits and one unit letter; anything else must be a time.
    let split = raw.len().saturating_sub(1);
    if let (Some(n), Some(unit)) = (
        raw.get(..split)
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())),
        raw.get(split..),
    ) {
        let per = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            "w" => 7 * 86_400,
            _ => return Err(format!("unknown unit {unit:?}: {HELP}")),
        };
        return n
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(per))
            .map(Since::Ago)
            .ok_or_else(|| "span too long".to_owned());
    }
    let at = time::OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
        .map_err(|_| format!("not a time: {HELP}"))?;
    let secs = u64::try_from(at.unix_timestamp()).map_err(|_| "before 1970".to_owned())?;
    Ok(Since::At(Timestamp::from_unix(secs)))
}

/// An event kind by its stable name (`login_failed`, `reuse_detected`, ...).
///
/// # Errors
/// An unknown name, with the list of known ones.
pub fn parse_kind(raw: &str) -> Result<crate::domain::EventKind, String> {
    use crate::domain::EventKind;
    EventKind::parse(raw.trim()).ok_or_else(|| {
        let known: Vec<_> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
        format!("unknown event kind; one of: {}", known.join(", "))
    })
}

/// What `jwt-auth audit` lists.
#[derive(Debug, Clone, Default)]
pub struct AuditArgs {
    pub email: Option<String>,
    pub kind: Option<crate::domain::EventKind>,
    pub since: Option<Since>,
    pub limit: Option<usize>,
    pub json: bool,
}

/// `jwt-auth audit`: the newest events first, as a table or `--json`. An email is resolved
/// to its account id here: the trail itself keeps no email.
///
/// # Errors
/// A malformed or unknown email, a limit out of range, or a store failure.
pub async fn audit(
    log: &dyn crate::ports::AuditLog,
    users: &dyn UserRepo,
    clock: &dyn Clock,
    args: &AuditArgs,
) -> anyhow::Result<String> {
    let limit = args.limit.unwrap_or(AUDIT_DEFAULT_LIMIT);
    if !(1..=AUDIT_MAX_LIMIT).contains(&limit) {
        anyhow::bail!("--limit must be between 1 and {AUDIT_MAX_LIMIT}");
    }
    let user = match &args.email {
        None => None,
        Some(raw) => {
            let email = Email::parse(raw).map_err(anyhow::Error::msg)?;
            let user = users.find_by_email(&email).await?;
            Some(
                user.ok_or_else(|| anyhow::anyhow!("no account with the email {email}"))?
                    .id,
            )
        }
    };
    let query = crate::ports::AuditQuery {
        user,
        kind: args.kind,
        since: args.since.map(|s| s.resolve(clock.now())),
        limit,
    };
    let rows = log.query(&query).await?;
    Ok(if args.json {
        audit_json(&rows)
    } else {
        audit_table(&rows)
    })
}

/// One JSON array; the field names are those of the webhooks' `data`.
pub fn audit_json(rows: &[crate::ports::AuditRecord]) -> String {
    let rows: Vec<_> = rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "id": r.id.to_string(),
                "at": utc(r.at),
                "kind": r.kind.as_str(),
                "user_id": r.user.map(|u| u.to_string()),
                "session_id": r.session.map(|s| s.to_string()),
                "client": r.client,
                "user_agent": r.user_agent,
                "detail": r.detail,
            })
        })
        .collect();
    serde_json::Value::Array(rows).to_string()
}

/// Tab-separated, with a header line; `-` for what an event does not name.
pub fn audit_table(rows: &[crate::ports::AuditRecord]) -> String {
    fn or_dash(v: Option<String>) -> String {
        v.unwrap_or_else(|| "-".to_owned())
    }
    let mut out = String::from("at\tkind\tuser\tsession\tclient\tuser_agent\tdetail\n");
    for r in rows {
        // Cleaned again for the terminal, whatever wrote the row.
        let ua = r
            .user_agent
            .as_deref()
            .and_then(crate::domain::UserAgent::parse)
            .map(|u| u.as_str().to_owned());
        let clean = |v: &Option<String>| {
            v.as_deref()
                .map(|s| s.chars().filter(|c| !c.is_control()).collect::<String>())
        };
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
            utc(r.at),
            r.kind.as_str(),
            or_dash(r.user.map(|u| u.to_string())),
            or_dash(r.session.map(|s| s.to_string())),
            or_dash(clean(&r.client)),
            or_dash(ua),
            or_dash(clean(&r.detail)),
        ));
    }
    out.pop();
    out
}

#[cfg(test)]
mod audit_tests {
    use super::*;

    #[test]
    fn since_takes_rfc3339_unix_seconds_and_spans() {
        assert_eq!(
            parse_since("2026-01-31T12:00:00Z"),
            Ok(Since::At(Timestamp::from_unix(1_769_860_800)))
        );
        assert_eq!(
            parse_since("2026-01-31T13:00:00+01:00"),
            Ok(Since::At(Timestamp::from_unix(1_769_860_800)))
        );
        assert_eq!(
            parse_since("1700000000"),
            Ok(Since::At(Timestamp::from_unix(1_700_000_000)))
        );
        assert_eq!(parse_since("30m"), Ok(Since::Ago(1800)));
        assert_eq!(parse_since("24h"), Ok(Since::Ago(86_400)));
        assert_eq!(parse_since("7d"), Ok(Since::Ago(7 * 86_400)));
        assert_eq!(parse_since("2w"), Ok(Since::Ago(14 * 86_400)));
        for bad in [
            "",
            "yesterday",
            "7y",
            "-5",
            "1e9",
            "d",
            "99999999999999999999w",
            "2026-13-01T00:00:00Z",
        ] {
            assert!(parse_since(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Since::Ago(60).resolve(Timestamp::from_unix(1000)),
            Timestamp::from_unix(940)
        );
    }

    #[test]
    fn kinds_parse_by_their_stable_names_only() {
        assert_eq!(
            parse_kind("login_failed"),
            Ok(crate::domain::EventKind::LoginFailed)
        );
        let err = parse_kind("LoginFailed").unwrap_err();
        assert!(err.contains("reuse_detected"), "{err}");
    }
}
