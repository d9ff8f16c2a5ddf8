//! Zone files of the parent world: the text the harness writes for each zone
//! (SOA, apex NS, delegations with DS and glue, RFC 1034 section 4.2.1), its
//! signing with `dnssec-signzone`, and the rewrite of DSYNC (RFC 9859
//! section 2) into RFC 3597 generic syntax for Knot 3.2.

use std::{fmt::Write as _, fs, path::Path, process::Command};

use super::{TTL, Zone, absolute, enclosing, file_stem};
use crate::common::{is_at_or_below, process::run};

/// The A/AAAA records of a body: (owner, type, address). Understands
/// `$ORIGIN`, blank owners, optional TTL and class; ignores comments.
fn addresses(body: &str, apex: &str) -> Vec<(String, String, String)> {
    let mut origin = apex.to_string();
    let mut owner = apex.to_string();
    let mut found = Vec::new();
    for line in body.lines() {
        let text = line.split(';').next().unwrap_or("");
        let mut fields = text.split_whitespace().peekable();
        let Some(&first) = fields.peek() else {
            continue;
        };
        if first.eq_ignore_ascii_case("$ORIGIN") {
            fields.next();
            if let Some(o) = fields.next() {
                origin = absolute(o, &origin);
            }
            continue;
        }
        if first.starts_with('$') {
            continue;
        }
        if !text.starts_with([' ', '\t']) {
            owner = absolute(first, &origin);
            fields.next();
        }
        let mut rtype = None;
        for f in fields.by_ref() {
            let upper = f.to_ascii_uppercase();
            // TTLs (`300`, `1h`) start with a digit, types never do.
            if f.starts_with(|c: char| c.is_ascii_digit()) || upper == "IN" {
                continue;
            }
            rtype = Some(upper);
            break;
        }
        if let (Some(t), Some(addr)) = (rtype, fields.next()) {
            if t == "A" || t == "AAAA" {
                found.push((owner.clone(), t, addr.to_string()));
            }
        }
    }
    found
}

/// The whole text of zone `i` before signing.
pub(super) fn zone_text(zones: &[Zone], i: usize) -> String {
    let z = &zones[i];
    let explicit = |zone: &Zone, name: &str| -> Vec<(String, String)> {
        addresses(&zone.body, &zone.apex)
            .into_iter()
            .filter(|(owner, _, _)| owner == name)
            .map(|(_, t, a)| (t, a))
            .collect()
    };
    // The addresses of an NS name: from the zone that owns it, else from
    // any body (glue written by the caller), else 127.0.0.1.
    let addresses_of = |name: &str| -> Vec<(String, String)> {
        if let Some(o) = enclosing(zones, name, true) {
            let own = explicit(&zones[o], name);
            if !own.is_empty() {
                return own;
            }
        }
        zones
            .iter()
            .map(|other| explicit(other, name))
            .find(|a| !a.is_empty())
            .unwrap_or_else(|| vec![("A".to_string(), "127.0.0.1".to_string())])
    };

    let mut generated: Vec<String> = Vec::new();
    let mut add = |line: String| {
        if !generated.contains(&line) {
            generated.push(line);
        }
    };
    let mname = &z.ns[0];
    add(format!(
        "{} {TTL} IN SOA {mname} hostmaster.{} {} 3600 600 86400 {TTL}",
        z.apex, z.apex, z.serial
    ));
    for n in &z.ns {
        add(format!("{} {TTL} IN NS {n}", z.apex));
    }
    // Addresses for every NS name (of any zone) this zone owns.
    for other in zones {
        for n in &other.ns {
            if enclosing(zones, n, true) == Some(i) && explicit(z, n).is_empty() {
                for (t, a) in addresses_of(n) {
                    add(format!("{n} {TTL} IN {t} {a}"));
                }
            }
        }
    }
    // Delegations to the zones directly below.
    for child in zones.iter().filter(|c| c.parent == Some(i)) {
        for n in &child.ns {
            add(format!("{} {TTL} IN NS {n}", child.apex));
        }
        for ds in &child.ds {
            add(format!("{} {TTL} IN DS {ds}", child.apex));
        }
        for n in &child.ns {
            if is_at_or_below(n, &child.apex) && explicit(z, n).is_empty() {
                for (t, a) in addresses_of(n) {
                    add(format!("{n} {TTL} IN {t} {a}"));
                }
            }
        }
    }
    let mut text = format!("$ORIGIN {}\n$TTL {TTL}\n", z.apex);
    for line in generated {
        text.push_str(&line);
        text.push('\n');
    }
    let _ = write!(text, "; body\n$ORIGIN {}\n$TTL {TTL}\n{}", z.apex, z.body);
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text
}

