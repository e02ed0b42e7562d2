//! Tests of the message-level dispatch: kinds, line endings, encodings, and robustness.

use super::*;

/// A Postfix-like DSN with two recipients, the second one without a Diagnostic-Code.
fn dsn_message() -> String {
    "Return-Path: <>\n\
From: MAILER-DAEMON@out.example.org (Mail Delivery System)\n\
To: sender@example.org\n\
Date: Wed, 4 Mar 2026 08:00:00 +0000\n\
Subject: Undelivered Mail Returned to Sender\n\
MIME-Version: 1.0\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"B0\"\n\
\n\
--B0\n\
Content-Type: text/plain; charset=us-ascii\n\
\n\
This is the mail system at host out.example.org.\n\
\n\
<one@example.com>: host mx.example.com[192.0.2.10] said: 550 5.1.1 <one@example.com>:\n\
\x20   Recipient address rejected: User unknown (in reply to RCPT TO command)\n\
\n\
<two@example.net>: host mx.example.net[192.0.2.20] said: 552 5.2.2 Mailbox\n\
\x20   over quota (in reply to end of DATA command)\n\
\n\
--B0\n\
Content-Type: message/delivery-status\n\
\n\
Reporting-MTA: dns; out.example.org\n\
Arrival-Date: Wed, 4 Mar 2026 07:59:58 +0000\n\
\n\
Final-Recipient: rfc822; one@example.com\n\
Original-Recipient: rfc822;one@example.com\n\
Action: failed\n\
Status: 5.1.1\n\
Remote-MTA: dns; mx.example.com\n\
Diagnostic-Code: smtp; 550 5.1.1 <one@example.com>: Recipient address rejected:\n\
\x20   User unknown\n\
\n\
Final-Recipient: rfc822; two@example.net\n\
Action: failed\n\
Status: 5.2.2\n\
\n\
--B0\n\
Content-Type: message/rfc822\n\
\n\
From: Sender <sender@example.org>\n\
To: one@example.com, two@example.net\n\
Subject: Monthly letter\n\
Message-ID: <letter-42@example.org>\n\
List-Id: Letters <letters.example.org>\n\
\n\
Hello.\n\
\n\
--B0--\n"
        .to_string()
}

#[test]
fn dsn_with_several_recipients() {
    let r = read(dsn_message().as_bytes()).unwrap();
    assert_eq!(r.kind, Some(Kind::Dsn));
    assert_eq!(r.reader, "dsn");
    assert_eq!(
        r.subject.as_deref(),
        Some("Undelivered Mail Returned to Sender")
    );
    assert_eq!(r.from.as_deref(), Some("mailer-daemon@out.example.org"));
    assert_eq!(r.date.as_deref(), Some("Wed, 4 Mar 2026 08:00:00 +0000"));
    assert_eq!(r.reporting_mta.as_deref(), Some("out.example.org"));
    assert_eq!(r.recipients.len(), 2);
    let one = &r.recipients[0];
    assert_eq!(one.recipient.as_deref(), Some("one@example.com"));
    assert_eq!(one.final_recipient, None);
    assert_eq!(
        one.diagnostic.as_deref(),
        Some("550 5.1.1 <one@example.com>: Recipient address rejected: User unknown")
    );
    let two = &r.recipients[1];
    assert_eq!(two.status.as_deref(), Some("5.2.2"));
    assert_eq!(
        two.diagnostic.as_deref(),
        Some("552 5.2.2 Mailbox over quota")
    );
    assert_eq!(two.remote_mta.as_deref(), Some("mx.example.net"));
    assert_eq!(two.command.as_deref(), Some("DATA"));
    let o = r.original.unwrap();
    assert_eq!(o.message_id.as_deref(), Some("letter-42@example.org"));
    assert_eq!(o.from.as_deref(), Some("sender@example.org"));
    assert_eq!(o.to.as_deref(), Some("one@example.com, two@example.net"));
    assert_eq!(o.subject.as_deref(), Some("Monthly letter"));
    assert_eq!(o.list_id.as_deref(), Some("letters.example.org"));
}

