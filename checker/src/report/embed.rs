//! `data:` URIs, so report.html carries its plots inside itself and still shows them when the
//! page is mailed, attached to a CI job, or opened away from its directory.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

/// A `data:` URI of `bytes` with media type `mime` (RFC 2397). Only base64 characters follow
/// the comma, so the URI is safe inside an HTML attribute.
pub fn data_uri(mime: &str, bytes: &[u8]) -> String {
    format!("data:{mime};base64,{}", BASE64.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_uris_carry_every_byte_in_standard_base64() {
        let bytes: Vec<u8> = (0..=255).collect();
        let encoded = data_uri("application/octet-stream", &bytes);
        let encoded = encoded.trim_start_matches("data:application/octet-stream;base64,");
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
