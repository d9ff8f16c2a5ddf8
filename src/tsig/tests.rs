//! TSIG round trips.

use super::*;
use crate::dns::parse_name;

fn key() -> Key {
    Key::new(
        parse_name("xfr-key.").expect("valid"),
        Algorithm::HmacSha256,
        b"0123456789abcdef0123456789abcdef",
    )
}

fn query() -> Vec<u8> {
    let mut q = vec![0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    q.extend_from_slice(b"\x07_signal\x03ns1\x07example\x03net\x00\x00\xfc\x00\x01");
    q
}

#[test]
fn sign_and_verify_a_request_and_its_answer() {
    let ring = Keyring::from_keys(vec![key()]);
    let mut q = query();
    let mac = sign(&mut q, &key(), None, 1_800_000_000, 0);
    let tsig = find(&q).expect("parses").expect("present");
    assert_eq!(tsig.key_name, parse_name("xfr-key.").expect("valid"));
    assert_eq!(tsig.algorithm, Some(Algorithm::HmacSha256));
    let (found, request_mac) = verify_request(&ring, &q, &tsig, 1_800_000_100).expect("verifies");
    assert_eq!(request_mac, mac);
    // The answer, then a continuation.
    let mut answer = q[..tsig.offset].to_vec();
    answer[10..12].copy_from_slice(&0u16.to_be_bytes());
    answer[2] |= 0x80;
    let before = answer.len();
    let answer_mac = sign(&mut answer, found, Some(&request_mac), 1_800_000_100, 0);
    assert_eq!(
        answer.len() - before,
        found.record_len(),
        "the reserve a UDP answer keeps"
    );
    let atsig = find(&answer).expect("parses").expect("present");
    assert!(verify_response(found, &answer, &atsig, &request_mac));
    assert!(!verify_response(found, &answer, &atsig, b"wrong"));
    let mut more = answer[..atsig.offset].to_vec();
    more[10..12].copy_from_slice(&0u16.to_be_bytes());
    sign_continuation(&mut more, found, &answer_mac, 1_800_000_100);
    assert!(find(&more).expect("parses").is_some());
}

#[test]
fn bad_key_sig_and_time() {
    let ring = Keyring::from_keys(vec![key()]);
    let mut q = query();
    sign(&mut q, &key(), None, 1_800_000_000, 0);
    let tsig = find(&q).expect("parses").expect("present");
    assert_eq!(
        verify_request(&ring, &q, &tsig, 1_800_001_000).err(),
        Some(VerifyError::BadTime)
    );
    let other = Keyring::from_keys(vec![Key::new(
        parse_name("xfr-key.").expect("valid"),
        Algorithm::HmacSha256,
        b"another secret entirely",
    )]);
    assert_eq!(
        verify_request(&other, &q, &tsig, 1_800_000_000).err(),
        Some(VerifyError::BadSig)
    );
    let none = Keyring::default();
    assert_eq!(
        verify_request(&none, &q, &tsig, 1_800_000_000).err(),
        Some(VerifyError::BadKey)
    );
    let mut tampered = q.clone();
    tampered[3] ^= 0x10; // the CD bit: covered by the MAC
    let t = find(&tampered).expect("parses").expect("present");
    assert_eq!(
        verify_request(&ring, &tampered, &t, 1_800_000_000).err(),
        Some(VerifyError::BadSig)
    );
}

#[test]
fn tsig_keygen_files() {
    let tmp = tempfile::tempdir().expect("tmp");
    let file = tmp.path().join("xfr.key");
    std::fs::write(
        &file,
        "key \"xfr-key\" {\n\talgorithm hmac-sha256;\n\tsecret \"YpbnOapa/XuGGvTDCPj33ehLkOpZPmOOq7AIL2tSRcs=\";\n};\n\
         // a second one\nkey other { algorithm hmac-sha512; secret \"c2VjcmV0\"; };\n",
    )
    .expect("write");
    let keys = parse_key_file(&file).expect("parses");
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[1].algorithm, Algorithm::HmacSha512);
    std::fs::write(
        &file,
        "key \"x\" {\n algorithm hmac-md5;\n secret \"c2VjcmV0\";\n};\n",
    )
    .expect("write");
    let e = parse_key_file(&file).expect_err("md5");
    assert_eq!(e.line, 2);
    assert!(e.kind.to_string().contains("not supported"), "{e}");
    std::fs::write(&file, "key \"x\" { algorithm hmac-sha256; };\n").expect("write");
    assert!(
        parse_key_file(&file)
            .expect_err("no secret")
            .kind
            .to_string()
            .contains("secret")
    );
    std::fs::write(
        &file,
        "key \"x\" { algorithm hmac-sha256; secret \"!!\"; };\n",
    )
    .expect("write");
    assert!(parse_key_file(&file).is_err());
}