#[test]
fn a_returned_newsletter_body_changes_nothing_read() {
    // The returned original as list managers send it: multipart/alternative, quoted-printable HTML.
    let html = "<p style=3D\"color:#333\">Dear reader, this month=E2=80=A6 <a href=3D\"https://=\nnews.example.org/t?id=3D1\">more</a></p>\n".repeat(2000);
    let newsletter = format!(
        "Content-Type: multipart/alternative; boundary=\"A1\"\n\n--A1\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\nDear reader=2C\n--A1\nContent-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n{html}--A1--\n"
    );
    let short = dsn_message();
    let long = short.replace(
        "List-Id: Letters <letters.example.org>\n\nHello.\n",
        &format!("List-Id: Letters <letters.example.org>\nMIME-Version: 1.0\n{newsletter}"),
    );
    assert!(long.len() > short.len() + 100_000);
    let (a, b) = (
        read(short.as_bytes()).unwrap(),
        read(long.as_bytes()).unwrap(),
    );
    assert_eq!(a.recipients, b.recipients);
    assert_eq!(a.original, b.original);
    assert_eq!((a.kind, a.reader), (b.kind, b.reader));
    assert_eq!(b.recipients.len(), 2);
}

#[test]
fn readable_text_excludes_the_returned_message() {
    let raw = dsn_message();
    let msg = MessageParser::default().parse(raw.as_bytes()).unwrap();
    let body = text::readable_text(&msg);
    assert!(body.contains("This is the mail system"));
    assert!(!body.contains("Hello."));
    assert!(!body.contains("Reporting-MTA"));
}

#[test]
fn crlf_and_lone_cr_read_like_lf() {
    let lf = read(dsn_message().as_bytes()).unwrap();
    let crlf = read(dsn_message().replace('\n', "\r\n").as_bytes()).unwrap();
    let cr = read(dsn_message().replace('\n', "\r").as_bytes()).unwrap();
    assert_eq!(lf.recipients, crlf.recipients);
    assert_eq!(lf.recipients, cr.recipients);
    assert_eq!(cr.kind, Some(Kind::Dsn));
}

#[test]
fn delayed_and_delivered_dsn() {
    let raw = dsn_message()
        .replace(
            "Action: failed\nStatus: 5.1.1",
            "Action: delayed\nStatus: 4.4.1",
        )
        .replace(
            "Action: failed\nStatus: 5.2.2",
            "Action: delivered\nStatus: 2.0.0",
        );
    let r = read(raw.as_bytes()).unwrap();
    assert_eq!(r.recipients[0].action.as_deref(), Some("delayed"));
    assert_eq!(r.recipients[0].status.as_deref(), Some("4.4.1"));
    assert_eq!(r.recipients[1].action.as_deref(), Some("delivered"));
    assert_eq!(r.recipients[1].status.as_deref(), Some("2.0.0"));
}

#[test]
fn global_delivery_status_in_mixed_message() {
    let raw = "From: postmaster@mx.example.jp\nTo: s@example.org\nSubject: report\n\
Content-Type: multipart/mixed; boundary=\"G\"\n\n--G\nContent-Type: text/plain\n\nFailed.\n\n\
--G\nContent-Type: message/global-delivery-status\n\nReporting-MTA: dns; mx.example.jp\n\n\
Final-Recipient: rfc822; ユーザー@example.jp\nAction: failed\nStatus: 5.1.1\n\
Diagnostic-Code: smtp; 550 5.1.1 ユーザーが見つかりません\n\n--G--\n";
    let r = read(raw.as_bytes()).unwrap();
    assert_eq!(r.kind, Some(Kind::Dsn));
    assert_eq!(r.recipients.len(), 1);
    assert_eq!(
        r.recipients[0].recipient.as_deref(),
        Some("ユーザー@example.jp")
    );
    assert_eq!(
        r.recipients[0].diagnostic.as_deref(),
        Some("550 5.1.1 ユーザーが見つかりません")
    );
}

#[test]
fn headers_only_returned_message() {
    let raw = dsn_message().replace(
        "Content-Type: message/rfc822\n\nFrom: Sender",
        "Content-Type: text/rfc822-headers\n\nFrom: Sender",
    );
    let r = read(raw.as_bytes()).unwrap();
    let o = r.original.unwrap();
    assert_eq!(o.message_id.as_deref(), Some("letter-42@example.org"));
}

