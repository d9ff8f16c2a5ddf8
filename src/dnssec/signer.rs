//! Signing keys from BIND `.private` files, and RRSIGs over one RRset at a
//! time (RFC 4034 §3.1.8.1).
//!
//! Key material (signed with `ring`): ECDSA `PrivateKey:` is the
//! scalar and the DNSKEY key field is x||y (RFC 6605); Ed25519 `PrivateKey:` is
//! the seed (RFC 8080); RSA comes as its CRT components and the DNSKEY key
//! field is exponent length, exponent, modulus (RFC 3110). Signatures are in
//! DNSSEC encoding: r||s for ECDSA, PKCS#1 v1.5 for RSA.

use std::fmt;

use hickory_proto::rr::{Name, RecordType};
use ring::{
    rand::SystemRandom,
    signature::{self, EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair},
};

use super::{Algorithm, PrivateMaterial, key_tag};
use crate::dns::{Dnskey, Rrsig, name::canonical_wire, wire};

/// Why a key cannot sign.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignerError {
    /// No usable private key material.
    #[error("key {key}: {why}")]
    NoPrivateKey {
        /// `zone/alg/tag`.
        key: String,
        /// What is missing.
        why: String,
    },
    /// The private key does not match the DNSKEY, or ring refused it.
    #[error("key {key}: private key rejected: {why}")]
    Rejected {
        /// `zone/alg/tag`.
        key: String,
        /// ring's reason.
        why: String,
    },
    /// The algorithm cannot sign here (ring lacks Ed448, RSA/SHA-1).
    #[error("key {key}: signalbox cannot sign with {algorithm}")]
    Unsupported {
        /// `zone/alg/tag`.
        key: String,
        /// The algorithm.
        algorithm: Algorithm,
    },
    /// The DNSKEY's algorithm number is not one signalbox knows.
    #[error("key {key}: unknown DNSKEY algorithm {number}")]
    UnknownAlgorithm {
        /// `zone/alg/tag`.
        key: String,
        /// The algorithm number.
        number: u8,
    },
    /// Signing failed.
    #[error("signing failed with key {key}")]
    Failed {
        /// `zone/alg/tag`.
        key: String,
    },
}

/// `zone/alg/tag`, how BIND names a key in logs.
pub fn key_id(zone: &Name, algorithm: Algorithm, tag: u16) -> String {
    format!(
        "{}/{}/{tag}",
        crate::dns::name::display(zone),
        algorithm.mnemonic()
    )
}

enum Pair {
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
    Rsa(RsaKeyPair, &'static dyn signature::RsaEncoding),
}

/// Why private material does not make a key pair (the caller adds the key).
enum PairError {
    /// A component is missing.
    NoField(&'static str),
    /// ring refused the material, or it does not match the DNSKEY.
    Rejected(String),
    /// ring cannot sign with this algorithm.
    Unsupported(Algorithm),
}

impl From<ring::error::KeyRejected> for PairError {
    fn from(e: ring::error::KeyRejected) -> Self {
        PairError::Rejected(e.to_string())
    }
}

/// The component `name` of `material`.
fn field<'m>(material: &'m PrivateMaterial, name: &'static str) -> Result<&'m [u8], PairError> {
    material.field(name).ok_or(PairError::NoField(name))
}

impl Pair {
    /// ECDSA (RFC 6605 §4): the private scalar, and the DNSKEY's x||y as an
    /// uncompressed point.
    fn ecdsa(
        algorithm: Algorithm,
        public: &[u8],
        material: &PrivateMaterial,
        rng: &SystemRandom,
    ) -> Result<Self, PairError> {
        let alg = if algorithm == Algorithm::EcdsaP256Sha256 {
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING
        } else {
            &signature::ECDSA_P384_SHA384_FIXED_SIGNING
        };
        let mut point = Vec::with_capacity(public.len() + 1);
        point.push(4);
        point.extend_from_slice(public);
        let scalar = field(material, "PrivateKey")?;
        Ok(Pair::Ecdsa(EcdsaKeyPair::from_private_key_and_public_key(
            alg, scalar, &point, rng,
        )?))
    }

    /// Ed25519 (RFC 8080 §3): the seed and the public key.
    fn ed25519(public: &[u8], material: &PrivateMaterial) -> Result<Self, PairError> {
        let seed = field(material, "PrivateKey")?;
        Ok(Pair::Ed25519(Ed25519KeyPair::from_seed_and_public_key(
            seed, public,
        )?))
    }

