//! Dates as mail writes them (RFC 5322 and the many ways real reports bend it), and when a failure
//! happened: the report's date when it is credible, else the arrival time.

use chrono::{DateTime, Utc};

/// When a failure happened: the report's date when it parses and is not in the future of its
/// arrival, else the arrival time.
pub fn bounce_time(date: Option<&str>, received_at: DateTime<Utc>) -> DateTime<Utc> {
    match date.and_then(parse_mail_date) {
        Some(t) if t <= received_at + chrono::Duration::days(1) => t,
        _ => received_at,
    }
}

/// The offset of a zone name that mail writes instead of a number, in minutes east of UTC.
fn zone_offset(name: &str) -> Option<i32> {
    let hours = match name.to_ascii_uppercase().as_str() {
        "UT" | "UTC" | "GMT" | "Z" | "WET" => 0,
        "BST" | "CET" | "MET" | "WEST" => 1,
        "CEST" | "MEST" | "EET" | "SAST" => 2,
        "EEST" | "MSK" => 3,
        "IST" => return Some(330),
        "CST" => -6,
        "CDT" | "EST" => -5,
        "EDT" | "AST" => -4,
        "ADT" => -3,
        "MST" => -7,
        "MDT" => -6,
        "PST" => -8,
        "PDT" => -7,
        "AKST" => -9,
        "HST" => -10,
        "HKT" | "SGT" | "AWST" => 8,
        "JST" | "KST" => 9,
        "AEST" => 10,
        "AEDT" => 11,
        "NZST" => 12,
        "NZDT" => 13,
        _ => return None,
    };
    Some(hours * 60)
}

/// Parses a mail date leniently: a wrong weekday, a zone name (`JST`), a trailing comment `(EST)`,
/// a missing zone or missing seconds are all accepted, as real reports have them. RFC 3339 too.
pub fn parse_mail_date(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    let s = match s.find('(') {
        Some(i) => s.get(..i).unwrap_or(s),
        None => s,
    };
    let s = match s.split_once(',') {
        Some((_, rest)) => rest,
        None => s,
    };
    let mut words: Vec<&str> = s.split_whitespace().collect();
    // A leading weekday without its comma.
    if words
        .first()
        .is_some_and(|w| w.len() >= 3 && w.chars().all(|c| c.is_ascii_alphabetic()))
    {
        words.remove(0);
    }
    let offset_minutes = match words.get(4) {
        None => 0,
        Some(z) if z.starts_with(['+', '-']) => {
            let sign = if z.starts_with('-') { -1 } else { 1 };
            let digits = z
                .get(1..)
                .filter(|d| d.len() == 4 && d.bytes().all(|b| b.is_ascii_digit()))?;
            let h: i32 = digits.get(..2)?.parse().ok()?;
            let m: i32 = digits.get(2..)?.parse().ok()?;
            sign * (h * 60 + m)
        }
        Some(z) => zone_offset(z).unwrap_or(0),
    };
    // Two- and three-digit years, as RFC 5322 section 4.3 reads them.
    let year = match words.get(2).map(|y| (y.len(), y.parse::<i32>())) {
        Some((1..=2, Ok(y))) if y < 50 => (y + 2000).to_string(),
        Some((1..=3, Ok(y))) => (y + 1900).to_string(),
        _ => (*words.get(2)?).to_owned(),
    };
    let text = format!(
        "{} {} {year} {}",
        words.first()?,
        words.get(1)?,
        words.get(3)?
    );
    let naive = chrono::NaiveDateTime::parse_from_str(&text, "%d %b %Y %H:%M:%S")
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(&text, "%d %b %Y %H:%M"))
        .ok()?;
    let offset = chrono::FixedOffset::east_opt(offset_minutes * 60)?;
    naive
        .and_local_timezone(offset)
        .single()
        .map(|t| t.with_timezone(&Utc))
        // Internet mail is younger than this; an earlier date is a wrong clock.
        .filter(|t| t.timestamp() >= 631_152_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> Option<String> {
        parse_mail_date(s).map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
    }

    #[test]
    fn lenient_mail_dates() {
        let want = Some("2015-04-29T23:34:45Z".to_owned());
        // 29 April 2015 was a Wednesday: the wrong weekday is ignored.
        assert_eq!(utc("Thu, 29 Apr 2015 23:34:45 +0000"), want);
        assert_eq!(utc("29 Apr 2015 23:34:45 GMT"), want);
        assert_eq!(utc("Wed, 30 Apr 2015 08:34:45 JST"), want);
        assert_eq!(utc("Wed, 29 Apr 2015 19:34:45 -0400 (EDT)"), want);
        assert_eq!(utc("Wed 29 Apr 2015 23:34:45"), want);
        assert_eq!(utc("2015-04-29T23:34:45Z"), want);
        assert_eq!(
            utc("Wed, 29 Apr 2015 23:34 +0000"),
            Some("2015-04-29T23:34:00Z".into())
        );
        assert_eq!(utc("Wed, 29 Apr 15 23:34:45 +0000"), want);
        assert_eq!(
            utc("Thu, 29 Apr 99 23:34:45 +0000"),
            Some("1999-04-29T23:34:45Z".into())
        );
        assert_eq!(utc("Thu, 29 Apr 115 23:34:45 +0000"), want);
        assert_eq!(utc("Thu, 29 Apr 1970 23:34:45 +0000"), None);
        assert_eq!(utc("yesterday"), None);
        assert_eq!(utc("Wed, 29 Apr 2015 23:34:45 +00"), None);
    }

    #[test]
    fn a_date_in_the_future_falls_back_to_arrival() {
        let arrival = parse_mail_date("1 Mar 2026 00:00:00 +0000").unwrap_or_default();
        assert_eq!(
            bounce_time(Some("1 Mar 2031 00:00:00 +0000"), arrival),
            arrival
        );
        assert_eq!(bounce_time(None, arrival), arrival);
    }
}