#[test]
fn headers_attached_as_a_text_file() {
    let raw = dsn_message().replace(
        "Content-Type: message/rfc822\n\nFrom: Sender",
        "Content-Type: text/plain; name=\"headers.txt\"\nContent-Disposition: attachment; filename=\"headers.txt\"\n\nFrom: Sender",
    );
    assert!(raw.contains("headers.txt"));
    let r = read(raw.as_bytes()).unwrap();
    let o = r.original.unwrap();
    assert_eq!(o.message_id.as_deref(), Some("letter-42@example.org"));
}

#[test]
fn inline_original_after_marker() {
    let raw = "From: MAILER-DAEMON@mx.example.net\nTo: news@example.org\nSubject: failure notice\n\n\
Delivery failed for someone.\n\n--- Below this line is a copy of the message.\n\n\
Return-Path: <news@example.org>\nFrom: news@example.org\nTo: someone@example.com\n\
Message-ID: <n-7@example.org>\nSubject: Issue 7\n\nbody\n";
    let r = read(raw.as_bytes()).unwrap();
    let o = r.original.unwrap();
    assert_eq!(o.message_id.as_deref(), Some("n-7@example.org"));
    assert_eq!(o.to.as_deref(), Some("someone@example.com"));
}

#[test]
fn encodings_are_decoded_for_text_readers() {
    let raw = "From: MAILER-DAEMON@mx.example.net\nTo: a@example.org\n\
Subject: =?ISO-8859-1?Q?Unzustellbar=3A_R=FCckmeldung?=\n\
Content-Type: multipart/mixed; boundary=\"E\"\n\n\
--E\nContent-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: quoted-printable\n\n\
Zustellung f=FCr x@example.com fehlgeschlagen.\n\n\
--E\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n\
RGVsaXZlcnkgZmFpbGVkLg==\n\n--E--\n";
    let msg = MessageParser::default().parse(raw.as_bytes()).unwrap();
    let body = text::readable_text(&msg);
    assert!(body.contains("Zustellung für x@example.com"));
    assert!(body.contains("Delivery failed."));
    let r = read(raw.as_bytes()).unwrap();
    assert_eq!(r.subject.as_deref(), Some("Unzustellbar: Rückmeldung"));
}

#[test]
fn iso_2022_jp_subject_and_body() {
    // "配信失敗" / "宛先不明" in ISO-2022-JP.
    let subject = "=?ISO-2022-JP?B?GyRCR1s/Ljw6R1QbKEI=?=";
    let body: &[u8] = b"\x1b$B08@hITL@\x1b(B\n";
    let mut raw = format!(
        "From: postmaster@example.jp\nTo: a@example.org\nSubject: {subject}\n\
Content-Type: text/plain; charset=ISO-2022-JP\n\n"
    )
    .into_bytes();
    raw.extend_from_slice(body);
    let r = read(&raw).unwrap();
    assert_eq!(r.subject.as_deref(), Some("配信失敗"));
    let msg = MessageParser::default().parse(&raw[..]).unwrap();
    assert!(text::readable_text(&msg).contains("宛先不明"));
}

#[test]
fn html_only_part_becomes_text() {
    let raw = "From: postmaster@example.net\nTo: a@example.org\nSubject: x\n\
Content-Type: text/html\n\n<html><body><p>Delivery to <b>z@example.com</b> failed.</p></body></html>\n";
    let msg = MessageParser::default().parse(raw.as_bytes()).unwrap();
    let body = text::readable_text(&msg);
    assert!(body.contains("z@example.com"));
    assert!(!body.contains("<b>"));
}

#[test]
fn truncated_and_unterminated_messages() {
    let full = dsn_message();
    for cut in [40, 300, 700, 1100, full.len() - 1] {
        let part = full.get(..cut).unwrap_or(&full);
        let _ = read(part.as_bytes());
    }
    let r = read(b"From: a@example.org\nSubject: hi\n\nno newline at end").unwrap();
    assert_eq!(r.kind, Some(Kind::NotBounce));
    let cut = full.get(..full.find("Status: 5.2.2").unwrap()).unwrap();
    let r = read(cut.as_bytes()).unwrap();
    assert_eq!(r.kind, Some(Kind::Dsn));
    assert_eq!(r.recipients.len(), 2);
}

