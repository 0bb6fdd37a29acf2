//! `data:` URIs, so report.html carries its plots inside itself and still shows them when the
//! page is mailed, attached to a CI job, or opened away from its directory.

/// The standard base64 alphabet (RFC 4648 §4), with `=` padding.
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// `bytes` in base64 (RFC 4648 §4).
pub fn base64(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        let sextets = [n >> 18, n >> 12, n >> 6, n];
        // One input byte gives two output characters, two give three, three give four.
        for (i, s) in sextets.iter().enumerate() {
            if i <= chunk.len() {
                out.push(ALPHABET[(s & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A `data:` URI of `bytes` with media type `mime` (RFC 2397). Only base64 characters follow
/// the comma, so the URI is safe inside an HTML attribute.
pub fn data_uri(mime: &str, bytes: &[u8]) -> String {
    format!("data:{mime};base64,{}", base64(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4648 §10 test vectors.
    #[rustfmt::skip]
    #[test]
    fn base64_matches_the_rfc_vectors() {
        for (plain, encoded) in [
            ("",       ""),
            ("f",      "Zg=="),
            ("fo",     "Zm8="),
            ("foo",    "Zm9v"),
            ("foob",   "Zm9vYg=="),
            ("fooba",  "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain:?}");
        }
    }

    #[test]
    fn every_byte_value_uses_the_whole_alphabet() {
        let bytes: Vec<u8> = (0..=255).collect();
        let encoded = base64(&bytes);
        assert_eq!(encoded.len(), 344);
        assert!(
            encoded.starts_with(
                "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEy"
            )
        );
        assert!(encoded.ends_with("+/w=="));
        assert_eq!(
            data_uri("image/png", b"\x89PNG"),
            "data:image/png;base64,iVBORw=="
        );
    }
}
