//! A DNS client: one message to one server, and its answer.
//!
//! Used for DSYNC discovery and NS addresses (through a resolver), the
//! parent observer and the consistency gate (straight to authoritative
//! servers), generalized NOTIFY (RFC 9859 §4.2) and UPDATE (RFC 2136).
//!
//! Transport follows RFC 1035 §4.2 and RFC 7766: UDP first, retransmitted
//! with a doubling timeout; a truncated answer, or none at all when
//! [`TcpFallback::OnSilence`] is set (RFC 9859 §4.2.1: "UDP, with TCP
//! fallback"), is retried over TCP. Answers must come from the server asked,
//! carry the query's ID and question, and verify with the TSIG key when one
//! signed the query (RFC 8945 §5.3); anything else is ignored, so a spoofed
//! or stray datagram cannot stand in for the answer. A datagram that fails
//! the TSIG check does not end the wait either: it is reported only when no
//! verified answer arrives before that try's deadline. A failed send is a
//! failed try, retransmitted like silence.

pub mod authoritative;
pub mod notify;

use std::{net::SocketAddr, time::Duration};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpStream, UdpSocket},
    time::{Instant, timeout, timeout_at},
};

use crate::{
    dns::{
        message::{self, Message, MessageError},
        wire::{flags, put_framed, rcode, unix_now},
    },
    tsig,
};

/// When to fall back to TCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpFallback {
    /// Only when the UDP answer is truncated.
    OnTruncation,
    /// Also when UDP stays silent after every try.
    OnSilence,
    /// TCP straight away (large UPDATEs, zone transfers).
    Always,
}

/// How to talk to a server.
#[derive(Debug, Clone)]
pub struct Options {
    /// Wait for the first UDP answer; doubled for every retry.
    pub timeout: Duration,
    /// UDP tries (1 = no retransmission).
    pub udp_tries: u32,
    /// When to use TCP.
    pub tcp: TcpFallback,
    /// Sign the message and require signed answers.
    pub tsig: Option<tsig::Key>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            timeout: Duration::from_secs(2),
            udp_tries: 3,
            tcp: TcpFallback::OnTruncation,
            tsig: None,
        }
    }
}

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No answer at all.
    #[error("{server}: no answer ({tries})")]
    Timeout {
        /// The server.
        server: SocketAddr,
        /// What was tried.
        tries: String,
    },
    /// A socket error.
    #[error("{server}: {source}")]
    Io {
        /// The server.
        server: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// The answer could not be parsed.
    #[error("{server}: {source}")]
    Malformed {
        /// The server.
        server: SocketAddr,
        /// The error.
        source: MessageError,
    },
    /// The answer's TSIG is missing, wrong, or reports an error.
    #[error("{server}: TSIG: {why}")]
    Tsig {
        /// The server.
        server: SocketAddr,
        /// What is wrong.
        why: TsigProblem,
    },
}

/// What is wrong with the TSIG of an answer to a signed query (RFC 8945
/// §5.3).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TsigProblem {
    /// The server reports a TSIG error (BADSIG, BADKEY, BADTIME, ...).
    #[error("the server answered {} (TSIG error {code}: {})", tsig::error_name(*code), hint(*code))]
    Refused {
        /// The TSIG error code.
        code: u16,
    },
    /// The MAC does not verify with our key.
    #[error("the answer's MAC does not verify")]
    BadMac,
    /// The answer carries no TSIG record.
    #[error("the answer ({}) is not signed", rcode::name(*rcode))]
    Unsigned {
        /// The answer's RCODE.
        rcode: u16,
    },
    /// The TSIG record cannot be read.
    #[error("malformed TSIG record: {0}")]
    Malformed(&'static str),
}

/// What a TSIG error code usually means.
fn hint(code: u16) -> &'static str {
    match code {
        tsig::error::BADKEY => "it does not know the key, or not with this algorithm",
        tsig::error::BADSIG => "the secret differs",
        tsig::error::BADTIME => "the clocks differ by more than the fudge",
        _ => "see the server's log",
    }
}

