//! `GET /v1/usage?format=csv`: the same rows as the JSON answer, one line each, for people
//! and spreadsheets. No secrets: ids, names and counts only.
//!
//! Fields are escaped per RFC 4180 (a field with a comma, quote or line break is quoted, its
//! quotes doubled). A key's name is text a customer chose; one that begins like a formula
//! (`=`, `+`, `-`, `@`, tab, carriage return) gets a leading `'` so a spreadsheet shows it
//! instead of evaluating it (OWASP, CSV injection).

use keygate_store::{Outcome, OutcomeCounts};

use crate::service::usage::{AccountRows, AccountUsage};
use crate::views::time;

/// The whole file: the header line, then one line per day or key, each ending in CRLF.
pub fn render(usage: &AccountUsage) -> String {
    let mut out = String::from("start,key_id,requests");
    for o in Outcome::ALL {
        out.push(',');
        out.push_str(o.as_str());
    }
    out.push_str(",name\r\n");
    match &usage.rows {
        AccountRows::Days(days) => {
            for b in days {
                line(&mut out, &time(b.start), "", &b.outcomes, "");
            }
        }
        AccountRows::Keys(keys) => {
            let start = time(usage.range.from);
            for k in keys {
                line(&mut out, &start, &k.key_id, &k.outcomes, &k.name);
            }
        }
    }
    out
}

fn line(out: &mut String, start: &str, key_id: &str, outcomes: &OutcomeCounts, name: &str) {
    out.push_str(&field(start));
    out.push(',');
    out.push_str(&field(key_id));
    out.push(',');
    out.push_str(&outcomes.total().to_string());
    for o in Outcome::ALL {
        out.push(',');
        out.push_str(&outcomes.get(o).to_string());
    }
    out.push(',');
    out.push_str(&field(&defused(name)));
    out.push_str("\r\n");
}

/// RFC 4180: quoted when it holds a comma, a quote or a line break; quotes doubled.
fn field(s: &str) -> String {
    if s.contains([',', '"', '\r', '\n']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_owned() }
}

/// A leading `'` on text a spreadsheet would read as a formula.
fn defused(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{s}") } else { s.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_escaped_and_formulas_defused() {
        for (raw, want) in [
            ("plain", "plain"),
            ("a,b", "\"a,b\""),
            ("say \"hi\"", "\"say \"\"hi\"\"\""),
            ("two\nlines", "\"two\nlines\""),
            ("=HYPERLINK(\"x\")", "\"'=HYPERLINK(\"\"x\"\")\""),
            ("+1", "'+1"),
            ("-1", "'-1"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("", ""),
        ] {
            assert_eq!(field(&defused(raw)), want, "{raw}");
        }
    }
}
