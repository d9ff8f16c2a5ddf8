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

/// The name at the start of `wire` (uncompressed, case kept) and its length
/// in octets; `None` when it is malformed, compressed or too long.
pub fn from_wire(wire: &[u8]) -> Option<(Name, usize)> {
    let mut labels = Vec::new();
    let mut at = 0;
    loop {
        let len = usize::from(*wire.get(at)?);
        if len == 0 {
            break;
        }
        if len > 63 {
            return None;
        }
        labels.push(wire.get(at + 1..at + 1 + len)?);
        at += 1 + len;
        if at >= 255 {
            return None;
        }
    }
    let mut name = Name::from_labels(labels).ok()?;
    name.set_fqdn(true);
    Some((name, at + 1))
}

/// Length in octets of the uncompressed wire name at the start of `wire`,
/// root label included; `None` when it is malformed, compressed or longer
/// than 255 octets (RFC 1035 §3.1).
pub fn wire_name_len(wire: &[u8]) -> Option<usize> {
    let mut at = 0;
    loop {
        match usize::from(*wire.get(at)?) {
            0 => return Some(at + 1),
            len if len > 63 => return None,
            len => at += 1 + len,
        }
        if at >= 255 {
            return None;
        }
    }
}

/// True when `octets` are whole labels of a wire name and nothing else (no
/// root label, no label cut short): the part of an owner's wire form above
/// a suffix, say.
pub fn whole_labels(octets: &[u8]) -> bool {
    let mut at = 0;
    while at < octets.len() {
        match octets[at] {
            0 => return false,
            len => at += 1 + usize::from(len),
        }
    }
    at == octets.len()
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

/// A byte string whose lexicographic order is the canonical DNS name order
/// (RFC 4034 §6.1) of lower-case wire names: labels from the root down, each
/// label's octets escaped (0x00 -> 01 01, 0x01 -> 01 02) and terminated by
/// 0x00, so that a label sorts before every longer label it prefixes.
pub fn canonical_key(name: &Name) -> Vec<u8> {
    let mut out = Vec::with_capacity(wire_len(name) + 8);
    let labels: Vec<&[u8]> = name.iter().collect();
    for label in labels.iter().rev() {
        push_key_label(&mut out, label);
    }
    out
}

/// [`canonical_key`] of an uncompressed wire name (any case), written into
/// `out`; returns the key length, or `None` when `out` is too small or the
/// wire name is malformed. Allocation-free, for the query path.
pub fn canonical_key_of_wire(wire: &[u8], out: &mut [u8]) -> Option<usize> {
    // Collect label offsets (at most 128 labels in 255 octets).
    let mut offsets = [0u8; 128];
    let mut count = 0;
    let mut at = 0;
    loop {
        let len = usize::from(*wire.get(at)?);
        if len == 0 {
            break;
        }
        if count == offsets.len() || len > 63 {
            return None;
        }
        offsets[count] = at as u8;
        count += 1;
        at += 1 + len;
    }
    let mut written = 0;
    for &offset in offsets[..count].iter().rev() {
        let offset = usize::from(offset);
        let len = usize::from(wire[offset]);
        for &byte in wire.get(offset + 1..offset + 1 + len)? {
            let byte = byte.to_ascii_lowercase();
            let escaped: &[u8] = match byte {
                0 => &[1, 1],
                1 => &[1, 2],
                _ => std::slice::from_ref(&byte),
            };
            out.get_mut(written..written + escaped.len())?
                .copy_from_slice(escaped);
            written += escaped.len();
        }
        *out.get_mut(written)? = 0;
        written += 1;
    }
    Some(written)
}

/// The length of the key of the deepest name that canonical keys `a` and
/// `b` ([`canonical_key`]) are both at or below: their common prefix up to
/// its last label end (a 0x00, which escaped labels never hold inside).
/// The closest encloser of a name that does not exist is the deeper of
/// these with the data names before and after it in canonical order (RFC
/// 4035 §3.1.3.2; every existing name is one of theirs or an ancestor).
pub fn common_ancestor_key_len(a: &[u8], b: &[u8]) -> usize {
    let common = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    a[..common]
        .iter()
        .rposition(|&byte| byte == 0)
        .map_or(0, |at| at + 1)
}

/// A lower-case wire name of at most 255 octets, on the stack: what
/// [`wire_of_canonical_key`] gives.
#[derive(Clone, Copy)]
pub struct WireBuf {
    octets: [u8; 255],
    len: u8,
}

impl std::ops::Deref for WireBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.octets[..usize::from(self.len)]
    }
}

