//! Domain-name helpers: parsing operator input, wire length, and the RFC 9615
//! signalling name.

use hickory_proto::rr::Name;

/// Why a domain name was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The text is not a valid domain name.
    #[error("invalid domain name {text:?}: {why}")]
    Invalid {
        /// The text as given.
        text: String,
        /// What the parser said.
        why: String,
    },
    /// The RFC 9615 signalling name would exceed 255 octets.
    #[error(
        "signalling name for {child} under _signal.{ns} would be {len} octets \
         (W(child) {wchild} + W(ns) {wns} + 15 > 255, RFC 9615 §4.1): this nameserver cannot carry bootstrap signals"
    )]
    SignalNameTooLong {
        /// The child zone.
        child: String,
        /// The nameserver host name.
        ns: String,
        /// Wire length the name would have.
        len: usize,
        /// W(child).
        wchild: usize,
        /// W(ns).
        wns: usize,
    },
}

/// Parses an absolute domain name as operators write it: `example.com.` or
/// `example.com` (always taken as absolute). The result is lower-cased:
/// signalbox compares and publishes names in lower case.
pub fn parse_name(text: &str) -> Result<Name, NameError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(NameError::Invalid {
            text: text.to_string(),
            why: "empty name".to_string(),
        });
    }
    let mut name = Name::from_ascii(trimmed).map_err(|e| NameError::Invalid {
        text: text.to_string(),
        why: e.to_string(),
    })?;
    name.set_fqdn(true);
    let name = name.to_lowercase();
    if wire_len(&name) > 255 {
        return Err(NameError::Invalid {
            text: text.to_string(),
            why: format!("{} octets in wire form, more than 255", wire_len(&name)),
        });
    }
    Ok(name)
}

/// Length of the name in uncompressed wire form, root octet included
/// (W(x) in RFC 9615 §4.1).
pub fn wire_len(name: &Name) -> usize {
    name.iter().map(|label| label.len() + 1).sum::<usize>() + 1
}

/// Uncompressed wire form of the name, lower-cased (RFC 4034 §6.2 canonical form).
pub fn canonical_wire(name: &Name) -> Vec<u8> {
    let mut out = Vec::with_capacity(wire_len(name));
    for label in name.iter() {
        out.push(label.len() as u8);
        out.extend(label.iter().map(u8::to_ascii_lowercase));
    }
    out.push(0);
    out
}

/// True when `name` is `zone` or below it.
pub fn is_at_or_below(name: &Name, zone: &Name) -> bool {
    zone.zone_of(name)
}

/// Presentation form of a name, absolute, with RFC 1035 escapes.
pub fn display(name: &Name) -> String {
    let mut text = name.to_ascii();
    if !text.ends_with('.') {
        text.push('.');
    }
    text
}

/// The RFC 9615 §2 signalling name `_dsboot.<child>._signal.<ns>`.
///
/// Fails (never truncates) when the result would exceed 255 octets:
/// `W(child) + W(ns) + 15 > 255`.
pub fn dsboot_name(child: &Name, ns: &Name) -> Result<Name, NameError> {
    let (wchild, wns) = (wire_len(child), wire_len(ns));
    let len = wchild + wns + 15;
    let too_long = || NameError::SignalNameTooLong {
        child: display(child),
        ns: display(ns),
        len,
        wchild,
        wns,
    };
    if len > 255 {
        return Err(too_long());
    }
    let labels = std::iter::once(&b"_dsboot"[..])
        .chain(child.iter())
        .chain(std::iter::once(&b"_signal"[..]))
        .chain(ns.iter());
    let mut name = Name::from_labels(labels).map_err(|_| too_long())?;
    name.set_fqdn(true);
    Ok(name)
}

/// The signalling domain `_signal.<ns>` (RFC 9615 §2) that holds `ns`'s signals.
pub fn signal_domain(ns: &Name) -> Result<Name, NameError> {
    let mut name = ns
        .prepend_label("_signal")
        .map_err(|e| NameError::Invalid {
            text: format!("_signal.{}", display(ns)),
            why: e.to_string(),
        })?;
    name.set_fqdn(true);
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Name {
        parse_name(s).expect("valid name")
    }

    #[test]
    fn parses_relative_as_absolute_and_lowercases() {
        assert_eq!(display(&n("Example.COM")), "example.com.");
        assert_eq!(display(&n("example.com.")), "example.com.");
        assert!(parse_name("").is_err());
        assert!(parse_name("a..b").is_err());
    }

    #[test]
    fn wire_length_counts_root() {
        assert_eq!(wire_len(&Name::root()), 1);
        assert_eq!(wire_len(&n("example.co.uk.")), 15);
    }

    #[test]
    fn rfc9615_example_name_is_47_octets() {
        let name = dsboot_name(&n("example.co.uk."), &n("ns1.example.net.")).expect("fits");
        assert_eq!(
            display(&name),
            "_dsboot.example.co.uk._signal.ns1.example.net."
        );
        assert_eq!(wire_len(&name), 47);
        assert_eq!(
            wire_len(&n("example.co.uk.")) + wire_len(&n("ns1.example.net.")) + 15,
            47
        );
    }

    #[test]
    fn signalling_name_length_limit_is_exact() {
        // Build a child so that W(child) + W(ns) + 15 == 255 exactly, then one more.
        let ns = n("ns1.example.net."); // W = 17
        let target_child = 255 - 15 - wire_len(&ns); // 223
        let child = long_name(target_child);
        assert_eq!(wire_len(&child), target_child);
        let name = dsboot_name(&child, &ns).expect("255 octets is allowed");
        assert_eq!(wire_len(&name), 255);
        let child = long_name(target_child + 1);
        let err = dsboot_name(&child, &ns).expect_err("256 octets is not");
        assert!(matches!(err, NameError::SignalNameTooLong { len: 256, .. }));
    }

    /// A name of exactly `w` wire octets made of labels of up to 63 octets.
    fn long_name(w: usize) -> Name {
        let mut remaining = w - 1; // root octet
        let mut labels = Vec::new();
        while remaining > 0 {
            let take = remaining.min(64);
            let take = if remaining - take == 1 {
                take - 1
            } else {
                take
            };
            labels.push("a".repeat(take - 1));
            remaining -= take;
        }
        n(&format!("{}.", labels.join(".")))
    }

    #[test]
    fn canonical_wire_lowercases() {
        let mut name = Name::from_ascii("A.Example.").expect("valid");
        name.set_fqdn(true);
        assert_eq!(canonical_wire(&name), b"\x01a\x07example\x00");
    }
}
