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

#[cfg(any(fuzzing, test))]
pub(crate) use keyfile::parse_key_text;
pub use keyfile::{KeyFileError, parse_key_file};

use crate::dns::{
    message::read_name,
    name::canonical_wire,
    wire::{self, CLASS_ANY},
};

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
            if crate::state::readable_by_others(file.as_ref()) {
                tracing::warn!(
                    file = %file.as_ref().display(),
                    "TSIG key file is readable by every user of this machine: chmod 600 (or 640 for a group signalbox is in)"
                );
            }
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
    let arcount = wire::u16_at(message, 10).ok_or("short")?;
    if arcount == 0 {
        return Ok(None);
    }
    // Walk every record to find where the last one starts.
    let count = |i: usize| wire::u16_at(message, 4 + 2 * i).ok_or("short");
    let mut at = 12;
    for _ in 0..count(0)? {
        at = name_end(message, at).ok_or("bad question")? + 4;
    }
    let total = u32::from(count(1)?) + u32::from(count(2)?) + u32::from(count(3)?);
    let mut last = at;
    for _ in 0..total {
        last = at;
        let after = name_end(message, at).ok_or("bad record")?;
        let rdlen = wire::u16_at(message, after + 8).ok_or("short record")?;
        at = after + 10 + usize::from(rdlen);
        if at > message.len() {
            return Err("record past the end");
        }
    }
    let (key_name, owner_end) = read_name(message, last).map_err(|_| "bad TSIG owner")?;
    if wire::u16_at(message, owner_end) != Some(TSIG_TYPE) {
        return Ok(None);
    }
    let rdata = message.get(owner_end + 10..at).ok_or("short TSIG")?;
    let (alg_name, alg_end) = read_name(rdata, 0).map_err(|_| "bad TSIG algorithm")?;
    let short = "short TSIG";
    let time_signed = wire::u48_at(rdata, alg_end).ok_or(short)?;
    let fudge = wire::u16_at(rdata, alg_end + 6).ok_or(short)?;
    let mac_len = usize::from(wire::u16_at(rdata, alg_end + 8).ok_or(short)?);
    let mac = rdata
        .get(alg_end + 10..alg_end + 10 + mac_len)
        .ok_or("short TSIG MAC")?;
    let rest = rdata.get(alg_end + 10 + mac_len..).ok_or(short)?;
    let field = |at: usize| wire::u16_at(rest, at).ok_or(short);
    let other_len = usize::from(field(4)?);
    let other = rest.get(6..6 + other_len).ok_or("short TSIG other data")?;
    Ok(Some(Tsig {
        key_name: key_name.to_lowercase(),
        algorithm: Algorithm::from_name(&alg_name.to_ascii()),
        time_signed,
        fudge,
        mac: mac.to_vec(),
        original_id: field(0)?,
        error: field(2)?,
        other: other.to_vec(),
        offset: last,
    }))
}

/// Where the (possibly compressed) name at `at` ends.
fn name_end(message: &[u8], at: usize) -> Option<usize> {
    read_name(message, at).ok().map(|(_, end)| end)
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
    let arcount = wire::u16_at(&out, 10).unwrap_or(0).saturating_sub(1);
    wire::set_u16(&mut out, 10, arcount);
    wire::set_u16(&mut out, 0, tsig.original_id);
    out
}

/// TSIG variables (RFC 8945 §4.3.3): key name, class, TTL, algorithm, time,
/// fudge, error, other data.
fn variables(key: &Key, time_signed: u64, fudge: u16, error: u16, other: &[u8]) -> Vec<u8> {
    let mut out = canonical_wire(&key.name);
    wire::put_u16(&mut out, CLASS_ANY);
    wire::put_u32(&mut out, 0);
    out.extend(key.algorithm.wire());
    wire::put_u48(&mut out, time_signed);
    wire::put_u16(&mut out, fudge);
    wire::put_u16(&mut out, error);
    wire::put_u16(&mut out, other.len() as u16);
    out.extend_from_slice(other);
    out
}

