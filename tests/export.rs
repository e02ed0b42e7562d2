//! Every export format, byte for byte, and the store-to-file path with type and time filters (on
//! SQLite and on PostgreSQL).

mod common;

use bounced::export::{self, Format, Writer};
use bounced::store::Prepared;
use bounced::store::query::{ExportFilter, ExportRow, ExportTypes, Timestamp};
use bounced::{Analysis, Bounce, BounceType, Reason};
use chrono::{DateTime, TimeZone, Utc};

fn at(day: u32, hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, day, hour, 0, 0)
        .single()
        .unwrap()
}

fn rows() -> Vec<ExportRow> {
    vec![
        ExportRow {
            email: "ann@example.com".into(),
            bounce_type: "hard".into(),
            reason: "userunknown".into(),
            status: Some("5.1.1".into()),
            replycode: Some("550".into()),
            diagnostic: Some(
                "550 5.1.1 <ann@example.com>: user unknown,\r\n  no such mailbox".into(),
            ),
            first_seen: Timestamp(at(1, 9)),
            last_seen: Timestamp(at(2, 10)),
            count: 2,
            suppressed_at: Timestamp(at(1, 9)),
        },
        ExportRow {
            email: "bob@example.net".into(),
            bounce_type: "complaint".into(),
            reason: "feedback".into(),
            status: None,
            replycode: None,
            diagnostic: None,
            first_seen: Timestamp(at(3, 0)),
            last_seen: Timestamp(at(3, 0)),
            count: 1,
            suppressed_at: Timestamp(at(3, 0)),
        },
        ExportRow {
            email: "carol@example.org".into(),
            bounce_type: "soft".into(),
            reason: "mailboxfull".into(),
            status: Some("4.2.2".into()),
            replycode: Some("452".into()),
            diagnostic: Some("452 4.2.2 \"quota\" exceeded".into()),
            first_seen: Timestamp(at(1, 0)),
            last_seen: Timestamp(at(5, 0)),
            count: 7,
            suppressed_at: Timestamp(at(5, 0)),
        },
        ExportRow {
            email: "dan@example.org".into(),
            bounce_type: "manual".into(),
            reason: "manual".into(),
            status: None,
            replycode: None,
            diagnostic: Some("asked to stop by phone".into()),
            first_seen: Timestamp(at(6, 12)),
            last_seen: Timestamp(at(6, 12)),
            count: 0,
            suppressed_at: Timestamp(at(6, 12)),
        },
    ]
}

fn render(format: Format) -> String {
    let mut w = Writer::new(format, Vec::new()).unwrap();
    for r in rows() {
        w.write(&r).unwrap();
    }
    assert_eq!(w.rows(), 4);
    String::from_utf8(w.finish().unwrap()).unwrap()
}

#[test]
fn txt() {
    assert_eq!(
        render(Format::Txt),
        "ann@example.com\nbob@example.net\ncarol@example.org\ndan@example.org\n"
    );
}

#[test]
fn csv() {
    assert_eq!(
        render(Format::Csv),
        "email,bounce_type,reason,status,replycode,diagnostic,first_seen,last_seen,count\n\
         ann@example.com,hard,userunknown,5.1.1,550,\"550 5.1.1 <ann@example.com>: user unknown, no such mailbox\",2026-03-01T09:00:00Z,2026-03-02T10:00:00Z,2\n\
         bob@example.net,complaint,feedback,,,,2026-03-03T00:00:00Z,2026-03-03T00:00:00Z,1\n\
         carol@example.org,soft,mailboxfull,4.2.2,452,\"452 4.2.2 \"\"quota\"\" exceeded\",2026-03-01T00:00:00Z,2026-03-05T00:00:00Z,7\n\
         dan@example.org,manual,manual,,,asked to stop by phone,2026-03-06T12:00:00Z,2026-03-06T12:00:00Z,0\n"
    );
}

