//! Status callbacks from the voice-agent platform: the signature recipe.
//! The callback's body and its statuses are the domain's
//! ([`crate::domain::call::Callback`]).
//!
//! Signature: header `X-Dialerd-Signature: t=<unix seconds>,v1=<hex>` where
//! `<hex>` is HMAC-SHA256, keyed with `telephony.http.signing_secret`, of
//! the bytes `<unix seconds>` `.` `<raw request body>`. A request is refused
//! when the header is missing or malformed, the MAC differs (compared in
//! constant time), or the timestamp is more than `REPLAY_WINDOW` away from
//! now.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "x-dialerd-signature";
/// How far a signed timestamp may be from now, either way, in seconds.
pub const REPLAY_WINDOW: i64 = 300;

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing X-Dialerd-Signature header")]
    Missing,
    #[error("malformed X-Dialerd-Signature header: expected t=<unix seconds>,v1=<hex>")]
    Malformed,
    #[error("signature timestamp is more than 5 minutes away from now")]
    Stale,
    #[error("bad signature")]
    Mismatch,
}

fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The header value signing `body` at `timestamp` (unix seconds).
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let tag = mac(secret, timestamp, body).finalize().into_bytes();
    let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    format!("t={timestamp},v1={hex}")
}

/// Checks `header` against `body`, with `now` for the replay window.
pub fn verify(
    secret: &[u8],
    header: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let mut timestamp = None;
    let mut tag = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => timestamp = v.parse::<i64>().ok(),
            Some(("v1", v)) => tag = decode_hex(v),
            _ => {}
        }
    }
    let (Some(timestamp), Some(tag)) = (timestamp, tag) else {
        return Err(SignatureError::Malformed);
    };
    if (now.timestamp() - timestamp).abs() > REPLAY_WINDOW {
        return Err(SignatureError::Stale);
    }
    mac(secret, timestamp, body)
        .verify_slice(&tag)
        .map_err(|_| SignatureError::Mismatch)
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"a-long-enough-test-secret";

    fn at(ts: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(ts, 0).unwrap()
    }

    #[test]
    fn a_signature_verifies_and_any_change_breaks_it() {
        let body = br#"{"conversation_id":"c1","status":"completed"}"#;
        let header = sign(SECRET, 1_800_000_000, body);
        assert!(header.starts_with("t=1800000000,v1="));
        assert_eq!(
            verify(SECRET, Some(&header), body, at(1_800_000_000)),
            Ok(())
        );
        assert_eq!(
            verify(SECRET, Some(&header), b"{}", at(1_800_000_000)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"another secret", Some(&header), body, at(1_800_000_000)),
            Err(SignatureError::Mismatch)
        );
        // The timestamp is signed too.
        let moved = header.replace("t=1800000000", "t=1800000001");
        assert_eq!(
            verify(SECRET, Some(&moved), body, at(1_800_000_000)),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn the_readme_openssl_recipe_gives_the_same_signature() {
        // printf '%s.%s' 1800000000 "$body" | openssl dgst -sha256 -hmac "$SECRET" -hex
        let body = br#"{"conversation_id":"c1","status":"completed"}"#;
        assert_eq!(
            sign(SECRET, 1_800_000_000, body),
            "t=1800000000,v1=f2f486f48c2d66c425e60fc0a65d0f4ff1299c9c494b58558eb8cb19014fb97d"
        );
    }

    #[test]
    fn missing_malformed_and_stale_signatures_are_refused() {
        let body = b"{}";
        let now = at(1_800_000_000);
        assert_eq!(
            verify(SECRET, None, body, now),
            Err(SignatureError::Missing)
        );
        for bad in ["", "t=1,v1=zz", "v1=00", "t=x,v1=00", "t=1800000000"] {
            assert_eq!(
                verify(SECRET, Some(bad), body, now),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
        let old = sign(SECRET, 1_800_000_000 - 301, body);
        assert_eq!(
            verify(SECRET, Some(&old), body, now),
            Err(SignatureError::Stale)
        );
        let future = sign(SECRET, 1_800_000_000 + 301, body);
        assert_eq!(
            verify(SECRET, Some(&future), body, now),
            Err(SignatureError::Stale)
        );
        let edge = sign(SECRET, 1_800_000_000 - 300, body);
        assert_eq!(verify(SECRET, Some(&edge), body, now), Ok(()));
    }
}
