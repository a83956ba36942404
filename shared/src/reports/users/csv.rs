//! The CSV form of a page of users (RFC 4180, CRLF lines, a header row), bounded in bytes, with
//! spreadsheet formulas neutralised.

use chrono::{DateTime, Utc};

use super::{UserRow, kind_str, origin_str, role_str};

/// A CSV body stops growing past this many bytes (the rest comes with the `next` link), so rows
/// with very long names can never push an answer past Lambda's 6 MB.
pub const MAX_CSV_BYTES: usize = 5 * 1024 * 1024;

/// The CSV header row.
pub const CSV_HEADER: [&str; 16] = [
    "box_user_id",
    "login",
    "name",
    "status",
    "role",
    "kind",
    "owns_content",
    "last_activity_at",
    "last_activity_source",
    "last_login_at",
    "last_login_source",
    "last_content_activity_at",
    "last_content_source",
    "activity_state",
    "first_seen_at",
    "removed_at",
];

/// One CSV cell (RFC 4180): quoted when it holds a comma, quote or line break; a cell that a
/// spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, carriage return first) gets a
/// leading `'` so it stays text (OWASP "CSV injection").
pub fn csv_cell(value: &str, out: &mut String) {
    let guard = value.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let quote = guard || value.contains([',', '"', '\n', '\r']);
    if quote {
        out.push('"');
    }
    if guard {
        out.push('\'');
    }
    for c in value.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    if quote {
        out.push('"');
    }
}

fn csv_line(cells: &[&str], out: &mut String) {
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        csv_cell(cell, out);
    }
    out.push_str("\r\n");
}

fn time(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// The CSV text of `rows` (header first), stopping before [`MAX_CSV_BYTES`]; returns the text and
/// how many rows it holds.
pub fn to_csv(rows: &[UserRow]) -> (String, usize) {
    let mut out = String::with_capacity(256 * (rows.len() + 1));
    csv_line(&CSV_HEADER, &mut out);
    let mut line = String::new();
    for (n, r) in rows.iter().enumerate() {
        line.clear();
        let status = r.status.as_str();
        let first_seen = time(Some(r.first_seen_at));
        let last = time(r.last_activity_at);
        let last_login = time(r.last_login_at);
        let last_content = time(r.last_content_activity_at);
        let removed = time(r.removed_at);
        csv_line(
            &[
                r.box_user_id.as_str(),
                r.login.as_deref().unwrap_or_default(),
                r.name.as_deref().unwrap_or_default(),
                status,
                role_str(r.role),
                kind_str(r.kind),
                if r.owns_content { "true" } else { "false" },
                &last,
                origin_str(r.last_activity_source),
                &last_login,
                origin_str(r.last_login_source),
                &last_content,
                origin_str(r.last_content_source),
                r.activity_state.as_str(),
                &first_seen,
                &removed,
            ],
            &mut line,
        );
        if out.len() + line.len() > MAX_CSV_BYTES {
            return (out, n);
        }
        out.push_str(&line);
    }
    (out, rows.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_quoted_and_formulas_neutralised() {
        let cell = |v: &str| {
            let mut s = String::new();
            csv_cell(v, &mut s);
            s
        };
        assert_eq!(cell("plain"), "plain");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cell("line\nbreak"), "\"line\nbreak\"");
        assert_eq!(cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(cell("@SUM(A1)"), "\"'@SUM(A1)\"");
        assert_eq!(cell("-1+2"), "\"'-1+2\"");
    }
}
