//! DNSSEC arithmetic: algorithm numbers, key tags (RFC 4034 Appendix B) and
//! DS digests (RFC 4034 §5.1.4, RFC 4509, RFC 6605).
//!
//! Signing comes with the signalling-zone server; this module only holds what
//! the policy needs to turn keys into CDS/CDNSKEY records.

mod material;
#[cfg(test)]
pub(crate) mod rfc8080;
pub mod signer;
#[cfg(test)]
pub mod test_keys;

pub use material::PrivateMaterial;

use hickory_proto::rr::Name;

use crate::dns::{Dnskey, Ds, name::canonical_wire};

/// DNSSEC algorithms signalbox reads from BIND key files (IANA "DNS Security
/// Algorithm Numbers"). Others are rejected: we cannot vouch for their DS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// 5, RSASHA1 (deprecated by RFC 9905).
    RsaSha1,
    /// 7, RSASHA1-NSEC3-SHA1 (deprecated by RFC 9905).
    RsaSha1Nsec3Sha1,
    /// 8, RSASHA256.
    RsaSha256,
    /// 10, RSASHA512.
    RsaSha512,
    /// 13, ECDSAP256SHA256.
    EcdsaP256Sha256,
    /// 14, ECDSAP384SHA384.
    EcdsaP384Sha384,
    /// 15, ED25519.
    Ed25519,
    /// 16, ED448.
    Ed448,
}

impl Algorithm {
    /// All algorithms we know, in number order.
    pub const ALL: [Algorithm; 8] = [
        Algorithm::RsaSha1,
        Algorithm::RsaSha1Nsec3Sha1,
        Algorithm::RsaSha256,
        Algorithm::RsaSha512,
        Algorithm::EcdsaP256Sha256,
        Algorithm::EcdsaP384Sha384,
        Algorithm::Ed25519,
        Algorithm::Ed448,
    ];

    /// The algorithm with this number, if we know it.
    pub fn from_number(number: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.number() == number)
    }

    /// IANA number.
    pub fn number(self) -> u8 {
        match self {
            Algorithm::RsaSha1 => 5,
            Algorithm::RsaSha1Nsec3Sha1 => 7,
            Algorithm::RsaSha256 => 8,
            Algorithm::RsaSha512 => 10,
            Algorithm::EcdsaP256Sha256 => 13,
            Algorithm::EcdsaP384Sha384 => 14,
            Algorithm::Ed25519 => 15,
            Algorithm::Ed448 => 16,
        }
    }

    /// IANA mnemonic, as BIND prints it in `.private` files.
    pub fn mnemonic(self) -> &'static str {
        match self {
            Algorithm::RsaSha1 => "RSASHA1",
            Algorithm::RsaSha1Nsec3Sha1 => "NSEC3RSASHA1",
            Algorithm::RsaSha256 => "RSASHA256",
            Algorithm::RsaSha512 => "RSASHA512",
            Algorithm::EcdsaP256Sha256 => "ECDSAP256SHA256",
            Algorithm::EcdsaP384Sha384 => "ECDSAP384SHA384",
            Algorithm::Ed25519 => "ED25519",
            Algorithm::Ed448 => "ED448",
        }
    }

    /// True for the SHA-1 algorithms RFC 9905 deprecates.
    pub fn is_deprecated(self) -> bool {
        matches!(self, Algorithm::RsaSha1 | Algorithm::RsaSha1Nsec3Sha1)
    }

    /// Size of the key in bits as BIND records it (`.state` `Length:`), from
    /// the DNSKEY public key field; `None` when the field is malformed.
    pub fn key_bits(self, public_key: &[u8]) -> Option<u32> {
        match self {
            Algorithm::EcdsaP256Sha256 => (public_key.len() == 64).then_some(256),
            Algorithm::EcdsaP384Sha384 => (public_key.len() == 96).then_some(384),
            Algorithm::Ed25519 => (public_key.len() == 32).then_some(256),
            Algorithm::Ed448 => (public_key.len() == 57).then_some(456),
            _ => rsa_modulus_bits(public_key),
        }
    }
}

impl std::fmt::Display for Algorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.number(), self.mnemonic())
    }
}

/// The exponent and modulus of an RSA DNSKEY's key field (RFC 3110 §2):
/// exponent length (1 octet, or 0 then 2 octets), exponent, modulus.
pub(crate) fn rsa_exponent_and_modulus(public_key: &[u8]) -> Option<(&[u8], &[u8])> {
    let (exp_len, rest) = match public_key.split_first()? {
        (0, rest) => (usize::from(crate::dns::wire::u16_at(rest, 0)?), &rest[2..]),
        (&len, rest) => (usize::from(len), rest),
    };
    (rest.len() >= exp_len).then(|| rest.split_at(exp_len))
}

