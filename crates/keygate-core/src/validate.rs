//! Input newtypes for identity: parse, don't validate.

use thiserror::Error;
use unicode_normalization::UnicodeNormalization;
use unicode_security::{GeneralSecurityProfile, MixedScript};

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InputError {
    #[error("email is not a valid address")]
    Email,
    #[error("email contains an invisible or disallowed character")]
    EmailCharacter,
    #[error("email mixes scripts that look alike (e.g. a Cyrillic letter among Latin ones)")]
    EmailMixedScript,
    #[error("password must be at least {0} characters")]
    PasswordTooShort(usize),
    #[error("password must be at most 256 characters")]
    PasswordTooLong,
    #[error("name must be 1 to 100 characters")]
    Name,
}

/// An email address in its comparison form: Unicode NFKC, lower-cased, trimmed. Emails are
/// unique in this form, so `ａｄａ@x.com` (fullwidth) is `ada@x.com`. Refused: invisible and
/// other characters Unicode restricts in identifiers (zero-width, bidi controls,
/// default-ignorables; UTS #39 General Security Profile) and local-part labels that mix
/// scripts (a Cyrillic `а` among Latin letters; UTS #39 mixed-script detection). For ASCII
/// this is plain lower-casing, so addresses stored before are already in this form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, InputError> {
        let s = normalise(raw);
        let (local, domain) = s.split_once('@').ok_or(InputError::Email)?;
        let domain_ok = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
            && domain.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.bytes().any(|b| b.is_ascii_whitespace() || b.is_ascii_control() || b == b'@');
        if s.len() > 254 || !domain_ok || !local_ok {
            return Err(InputError::Email);
        }
        if local.chars().any(|c| !c.is_ascii() && !c.identifier_allowed()) {
            return Err(InputError::EmailCharacter);
        }
        if !local.is_ascii() && local.split(['.', '+', '-', '_']).any(|label| !label.is_single_script()) {
            return Err(InputError::EmailMixedScript);
        }
        Ok(Email(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn domain(&self) -> &str {
        self.0.split_once('@').map(|(_, d)| d).unwrap_or_default()
    }
}

/// NFKC, lower-case, NFKC again (lower-casing can leave a string that is not in NFKC).
fn normalise(raw: &str) -> String {
    let folded = raw.trim().nfkc().collect::<String>().to_lowercase();
    folded.nfkc().collect::<String>().trim().to_owned()
}

pub const MAX_PASSWORD_CHARS: usize = 256;

/// Checks the password policy: `min_chars` (configurable, at least 8) up to 256 characters.
pub fn check_password(password: &str, min_chars: usize) -> Result<(), InputError> {
    let n = password.chars().count();
    if n < min_chars {
        return Err(InputError::PasswordTooShort(min_chars));
    }
    if n > MAX_PASSWORD_CHARS {
        return Err(InputError::PasswordTooLong);
    }
    Ok(())
}

/// A display name: 1–100 characters after trimming, no control characters.
pub fn check_name(name: &str) -> Result<String, InputError> {
    let t = name.trim();
    let n = t.chars().count();
    if n == 0 || n > 100 || t.chars().any(char::is_control) {
        return Err(InputError::Name);
    }
    Ok(t.to_owned())
}

/// The registrable "company" domain of a URL or bare host: `https://www.Acme.com/x` → `acme.com`.
pub fn company_domain(url_or_host: &str) -> Option<String> {
    let s = url_or_host.trim().to_lowercase();
    let rest = s.split_once("://").map(|(_, r)| r).unwrap_or(&s);
    let host = rest.split(['/', '?', '#']).next()?.rsplit('@').next()?;
    let host = host.split(':').next()?.trim_start_matches("www.");
    (host.contains('.') && host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-'))
        .then(|| host.to_owned())
}

/// Free-webmail and disposable-address domains refused at sign-up (docs/api.md §4 Identity) unless
/// the deployment turns `block_free_email` off. Operators extend it with `extra_blocked_domains`.
pub const BLOCKED_SIGNUP_DOMAINS: &[&str] = &[
    // free webmail
    "gmail.com",
    "googlemail.com",
    "yahoo.com",
    "yahoo.co.uk",
    "yahoo.fr",
    "yahoo.de",
    "ymail.com",
    "hotmail.com",
    "hotmail.co.uk",
    "hotmail.fr",
    "outlook.com",
    "live.com",
    "msn.com",
    "aol.com",
    "icloud.com",
    "me.com",
    "mac.com",
    "proton.me",
    "protonmail.com",
    "pm.me",
    "gmx.com",
    "gmx.de",
    "gmx.net",
    "web.de",
    "mail.com",
    "yandex.com",
    "yandex.ru",
    "mail.ru",
    "zoho.com",
    "qq.com",
    "163.com",
    "126.com",
    "tutanota.com",
    "tuta.io",
    "fastmail.com",
    "hey.com",
    "free.fr",
    "orange.fr",
    "laposte.net",
    "libero.it",
    "t-online.de",
    "rediffmail.com",
    "inbox.com",
    // disposable
    "mailinator.com",
    "guerrillamail.com",
    "guerrillamail.net",
    "sharklasers.com",
    "10minutemail.com",
    "temp-mail.org",
    "tempmail.com",
    "throwawaymail.com",
    "yopmail.com",
    "trashmail.com",
    "getnada.com",
    "dispostable.com",
    "maildrop.cc",
    "mailnesia.com",
    "fakeinbox.com",
    "mintemail.com",
    "mohmal.com",
    "emailondeck.com",
    "spamgourmet.com",
    "burnermail.io",
];

pub fn is_blocked_domain(domain: &str, extra: &[String]) -> bool {
    let d = domain.to_lowercase();
    let matches = |blocked: &str| d == blocked || d.ends_with(&format!(".{blocked}"));
    BLOCKED_SIGNUP_DOMAINS.iter().any(|b| matches(b)) || extra.iter().any(|b| matches(&b.to_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised() {
        assert_eq!(Email::parse("  Ada@Example.COM ").map(|e| e.0), Ok("ada@example.com".into()));
        for bad in ["", "ada", "ada@", "@x.com", "ada@localhost", "a b@x.com", "ada@x..com"] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn look_alike_emails_normalise_to_one_or_are_refused() {
        let norm = |s: &str| Email::parse(s).map(|e| e.0);
        // Fullwidth forms (and a fullwidth @) are the ASCII address.
        assert_eq!(norm("ａｄａ@example.com"), Ok("ada@example.com".into()));
        assert_eq!(norm("ＡＤＡ＠ｅｘａｍｐｌｅ．ｃｏｍ"), Ok("ada@example.com".into()));
        assert_eq!(norm("ﬁnance@example.com"), Ok("finance@example.com".into()), "a ligature");
        // Invisible characters.
        for bad in [
            "a\u{200B}da@example.com",
            "ada\u{200D}@example.com",
            "\u{202E}ada@example.com",
            "a\u{00AD}da@example.com",
            "ad\u{2060}a@example.com",
            "ada\u{FE0F}@example.com",
        ] {
            assert_eq!(norm(bad), Err(InputError::EmailCharacter), "{bad:?}");
        }
        // A Cyrillic letter among Latin ones, in the same label.
        assert_eq!(norm("\u{0430}da@example.com"), Err(InputError::EmailMixedScript), "Cyrillic а");
        assert_eq!(norm("ad\u{03B1}@example.com"), Err(InputError::EmailMixedScript), "Greek α");
        assert_eq!(
            norm("ada.\u{0430}\u{0434}\u{0430}@example.com"),
            Ok("ada.ада@example.com".into()),
            "one script per label"
        );
        // Addresses in one script, with digits and punctuation, stay as they are.
        for ok in [
            "иван@example.com",
            "müller.2@example.com",
            "josé+news@example.com",
            "山田@example.com",
            "ada_lovelace-1@example.com",
        ] {
            assert_eq!(norm(ok), Ok(ok.to_lowercase()), "{ok}");
        }
        // ASCII is only lower-cased: addresses stored before need no migration.
        assert_eq!(norm(" Ada.Lovelace+X@Example.COM "), Ok("ada.lovelace+x@example.com".into()));
    }

    #[test]
    fn password_policy_bounds_both_ends() {
        assert!(check_password("short", 12).is_err());
        assert!(check_password("twelve chars", 12).is_ok());
        assert!(check_password(&"x".repeat(257), 12).is_err());
    }

    #[test]
    fn company_domain_of_urls() {
        assert_eq!(company_domain("https://www.Acme.com/about"), Some("acme.com".into()));
        assert_eq!(company_domain("acme.io"), Some("acme.io".into()));
        assert_eq!(company_domain("not a url"), None);
    }

    #[test]
    fn webmail_and_disposable_domains_are_blocked() {
        assert!(is_blocked_domain("gmail.com", &[]));
        assert!(is_blocked_domain("Mailinator.com", &[]));
        assert!(!is_blocked_domain("acme.com", &[]));
        assert!(is_blocked_domain("acme.com", &["acme.com".into()]));
    }
}