#[test]
fn record_len_is_what_signing_adds_for_every_algorithm_and_long_names() {
    let long = format!("{}.{}.example.", "k".repeat(63), "e".repeat(40));
    for algorithm in [
        Algorithm::HmacSha256,
        Algorithm::HmacSha384,
        Algorithm::HmacSha512,
    ] {
        for name in ["xfr-key.", long.as_str()] {
            let key = Key::new(parse_name(name).expect("valid"), algorithm, b"secret");
            let mut message = query();
            let before = message.len();
            sign(&mut message, &key, None, 1_800_000_000, 0);
            assert_eq!(
                message.len() - before,
                key.record_len(),
                "{algorithm:?} {name}"
            );
        }
    }
}

/// A request signed at `time` with the fudge the client claims.
fn signed_with_fudge(key: &Key, time: u64, fudge: u16) -> Vec<u8> {
    let mut q = query();
    let mut data = q.clone();
    data.extend(variables(key, time, fudge, 0, &[]));
    let mac = hmac::sign(&key.secret, &data).as_ref().to_vec();
    append_record(
        &mut q,
        &key.name,
        &key.algorithm.wire(),
        &TsigFields {
            time_signed: time,
            fudge,
            mac: &mac,
            original_id: 0x1234,
            error: 0,
            other: &[],
        },
    );
    q
}

#[test]
fn a_claimed_fudge_is_capped_at_ours() {
    let ring = Keyring::from_keys(vec![key()]);
    let q = signed_with_fudge(&key(), 1_800_000_000, u16::MAX);
    let tsig = find(&q).expect("parses").expect("present");
    assert_eq!(tsig.fudge, u16::MAX);
    // Inside our 300 s: accepted; 1000 s off: BADTIME, whatever it claims.
    assert!(verify_request(&ring, &q, &tsig, 1_800_000_200).is_ok());
    assert_eq!(
        verify_request(&ring, &q, &tsig, 1_800_001_000).err(),
        Some(VerifyError::BadTime)
    );
}

#[test]
fn a_badtime_answer_is_signed_with_the_clients_time_and_ours() {
    let ring = Keyring::from_keys(vec![key()]);
    let mut q = query();
    sign(&mut q, &key(), None, 1_800_000_000, 0);
    let request = find(&q).expect("parses").expect("present");
    let now = 1_800_001_000;
    assert_eq!(
        verify_request(&ring, &q, &request, now).err(),
        Some(VerifyError::BadTime)
    );
    let mut answer = q[..request.offset].to_vec();
    answer[10..12].copy_from_slice(&0u16.to_be_bytes());
    answer[2] |= 0x80;
    sign_badtime(&mut answer, &key(), &request, now);
    let tsig = find(&answer).expect("parses").expect("present");
    assert_eq!(tsig.error, error::BADTIME);
    assert_eq!(tsig.time_signed, 1_800_000_000, "the client's time");
    assert_eq!(
        tsig.other,
        now.to_be_bytes()[2..].to_vec(),
        "the server's time"
    );
    assert!(!tsig.mac.is_empty());
    assert!(
        verify_response(&key(), &answer, &tsig, &request.mac),
        "the client can verify it"
    );
}