/// The modulus length in bits of an RSA DNSKEY's key field.
fn rsa_modulus_bits(public_key: &[u8]) -> Option<u32> {
    let (_, modulus) = rsa_exponent_and_modulus(public_key)?;
    let first = modulus.iter().position(|&b| b != 0)?;
    let significant = &modulus[first..];
    Some((significant.len() as u32 - 1) * 8 + (8 - significant[0].leading_zeros()))
}

/// DS digest types signalbox generates (RFC 4509, RFC 6605). SHA-1 and GOST
/// are never generated (RFC 9905, RFC 9906).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DigestType {
    /// 2, SHA-256.
    Sha256,
    /// 4, SHA-384.
    Sha384,
}

impl DigestType {
    /// The type of IANA number `number`, when signalbox computes it.
    pub fn from_number(number: u8) -> Option<Self> {
        match number {
            2 => Some(DigestType::Sha256),
            4 => Some(DigestType::Sha384),
            _ => None,
        }
    }

    /// IANA number.
    pub fn number(self) -> u8 {
        match self {
            DigestType::Sha256 => 2,
            DigestType::Sha384 => 4,
        }
    }

    /// Config spelling: `sha256` / `sha384`.
    pub fn name(self) -> &'static str {
        match self {
            DigestType::Sha256 => "sha256",
            DigestType::Sha384 => "sha384",
        }
    }
}

/// Key tag of a DNSKEY (RFC 4034 Appendix B). Algorithm 1 (RSAMD5) uses a
/// different rule and is not supported anywhere in signalbox.
pub fn key_tag(key: &Dnskey) -> u16 {
    let wire = key.to_wire();
    let mut acc: u32 = 0;
    for (i, byte) in wire.iter().enumerate() {
        acc += if i & 1 == 0 {
            u32::from(*byte) << 8
        } else {
            u32::from(*byte)
        };
    }
    acc += (acc >> 16) & 0xffff;
    (acc & 0xffff) as u16
}

/// A DS of `ds_set` names `key`: tag, algorithm and digest; for a digest
/// type signalbox does not compute (SHA-1 at an old parent), tag and
/// algorithm only.
pub fn ds_points_to(owner: &Name, ds_set: &[Ds], key: &Dnskey) -> bool {
    ds_set.iter().any(|d| {
        d.key_tag == key_tag(key)
            && d.algorithm == key.algorithm
            && DigestType::from_number(d.digest_type)
                .is_none_or(|t| ds(owner, key, t).digest == d.digest)
    })
}

