//! DNS wire-format pieces the harness's own servers need (the NOTIFY
//! receivers and the corrupting proxy): names with compression pointers
//! (RFC 1035 section 4.1.4) and TCP's two-byte length prefix (RFC 1035
//! section 4.2.2).

use std::{
    fmt::Write as _,
    io::{self, Read, Write},
    net::TcpStream,
};

/// Reads a (possibly compressed) name at `pos`: (lower-case FQDN in
/// presentation form, position after the name in the message). Dots and
/// backslashes inside labels are escaped, other bytes outside 0x21-0x7e
/// become `\DDD`.
pub fn read_name(msg: &[u8], mut pos: usize) -> Option<(String, usize)> {
    let mut name = String::new();
    let mut end = None;
    for _ in 0..128 {
        let len = *msg.get(pos)? as usize;
        if len == 0 {
            if name.is_empty() {
                name.push('.');
            }
            return Some((name, end.unwrap_or(pos + 1)));
        }
        if len & 0xc0 == 0xc0 {
            end.get_or_insert(pos + 2);
            pos = ((len & 0x3f) << 8) | *msg.get(pos + 1)? as usize;
            continue;
        }
        for &b in msg.get(pos + 1..pos + 1 + len)? {
            match b {
                b'.' | b'\\' => {
                    name.push('\\');
                    name.push(b as char);
                }
                0x21..=0x7e => name.push(b.to_ascii_lowercase() as char),
                _ => {
                    let _ = write!(name, "\\{b:03}");
                }
            }
        }
        name.push('.');
        pos += 1 + len;
    }
    None
}

/// One length-prefixed message from a TCP stream; None at a clean EOF.
pub fn read_tcp_message(stream: &mut TcpStream) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 2];
    match stream.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
    stream.read_exact(&mut msg)?;
    Ok(Some(msg))
}

/// Writes `msg` with its length prefix in one write.
pub fn write_tcp_message(stream: &mut TcpStream, msg: &[u8]) -> io::Result<()> {
    let mut out = Vec::with_capacity(msg.len() + 2);
    out.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    out.extend_from_slice(msg);
    stream.write_all(&out)
}
