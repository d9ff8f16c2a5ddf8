//! TSIG (RFC 8945): keys from `tsig-keygen` files, signing and verifying
//! messages with HMAC-SHA256/384/512.
//!
//! A TSIG record is the last record of a message's additional section: owner
//! = key name, type 250, class ANY, TTL 0, RDATA = algorithm name, time
//! signed (48 bits), fudge, MAC, original ID, error, other data. The MAC
//! covers (for a response: the request's MAC first) the message without the
//! TSIG record, then the "TSIG variables" (§4.3.3); later messages of a
//! multi-message answer (zone transfers) cover the previous MAC, the message
//! and the timers only (§5.3.1).

mod keyfile;

use std::{fmt, path::Path};

use hickory_proto::rr::Name;
use ring::hmac;

pub use keyfile::{KeyFileError, parse_key_file};

use crate::dns::{name::canonical_wire, wire::CLASS_ANY};

/// TSIG record type.
pub const TSIG_TYPE: u16 = 250;
/// Allowed clock difference (RFC 8945 §10: 300 s recommended).
pub const FUDGE: u16 = 300;

/// TSIG error codes (RFC 8945 §3).
pub mod error {
    /// The MAC does not verify.
    pub const BADSIG: u16 = 16;
    /// The key is unknown (or the algorithm wrong).
    pub const BADKEY: u16 = 17;
    /// The time is outside the fudge.
    pub const BADTIME: u16 = 18;
}

/// The mnemonic of a TSIG error code.
pub fn error_name(code: u16) -> String {
    match code {
        error::BADSIG => "BADSIG".into(),
        error::BADKEY => "BADKEY".into(),
        error::BADTIME => "BADTIME".into(),
        22 => "BADTRUNC".into(),
        other => format!("TSIG error {other}"),
    }
}

/// HMAC algorithms we support.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// hmac-sha256.
    HmacSha256,
    /// hmac-sha384.
    HmacSha384,
    /// hmac-sha512.
    HmacSha512,
}

impl Algorithm {
    /// From a name like `hmac-sha256` (trailing dot optional, any case).
    pub fn from_name(text: &str) -> Option<Self> {
        match text.trim_end_matches('.').to_ascii_lowercase().as_str() {
            "hmac-sha256" => Some(Algorithm::HmacSha256),
            "hmac-sha384" => Some(Algorithm::HmacSha384),
            "hmac-sha512" => Some(Algorithm::HmacSha512),
            _ => None,
        }
    }

    /// The algorithm's domain name.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::HmacSha256 => "hmac-sha256.",
            Algorithm::HmacSha384 => "hmac-sha384.",
            Algorithm::HmacSha512 => "hmac-sha512.",
        }
    }

    fn ring(self) -> hmac::Algorithm {
        match self {
            Algorithm::HmacSha256 => hmac::HMAC_SHA256,
            Algorithm::HmacSha384 => hmac::HMAC_SHA384,
            Algorithm::HmacSha512 => hmac::HMAC_SHA512,
        }
    }

    fn wire(self) -> Vec<u8> {
        let mut out = Vec::new();
        for label in self.name().trim_end_matches('.').split('.') {
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
        out.push(0);
        out
    }
}

/// A TSIG key.
#[derive(Clone)]
pub struct Key {
    /// Its name (lower case).
    pub name: Name,
    /// Its algorithm.
    pub algorithm: Algorithm,
    secret: hmac::Key,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Key({} {:?})",
            crate::dns::name::display(&self.name),
            self.algorithm
        )
    }
}

impl Key {
    /// Octets of the TSIG record this key adds to an answer (no other data):
    /// what a UDP answer must leave free under the client's size limit.
    pub fn record_len(&self) -> usize {
        let mac = self.algorithm.ring().digest_algorithm().output_len();
        // The algorithm's wire name is its dotted text plus the length octet
        // of the first label. Then: owner, type/class/TTL/RDLENGTH; time
        // (6), fudge, MAC size, MAC, original ID, error, other length (RFC
        // 8945 §4.2).
        let algorithm = self.algorithm.name().len() + 1;
        crate::dns::name::wire_len(&self.name) + 10 + algorithm + 6 + 2 + 2 + mac + 6
    }

    /// A key from its parts.
    pub fn new(name: Name, algorithm: Algorithm, secret: &[u8]) -> Self {
        Key {
            name: name.to_lowercase(),
            algorithm,
            secret: hmac::Key::new(algorithm.ring(), secret),
        }
    }
}