    /// RSA (RFC 3110, RFC 5702): the CRT components, checked against the
    /// DNSKEY's exponent and modulus.
    fn rsa(
        algorithm: Algorithm,
        public: &[u8],
        material: &PrivateMaterial,
    ) -> Result<Self, PairError> {
        let components = ring::rsa::KeyPairComponents {
            public_key: ring::rsa::PublicKeyComponents {
                n: strip_zeros(field(material, "Modulus")?),
                e: strip_zeros(field(material, "PublicExponent")?),
            },
            d: field(material, "PrivateExponent")?,
            p: field(material, "Prime1")?,
            q: field(material, "Prime2")?,
            dP: field(material, "Exponent1")?,
            dQ: field(material, "Exponent2")?,
            qInv: field(material, "Coefficient")?,
        };
        let pair = RsaKeyPair::from_components(&components)?;
        if rsa_public_key(&pair) != public {
            return Err(PairError::Rejected(
                "the .private modulus/exponent do not match the DNSKEY".into(),
            ));
        }
        let encoding: &'static dyn signature::RsaEncoding = if algorithm == Algorithm::RsaSha256 {
            &signature::RSA_PKCS1_SHA256
        } else {
            &signature::RSA_PKCS1_SHA512
        };
        Ok(Pair::Rsa(pair, encoding))
    }
}

/// A private key able to make RRSIGs for its zone.
pub struct SigningKey {
    /// The zone (signer name).
    pub zone: Name,
    /// Its DNSKEY.
    pub dnskey: Dnskey,
    /// Its key tag.
    pub tag: u16,
    /// Its algorithm.
    pub algorithm: Algorithm,
    pair: Pair,
    rng: SystemRandom,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SigningKey({}/{}/{})",
            crate::dns::name::display(&self.zone),
            self.algorithm.mnemonic(),
            self.tag
        )
    }
}

impl SigningKey {
    /// Builds the signing key of `zone` for `dnskey` from its private
    /// `material`, checking that the two halves belong together.
    pub fn new(
        zone: &Name,
        dnskey: &Dnskey,
        material: &PrivateMaterial,
    ) -> Result<Self, SignerError> {
        let tag = key_tag(dnskey);
        let Some(algorithm) = Algorithm::from_number(dnskey.algorithm) else {
            return Err(SignerError::UnknownAlgorithm {
                key: format!(
                    "{}/{}/{tag}",
                    crate::dns::name::display(zone),
                    dnskey.algorithm
                ),
                number: dnskey.algorithm,
            });
        };
        let id = key_id(zone, algorithm, tag);
        let no_key = |why: String| SignerError::NoPrivateKey {
            key: id.clone(),
            why,
        };
        match material {
            PrivateMaterial::Hsm => return Err(no_key("key is in an HSM (Engine/Label)".into())),
            PrivateMaterial::External => {
                return Err(no_key("External: key without private material".into()));
            }
            PrivateMaterial::Fields(_) => {}
        }
        let rng = SystemRandom::new();
        let public = &dnskey.public_key;
        let pair = match algorithm {
            Algorithm::EcdsaP256Sha256 | Algorithm::EcdsaP384Sha384 => {
                Pair::ecdsa(algorithm, public, material, &rng)
            }
            Algorithm::Ed25519 => Pair::ed25519(public, material),
            Algorithm::RsaSha256 | Algorithm::RsaSha512 => Pair::rsa(algorithm, public, material),
            other => Err(PairError::Unsupported(other)),
        }
        .map_err(|e| match e {
            PairError::NoField(name) => no_key(format!("no {name}: in .private")),
            PairError::Rejected(why) => SignerError::Rejected {
                key: id.clone(),
                why,
            },
            PairError::Unsupported(algorithm) => SignerError::Unsupported {
                key: id.clone(),
                algorithm,
            },
        })?;
        Ok(SigningKey {
            zone: zone.clone(),
            dnskey: dnskey.clone(),
            tag,
            algorithm,
            pair,
            rng,
        })
    }

