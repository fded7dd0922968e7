//! Base64url without padding (RFC 4648 §5): the form of the gateway's `X-Keygate-Metadata`,
//! safe in a header value and in a URL.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        // 1 byte → 2 characters, 2 → 3, 3 → 4.
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::encode;

    #[test]
    fn rfc_4648_vectors_without_padding() {
        let table = [("", ""), ("f", "Zg"), ("fo", "Zm8"), ("foo", "Zm9v"), ("foob", "Zm9vYg"), ("fooba", "Zm9vYmE")];
        for (plain, want) in table {
            assert_eq!(encode(plain.as_bytes()), want, "{plain:?}");
        }
        assert_eq!(encode(&[0xfb, 0xff]), "-_8", "the URL-safe alphabet");
        assert_eq!(encode(br#"{"team":"data"}"#), "eyJ0ZWFtIjoiZGF0YSJ9");
    }
}