/// Writes (and signs) `text` for `zone`, ending with the file Knot serves.
pub(super) fn write_zone(dir: &Path, zone: &Zone, text: &str) {
    let stem = file_stem(&zone.apex);
    let unsigned = dir.join(format!("{stem}.zone"));
    fs::write(&unsigned, text).expect("write zone");
    let served = if zone.signed {
        let signed = dir.join(format!("{stem}.signed"));
        let (code, stdout, stderr) = run(Command::new("dnssec-signzone")
            .args(["-S", "-O", "full", "-K"])
            .arg(&zone.keys)
            .arg("-d")
            .arg(&zone.keys)
            .arg("-o")
            .arg(&zone.apex)
            .arg("-f")
            .arg(&signed)
            .arg(&unsigned));
        assert!(
            code == 0,
            "dnssec-signzone {} failed ({code}):\n{stdout}{stderr}\nzone:\n{text}",
            zone.apex
        );
        let full = fs::read_to_string(&signed).expect("read signed zone");
        for_knot(&full)
    } else {
        // Same shape as signed files (one record per line, absolute names),
        // so ParentWorld::records reads both; no checks beyond parsing.
        let full = dir.join(format!("{stem}.full"));
        let (code, stdout, stderr) = run(Command::new("named-compilezone")
            .args([
                "-q", "-s", "full", "-i", "none", "-k", "ignore", "-n", "ignore",
            ])
            .args(["-M", "ignore", "-S", "ignore", "-o"])
            .arg(&full)
            .arg(&zone.apex)
            .arg(&unsigned));
        assert!(
            code == 0,
            "named-compilezone {} failed ({code}):\n{stdout}{stderr}\nzone:\n{text}",
            zone.apex
        );
        for_knot(&fs::read_to_string(&full).expect("read compiled zone"))
    };
    // Knot may read the file at any time: replace it in one step.
    let tmp = zone.file.with_extension("tmp");
    fs::write(&tmp, served).expect("write served zone");
    fs::rename(&tmp, &zone.file).expect("replace served zone");
}