    /// Signs `data` with the key.
    pub fn sign_bytes(&self, data: &[u8]) -> Result<Vec<u8>, SignerError> {
        let failed = || SignerError::Failed {
            key: format!("{}/{}", self.algorithm.mnemonic(), self.tag),
        };
        match &self.pair {
            Pair::Ecdsa(pair) => pair
                .sign(&self.rng, data)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| failed()),
            Pair::Ed25519(pair) => Ok(pair.sign(data).as_ref().to_vec()),
            Pair::Rsa(pair, encoding) => {
                let mut sig = vec![0u8; pair.public().modulus_len()];
                pair.sign(*encoding, &self.rng, data, &mut sig)
                    .map_err(|_| failed())?;
                Ok(sig)
            }
        }
    }

    /// Makes the RRSIG for one RRset: `rdatas` are the records' wire RDATA in
    /// canonical form; they are sorted and de-duplicated here.
    pub fn sign_rrset(
        &self,
        owner: &Name,
        rtype: RecordType,
        ttl: u32,
        rdatas: &[Vec<u8>],
        inception: u32,
        expiration: u32,
    ) -> Result<Rrsig, SignerError> {
        let mut sorted: Vec<&[u8]> = rdatas.iter().map(Vec::as_slice).collect();
        sorted.sort();
        sorted.dedup();
        let owner = canonical_wire(owner);
        self.sign_wire(&owner, rtype, ttl, &sorted, inception, expiration)
    }
}

impl SigningKey {
    /// [`Self::sign_rrset`] for an owner in lower-case wire form and RDATA
    /// already in canonical order without duplicates (the zone store's
    /// form): no conversions on the hot path of signing a large zone.
    pub fn sign_wire(
        &self,
        owner: &[u8],
        rtype: RecordType,
        ttl: u32,
        rdatas: &[&[u8]],
        inception: u32,
        expiration: u32,
    ) -> Result<Rrsig, SignerError> {
        let mut rrsig = Rrsig {
            type_covered: rtype,
            algorithm: self.algorithm.number(),
            labels: wire_labels(owner),
            original_ttl: ttl,
            expiration,
            inception,
            key_tag: self.tag,
            signer: self.zone.clone(),
            signature: Vec::new(),
        };
        let mut data = rrsig.header_wire();
        push_records(&mut data, owner, rtype, ttl, rdatas);
        rrsig.signature = self.sign_bytes(&data)?;
        Ok(rrsig)
    }
}

/// Labels field of an RRSIG for a wire owner name.
fn wire_labels(wire: &[u8]) -> u8 {
    let mut count = 0u8;
    let mut at = 0;
    let mut first = true;
    while let Some(&len) = wire.get(at) {
        if len == 0 {
            break;
        }
        if !(first && len == 1 && wire.get(at + 1) == Some(&b'*')) {
            count += 1;
        }
        first = false;
        at += 1 + usize::from(len);
    }
    count
}

/// Labels field of an RRSIG: owner labels without the root and a leading `*`.
pub fn owner_labels(owner: &Name) -> u8 {
    let wildcard = owner.iter().next().is_some_and(|l| l == b"*");
    owner.iter().count() as u8 - u8::from(wildcard)
}

/// The data an RRSIG signs (RFC 4034 §3.1.8.1): RRSIG RDATA without the
/// signature, then every RR in canonical form and order.
pub fn signed_data(rrsig: &Rrsig, owner: &Name, rdatas: &[Vec<u8>]) -> Vec<u8> {
    let mut sorted: Vec<&[u8]> = rdatas.iter().map(Vec::as_slice).collect();
    sorted.sort();
    sorted.dedup();
    let mut data = rrsig.header_wire();
    let owner = canonical_wire(owner);
    push_records(
        &mut data,
        &owner,
        rrsig.type_covered,
        rrsig.original_ttl,
        &sorted,
    );
    data
}

/// The RRset part of the signed data (RFC 4034 §3.1.8.1): each record as
/// `owner type class ttl rdlength rdata`, in the order given.
fn push_records(data: &mut Vec<u8>, owner: &[u8], rtype: RecordType, ttl: u32, rdatas: &[&[u8]]) {
    for rdata in rdatas {
        data.extend_from_slice(owner);
        wire::put_record_body(data, u16::from(rtype), ttl, rdata);
    }
}

fn strip_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

/// RFC 3110 public key field of an RSA key pair.
fn rsa_public_key(pair: &RsaKeyPair) -> Vec<u8> {
    use ring::rsa::PublicKeyComponents;
    let components: PublicKeyComponents<Vec<u8>> = pair.public().into();
    let e = strip_zeros(&components.e);
    let mut out = Vec::new();
    if e.len() < 256 {
        out.push(e.len() as u8);
    } else {
        out.push(0);
        wire::put_u16(&mut out, e.len() as u16);
    }
    out.extend_from_slice(e);
    out.extend_from_slice(strip_zeros(&components.n));
    out
}

