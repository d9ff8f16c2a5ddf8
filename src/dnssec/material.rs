//! Private key material as signing needs it, by component name: `PrivateKey`
//! (the ECDSA scalar, RFC 6605 §4; the Ed25519 seed, RFC 8080 §3) or the RSA
//! CRT components `Modulus`, `PublicExponent`, `PrivateExponent`, `Prime1`,
//! `Prime2`, `Exponent1`, `Exponent2`, `Coefficient` (RFC 3110 §2 and PKCS #1).
//! The names are those of BIND's `.private` files, which `keys::bind` reads;
//! this module knows nothing of files, so `dnssec` does not depend on `keys`.

use std::fmt;

/// The private key material; `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub enum PrivateMaterial {
    /// Named base64 fields (`PrivateKey`, or the RSA fields), decoded.
    Fields(Vec<(String, Vec<u8>)>),
    /// The key lives in an HSM (`Engine:`/`Label:`): signalbox cannot sign with it.
    Hsm,
    /// `External:`: no private material at all.
    External,
}

impl PrivateMaterial {
    /// The decoded field `name`, if present.
    pub fn field(&self, name: &str) -> Option<&[u8]> {
        match self {
            PrivateMaterial::Fields(fields) => fields
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_slice()),
            _ => None,
        }
    }
}

impl fmt::Debug for PrivateMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrivateMaterial::Fields(fields) => {
                let names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
                write!(f, "Fields({names:?}, redacted)")
            }
            PrivateMaterial::Hsm => f.write_str("Hsm"),
            PrivateMaterial::External => f.write_str("External"),
        }
    }
}