#[test]
fn empty_and_too_large() {
    assert_eq!(read(b""), Err(ReadError::Empty));
    assert_eq!(read(b" \r\n\n"), Err(ReadError::Empty));
    let opts = ReadOptions {
        max_size: 10,
        ..ReadOptions::default()
    };
    assert!(matches!(
        read_with(b"From: a@example.org\n\nhello", &opts),
        Err(ReadError::TooLarge {
            size: 26,
            limit: 10
        })
    ));
}

/// A bounce whose text sits under `depth` nested multiparts.
fn nested(depth: usize) -> String {
    let mut m = String::from(
        "From: MAILER-DAEMON@example.org\nSubject: Undelivered Mail Returned to Sender\n\
Content-Type: multipart/mixed; boundary=\"n0\"\n\n",
    );
    for i in 0..depth {
        m.push_str(&format!(
            "--n{i}\nContent-Type: multipart/mixed; boundary=\"n{}\"\n\n",
            i + 1
        ));
    }
    m.push_str(&format!(
        "--n{depth}\nContent-Type: text/plain\n\n<a@example.com>: 550 5.1.1 user unknown\n"
    ));
    for i in (0..=depth).rev() {
        m.push_str(&format!("--n{i}--\n"));
    }
    m
}

#[test]
fn nesting_past_the_limit_is_refused() {
    assert!(read(nested(8).as_bytes()).is_ok());
    match read(nested(MAX_NESTING + 5).as_bytes()) {
        Err(ReadError::TooDeep { depth, limit }) => {
            assert_eq!(limit, MAX_NESTING);
            assert!(depth > MAX_NESTING);
        }
        other => panic!("{other:?}"),
    }
}

/// A DSN naming `n` recipients.
fn many(n: usize) -> String {
    let mut blocks = String::new();
    for i in 0..n {
        blocks.push_str(&format!(
            "Final-Recipient: rfc822; u{i}@example.com\nAction: failed\nStatus: 5.1.1\n\n"
        ));
    }
    format!(
        "From: MAILER-DAEMON@example.org\nSubject: Undelivered Mail Returned to Sender\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"r\"\n\n\
--r\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.org\n\n{blocks}--r--\n"
    )
}

#[test]
fn recipients_past_the_limit_are_refused() {
    let r = read(many(MAX_RECIPIENTS).as_bytes()).unwrap_or_default();
    assert_eq!(r.recipients.len(), MAX_RECIPIENTS);
    assert_eq!(
        read(many(MAX_RECIPIENTS + 1).as_bytes()),
        Err(ReadError::TooManyRecipients {
            count: MAX_RECIPIENTS + 1,
            limit: MAX_RECIPIENTS
        })
    );
}