/// Every key of a config, by name.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    keys: Vec<Key>,
}

impl Keyring {
    /// Loads every key from `files`.
    pub fn load(files: &[impl AsRef<Path>]) -> Result<Self, KeyFileError> {
        let mut keys: Vec<Key> = Vec::new();
        for file in files {
            for key in parse_key_file(file.as_ref())? {
                keys.retain(|k| k.name != key.name);
                keys.push(key);
            }
        }
        Ok(Keyring { keys })
    }

    /// A keyring of the given keys.
    pub fn from_keys(keys: Vec<Key>) -> Self {
        Keyring { keys }
    }

    /// The key called `name`.
    pub fn get(&self, name: &Name) -> Option<&Key> {
        self.keys.iter().find(|k| &k.name == name)
    }

    /// Names of all keys.
    pub fn names(&self) -> impl Iterator<Item = &Name> {
        self.keys.iter().map(|k| &k.name)
    }
}

/// The TSIG record of a message, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tsig {
    /// Key name (lower case).
    pub key_name: Name,
    /// Algorithm name as sent.
    pub algorithm: Option<Algorithm>,
    /// Time signed.
    pub time_signed: u64,
    /// Fudge.
    pub fudge: u16,
    /// The MAC.
    pub mac: Vec<u8>,
    /// Original message ID.
    pub original_id: u16,
    /// Error field.
    pub error: u16,
    /// Other data (the server's time on BADTIME).
    pub other: Vec<u8>,
    /// Offset of the TSIG record in the message.
    pub offset: usize,
}

/// Finds and decodes the TSIG record, which must be the last record of the
/// message. `None` when there is none; `Err` when it is malformed.
pub fn find(message: &[u8]) -> Result<Option<Tsig>, &'static str> {
    let arcount = message
        .get(10..12)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
        .ok_or("short")?;
    if arcount == 0 {
        return Ok(None);
    }
    // Walk every record to find where the last one starts.
    let counts: Vec<u16> = (0..4)
        .map(|i| u16::from_be_bytes([message[4 + 2 * i], message[5 + 2 * i]]))
        .collect();
    let mut at = 12;
    for _ in 0..counts[0] {
        at = skip_name(message, at).ok_or("bad question")? + 4;
    }
    let total = u32::from(counts[1]) + u32::from(counts[2]) + u32::from(counts[3]);
    let mut last = at;
    for _ in 0..total {
        last = at;
        let after = skip_name(message, at).ok_or("bad record")?;
        let rdlen = message.get(after + 8..after + 10).ok_or("short record")?;
        at = after + 10 + usize::from(u16::from_be_bytes([rdlen[0], rdlen[1]]));
        if at > message.len() {
            return Err("record past the end");
        }
    }
    let owner_end = skip_name(message, last).ok_or("bad TSIG owner")?;
    let rtype = u16::from_be_bytes([message[owner_end], message[owner_end + 1]]);
    if rtype != TSIG_TYPE {
        return Ok(None);
    }
    let key_name = read_name(message, last).ok_or("bad TSIG owner")?;
    let rdata = &message[owner_end + 10..at];
    let alg_end = skip_name(rdata, 0).ok_or("bad TSIG algorithm")?;
    let alg_name = read_name(rdata, 0).ok_or("bad TSIG algorithm")?;
    let fixed = rdata.get(alg_end..alg_end + 10).ok_or("short TSIG")?;
    let time_signed = u64::from_be_bytes([
        0, 0, fixed[0], fixed[1], fixed[2], fixed[3], fixed[4], fixed[5],
    ]);
    let fudge = u16::from_be_bytes([fixed[6], fixed[7]]);
    let mac_len = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
    let mac = rdata
        .get(alg_end + 10..alg_end + 10 + mac_len)
        .ok_or("short TSIG MAC")?;
    let rest = rdata.get(alg_end + 10 + mac_len..).ok_or("short TSIG")?;
    if rest.len() < 6 {
        return Err("short TSIG");
    }
    let other_len = usize::from(u16::from_be_bytes([rest[4], rest[5]]));
    let other = rest.get(6..6 + other_len).ok_or("short TSIG other data")?;
    Ok(Some(Tsig {
        key_name: key_name.to_lowercase(),
        algorithm: Algorithm::from_name(&alg_name.to_ascii()),
        time_signed,
        fudge,
        mac: mac.to_vec(),
        original_id: u16::from_be_bytes([rest[0], rest[1]]),
        error: u16::from_be_bytes([rest[2], rest[3]]),
        other: other.to_vec(),
        offset: last,
    }))
}