/// Sends `packet` (ID and question already in it) to `server` and returns
/// the answer.
pub async fn exchange(
    server: SocketAddr,
    mut packet: Vec<u8>,
    options: &Options,
) -> Result<Message, ClientError> {
    let request_mac = options
        .tsig
        .as_ref()
        .map(|key| tsig::sign(&mut packet, key, None, unix_now(), 0));
    let check = |raw: &[u8]| -> Option<Result<Message, ClientError>> {
        acceptable(server, &packet, raw, options, request_mac.as_deref())
    };
    if options.tcp != TcpFallback::Always {
        match udp(server, &packet, options, &check).await? {
            Some(Ok(answer)) if !answer.has(flags::TC) => return Ok(answer),
            Some(Ok(_)) => {} // truncated: TCP
            Some(Err(e)) => return Err(e),
            None if options.tcp == TcpFallback::OnSilence => {}
            None => {
                return Err(ClientError::Timeout {
                    server,
                    tries: format!("{} UDP tries", options.udp_tries),
                });
            }
        }
    }
    let wait = options.timeout * 2;
    match timeout(wait, tcp(server, &packet)).await {
        Ok(Ok(raw)) => check(&raw).unwrap_or(Err(ClientError::Malformed {
            server,
            source: MessageError("the TCP answer does not match the query"),
        })),
        Ok(Err(source)) => Err(ClientError::Io { server, source }),
        Err(_) => Err(ClientError::Timeout {
            server,
            tries: if options.tcp == TcpFallback::Always {
                "TCP".into()
            } else {
                format!("{} UDP tries, then TCP", options.udp_tries)
            },
        }),
    }
}

/// UDP with retransmission: `Ok(None)` when nothing acceptable came back.
async fn udp(
    server: SocketAddr,
    packet: &[u8],
    options: &Options,
    check: &impl Fn(&[u8]) -> Option<Result<Message, ClientError>>,
) -> Result<Option<Result<Message, ClientError>>, ClientError> {
    let bind: SocketAddr = if server.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    };
    let io = |source| ClientError::Io { server, source };
    let socket = UdpSocket::bind(bind).await.map_err(io)?;
    let mut wait = options.timeout;
    let mut buf = vec![0u8; 65535];
    // Why the last try failed to send, for when no try gets through.
    let mut send_failed = None;
    for _ in 0..options.udp_tries.max(1) {
        let deadline = Instant::now() + wait;
        wait = wait.saturating_mul(2);
        if let Err(source) = socket.send_to(packet, server).await {
            // A failed send is a failed try: retransmit after its wait.
            send_failed = Some(io(source));
            tokio::time::sleep_until(deadline).await;
            continue;
        }
        // A datagram whose TSIG does not verify may be spoofed: keep
        // listening, and report it only if nothing acceptable comes in time.
        let mut unverified = None;
        loop {
            let Ok(received) = timeout_at(deadline, socket.recv_from(&mut buf)).await else {
                break;
            };
            let (len, from) = match received {
                Ok(got) => got,
                // ICMP port unreachable shows up here: the server is down.
                Err(source) => return Err(io(source)),
            };
            if from != server {
                continue;
            }
            match check(&buf[..len]) {
                Some(Err(e @ ClientError::Tsig { .. })) => unverified = Some(e),
                Some(result) => return Ok(Some(result)),
                None => {}
            }
        }
        if let Some(e) = unverified {
            return Ok(Some(Err(e)));
        }
    }
    send_failed.map_or(Ok(None), Err)
}

/// One query over a fresh TCP connection (RFC 7766 §8 length framing).
async fn tcp(server: SocketAddr, packet: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(server).await?;
    let mut framed = Vec::with_capacity(packet.len() + 2);
    put_framed(&mut framed, packet).map_err(std::io::Error::other)?;
    stream.write_all(&framed).await?;
    let len = stream.read_u16().await?;
    let mut answer = vec![0u8; usize::from(len)];
    stream.read_exact(&mut answer).await?;
    Ok(answer)
}