/// The keys of `keys` with a signature in `rrsigs` over the RRset
/// `owner`/`rtype` (`rdatas`) that is current at `now` (RFC 4035 §5.3.1:
/// inception <= now <= expiration, in serial number arithmetic) and
/// verifies (§5.3.3). The signer name must be `owner`: the RRsets checked
/// this way are at a zone apex.
pub fn signing_keys<'a>(
    owner: &Name,
    rtype: RecordType,
    rdatas: &[Vec<u8>],
    rrsigs: &[Rrsig],
    keys: &'a [Dnskey],
    now: jiff::Timestamp,
) -> Vec<&'a Dnskey> {
    let now = now.as_second() as u32;
    let current = |inception: u32, expiration: u32| {
        now.wrapping_sub(inception) < 0x8000_0000 && expiration.wrapping_sub(now) < 0x8000_0000
    };
    keys.iter()
        .filter(|key| {
            rrsigs.iter().any(|sig| {
                sig.type_covered == rtype
                    && sig.signer == *owner
                    && sig.key_tag == key_tag(key)
                    && sig.algorithm == key.algorithm
                    && current(sig.inception, sig.expiration)
                    && verify(sig, owner, rdatas, key)
            })
        })
        .collect()
}

/// Verifies an RRSIG over an RRset with a DNSKEY (used by tests and as a
/// self-check after signing).
pub fn verify(rrsig: &Rrsig, owner: &Name, rdatas: &[Vec<u8>], key: &Dnskey) -> bool {
    let data = signed_data(rrsig, owner, rdatas);
    let Some(alg) = Algorithm::from_number(key.algorithm) else {
        return false;
    };
    match alg {
        Algorithm::EcdsaP256Sha256 | Algorithm::EcdsaP384Sha384 => {
            let verifier = if alg == Algorithm::EcdsaP256Sha256 {
                &signature::ECDSA_P256_SHA256_FIXED
            } else {
                &signature::ECDSA_P384_SHA384_FIXED
            };
            let mut point = vec![4];
            point.extend_from_slice(&key.public_key);
            signature::UnparsedPublicKey::new(verifier, point)
                .verify(&data, &rrsig.signature)
                .is_ok()
        }
        Algorithm::Ed25519 => {
            signature::UnparsedPublicKey::new(&signature::ED25519, &key.public_key)
                .verify(&data, &rrsig.signature)
                .is_ok()
        }
        Algorithm::RsaSha256 | Algorithm::RsaSha512 => {
            let Some((e, n)) =
                super::rsa_exponent_and_modulus(&key.public_key).filter(|(_, n)| !n.is_empty())
            else {
                return false;
            };
            let params = if alg == Algorithm::RsaSha256 {
                &signature::RSA_PKCS1_2048_8192_SHA256
            } else {
                &signature::RSA_PKCS1_2048_8192_SHA512
            };
            signature::RsaPublicKeyComponents { n, e }
                .verify(params, &data, &rrsig.signature)
                .is_ok()
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        dns::{Ds, parse_name},
        dnssec::rfc8080,
    };

    /// The RFC 8080 key, signing for `zone`.
    fn rfc8080_key(zone: &str) -> SigningKey {
        let zone = parse_name(zone).expect("valid");
        SigningKey::new(&zone, &rfc8080::dnskey(), &rfc8080::material()).expect("key")
    }

    #[test]
    fn rfc8080_mx_signature_is_byte_exact() {
        let key = rfc8080_key("example.com.");
        // MX 10 mail.example.com.
        let mx = [&[0u8, 10][..], b"\x04mail\x07example\x03com\x00"].concat();
        let rrsig = key
            .sign_rrset(
                &parse_name("example.com.").expect("valid"),
                RecordType::MX,
                3600,
                std::slice::from_ref(&mx),
                1_438_207_200,
                1_440_021_600,
            )
            .expect("signed");
        assert_eq!(
            data_encoding::BASE64.encode(&rrsig.signature),
            "oL9krJun7xfBOIWcGHi7mag5/hdZrKWw15jPGrHpjQeRAvTdszaPD+QLs3fx8A4M3e23mRZ9VrbpMngwcrqNAg=="
        );
        assert_eq!(rrsig.labels, 2);
        assert!(verify(
            &rrsig,
            &parse_name("example.com.").expect("valid"),
            &[mx],
            &key.dnskey
        ));
    }

    #[test]
    fn spec_signalling_vector_is_byte_exact() {
        let key = rfc8080_key("_signal.ns1.example.net.");
        let owner = parse_name("_dsboot.example.co.uk._signal.ns1.example.net.").expect("valid");
        let cds = Ds::from_text(
            "35217 15 2 28525601C55CE99A840AD171CE8A295DED91CC18D2EBB902B542A5148A277C3D",
        )
        .expect("valid");
        let inception = 1_735_689_600; // 20250101000000
        let expiration = 1_736_899_200; // 20250115000000
        let rrsig = key
            .sign_rrset(
                &owner,
                RecordType::CDS,
                3600,
                &[cds.to_wire()],
                inception,
                expiration,
            )
            .expect("signed");
        assert_eq!(rrsig.labels, 8);
        assert_eq!(
            rrsig.to_string(),
            "CDS 15 8 3600 20250115000000 20250101000000 3613 _signal.ns1.example.net. \
             D9OfuL1Or0AnaFk9Hb3vdW8a+IqKmtuWg4duCsJ2/kkX0IdnoELdhvpCCSyzp7Iy8amcxC3pDa4QJuqj8bI1CA=="
        );
        let cdnskey = Dnskey::from_text("257 3 15 zPnZ/QwEe7S8C5SPz2OfS5RR40ATk2/rYnE9xHIEijs=")
            .expect("valid");
        let rrsig = key
            .sign_rrset(
                &owner,
                RecordType::CDNSKEY,
                3600,
                &[cdnskey.to_wire()],
                inception,
                expiration,
            )
            .expect("signed");
        assert!(rrsig.to_string().ends_with(
            "0AhUfVvk17J6K72e2ToAcmJZ9rvyVihdsBgDC+m5u279ikb35ogYn3KoyXLsm4Oov4iC84HBM35LySAdmPZhAA=="
        ));
    }

    #[test]
    fn ecdsa_signatures_verify_and_short_scalars_load() {
        let dnskey = Dnskey::from_text(
            "257 3 13 GojIhhXUN/u4v54ZQqGSnyhWJwaubCvTmeexv7bR6edbkrSqQpF64cYbcB7wNcP+e+MAnLr+Wi9xMWyQLc8NAA==",
        )
        .expect("valid");
        let scalar = data_encoding::BASE64
            .decode(b"GU6SnQ/Ou+xC5RumuIUIuJZteXT2z0O/ok1s38Et6mQ=")
            .expect("base64");
        let material = PrivateMaterial::Fields(vec![("PrivateKey".to_string(), scalar)]);
        let zone = parse_name("example.net.").expect("valid");
        let signing = SigningKey::new(&zone, &dnskey, &material).expect("key");
        let owner = parse_name("www.example.net.").expect("valid");
        let a = vec![192, 0, 2, 1];
        let rrsig = signing
            .sign_rrset(
                &owner,
                RecordType::A,
                3600,
                std::slice::from_ref(&a),
                1_281_607_479,
                1_284_026_679,
            )
            .expect("signed");
        assert_eq!(rrsig.signature.len(), 64);
        assert!(verify(&rrsig, &owner, std::slice::from_ref(&a), &dnskey));
        assert!(!verify(&rrsig, &owner, &[vec![192, 0, 2, 2]], &dnskey));
        // The RFC 6605 example signature verifies with our verifier too.
        let mut rfc = rrsig.clone();
        rfc.signature = data_encoding::BASE64
            .decode(b"qx6wLYqmh+l9oCKTN6qIc+bw6ya+KJ8oMz0YP107epXAyGmt+3SNruPFKG7tZoLBLlUzGGus7ZwmwWep666VCw==")
            .expect("base64");
        assert!(verify(&rfc, &owner, &[a], &dnskey));
    }

    #[test]
    fn keys_without_private_material_cannot_sign() {
        let zone = parse_name("example.com.").expect("valid");
        for material in [
            PrivateMaterial::Hsm,
            PrivateMaterial::External,
            PrivateMaterial::Fields(Vec::new()),
        ] {
            assert!(matches!(
                SigningKey::new(&zone, &rfc8080::dnskey(), &material),
                Err(SignerError::NoPrivateKey { .. })
            ));
        }
    }

    #[test]
    fn a_private_key_of_another_dnskey_is_rejected() {
        let zone = parse_name("example.com.").expect("valid");
        let other = Dnskey::from_text("257 3 15 xKXn8Xu+cmU6BmfE9ac+u8fVZhN5MvXBhdaWxJcHcKk=")
            .expect("valid");
        assert!(matches!(
            SigningKey::new(&zone, &other, &rfc8080::material()),
            Err(SignerError::Rejected { .. })
        ));
    }
}
