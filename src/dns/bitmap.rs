//! Type bit maps as used by NSEC (RFC 4034 §4.1.2) and CSYNC (RFC 7477 §2.1.1).

use hickory_proto::rr::RecordType;

/// Encodes a set of record types as window blocks: window number, bitmap
/// length, bitmap octets; windows in ascending order, trailing zero octets
/// omitted.
pub fn encode(types: &[RecordType]) -> Vec<u8> {
    let mut codes: Vec<u16> = types.iter().map(|t| u16::from(*t)).collect();
    codes.sort_unstable();
    codes.dedup();
    let mut out = Vec::new();
    let mut i = 0;
    while i < codes.len() {
        let window = (codes[i] >> 8) as u8;
        let mut bits = [0u8; 32];
        let mut used = 0usize;
        while i < codes.len() && (codes[i] >> 8) as u8 == window {
            let low = (codes[i] & 0xff) as usize;
            bits[low / 8] |= 0x80 >> (low % 8);
            used = used.max(low / 8 + 1);
            i += 1;
        }
        out.push(window);
        out.push(used as u8);
        out.extend_from_slice(&bits[..used]);
    }
    out
}

/// Decodes window blocks back into record types, rejecting malformed maps
/// (RFC 4034 §4.1.2: windows ascending, lengths 1..=32).
pub fn decode(mut data: &[u8]) -> Result<Vec<RecordType>, &'static str> {
    let mut types = Vec::new();
    let mut last_window: Option<u8> = None;
    while !data.is_empty() {
        if data.len() < 2 {
            return Err("truncated type bitmap window header");
        }
        let (window, len) = (data[0], data[1] as usize);
        if last_window.is_some_and(|w| w >= window) {
            return Err("type bitmap windows out of order");
        }
        if len == 0 || len > 32 || data.len() < 2 + len {
            return Err("bad type bitmap window length");
        }
        for (octet, byte) in data[2..2 + len].iter().enumerate() {
            for bit in 0..8 {
                if byte & (0x80 >> bit) != 0 {
                    let code = (u16::from(window) << 8) | (octet * 8 + bit) as u16;
                    types.push(RecordType::from(code));
                }
            }
        }
        last_window = Some(window);
        data = &data[2 + len..];
    }
    Ok(types)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7477_example_bitmap() {
        // RFC 7477 §2.1.1: A, NS, AAAA -> window 0, 4 octets 60 00 00 08.
        let map = encode(&[RecordType::AAAA, RecordType::A, RecordType::NS]);
        assert_eq!(map, [0x00, 0x04, 0x60, 0x00, 0x00, 0x08]);
        assert_eq!(
            decode(&map).expect("valid"),
            vec![RecordType::A, RecordType::NS, RecordType::AAAA]
        );
    }

    #[test]
    fn multiple_windows() {
        let types = [RecordType::A, RecordType::Unknown(128), RecordType::CAA];
        let map = encode(&types);
        // window 0: A; window 1: CAA (257) -> bit 1; window 0 also has 128 (NXNAME).
        let decoded = decode(&map).expect("valid");
        assert_eq!(decoded.len(), 3);
        assert!(decode(&[0x01, 0x01, 0x40, 0x00, 0x01, 0x40]).is_err());
        assert!(decode(&[0x00]).is_err());
        assert!(decode(&[0x00, 0x00]).is_err());
    }
}