/// The lower-case wire name whose [`canonical_key`] is `key`: the inverse
/// of [`canonical_key_of_wire`] for lower-case names, so an index ordered
/// by keys need not keep the wire names beside them. `None` when `key` is
/// not a key (a label empty or not terminated, a bad escape, a label over
/// 63 octets) or its name is over 255 octets. Allocation-free.
pub fn wire_of_canonical_key(key: &[u8]) -> Option<WireBuf> {
    // The wire length first: each label's octets once unescaped, a length
    // octet each, and the root.
    let mut wire_len = 1;
    let mut at = 0;
    while at < key.len() {
        let (label_len, next) = key_label(key, at)?;
        wire_len += 1 + label_len;
        at = next;
    }
    let mut out = WireBuf {
        octets: [0; 255],
        len: u8::try_from(wire_len).ok()?,
    };
    // The key runs from the root down; the wire name from the bottom up:
    // each label goes before the one written just before it.
    let mut end = wire_len - 1;
    let mut at = 0;
    while at < key.len() {
        let (label_len, next) = key_label(key, at)?;
        let start = end - 1 - label_len;
        out.octets[start] = label_len as u8;
        let mut to = start + 1;
        let mut from = at;
        while from < next - 1 {
            let byte = key[from];
            out.octets[to] = if byte == 1 { key[from + 1] - 1 } else { byte };
            from += if byte == 1 { 2 } else { 1 };
            to += 1;
        }
        end = start;
        at = next;
    }
    Some(out)
}

/// The unescaped length of the key label starting at `at`, and where the
/// next one starts (past its 0x00).
fn key_label(key: &[u8], at: usize) -> Option<(usize, usize)> {
    let mut len = 0;
    let mut i = at;
    loop {
        match *key.get(i)? {
            0 => break,
            1 => {
                if !matches!(key.get(i + 1)?, 1 | 2) {
                    return None;
                }
                i += 2;
            }
            _ => i += 1,
        }
        len += 1;
    }
    // Only the root is empty, and its key is empty: no label here may be.
    (1..=63).contains(&len).then_some((len, i + 1))
}

