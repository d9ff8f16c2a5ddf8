//! The Ed25519 test key of RFC 8080 §6.1 (and the signalling-zone vector
//! built on it): the one key material every signing test in the crate uses,
//! so signatures can be checked byte for byte against the RFC.

use super::PrivateMaterial;
use crate::dns::Dnskey;

/// The DNSKEY RDATA of the RFC 8080 key, as a KSK (flags 257).
pub const DNSKEY: &str = "257 3 15 l02Woi0iS8Aa25FQkUd9RMzZHJpBoRQwAQEX1SxZJA4=";

/// Its private key (the Ed25519 seed), base64 as in a BIND `.private` file.
pub const PRIVATE_KEY: &str = "ODIyNjAzODQ2MjgwODAxMjI2NDUxOTAyMDQxNDIyNjI=";

/// The DNSKEY.
pub fn dnskey() -> Dnskey {
    Dnskey::from_text(DNSKEY).expect("the RFC 8080 DNSKEY parses")
}

/// The private material.
pub fn material() -> PrivateMaterial {
    let seed = data_encoding::BASE64
        .decode(PRIVATE_KEY.as_bytes())
        .expect("the RFC 8080 seed is base64");
    PrivateMaterial::Fields(vec![("PrivateKey".to_string(), seed)])
}