#[test]
fn normalized_addresses_stay_normalized() {
    for (input, want) in [
        ("rfc822; <Jane@Example.COM>", Some("Jane@example.com")),
        ("<<a@Example.org>", Some("a@example.org")),
        ("x < y <b@example.net>", Some("b@example.net")),
        ("<x;y@Example.net>", Some("y@example.net")),
        ("rfc822;;", None),
        ("<;", None),
        ("/var/mail/box", Some("/var/mail/box")),
    ] {
        let got = field_address(input);
        assert_eq!(got.as_deref(), want, "{input:?}");
        if let Some(g) = &got {
            assert_eq!(field_address(g).as_ref(), Some(g), "{input:?}");
        }
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for len in 0..400 {
        let mut bytes = Vec::with_capacity(len);
        for _ in 0..len {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            bytes.push((state & 0xff) as u8);
        }
        let _ = read(&bytes);
        // Random bytes inside a plausible frame.
        let mut framed = dsn_message().into_bytes();
        let at = (state as usize) % framed.len();
        framed.splice(at..at, bytes.iter().copied());
        let _ = read(&framed);
    }
}

#[test]
fn address_normalisation() {
    assert_eq!(
        field_address("rfc822; <Ann.Lee@Mail.Example.COM>").as_deref(),
        Some("Ann.Lee@mail.example.com")
    );
    assert_eq!(field_address("RFC822;  ").as_deref(), None);
    assert_eq!(
        field_address("\"bob@example.net\"").as_deref(),
        Some("bob@example.net")
    );
}

#[test]
fn looks_like_bounce_signals() {
    let check = |raw: &str| {
        let msg = MessageParser::default().parse(raw.as_bytes()).unwrap();
        let subject = msg.subject().unwrap_or("").to_string();
        let body = text::readable_text(&msg);
        let input = text::Input::new(&msg, &subject, "", &body);
        looks_like_bounce(&input)
    };
    assert!(check(
        "From: Mail Delivery Subsystem <x@example.net>\nSubject: hi\n\nx\n"
    ));
    assert!(check(
        "From: a@example.net\nReturn-Path: <>\nSubject: hi\n\nx\n"
    ));
    assert!(check(
        "From: a@example.net\nSubject: Delivery Status Notification (Failure)\n\nx\n"
    ));
    assert!(check(
        "From: a@example.net\nAuto-Submitted: auto-generated\nSubject: hi\n\nThe message could not be delivered.\n"
    ));
    assert!(!check(
        "From: a@example.net\nAuto-Submitted: auto-generated\nSubject: hi\n\nYour invoice.\n"
    ));
    assert!(!check("From: a@example.net\nSubject: lunch\n\nnoon\n"));
}

#[test]
fn a_code_less_notice_that_mail_is_not_deliverable_is_a_bounce() {
    for raw in [
        "Return-Path: <>\nFrom: Mail Server <mail@isp.example.net>\nSubject: Message not deliverable\n\n\
Message not deliverable to ike@isp.example.net: recipient unknown.\n",
        "Return-Path: <>\nFrom: noreply@isp.example.net\nSubject: Nondeliverable mail\n\
Auto-Submitted: auto-replied\n\nYour message to <ike@isp.example.net> was refused.\n",
    ] {
        let r = read(raw.as_bytes()).unwrap();
        assert_eq!(r.kind, Some(Kind::Text), "{raw}");
        let got: Vec<_> = r
            .recipients
            .iter()
            .map(|r| r.recipient.as_deref())
            .collect();
        assert_eq!(got, [Some("ike@isp.example.net")], "{raw}");
    }
    // The same words from a person are not a report.
    let r = read(
        "From: Ike <ike@isp.example.net>\nSubject: note\n\nThe parcel was not deliverable to ike@isp.example.net.\n"
            .as_bytes(),
    )
    .unwrap();
    assert!(r.recipients.is_empty());
}

#[test]
fn a_code_less_notice_in_another_language_from_a_mail_system_is_a_bounce() {
    for (subject, sentence) in [
        (
            "Zwrot",
            "Wiadomość nie mogła zostać dostarczona do odbiorcy",
        ),
        ("Ошибка", "Сообщение не было доставлено получателю"),
        (
            "Aviso",
            "No se ha podido entregar el mensaje al destinatario",
        ),
        (
            "Aviso",
            "Não foi possível entregar a mensagem ao destinatário",
        ),
        (
            "Melding",
            "Het bericht kon niet worden bezorgd bij de ontvanger",
        ),
    ] {
        let raw = format!(
            "Return-Path: <>\nFrom: postmaster@post.example.net\nSubject: {subject}\n\
Content-Type: text/plain; charset=utf-8\n\n{sentence}:\n\numa@post.example.net\n"
        );
        let r = read(raw.as_bytes()).unwrap();
        let got: Vec<_> = r
            .recipients
            .iter()
            .map(|r| r.recipient.as_deref())
            .collect();
        assert_eq!(got, [Some("uma@post.example.net")], "{raw}");
    }
    // Sent by a person, the same sentence is not a report.
    let raw = "From: Uma <uma@post.example.net>\nSubject: Zwrot\n\
Content-Type: text/plain; charset=utf-8\n\nWiadomość nie mogła zostać dostarczona do eva@post.example.net\n";
    assert!(read(raw.as_bytes()).unwrap().recipients.is_empty());
}

#[test]
fn status_fields_in_text_when_mime_is_broken() {
    // The declared boundary does not match the one used: no part is found, the fields sit in the text.
    let raw = dsn_message().replace("boundary=\"B0\"", "boundary=\"B1\"");
    let r = read(raw.as_bytes()).unwrap();
    assert_eq!(r.kind, Some(Kind::Dsn));
    assert_eq!(r.recipients.len(), 2);
    assert_eq!(r.reporting_mta.as_deref(), Some("out.example.org"));
    assert_eq!(
        r.recipients[1].recipient.as_deref(),
        Some("two@example.net")
    );
}

#[test]
fn autoreply_with_null_sender_is_still_an_autoreply() {
    let raw = "Return-Path: <>\nFrom: Jo <jo@example.com>\nTo: news@example.org\n\
Subject: Automatic reply: Issue 7\n\nI am travelling this week.\n";
    let r = read(raw.as_bytes()).unwrap();
    assert_eq!(r.kind, Some(Kind::Autoreply));
    assert_eq!(r.recipients[0].recipient.as_deref(), Some("jo@example.com"));
}

#[test]
fn status_part_in_iso_2022_jp_is_decoded() {
    let mut raw = b"From: postmaster@example.jp\nTo: a@example.org\nSubject: error\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"J\"\n\n--J\n\
Content-Type: text/plain\n\nerror\n\n--J\nContent-Type: message/delivery-status\n\n\
Reporting-MTA: dns; mx.example.jp\n\nFinal-Recipient: rfc822; mi@example.jp\nAction: failed\n\
Status: 5.1.1\nDiagnostic-Code: x-local; "
        .to_vec();
    raw.extend_from_slice(b"\x1b$B08@hITL@\x1b(B\n\n--J--\n");
    let r = read(&raw).unwrap();
    assert_eq!(r.recipients[0].diagnostic.as_deref(), Some("宛先不明"));
}

proptest::proptest! {
    #[test]
    fn any_bytes_read_without_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..2048)) {
        let _ = read(&bytes);
    }

    #[test]
    fn any_status_part_reads_without_panic(body in "[ -~\r\n\t;:<>@]{0,600}") {
        let raw = format!(
            "From: postmaster@example.net\nSubject: x\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"Q\"\n\n--Q\nContent-Type: message/delivery-status\n\n{body}\n--Q--\n"
        );
        let _ = read(raw.as_bytes());
    }
}