fn push_key_label(out: &mut Vec<u8>, label: &[u8]) {
    for &byte in label {
        match byte.to_ascii_lowercase() {
            0 => out.extend_from_slice(&[1, 1]),
            1 => out.extend_from_slice(&[1, 2]),
            b => out.push(b),
        }
    }
    out.push(0);
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

    #[test]
    fn wire_name_lengths() {
        assert_eq!(wire_name_len(b"\x00rest"), Some(1));
        assert_eq!(wire_name_len(b"\x07example\x00\x01"), Some(9));
        assert_eq!(wire_name_len(b"\x07exam"), None, "cut short");
        assert_eq!(wire_name_len(b"\xc0\x0c"), None, "compressed");
    }

    fn n(s: &str) -> Name {
        parse_name(s).expect("valid name")
    }

    #[test]
    fn the_common_ancestor_of_two_keys_ends_at_a_label() {
        let key = |s: &str| canonical_key(&n(s));
        let common = |a: &str, b: &str| {
            let (a, b) = (key(a), key(b));
            let len = common_ancestor_key_len(&a, &b);
            assert_eq!(len, common_ancestor_key_len(&b, &a));
            a[..len].to_vec()
        };
        assert_eq!(common("ab.example.", "abc.example."), key("example."));
        assert_eq!(common("x.ab.example.", "ab.example."), key("ab.example."));
        assert_eq!(common("ab.example.", "ab.example."), key("ab.example."));
        assert_eq!(
            common("a.b.c.example.", "z.b.c.example."),
            key("b.c.example.")
        );
        assert_eq!(common("example.", "test."), key("."));
        // Label octets 0x00 and 0x01 are escaped, so they never end a label.
        let odd = Name::from_labels(vec![&b"a\x00"[..], b"example"]).expect("a name");
        let other = Name::from_labels(vec![&b"a\x01"[..], b"example"]).expect("a name");
        let (a, b) = (canonical_key(&odd), canonical_key(&other));
        assert_eq!(&a[..common_ancestor_key_len(&a, &b)], &key("example.")[..]);
    }

    #[test]
    fn a_canonical_key_gives_back_its_lower_case_wire_name() {
        let odd = Name::from_labels(vec![&b"a\x00\x01b"[..], b"\x02", b"Example"]).expect("a name");
        let longest = Name::from_labels(vec![&[b'x'; 63][..]; 3])
            .and_then(|n| n.prepend_label(&[b'y'; 61][..]))
            .expect("a 255-octet name");
        assert_eq!(wire_len(&longest), 255);
        for name in [n("."), n("example."), n("A.b.Example.COM."), odd, longest] {
            let key = canonical_key(&name);
            let wire = wire_of_canonical_key(&key).expect("a key");
            assert_eq!(&wire[..], &canonical_wire(&name)[..], "{name:?}");
            let mut back = [0u8; 512];
            let len = canonical_key_of_wire(&wire, &mut back).expect("a wire name");
            assert_eq!(&back[..len], &key[..]);
        }
        // Not keys: an unterminated label, a bad escape, a label over 63
        // octets, a name over 255 octets.
        assert!(wire_of_canonical_key(b"com").is_none());
        assert!(wire_of_canonical_key(b"\0").is_none());
        assert!(wire_of_canonical_key(b"com\0\0").is_none());
        assert!(wire_of_canonical_key(b"a\x01\x03\x00").is_none());
        assert!(wire_of_canonical_key(&[&[b'x'; 64][..], &[0]].concat()).is_none());
        let too_long: Vec<u8> = (0..5)
            .flat_map(|_| [&[b'x'; 63][..], &[0]].concat())
            .collect();
        assert!(wire_of_canonical_key(&too_long).is_none());
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

    fn raw(labels: &[&[u8]]) -> Name {
        let mut name = Name::from_labels(labels.iter().copied()).expect("valid");
        name.set_fqdn(true);
        name
    }

    #[test]
    fn canonical_key_orders_like_rfc4034() {
        // RFC 4034 §6.1 example order.
        let ordered = [
            raw(&[b"example"]),
            raw(&[b"a", b"example"]),
            raw(&[b"yljkjljk", b"a", b"example"]),
            raw(&[b"Z", b"a", b"example"]),
            raw(&[b"zABC", b"a", b"EXAMPLE"]),
            raw(&[b"z", b"example"]),
            raw(&[b"\x01", b"z", b"example"]),
            raw(&[b"*", b"z", b"example"]),
            raw(&[b"\xc8", b"z", b"example"]),
        ];
        let keys: Vec<Vec<u8>> = ordered.iter().map(canonical_key).collect();
        for pair in keys.windows(2) {
            assert!(pair[0] < pair[1], "{pair:?}");
        }
        // Prefix labels and 0x00 octets.
        let k = |labels: &[&[u8]]| canonical_key(&raw(labels));
        assert!(k(&[b"x", b"a", b"b"]) < k(&[b"a\x00", b"b"]));
        assert!(k(&[b"a", b"b"]) < k(&[b"a\x00", b"b"]));
        assert!(k(&[b"\x00", b"b"]) < k(&[b"a", b"b"]));
        assert!(k(&[b"\x00", b"b"]) < k(&[b"\x01", b"b"]));
        // The wire variant agrees, whatever the case.
        for name in [
            raw(&[b"Z", b"a", b"Example"]),
            raw(&[b"\x00", b"b"]),
            raw(&[b"a", b"b"]),
        ] {
            let mut wire = Vec::new();
            for label in name.iter() {
                wire.push(label.len() as u8);
                wire.extend_from_slice(label);
            }
            wire.push(0);
            let mut buf = [0u8; 600];
            let n = canonical_key_of_wire(&wire, &mut buf).expect("fits");
            assert_eq!(&buf[..n], &canonical_key(&name)[..]);
        }
    }

    #[test]
    fn canonical_wire_lowercases() {
        let mut name = Name::from_ascii("A.Example.").expect("valid");
        name.set_fqdn(true);
        assert_eq!(canonical_wire(&name), b"\x01a\x07example\x00");
    }
}