/// Why a request's TSIG was not accepted: the error to answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyError {
    /// Unknown key or algorithm: BADKEY.
    BadKey,
    /// Wrong MAC: BADSIG.
    BadSig,
    /// Outside the fudge: BADTIME.
    BadTime,
}

impl VerifyError {
    /// The TSIG error code.
    pub fn code(self) -> u16 {
        match self {
            VerifyError::BadKey => error::BADKEY,
            VerifyError::BadSig => error::BADSIG,
            VerifyError::BadTime => error::BADTIME,
        }
    }
}

/// The message without its TSIG record, ARCOUNT decremented and the
/// original ID restored (the data a MAC covers).
fn stripped(message: &[u8], tsig: &Tsig) -> Vec<u8> {
    let mut out = message[..tsig.offset].to_vec();
    let arcount = u16::from_be_bytes([out[10], out[11]]).saturating_sub(1);
    out[10..12].copy_from_slice(&arcount.to_be_bytes());
    out[0..2].copy_from_slice(&tsig.original_id.to_be_bytes());
    out
}

/// TSIG variables (RFC 8945 §4.3.3): key name, class, TTL, algorithm, time,
/// fudge, error, other data.
fn variables(key: &Key, time_signed: u64, fudge: u16, error: u16, other: &[u8]) -> Vec<u8> {
    let mut out = canonical_wire(&key.name);
    out.extend_from_slice(&CLASS_ANY.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend(key.algorithm.wire());
    out.extend_from_slice(&time_signed.to_be_bytes()[2..]);
    out.extend_from_slice(&fudge.to_be_bytes());
    out.extend_from_slice(&error.to_be_bytes());
    out.extend_from_slice(&(other.len() as u16).to_be_bytes());
    out.extend_from_slice(other);
    out
}

/// Verifies a request signed with a key of `keyring` at time `now` (Unix
/// seconds); returns the key and the request's MAC (needed to sign the
/// answer).
pub fn verify_request<'k>(
    keyring: &'k Keyring,
    message: &[u8],
    tsig: &Tsig,
    now: u64,
) -> Result<(&'k Key, Vec<u8>), VerifyError> {
    let key = keyring
        .get(&tsig.key_name)
        .filter(|k| Some(k.algorithm) == tsig.algorithm)
        .ok_or(VerifyError::BadKey)?;
    let mut data = stripped(message, tsig);
    data.extend(variables(
        key,
        tsig.time_signed,
        tsig.fudge,
        tsig.error,
        &tsig.other,
    ));
    hmac::verify(&key.secret, &data, &tsig.mac).map_err(|_| VerifyError::BadSig)?;
    if now.abs_diff(tsig.time_signed) > u64::from(tsig.fudge) {
        return Err(VerifyError::BadTime);
    }
    Ok((key, tsig.mac.clone()))
}

/// Appends a TSIG record to `message` (a request when `request_mac` is
/// `None`, else the answer to that request), with `error`; returns the MAC
/// for chaining later messages.
pub fn sign(
    message: &mut Vec<u8>,
    key: &Key,
    request_mac: Option<&[u8]>,
    now: u64,
    error: u16,
) -> Vec<u8> {
    let other: Vec<u8> = if error == error::BADTIME {
        now.to_be_bytes()[2..].to_vec()
    } else {
        Vec::new()
    };
    let mut data = Vec::with_capacity(message.len() + 128);
    if let Some(mac) = request_mac {
        data.extend_from_slice(&(mac.len() as u16).to_be_bytes());
        data.extend_from_slice(mac);
    }
    data.extend_from_slice(message);
    data.extend(variables(key, now, FUDGE, error, &other));
    let mac = hmac::sign(&key.secret, &data).as_ref().to_vec();
    append(message, key, now, &mac, error, &other);
    mac
}

/// Signs a later message of a multi-message answer (RFC 8945 §5.3.1): the
/// MAC covers the previous MAC, the message and the timers.
pub fn sign_continuation(message: &mut Vec<u8>, key: &Key, prior_mac: &[u8], now: u64) -> Vec<u8> {
    let mut data = Vec::with_capacity(message.len() + 80);
    data.extend_from_slice(&(prior_mac.len() as u16).to_be_bytes());
    data.extend_from_slice(prior_mac);
    data.extend_from_slice(message);
    data.extend_from_slice(&now.to_be_bytes()[2..]);
    data.extend_from_slice(&FUDGE.to_be_bytes());
    let mac = hmac::sign(&key.secret, &data).as_ref().to_vec();
    append(message, key, now, &mac, 0, &[]);
    mac
}

