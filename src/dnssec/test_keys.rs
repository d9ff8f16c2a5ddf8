//! Ed25519 keys from fixed seeds, for unit tests that need real
//! signatures (RFC 8080) checked by the same code the daemon uses.

use hickory_proto::rr::Name;

use super::{PrivateMaterial, signer::SigningKey};
use crate::dns::Dnskey;

/// A key and what signs with it.
pub struct TestKey {
    /// Its DNSKEY RDATA.
    pub dnskey: Dnskey,
    /// Signs RRsets of `zone`.
    pub signer: SigningKey,
}

/// The Ed25519 key of `zone` from `seed` (every octet), with `flags` (256
/// ZSK, 257 KSK, +128 revoked).
pub fn ed25519(zone: &Name, seed: u8, flags: u16) -> TestKey {
    let seed = [seed; 32];
    let pair = ring::signature::Ed25519KeyPair::from_seed_unchecked(&seed).expect("seed");
    let dnskey = Dnskey {
        flags,
        protocol: 3,
        algorithm: 15,
        public_key: ring::signature::KeyPair::public_key(&pair)
            .as_ref()
            .to_vec(),
    };
    let material = PrivateMaterial::Fields(vec![("PrivateKey".into(), seed.to_vec())]);
    let signer = SigningKey::new(zone, &dnskey, &material).expect("signing key");
    TestKey { dnskey, signer }
}
