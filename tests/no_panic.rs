//! `analyze` must never panic, whatever the bytes, and must still say what kind of thing it saw.

use bounced::report::ReadOptions;
use bounced::{Analysis, Classifier, analyze};

/// A small xorshift64* generator: deterministic, no extra crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const KINDS: [&str; 6] = [
    "dsn",
    "text",
    "feedback",
    "autoreply",
    "not_bounce",
    "error",
];

fn check(a: &Analysis) {
    let kind = a.kind.as_str();
    assert!(KINDS.contains(&kind), "unknown kind {kind}");
    if kind == "error" {
        assert!(a.error.is_some(), "an error kind carries its error");
        assert!(a.bounces.is_empty());
    }
    if kind == "not_bounce" {
        assert!(a.bounces.is_empty(), "a non-bounce has no results");
    }
}

/// Pieces that steer the parser into its interesting paths.
const TOKENS: &[&[u8]] = &[
    b"\n",
    b"\r\n",
    b": ",
    b"Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\n",
    b"Content-Type: message/delivery-status\n",
    b"Content-Type: multipart/report; report-type=feedback-report; boundary=b\n",
    b"Content-Transfer-Encoding: base64\n",
    b"Content-Transfer-Encoding: quoted-printable\n",
    b"--b\n",
    b"--b--\n",
    b"Final-Recipient: rfc822; ",
    b"Action: failed\n",
    b"Status: 5.1.1\n",
    b"Diagnostic-Code: smtp; 550 ",
    b"From: MAILER-DAEMON@example.org\n",
    b"Subject: Undelivered Mail Returned to Sender\n",
    b"Auto-Submitted: auto-replied\n",
    b"user@example.com",
    b"<",
    b">",
    b"=?utf-8?B?",
    b"=E4",
    b"\xff\xfe\x00",
    b"\xe3\x81\x82",
    b"        ",
];

#[test]
fn random_bytes_never_panic() {
    let classifier = Classifier::new();
    let opts = ReadOptions::default();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for round in 0..400 {
        let size = match round % 4 {
            0 => rng.below(16),
            1 => rng.below(256),
            2 => rng.below(4096),
            _ => rng.below(32 * 1024),
        };
        let bytes: Vec<u8> = (0..size).map(|_| rng.next() as u8).collect();
        check(&analyze(&bytes, &classifier, &opts));
    }
}

#[test]
fn random_token_soup_never_panics() {
    let classifier = Classifier::new();
    let opts = ReadOptions::default();
    let mut rng = Rng(42);
    for _ in 0..400 {
        let mut bytes = Vec::new();
        for _ in 0..rng.below(120) {
            if rng.below(4) == 0 {
                bytes.push(rng.next() as u8);
            } else {
                bytes.extend_from_slice(TOKENS[rng.below(TOKENS.len())]);
            }
        }
        check(&analyze(&bytes, &classifier, &opts));
        // Every prefix of a well-formed start is a truncated message.
        let cut = rng.below(bytes.len() + 1);
        check(&analyze(&bytes[..cut], &classifier, &opts));
    }
}

#[test]
fn empty_and_blank_input_is_an_error() {
    let classifier = Classifier::new();
    let opts = ReadOptions::default();
    for input in [&b""[..], b"\n", b"\r\n\r\n", b"   \t "] {
        let a = analyze(input, &classifier, &opts);
        check(&a);
        assert_eq!(a.kind.as_str(), "error", "{input:?}");
    }
}

#[test]
fn headers_only_is_not_a_bounce() {
    let classifier = Classifier::new();
    let opts = ReadOptions::default();
    let a = analyze(
        b"From: someone@example.com\nTo: other@example.net\nSubject: hello\n",
        &classifier,
        &opts,
    );
    check(&a);
    assert_eq!(a.kind.as_str(), "not_bounce");
}

#[test]
fn a_twenty_megabyte_message_is_handled() {
    let classifier = Classifier::new();
    let opts = ReadOptions::default();
    let mut msg = Vec::with_capacity(21 * 1024 * 1024);
    msg.extend_from_slice(
        b"From: MAILER-DAEMON@example.org\nTo: news-bounces@example.com\n\
          Subject: Undelivered Mail Returned to Sender\n\
          MIME-Version: 1.0\n\
          Content-Type: multipart/report; report-type=delivery-status; boundary=\"big\"\n\n\
          --big\nContent-Type: message/delivery-status\n\n\
          Reporting-MTA: dns; mail.example.org\n\n\
          Final-Recipient: rfc822; big@example.net\nAction: failed\nStatus: 5.2.2\n\n\
          --big\nContent-Type: text/plain\n\n",
    );
    let line = b"The quick brown fox jumps over the lazy dog, again and again and again.\n";
    while msg.len() < 20 * 1024 * 1024 {
        msg.extend_from_slice(line);
    }
    msg.extend_from_slice(b"--big--\n");
    let a = analyze(&msg, &classifier, &opts);
    check(&a);
    assert_ne!(a.kind.as_str(), "error", "20 MB is under the default limit");

    let small = ReadOptions {
        max_size: 1024 * 1024,
        ..ReadOptions::default()
    };
    let a = analyze(&msg, &classifier, &small);
    assert_eq!(a.kind.as_str(), "error");
    assert!(matches!(a.error, Some(bounced::ReadError::TooLarge { .. })));
}
