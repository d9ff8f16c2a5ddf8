//! Why RDATA text or wire data was rejected: presentation format (RFC 1035
//! §5.1, the generic form of RFC 3597 §5) and wire format.

use data_encoding::DecodeError;

use crate::dns::NameError;

/// Why RDATA text or wire data was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RdataError {
    /// Presentation text could not be parsed.
    #[error("bad {rtype} rdata {text:?}: {why}")]
    Text {
        /// The record type being parsed.
        rtype: &'static str,
        /// The offending text.
        text: String,
        /// What is wrong.
        why: TextError,
    },
    /// Wire data could not be parsed.
    #[error("bad {rtype} wire rdata: {why}")]
    Wire {
        /// The record type being parsed.
        rtype: &'static str,
        /// What is wrong.
        why: &'static str,
    },
}

/// What is wrong in the presentation form of one RDATA.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// A numeric field (`flags`, `key tag`, `port`...).
    #[error("{field}: {source}")]
    Number {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        source: NumberError,
    },
    /// A field that is not there.
    #[error("{field} missing")]
    Missing {
        /// The field.
        field: &'static str,
    },
    /// A key or digest of no octets.
    #[error("{field} is empty")]
    Empty {
        /// The field.
        field: &'static str,
    },
    /// A DNSKEY public key that is not base64.
    #[error("{field} is not base64: {source}")]
    NotBase64 {
        /// The field.
        field: &'static str,
        /// Where decoding stopped.
        source: DecodeError,
    },
    /// A DS digest that is not hex.
    #[error("{field} is not hex: {source}")]
    NotHex {
        /// The field.
        field: &'static str,
        /// Where decoding stopped.
        source: DecodeError,
    },
    /// A DSYNC RRtype that is neither a mnemonic nor `TYPEnnn`.
    #[error("unknown RRtype {text:?}")]
    UnknownType {
        /// The type as written.
        text: String,
    },
    /// A DSYNC scheme that is neither `NOTIFY` nor a number.
    #[error("scheme {text:?} is neither NOTIFY nor 0-255")]
    Scheme {
        /// The scheme as written.
        text: String,
    },
    /// A DSYNC target that is not a domain name.
    #[error("target: {0}")]
    Target(NameError),
    /// Text after the last field.
    #[error("unexpected {extra:?} after the target")]
    Trailing {
        /// The first extra field.
        extra: String,
    },
    /// The generic form `\# <length> <hex>`.
    #[error(transparent)]
    Generic(#[from] GenericError),
}

/// Why a numeric field was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NumberError {
    /// The text ended before the field.
    #[error("missing")]
    Missing,
    /// Not a number, or out of the field's range.
    #[error("{text:?} is not a number in range")]
    NotANumber {
        /// The field as written.
        text: String,
    },
}

/// Why RDATA in the generic form of RFC 3597 §5 was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenericError {
    /// `\#` and nothing after it.
    #[error("length missing after \\#")]
    NoLength,
    /// A length that is not a number.
    #[error("length {text:?} is not a number")]
    BadLength {
        /// The length as written.
        text: String,
    },
    /// Hex digits that do not decode.
    #[error("bad hex: {0}")]
    BadHex(DecodeError),
    /// The length and the hex disagree.
    #[error("length says {length} octets, the hex holds {octets}")]
    LengthMismatch {
        /// The length field.
        length: usize,
        /// Octets in the hex.
        octets: usize,
    },
}