#[test]
fn jsonl() {
    assert_eq!(
        render(Format::Jsonl),
        concat!(
            r#"{"email":"ann@example.com","bounce_type":"hard","reason":"userunknown","status":"5.1.1","replycode":"550","diagnostic":"550 5.1.1 <ann@example.com>: user unknown, no such mailbox","first_seen":"2026-03-01T09:00:00Z","last_seen":"2026-03-02T10:00:00Z","count":2,"suppressed_at":"2026-03-01T09:00:00Z"}"#,
            "\n",
            r#"{"email":"bob@example.net","bounce_type":"complaint","reason":"feedback","status":null,"replycode":null,"diagnostic":null,"first_seen":"2026-03-03T00:00:00Z","last_seen":"2026-03-03T00:00:00Z","count":1,"suppressed_at":"2026-03-03T00:00:00Z"}"#,
            "\n",
            r#"{"email":"carol@example.org","bounce_type":"soft","reason":"mailboxfull","status":"4.2.2","replycode":"452","diagnostic":"452 4.2.2 \"quota\" exceeded","first_seen":"2026-03-01T00:00:00Z","last_seen":"2026-03-05T00:00:00Z","count":7,"suppressed_at":"2026-03-05T00:00:00Z"}"#,
            "\n",
            r#"{"email":"dan@example.org","bounce_type":"manual","reason":"manual","status":null,"replycode":null,"diagnostic":"asked to stop by phone","first_seen":"2026-03-06T12:00:00Z","last_seen":"2026-03-06T12:00:00Z","count":0,"suppressed_at":"2026-03-06T12:00:00Z"}"#,
            "\n",
        )
    );
}

#[test]
fn listmonk() {
    assert_eq!(
        render(Format::Listmonk),
        concat!(
            "email,name,attributes\n",
            r#"ann@example.com,ann,"{""bounced"":{""bounce_type"":""hard"",""reason"":""userunknown"",""status"":""5.1.1"",""suppressed_at"":""2026-03-01T09:00:00Z"",""count"":2}}""#,
            "\n",
            r#"bob@example.net,bob,"{""bounced"":{""bounce_type"":""complaint"",""reason"":""feedback"",""status"":null,""suppressed_at"":""2026-03-03T00:00:00Z"",""count"":1}}""#,
            "\n",
            r#"carol@example.org,carol,"{""bounced"":{""bounce_type"":""soft"",""reason"":""mailboxfull"",""status"":""4.2.2"",""suppressed_at"":""2026-03-05T00:00:00Z"",""count"":7}}""#,
            "\n",
            r#"dan@example.org,dan,"{""bounced"":{""bounce_type"":""manual"",""reason"":""manual"",""status"":null,""suppressed_at"":""2026-03-06T12:00:00Z"",""count"":0}}""#,
            "\n",
        )
    );
}

#[test]
fn postfix() {
    assert_eq!(
        render(Format::Postfix),
        "ann@example.com REJECT 5.1.1 Recipient address suppressed after a hard bounce (userunknown)\n\
         bob@example.net REJECT 5.7.1 Recipient address suppressed after a complaint\n\
         carol@example.org REJECT 5.7.1 Recipient address suppressed after repeated soft bounces (mailboxfull)\n\
         dan@example.org REJECT 5.7.1 Recipient address suppressed by the operator\n"
    );
}

#[test]
fn postfix_hard_without_a_permanent_status_uses_5_1_1() {
    let mut row = rows().remove(0);
    row.status = Some("4.4.1".into());
    let mut w = Writer::new(Format::Postfix, Vec::new()).unwrap();
    w.write(&row).unwrap();
    let out = String::from_utf8(w.finish().unwrap()).unwrap();
    assert!(out.starts_with("ann@example.com REJECT 5.1.1 "), "{out}");
}

#[test]
fn ses() {
    assert_eq!(
        render(Format::Ses),
        "ann@example.com,BOUNCE\nbob@example.net,COMPLAINT\ncarol@example.org,BOUNCE\ndan@example.org,BOUNCE\n"
    );
}

#[test]
fn mailgun() {
    assert_eq!(
        render(Format::Mailgun),
        "address,code,error,created_at\n\
         ann@example.com,550,\"550 5.1.1 <ann@example.com>: user unknown, no such mailbox\",\"Sun, 1 Mar 2026 09:00:00 +0000\"\n\
         bob@example.net,550,feedback,\"Tue, 3 Mar 2026 00:00:00 +0000\"\n\
         carol@example.org,452,\"452 4.2.2 \"\"quota\"\" exceeded\",\"Thu, 5 Mar 2026 00:00:00 +0000\"\n\
         dan@example.org,550,asked to stop by phone,\"Fri, 6 Mar 2026 12:00:00 +0000\"\n"
    );
}

