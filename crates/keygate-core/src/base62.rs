//! Base62 over the alphabet `0-9A-Za-z`. That order is also ASCII order, so fixed-width
//! encodings of numbers sort lexicographically the way the numbers do (ids rely on it).

pub const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `n` encoded in exactly `width` characters, most significant first. Digits beyond the width
/// are dropped, so callers pick a width that holds their range (6 chars hold any `u32`).
pub fn encode_fixed(mut n: u64, width: usize) -> String {
    let mut out = vec![b'0'; width];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(n % 62) as usize];
        n /= 62;
    }
    out.into_iter().map(char::from).collect()
}

pub fn is_base62(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// `len` characters drawn uniformly from the alphabet with the operating system's CSPRNG.
/// Rejection sampling (bytes ≥ 248 are redrawn) keeps every character equally likely.
pub fn random(len: usize) -> String {
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        fill_random(&mut buf);
        for &b in &buf {
            if b < 248 && out.len() < len {
                out.push(char::from(ALPHABET[(b % 62) as usize]));
            }
        }
    }
    out
}

/// Fills `buf` from the OS CSPRNG. A machine that cannot supply randomness cannot mint secrets
/// safely at all, so this aborts the request path loudly rather than degrade.
pub fn fill_random(buf: &mut [u8]) {
    #[allow(clippy::expect_used)] // ok: no OS randomness means no safe secret can exist
    getrandom::fill(buf).expect("the operating system's random number generator failed"); // ok: see above
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_width_encoding_sorts_like_numbers() {
        let a = encode_fixed(61, 4);
        let b = encode_fixed(62, 4);
        let c = encode_fixed(u32::MAX as u64, 6);
        assert_eq!(a, "000z");
        assert_eq!(b, "0010");
        assert!(a < b);
        assert_eq!(c.len(), 6);
    }

    #[test]
    fn random_strings_are_base62_and_distinct() {
        let a = random(32);
        let b = random(32);
        assert_eq!(a.len(), 32);
        assert!(is_base62(&a));
        assert_ne!(a, b);
    }
}