/// Rewrites `dnssec-signzone -O full` output (one record per line) so Knot
/// 3.2 can read it: DSYNC records to RFC 3597 syntax, `DSYNC` in RRSIG
/// type-covered fields and NSEC bitmaps to `TYPE66`. Comments are dropped;
/// other lines are kept as they are.
pub fn for_knot(full: &str) -> String {
    let mut out = String::with_capacity(full.len());
    for line in full.lines() {
        if line.starts_with(';') || line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let rewritten = match fields.as_slice() {
            [owner, ttl, class, "DSYNC", rdata @ ..] => {
                let rdata = dsync_from_presentation(rdata)
                    .unwrap_or_else(|e| panic!("cannot rewrite {line:?}: {e}"));
                Some(format!("{owner} {ttl} {class} TYPE66 {rdata}"))
            }
            [owner, ttl, class, "RRSIG", "DSYNC", rest @ ..] => Some(format!(
                "{owner} {ttl} {class} RRSIG TYPE66 {}",
                rest.join(" ")
            )),
            [owner, ttl, class, "NSEC", next, types @ ..] if types.contains(&"DSYNC") => {
                let types: Vec<&str> = types
                    .iter()
                    .map(|t| if *t == "DSYNC" { "TYPE66" } else { t })
                    .collect();
                Some(format!(
                    "{owner} {ttl} {class} NSEC {next} {}",
                    types.join(" ")
                ))
            }
            _ => None,
        };
        out.push_str(rewritten.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

/// `CDS NOTIFY 5300 target.` (as BIND prints DSYNC) to `\# len hex`.
fn dsync_from_presentation(rdata: &[&str]) -> Result<String, String> {
    let [rrtype, scheme, port, target] = rdata else {
        return Err(format!("want 4 fields, got {rdata:?}"));
    };
    let rrtype = type_number(rrtype).ok_or_else(|| format!("unknown type {rrtype}"))?;
    let scheme = if scheme.eq_ignore_ascii_case("NOTIFY") {
        1
    } else {
        scheme
            .parse::<u8>()
            .map_err(|e| format!("scheme {scheme}: {e}"))?
    };
    let port = port
        .parse::<u16>()
        .map_err(|e| format!("port {port}: {e}"))?;
    Ok(generic(&dsync_wire(rrtype, scheme, port, target)?))
}

/// RDATA in RFC 3597 generic syntax: `\# len hex`.
pub fn generic(rdata: &[u8]) -> String {
    let mut text = format!("\\# {} ", rdata.len());
    for b in rdata {
        let _ = write!(text, "{b:02x}");
    }
    if rdata.is_empty() {
        text.pop();
    }
    text
}

/// DSYNC RDATA (RFC 9859) in RFC 3597 generic syntax, for zone bodies:
/// `dsync_rdata(CDS, 1, 5300, "rr-endpoint.example.")` is
/// `\# 26 003b0114b40b72722d656e64706f696e74076578616d706c6500`. The target
/// is taken as absolute (final dot optional), case kept, `\.` and `\DDD`
/// escapes understood.
pub fn dsync_rdata(rrtype: u16, scheme: u8, port: u16, target: &str) -> String {
    generic(&dsync_wire(rrtype, scheme, port, target).unwrap_or_else(|e| panic!("{e}")))
}

fn dsync_wire(rrtype: u16, scheme: u8, port: u16, target: &str) -> Result<Vec<u8>, String> {
    let mut wire = Vec::new();
    wire.extend_from_slice(&rrtype.to_be_bytes());
    wire.push(scheme);
    wire.extend_from_slice(&port.to_be_bytes());
    wire.extend_from_slice(&name_wire(target)?);
    Ok(wire)
}

/// A presentation-format name (absolute; escapes allowed) in wire form.
pub fn name_wire(name: &str) -> Result<Vec<u8>, String> {
    let mut wire = Vec::new();
    let mut label: Vec<u8> = Vec::new();
    let mut bytes = name.bytes().peekable();
    let mut any = false;
    let flush = |label: &mut Vec<u8>, wire: &mut Vec<u8>| -> Result<(), String> {
        if label.is_empty() {
            return Err(format!("empty label in {name:?}"));
        }
        if label.len() > 63 {
            return Err(format!("label longer than 63 octets in {name:?}"));
        }
        wire.push(label.len() as u8);
        wire.append(label);
        Ok(())
    };
    if name == "." {
        return Ok(vec![0]);
    }
    while let Some(b) = bytes.next() {
        any = true;
        match b {
            b'.' => flush(&mut label, &mut wire)?,
            b'\\' => {
                let first = bytes
                    .next()
                    .ok_or_else(|| format!("dangling escape in {name:?}"))?;
                if first.is_ascii_digit() {
                    let d2 = bytes.next().filter(u8::is_ascii_digit);
                    let d3 = bytes.next().filter(u8::is_ascii_digit);
                    let (Some(d2), Some(d3)) = (d2, d3) else {
                        return Err(format!("bad \\DDD escape in {name:?}"));
                    };
                    let v =
                        (first - b'0') as u32 * 100 + (d2 - b'0') as u32 * 10 + (d3 - b'0') as u32;
                    label.push(u8::try_from(v).map_err(|_| format!("\\{v} in {name:?}"))?);
                } else {
                    label.push(first);
                }
            }
            _ => label.push(b),
        }
    }
    if !any {
        return Err("empty name".to_string());
    }
    if !label.is_empty() {
        flush(&mut label, &mut wire)?;
    }
    wire.push(0);
    if wire.len() > 255 {
        return Err(format!("name longer than 255 octets: {name:?}"));
    }
    Ok(wire)
}

/// A type mnemonic (as BIND 9.18 prints them) or `TYPEnnn` to its number.
pub fn type_number(mnemonic: &str) -> Option<u16> {
    const TYPES: &[(&str, u16)] = &[
        ("A", 1),
        ("NS", 2),
        ("MD", 3),
        ("MF", 4),
        ("CNAME", 5),
        ("SOA", 6),
        ("MB", 7),
        ("MG", 8),
        ("MR", 9),
        ("NULL", 10),
        ("WKS", 11),
        ("PTR", 12),
        ("HINFO", 13),
        ("MINFO", 14),
        ("MX", 15),
        ("TXT", 16),
        ("RP", 17),
        ("AFSDB", 18),
        ("X25", 19),
        ("ISDN", 20),
        ("RT", 21),
        ("NSAP", 22),
        ("NSAP-PTR", 23),
        ("SIG", 24),
        ("KEY", 25),
        ("PX", 26),
        ("GPOS", 27),
        ("AAAA", 28),
        ("LOC", 29),
        ("NXT", 30),
        ("EID", 31),
        ("NIMLOC", 32),
        ("SRV", 33),
        ("ATMA", 34),
        ("NAPTR", 35),
        ("KX", 36),
        ("CERT", 37),
        ("A6", 38),
        ("DNAME", 39),
        ("SINK", 40),
        ("OPT", 41),
        ("APL", 42),
        ("DS", 43),
        ("SSHFP", 44),
        ("IPSECKEY", 45),
        ("RRSIG", 46),
        ("NSEC", 47),
        ("DNSKEY", 48),
        ("DHCID", 49),
        ("NSEC3", 50),
        ("NSEC3PARAM", 51),
        ("TLSA", 52),
        ("SMIMEA", 53),
        ("HIP", 55),
        ("NINFO", 56),
        ("RKEY", 57),
        ("TALINK", 58),
        ("CDS", 59),
        ("CDNSKEY", 60),
        ("OPENPGPKEY", 61),
        ("CSYNC", 62),
        ("ZONEMD", 63),
        ("SVCB", 64),
        ("HTTPS", 65),
        ("DSYNC", 66),
        ("SPF", 99),
        ("UINFO", 100),
        ("UID", 101),
        ("GID", 102),
        ("UNSPEC", 103),
        ("NID", 104),
        ("L32", 105),
        ("L64", 106),
        ("LP", 107),
        ("EUI48", 108),
        ("EUI64", 109),
        ("TKEY", 249),
        ("TSIG", 250),
        ("IXFR", 251),
        ("AXFR", 252),
        ("MAILB", 253),
        ("MAILA", 254),
        ("ANY", 255),
        ("URI", 256),
        ("CAA", 257),
        ("AVC", 258),
        ("DOA", 259),
        ("AMTRELAY", 260),
        ("RESINFO", 261),
        ("WALLET", 262),
        ("TA", 32768),
        ("DLV", 32769),
    ];
    let upper = mnemonic.to_ascii_uppercase();
    if let Some(Ok(n)) = upper.strip_prefix("TYPE").map(str::parse) {
        return Some(n);
    }
    TYPES.iter().find(|(m, _)| *m == upper).map(|(_, n)| *n)
}