/// The DS RDATA for `key` owned by `owner`:
/// digest = H(canonical owner wire || DNSKEY RDATA) (RFC 4034 §5.1.4).
pub fn ds(owner: &Name, key: &Dnskey, digest_type: DigestType) -> Ds {
    let algorithm = match digest_type {
        DigestType::Sha256 => &ring::digest::SHA256,
        DigestType::Sha384 => &ring::digest::SHA384,
    };
    let mut ctx = ring::digest::Context::new(algorithm);
    ctx.update(&canonical_wire(owner));
    ctx.update(&key.to_wire());
    Ds {
        key_tag: key_tag(key),
        algorithm: key.algorithm,
        digest_type: digest_type.number(),
        digest: ctx.finish().as_ref().to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::parse_name;

    fn key(text: &str) -> Dnskey {
        Dnskey::from_text(text).expect("valid test key")
    }

    // The RFC 4034 §5.4 example and the RFC 8080 / RFC 6605 vectors.
    #[test]
    fn rfc4034_dskey_example() {
        let k = key(
            "256 3 5 AQOeiiR0GOMYkDshWoSKz9XzfwJr1AYtsmx3TGkJaNXVbfi/2pHm822aJ5iI9BMzNXxeYCmZDRD99WYwYqUSdjMmmAphXdvxegXd/M5+X7OrzKBaMbCVdFLUUh6DhweJBjEVv5f2wwjM9XzcnOf+EPbtG9DMBmADjFDc2w/rljwvFw==",
        );
        assert_eq!(key_tag(&k), 60485);
        let ds = ds(
            &parse_name("dskey.example.com.").expect("valid"),
            &k,
            DigestType::Sha256,
        );
        assert_eq!(
            ds.to_string(),
            "60485 5 2 D4B7D520E7BB5F0F67674A0CCEB1E3E0614B93C4F9E99B8383F6A1E4469DA50A"
        );
        assert_eq!(Algorithm::RsaSha1.key_bits(&k.public_key), Some(1024));
    }

    #[test]
    fn rfc6605_p256_and_p384() {
        let owner = parse_name("example.net.").expect("valid");
        let p256 = key(
            "257 3 13 GojIhhXUN/u4v54ZQqGSnyhWJwaubCvTmeexv7bR6edbkrSqQpF64cYbcB7wNcP+e+MAnLr+Wi9xMWyQLc8NAA==",
        );
        assert_eq!(key_tag(&p256), 55648);
        assert_eq!(
            ds(&owner, &p256, DigestType::Sha256).to_string(),
            "55648 13 2 B4C8C1FE2E7477127B27115656AD6256F424625BF5C1E2770CE6D6E37DF61D17"
        );
        let p384 = key(
            "257 3 14 xKYaNhWdGOfJ+nPrL8/arkwf2EY3MDJ+SErKivBVSum1w/egsXvSADtNJhyem5RCOpgQ6K8X1DRSEkrbYQ+OB+v8/uX45NBwY8rp65F6Glur8I/mlVNgF6W/qTI37m40",
        );
        assert_eq!(key_tag(&p384), 10771);
        assert_eq!(
            ds(&owner, &p384, DigestType::Sha384).to_string(),
            "10771 14 4 72D7B62976CE06438E9C0BF319013CF801F09ECC84B8D7E9495F27E305C6A9B0563A9B5F4D288405C3008A946DF983D6"
        );
        assert_eq!(
            Algorithm::EcdsaP384Sha384.key_bits(&p384.public_key),
            Some(384)
        );
    }

    #[test]
    fn rfc8080_ed25519_and_signalling_vector() {
        let first = key("257 3 15 l02Woi0iS8Aa25FQkUd9RMzZHJpBoRQwAQEX1SxZJA4=");
        let second = key("257 3 15 zPnZ/QwEe7S8C5SPz2OfS5RR40ATk2/rYnE9xHIEijs=");
        assert_eq!(key_tag(&first), 3613);
        assert_eq!(key_tag(&second), 35217);
        let example_com = parse_name("example.com.").expect("valid");
        assert_eq!(
            ds(&example_com, &first, DigestType::Sha256).to_string(),
            "3613 15 2 3AA5AB37EFCE57F737FC1627013FEE07BDF241BD10F3B1964AB55C78E79A304B"
        );
        assert_eq!(
            ds(&example_com, &second, DigestType::Sha256).to_string(),
            "35217 15 2 401781B934E392DE492EC77AE2E15D70F6575A1C0BC59C5275C04EBE80C6614C"
        );
        assert_eq!(
            ds(
                &parse_name("example.co.uk.").expect("valid"),
                &second,
                DigestType::Sha256
            )
            .to_string(),
            "35217 15 2 28525601C55CE99A840AD171CE8A295DED91CC18D2EBB902B542A5148A277C3D"
        );
        assert_eq!(
            ds(
                &parse_name("_signal.ns1.example.net.").expect("valid"),
                &first,
                DigestType::Sha256
            )
            .to_string(),
            "3613 15 2 06866E8C57A1DDBCC1552C8E8DB8BE69312BA4FC779DFE2FE455AC1336C2B9F9"
        );
    }

    #[test]
    fn bind_test_suite_key_tags() {
        assert_eq!(
            key_tag(&key(
                "257 3 13 yh1W7zgrqOsAZdKAh597SI7F2ye4ReiLmBNsDg+TDLJQ+3C2fXfrsQyYMvA+hmzTQdKX24zlVlD3YAVA6+VmrQ=="
            )),
            10491
        );
        assert_eq!(
            key_tag(&key(
                "256 3 15 ZLlkI5q8XDkP3D7Zxdbmuqh4yp90mbvdcNT0xSGLDtI="
            )),
            63663
        );
    }

    #[test]
    fn revoke_flag_changes_the_tag() {
        let mut k = key("257 3 15 l02Woi0iS8Aa25FQkUd9RMzZHJpBoRQwAQEX1SxZJA4=");
        let before = key_tag(&k);
        k.flags |= Dnskey::FLAG_REVOKE;
        assert_eq!(key_tag(&k), before.wrapping_add(128));
    }
}
