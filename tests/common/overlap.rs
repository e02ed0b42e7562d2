//! Mail for several daemons at once: distinct messages whose recipients overlap, so that daemons
//! reading different folders record bounces for the same addresses.

/// Message `n` of `total`: a DSN for one of `total / 4` recipients (so each gets about four
/// bounces, which several daemons record), hard (user unknown) one time in five, else soft
/// (mailbox full), dated over three weeks so that soft scores and their staleness both play.
pub fn message(n: usize, total: usize) -> String {
    let rcpt = format!("member{}@example.com", n % (total / 4).max(1));
    let (status, action, text) = if n.is_multiple_of(5) {
        (
            "5.1.1",
            "failed",
            "550 5.1.1 Recipient address rejected: User unknown",
        )
    } else {
        (
            "4.2.2",
            "delayed",
            "452 4.2.2 Mailbox full, try again later",
        )
    };
    let day = 1 + (n * 7) % 21;
    let hour = (n * 13) % 24;
    let minute = n % 60;
    format!(
        "Return-Path: <>\r\n\
From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\r\n\
To: list-bounces@example.org\r\n\
Subject: Delivery Status Notification\r\n\
Date: {day:02} Nov 2026 {hour:02}:{minute:02}:00 +0000\r\n\
Message-ID: <multi-{n}@mx.example.net>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"b{n}\"\r\n\
\r\n\
--b{n}\r\n\
Content-Type: text/plain; charset=us-ascii\r\n\
\r\n\
Delivery to {rcpt} did not succeed.\r\n\
\r\n\
--b{n}\r\n\
Content-Type: message/delivery-status\r\n\
\r\n\
Reporting-MTA: dns; mx.example.net\r\n\
\r\n\
Final-Recipient: rfc822; {rcpt}\r\n\
Action: {action}\r\n\
Status: {status}\r\n\
Diagnostic-Code: smtp; {text}\r\n\
\r\n\
--b{n}--\r\n"
    )
}