/// Verifies the TSIG of a response to a request whose MAC was `request_mac`.
pub fn verify_response(key: &Key, message: &[u8], tsig: &Tsig, request_mac: &[u8]) -> bool {
    let mut data = Vec::new();
    data.extend_from_slice(&(request_mac.len() as u16).to_be_bytes());
    data.extend_from_slice(request_mac);
    data.extend(stripped(message, tsig));
    data.extend(variables(
        key,
        tsig.time_signed,
        tsig.fudge,
        tsig.error,
        &tsig.other,
    ));
    hmac::verify(&key.secret, &data, &tsig.mac).is_ok()
}

/// Appends the unsigned TSIG record of an error answer (BADKEY, BADSIG,
/// BADTIME: RFC 8945 §5.2): the request's key and algorithm, no MAC.
pub fn append_error(message: &mut Vec<u8>, request: &Tsig, error: u16, now: u64) {
    message.extend(canonical_wire(&request.key_name));
    message.extend_from_slice(&TSIG_TYPE.to_be_bytes());
    message.extend_from_slice(&CLASS_ANY.to_be_bytes());
    message.extend_from_slice(&0u32.to_be_bytes());
    let mut rdata = match request.algorithm {
        Some(alg) => alg.wire(),
        None => vec![0],
    };
    rdata.extend_from_slice(&request.time_signed.to_be_bytes()[2..]);
    rdata.extend_from_slice(&request.fudge.to_be_bytes());
    rdata.extend_from_slice(&0u16.to_be_bytes());
    rdata.extend_from_slice(&request.original_id.to_be_bytes());
    rdata.extend_from_slice(&error.to_be_bytes());
    if error == error::BADTIME {
        rdata.extend_from_slice(&6u16.to_be_bytes());
        rdata.extend_from_slice(&now.to_be_bytes()[2..]);
    } else {
        rdata.extend_from_slice(&0u16.to_be_bytes());
    }
    message.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    message.extend(rdata);
    let arcount = u16::from_be_bytes([message[10], message[11]]) + 1;
    message[10..12].copy_from_slice(&arcount.to_be_bytes());
}

fn append(message: &mut Vec<u8>, key: &Key, now: u64, mac: &[u8], error: u16, other: &[u8]) {
    let id = [message[0], message[1]];
    message.extend(canonical_wire(&key.name));
    message.extend_from_slice(&TSIG_TYPE.to_be_bytes());
    message.extend_from_slice(&CLASS_ANY.to_be_bytes());
    message.extend_from_slice(&0u32.to_be_bytes());
    let mut rdata = key.algorithm.wire();
    rdata.extend_from_slice(&now.to_be_bytes()[2..]);
    rdata.extend_from_slice(&FUDGE.to_be_bytes());
    rdata.extend_from_slice(&(mac.len() as u16).to_be_bytes());
    rdata.extend_from_slice(mac);
    rdata.extend_from_slice(&id);
    rdata.extend_from_slice(&error.to_be_bytes());
    rdata.extend_from_slice(&(other.len() as u16).to_be_bytes());
    rdata.extend_from_slice(other);
    message.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    message.extend(rdata);
    let arcount = u16::from_be_bytes([message[10], message[11]]) + 1;
    message[10..12].copy_from_slice(&arcount.to_be_bytes());
}

fn skip_name(data: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *data.get(at)?;
        if len == 0 {
            return Some(at + 1);
        }
        if len & 0xc0 == 0xc0 {
            data.get(at + 1)?;
            return Some(at + 2);
        }
        if len > 63 {
            return None;
        }
        at += 1 + usize::from(len);
    }
}

/// Reads a (possibly compressed) name.
fn read_name(data: &[u8], mut at: usize) -> Option<Name> {
    let mut labels: Vec<&[u8]> = Vec::new();
    let mut jumps = 0;
    loop {
        let len = *data.get(at)?;
        if len == 0 {
            break;
        }
        if len & 0xc0 == 0xc0 {
            jumps += 1;
            if jumps > 16 {
                return None;
            }
            at = usize::from(u16::from_be_bytes([len & 0x3f, *data.get(at + 1)?]));
            continue;
        }
        labels.push(data.get(at + 1..at + 1 + usize::from(len))?);
        at += 1 + usize::from(len);
    }
    let mut name = Name::from_labels(labels).ok()?;
    name.set_fqdn(true);
    Some(name)
}

#[cfg(test)]
mod tests;