#[test]
fn boundary_written_on_an_unindented_line_is_repaired() {
    let raw = "From: MAILER-DAEMON@relay.example.org\nTo: sender@example.com\n\
Subject: Undeliverable: hello\nMIME-Version: 1.0\nContent-Type: multipart/report; report-type=delivery-status;\n\
boundary=\"XY1\"\n\n--XY1\nContent-Type: text/plain\n\nDelivery to ola@example.net failed.\n\n\
--XY1\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; relay.example.org\n\n\
Final-Recipient: rfc822; ola@example.net\nAction: failed\nStatus: 5.1.1\n\n--XY1--\n";
    let r = read(raw.as_bytes()).unwrap();
    assert_eq!(r.kind, Some(Kind::Dsn));
    assert_eq!(r.recipients.len(), 1);
    assert_eq!(r.recipients[0].status.as_deref(), Some("5.1.1"));
    // A body line that only looks like a parameter is left alone.
    assert!(super::folded_boundaries(b"Subject: x\n\nboundary=1\n").is_empty());
    assert_eq!(
        super::folded_boundaries(b"Content-Type: multipart/mixed;\nboundary=\"a\"\n"),
        [31]
    );
}

#[test]
fn out_of_office_with_null_sender_is_not_read_as_a_failure() {
    let raw = "Return-Path: <>\nFrom: Rafa <rafa@example.org>\nTo: news@example.com\n\
Subject: Automatic reply: issue 7\nX-Auto-Response-Suppress: All\n\n\
I am away until Monday. For urgent matters write to desk@example.org.\n";
    let r = read(raw.as_bytes()).unwrap();
    assert_eq!(r.kind, Some(Kind::Autoreply));
    assert_eq!(r.reader, "autoreply");
}

#[test]
fn lines_inclusive_cuts_as_split_inclusive_does() {
    for text in [
        &b""[..],
        b"\n",
        b"\n\n",
        b"one",
        b"one\n",
        b"one\ntwo",
        b"one\r\ntwo\r\n\r\n",
        b"\nlead\n\ntrail",
    ] {
        let want: Vec<&[u8]> = text.split_inclusive(|&b| b == b'\n').collect();
        let got: Vec<&[u8]> = super::lines_inclusive(text).collect();
        assert_eq!(got, want, "{:?}", String::from_utf8_lossy(text));
    }
}