/// A MAC as a later MAC's data covers it, and as the TSIG RDATA holds it:
/// its length, then the MAC (RFC 8945 §4.2, §4.3).
fn put_mac(data: &mut Vec<u8>, mac: &[u8]) {
    wire::put_u16(data, mac.len() as u16);
    data.extend_from_slice(mac);
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
    // The client's fudge, but never more than ours: a claimed fudge of
    // 65535 s would accept (and let an attacker replay) an 18-hour window.
    if now.abs_diff(tsig.time_signed) > u64::from(tsig.fudge.min(FUDGE)) {
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
    sign_at(
        message,
        key,
        request_mac,
        now,
        error,
        &badtime_other(error, now),
    )
}

/// Signs the BADTIME answer to `request` (RFC 8945 §5.2.3): with the
/// request's key and MAC, the client's Time Signed, and the server's time
/// `now` in Other Data, so the client can tell its clock is off and trust
/// that it is this server saying so.
pub fn sign_badtime(message: &mut Vec<u8>, key: &Key, request: &Tsig, now: u64) -> Vec<u8> {
    sign_at(
        message,
        key,
        Some(&request.mac),
        request.time_signed,
        error::BADTIME,
        &badtime_other(error::BADTIME, now),
    )
}

/// Appends a TSIG record with `time_signed`, `error` and `other`, its MAC
/// covering the request's MAC (if any), the message and the variables.
fn sign_at(
    message: &mut Vec<u8>,
    key: &Key,
    request_mac: Option<&[u8]>,
    time_signed: u64,
    error: u16,
    other: &[u8],
) -> Vec<u8> {
    let mut data = Vec::with_capacity(message.len() + 128);
    if let Some(mac) = request_mac {
        put_mac(&mut data, mac);
    }
    data.extend_from_slice(message);
    data.extend(variables(key, time_signed, FUDGE, error, other));
    let mac = hmac::sign(&key.secret, &data).as_ref().to_vec();
    append(message, key, time_signed, &mac, error, other);
    mac
}

/// Signs a later message of a multi-message answer (RFC 8945 §5.3.1): the
/// MAC covers the previous MAC, the message and the timers.
pub fn sign_continuation(message: &mut Vec<u8>, key: &Key, prior_mac: &[u8], now: u64) -> Vec<u8> {
    let mut data = Vec::with_capacity(message.len() + 80);
    put_mac(&mut data, prior_mac);
    data.extend_from_slice(message);
    wire::put_u48(&mut data, now);
    wire::put_u16(&mut data, FUDGE);
    let mac = hmac::sign(&key.secret, &data).as_ref().to_vec();
    append(message, key, now, &mac, 0, &[]);
    mac
}

/// Verifies the TSIG of a response to a request whose MAC was `request_mac`.
pub fn verify_response(key: &Key, message: &[u8], tsig: &Tsig, request_mac: &[u8]) -> bool {
    let mut data = Vec::new();
    put_mac(&mut data, request_mac);
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
    let algorithm = match request.algorithm {
        Some(alg) => alg.wire(),
        None => vec![0],
    };
    let other = badtime_other(error, now);
    append_record(
        message,
        &request.key_name,
        &algorithm,
        &TsigFields {
            time_signed: request.time_signed,
            fudge: request.fudge,
            mac: &[],
            original_id: request.original_id,
            error,
            other: &other,
        },
    );
}

/// The other data of a BADTIME answer: the server's time (RFC 8945 §5.2.3).
fn badtime_other(error: u16, now: u64) -> Vec<u8> {
    let mut other = Vec::new();
    if error == error::BADTIME {
        wire::put_u48(&mut other, now);
    }
    other
}

/// Appends the signed TSIG record of `message`.
fn append(
    message: &mut Vec<u8>,
    key: &Key,
    time_signed: u64,
    mac: &[u8],
    error: u16,
    other: &[u8],
) {
    let original_id = wire::u16_at(message, 0).unwrap_or(0);
    append_record(
        message,
        &key.name,
        &key.algorithm.wire(),
        &TsigFields {
            time_signed,
            fudge: FUDGE,
            mac,
            original_id,
            error,
            other,
        },
    );
}

/// The RDATA fields of a TSIG record after the algorithm (RFC 8945 §4.2).
struct TsigFields<'a> {
    time_signed: u64,
    fudge: u16,
    mac: &'a [u8],
    original_id: u16,
    error: u16,
    other: &'a [u8],
}

/// Appends a TSIG record (class ANY, TTL 0) and counts it in ARCOUNT.
fn append_record(
    message: &mut Vec<u8>,
    key_name: &Name,
    algorithm: &[u8],
    fields: &TsigFields<'_>,
) {
    message.extend(canonical_wire(key_name));
    wire::put_u16(message, TSIG_TYPE);
    wire::put_u16(message, CLASS_ANY);
    wire::put_u32(message, 0);
    let mut rdata = algorithm.to_vec();
    wire::put_u48(&mut rdata, fields.time_signed);
    wire::put_u16(&mut rdata, fields.fudge);
    put_mac(&mut rdata, fields.mac);
    wire::put_u16(&mut rdata, fields.original_id);
    wire::put_u16(&mut rdata, fields.error);
    wire::put_u16(&mut rdata, fields.other.len() as u16);
    rdata.extend_from_slice(fields.other);
    wire::put_u16(message, rdata.len() as u16);
    message.extend(rdata);
    let arcount = wire::u16_at(message, 10).unwrap_or(0).saturating_add(1);
    wire::set_u16(message, 10, arcount);
}

#[cfg(test)]
mod tests;