/// `None` when `raw` is not the answer to `query` (ignore it); else the
/// parsed answer, or why it is unusable.
pub(crate) fn acceptable(
    server: SocketAddr,
    query: &[u8],
    raw: &[u8],
    options: &Options,
    request_mac: Option<&[u8]>,
) -> Option<Result<Message, ClientError>> {
    if raw.len() < 12 || raw[..2] != query[..2] || raw[2] & 0x80 == 0 {
        return None;
    }
    let answer = match message::parse(raw) {
        Ok(answer) => answer,
        Err(source) => return Some(Err(ClientError::Malformed { server, source })),
    };
    // The question must be echoed (RFC 5452 §9.1), when the query had one.
    if let (Ok(asked), Some(got)) = (message::parse(query), &answer.question) {
        if let Some(asked) = &asked.question {
            if asked.0 != got.0 || asked.1 != got.1 {
                return None;
            }
        }
    }
    if let (Some(key), Some(mac)) = (&options.tsig, request_mac) {
        let why = match tsig::find(raw) {
            Ok(Some(t)) if t.error != 0 => Some(TsigProblem::Refused { code: t.error }),
            Ok(Some(t)) if tsig::verify_response(key, raw, &t, mac) => None,
            Ok(Some(_)) => Some(TsigProblem::BadMac),
            Ok(None) => Some(TsigProblem::Unsigned {
                rcode: answer.rcode,
            }),
            Err(e) => Some(TsigProblem::Malformed(e)),
        };
        if let Some(why) = why {
            return Some(Err(ClientError::Tsig { server, why }));
        }
    }
    Some(Ok(answer))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::{RecordType, parse_name};

    /// A UDP "server" that answers the first query after `ignore` others,
    /// with TC set when `truncate`.
    async fn fake_server(
        ignore: usize,
        truncate: bool,
    ) -> (SocketAddr, tokio::task::JoinHandle<usize>) {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let addr = socket.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let mut buf = [0u8; 512];
            let mut seen = 0;
            loop {
                let Ok((len, from)) = socket.recv_from(&mut buf).await else {
                    return seen;
                };
                seen += 1;
                if seen <= ignore {
                    continue;
                }
                let mut answer = buf[..len].to_vec();
                answer[2] |= 0x80;
                if truncate {
                    answer[2] |= 0x02;
                }
                // Drop the OPT record the query carried.
                answer[11] = 0;
                let keep = len - 11;
                answer.truncate(keep);
                let _ = socket.send_to(&answer, from).await;
                // A stray answer with another ID must be ignored.
                return seen;
            }
        });
        (addr, task)
    }

    #[tokio::test]
    async fn udp_retries_until_answered() {
        let (server, task) = fake_server(1, false).await;
        let packet = message::query(
            77,
            &parse_name("example.").expect("valid"),
            RecordType::SOA,
            false,
            false,
        );
        let options = Options {
            timeout: Duration::from_millis(100),
            ..Options::default()
        };
        let answer = exchange(server, packet, &options).await.expect("answered");
        assert_eq!(answer.id, 77);
        assert_eq!(task.await.expect("task"), 2);
    }

    #[tokio::test]
    async fn silence_is_a_timeout_naming_the_server() {
        let (server, _task) = fake_server(usize::MAX, false).await;
        let packet = message::query(
            1,
            &parse_name("example.").expect("valid"),
            RecordType::SOA,
            false,
            false,
        );
        let options = Options {
            timeout: Duration::from_millis(50),
            udp_tries: 2,
            ..Options::default()
        };
        let err = exchange(server, packet, &options)
            .await
            .expect_err("no answer");
        assert!(err.to_string().contains(&server.to_string()), "{err}");
        assert!(matches!(err, ClientError::Timeout { .. }));
    }
}
