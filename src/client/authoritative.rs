//! One RRset as an authoritative server serves it: asked directly, without
//! recursion (RD clear) and with DO set, so its RRSIGs come along; the
//! answer must carry AA (RFC 1034 §4.3.2), or the server does not have the
//! zone. What a parent's scanner does for every nameserver (RFC 9975 §3),
//! and what the consistency gate (`parent::gate`) and `signalbox check`
//! (`parent::scan`) both do.

use std::net::SocketAddr;

use hickory_proto::rr::{Name, RecordType};

use super::{ClientError, Options, exchange};
use crate::dns::{
    Rrsig, message,
    wire::{self, flags, rcode},
};

/// The RRset, with the answer's RCODE.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Authoritative {
    /// NOERROR or NXDOMAIN.
    pub rcode: u16,
    /// RDATA in wire form, sorted, without duplicates.
    pub rdatas: Vec<Vec<u8>>,
    /// The RRSIGs covering the RRset.
    pub rrsigs: Vec<Rrsig>,
}

/// Why a server did not give an authoritative answer.
#[derive(Debug, thiserror::Error)]
pub enum AuthoritativeError {
    /// No answer, or not one that parses.
    #[error("{0}")]
    Exchange(#[from] ClientError),
    /// An RCODE other than NOERROR or NXDOMAIN.
    #[error("{}", rcode::name(*.0))]
    Rcode(u16),
    /// AA clear.
    #[error("answer not authoritative (is the zone loaded there?)")]
    NotAuthoritative,
}

/// Asks `server` for `owner`/`rtype` (see the module doc).
pub async fn ask(
    server: SocketAddr,
    owner: &Name,
    rtype: RecordType,
    options: &Options,
) -> Result<Authoritative, AuthoritativeError> {
    let query = message::query(wire::random_id(), owner, rtype, false, true);
    let reply = exchange(server, query, options).await?;
    if !matches!(reply.rcode, rcode::NOERROR | rcode::NXDOMAIN) {
        return Err(AuthoritativeError::Rcode(reply.rcode));
    }
    if !reply.has(flags::AA) {
        return Err(AuthoritativeError::NotAuthoritative);
    }
    let mut rdatas: Vec<Vec<u8>> = reply
        .answers(owner, rtype)
        .map(|r| r.rdata.clone())
        .collect();
    rdatas.sort();
    rdatas.dedup();
    let rrsigs = reply
        .answers(owner, RecordType::RRSIG)
        .filter_map(|r| Rrsig::from_wire(&r.rdata))
        .filter(|s| s.type_covered == rtype)
        .collect();
    Ok(Authoritative {
        rcode: reply.rcode,
        rdatas,
        rrsigs,
    })
}
