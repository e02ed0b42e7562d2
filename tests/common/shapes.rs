//! The worst shapes of a message we know of, generated at any size: each repeats the one thing
//! that once cost work or memory beyond the message's size (header structures, per-recipient
//! searches, MIME parts, nested messages, quadratic scans). Shared by `tests/bounded_work.rs` and
//! `benches/shapes.rs`.

#![allow(dead_code)]

/// A shape: its name, what it repeats, and how to make a message of about `size` bytes of it.
pub struct Shape {
    pub name: &'static str,
    pub what: &'static str,
    pub make: fn(usize) -> Vec<u8>,
}

const HEAD: &str = "From: MAILER-DAEMON@mx.example.org\n\
To: list-bounces@example.org\n\
Subject: Undelivered Mail Returned to Sender\n";

/// `head`, then `unit(i)` for i = 0, 1, ... until the message has `size` bytes, then `tail`.
fn repeat(head: &str, size: usize, unit: impl Fn(usize) -> String, tail: &str) -> Vec<u8> {
    let mut out = String::with_capacity(size + tail.len() + 256);
    out.push_str(head);
    let mut i = 0;
    while out.len() < size {
        out.push_str(&unit(i));
        i += 1;
    }
    out.push_str(tail);
    out.into_bytes()
}

pub const SHAPES: &[Shape] = &[
    Shape {
        name: "header-lines",
        what: "`A:` header lines",
        make: |size| {
            repeat(
                "From: MAILER-DAEMON@mx.example.org\n",
                size,
                |_| "A:\n".into(),
                "\nbody\n",
            )
        },
    },
    Shape {
        name: "received-lines",
        what: "`Received:` header lines",
        make: |size| {
            repeat(
                HEAD,
                size,
                |i| {
                    format!(
                        "Received: from h{i}.example.net by mx.example.org; Mon, 1 Jan 2026 00:00:00 +0000\n"
                    )
                },
                "\nbody\n",
            )
        },
    },
    Shape {
        name: "address-lines",
        what: "Postfix-style `<uN@example.net>: ... 550 5.1.1 user unknown` lines",
        make: |size| {
            repeat(
                &format!("{HEAD}\nThis is the mail system at host mx.example.org.\n\n"),
                size,
                |i| format!("<u{i}@example.net>: host mx said: 550 5.1.1 user unknown\n"),
                "",
            )
        },
    },
    Shape {
        name: "same-address",
        what: "one address's Postfix paragraph, repeated",
        make: |size| {
            repeat(
                &format!("{HEAD}\nThis is the mail system at host mx.example.org.\n\n"),
                size,
                |_| "<same@example.net>: host mx said: 550 5.1.1 user unknown\n\n".into(),
                "",
            )
        },
    },
    Shape {
        name: "address-list",
        what: "addresses separated by commas, no white space",
        make: |size| {
            repeat(
                &format!("{HEAD}\n"),
                size,
                |i| format!("u{i}@example.net,"),
                "\n",
            )
        },
    },
    Shape {
        name: "generic-lines",
        what: "`uN@example.net: 550 user unknown` lines in a report of no known shape",
        make: |size| {
            repeat(
                &format!("{HEAD}\nYour message could not be delivered to these recipients:\n\n"),
                size,
                |i| format!("u{i}@example.net: 550 user unknown\n"),
                "",
            )
        },
    },
    Shape {
        name: "exim-blocks",
        what: "Exim's indented address blocks",
        make: |size| {
            repeat(
                "From: Mail Delivery System <Mailer-Daemon@relay.example.org>\n\
Subject: Mail delivery failed: returning message to sender\n\n\
This message was created automatically by mail delivery software.\n\n\
The following address(es) failed:\n\n",
                size,
                |i| format!("  u{i}@example.net\n    550 5.1.1 unknown user\n"),
                "",
            )
        },
    },
    Shape {
        name: "transcript",
        what: "Sendmail transcript exchanges (`>>> RCPT` / `<<< 550`)",
        make: |size| {
            repeat(
                &format!("{HEAD}\n   ----- Transcript of session follows -----\n"),
                size,
                |i| {
                    format!(
                        ">>> RCPT To:<u{i}@example.net>\n<<< 550 5.1.1 <u{i}@example.net>... User unknown\n"
                    )
                },
                "",
            )
        },
    },
    Shape {
        name: "replies",
        what: "`<<<` reply lines with no command",
        make: |size| {
            repeat(
                &format!("{HEAD}\n   ----- Transcript of session follows -----\n"),
                size,
                |_| "<<< 550 5.1.1 no such user here\n".into(),
                "",
            )
        },
    },
    Shape {
        name: "dsn-blocks",
        what: "DSN recipient blocks",
        make: |size| {
            repeat(
                &format!(
                    "{HEAD}Content-Type: multipart/report; report-type=delivery-status; boundary=\"r\"\n\n\
--r\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.org\n\n"
                ),
                size,
                |i| {
                    format!(
                        "Final-Recipient: rfc822; u{i}@example.com\nAction: failed\nStatus: 5.1.1\n\n"
                    )
                },
                "--r--\n",
            )
        },
    },
    Shape {
        name: "inline-dsn",
        what: "DSN recipient blocks written in the text",
        make: |size| {
            repeat(
                &format!("{HEAD}\nReporting-MTA: dns; mx.example.org\n\n"),
                size,
                |i| {
                    format!(
                        "Final-Recipient: rfc822; u{i}@example.com\nAction: failed\nStatus: 5.1.1\n\n"
                    )
                },
                "",
            )
        },
    },
    Shape {
        name: "mime-parts",
        what: "empty MIME parts",
        make: |size| {
            repeat(
                &format!(
                    "{HEAD}MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b\"\n\n"
                ),
                size,
                |_| "--b\n\nx\n".into(),
                "--b--\n",
            )
        },
    },
    Shape {
        name: "part-header-lines",
        what: "`A:` header lines of one MIME part, its boundary written loosely",
        make: |size| {
            repeat(
                &format!(
                    "{HEAD}MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary = \"b\"\n\n--b junk\n"
                ),
                size,
                |_| "A:\n".into(),
                "\nx\n--b--\n",
            )
        },
    },
    Shape {
        name: "attached-messages",
        what: "`message/rfc822` parts",
        make: |size| {
            repeat(
                &format!(
                    "{HEAD}MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b\"\n\n"
                ),
                size,
                |_| "--b\nContent-Type: message/rfc822\n\nA: b\n\nx\n".into(),
                "--b--\n",
            )
        },
    },
    Shape {
        name: "content-type-params",
        what: "`Content-Type` parameters",
        make: |size| {
            repeat(
                &format!("{HEAD}Content-Type: text/plain"),
                size,
                |_| "; a=b".into(),
                "\n\nbody\n",
            )
        },
    },
    Shape {
        name: "to-addresses",
        what: "addresses in one `To:` field",
        make: |size| {
            repeat(
                "From: MAILER-DAEMON@mx.example.org\nSubject: failure notice\nTo: a@example.org",
                size,
                |i| format!(", u{i}@example.org"),
                "\n\nbody\n",
            )
        },
    },
    Shape {
        name: "encoded-subject",
        what: "RFC 2047 encoded words in the `Subject`",
        make: |size| {
            repeat(
                "From: MAILER-DAEMON@mx.example.org\nSubject: ",
                size,
                |_| "=?utf-8?B?QQ==?= ".into(),
                "\n\nbody\n",
            )
        },
    },
    Shape {
        name: "folded-header",
        what: "continuation lines of one header field",
        make: |size| {
            repeat(
                "From: MAILER-DAEMON@mx.example.org\nX-Long: a\n",
                size,
                |_| " b\n".into(),
                "\nbody\n",
            )
        },
    },
    Shape {
        name: "original-markers",
        what: "\"original message\" markers each followed by a header-like line",
        make: |size| {
            repeat(
                &format!("{HEAD}\n"),
                size,
                |_| "original message\nX: y\n".into(),
                "",
            )
        },
    },
    Shape {
        name: "short-lines",
        what: "one-character lines",
        make: |size| repeat(&format!("{HEAD}\n"), size, |_| "x\n".into(), ""),
    },
    Shape {
        name: "at-signs",
        what: "`@` characters",
        make: |size| repeat(&format!("{HEAD}\n"), size, |_| "@".repeat(64), "\n"),
    },
];