fn bounce(rcpt: &str, reason: Reason, ty: BounceType) -> Bounce {
    Bounce {
        recipient: Some(rcpt.into()),
        action: Some("failed".into()),
        status: Some("5.1.1".into()),
        replycode: Some("550".into()),
        reason,
        bounce_type: ty,
        diagnostic: Some("550 5.1.1 no such user".into()),
        remote_mta: None,
        reporting_mta: None,
        date: None,
        feedback_type: None,
        rule: "test".into(),
        reader: "dsn".into(),
        original_message_id: None,
        original_from: None,
        original_to: None,
        original_subject: None,
        original_list_id: None,
    }
}

fn message(n: u32, received: DateTime<Utc>, b: Bounce) -> Prepared {
    let analysis = Analysis {
        kind: bounced::Kind::Dsn,
        reader: "dsn",
        bounces: vec![b],
        error: None,
        original: None,
        verp: None,
    };
    Prepared::new(
        format!("file:{n}"),
        received,
        format!("Subject: {n}\n\nx\n").as_bytes(),
        analysis,
    )
}

#[tokio::test]
async fn export_from_the_store_filters_by_type_and_time() {
    for db in common::engines::all("export_from_the_store_filters_by_type_and_time") {
        eprintln!(
            "export_from_the_store_filters_by_type_and_time: {}",
            db.name
        );
        let store = db.open().await;
        store
            .record(
                &[
                    message(
                        1,
                        at(1, 0),
                        bounce("zed@example.com", Reason::Userunknown, BounceType::Hard),
                    ),
                    message(
                        2,
                        at(4, 0),
                        bounce("amy@example.com", Reason::Feedback, BounceType::Complaint),
                    ),
                    message(
                        3,
                        at(4, 0),
                        bounce("kim@example.com", Reason::Mailboxfull, BounceType::Soft),
                    ),
                ],
                at(4, 0),
            )
            .await
            .unwrap();
        store
            .suppress("Op@Example.com", Some("legal request"), at(5, 0))
            .await
            .unwrap();

        let all = export::export(&store, &ExportFilter::default(), Format::Txt, Vec::new())
            .await
            .unwrap();
        assert_eq!(all.0, 3);
        assert_eq!(
            String::from_utf8(all.1).unwrap(),
            "Op@example.com\namy@example.com\nzed@example.com\n"
        );

        let filter = ExportFilter {
            types: ExportTypes::parse("hard,complaint").unwrap(),
            since: Some(at(2, 0)),
            until: None,
        };
        let (n, out) = export::export(&store, &filter, Format::Csv, Vec::new())
            .await
            .unwrap();
        assert_eq!(n, 1);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "email,bounce_type,reason,status,replycode,diagnostic,first_seen,last_seen,count\n\
             amy@example.com,complaint,feedback,5.1.1,550,550 5.1.1 no such user,2026-03-04T00:00:00Z,2026-03-04T00:00:00Z,1\n"
        );

        let until = ExportFilter {
            until: Some(at(4, 0)),
            ..ExportFilter::default()
        };
        let (n, out) = export::export(&store, &until, Format::Txt, Vec::new())
            .await
            .unwrap();
        assert_eq!(
            (n, String::from_utf8(out).unwrap().as_str()),
            (1, "zed@example.com\n"),
            "only what was suppressed before day 4"
        );
        let window = ExportFilter {
            since: Some(at(2, 0)),
            until: Some(at(6, 0)),
            ..ExportFilter::default()
        };
        let (n, out) = export::export(&store, &window, Format::Txt, Vec::new())
            .await
            .unwrap();
        assert_eq!(
            (n, String::from_utf8(out).unwrap().as_str()),
            (2, "Op@example.com\namy@example.com\n")
        );

        let manual = ExportFilter {
            types: ExportTypes::parse("manual").unwrap(),
            since: None,
            until: None,
        };
        let (_, out) = export::export(&store, &manual, Format::Jsonl, Vec::new())
            .await
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains(r#""diagnostic":"legal request""#), "{text}");
        assert!(ExportTypes::parse("hard,bogus").is_err());
    }
}
