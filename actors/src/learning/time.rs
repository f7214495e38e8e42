//! Times as clients give them: RFC 3339, `YYYY-MM-DD HH:MM:SS` (UTC), a date, or Unix seconds.

use serde_json::Value;

use super::LearnError;

/// Seconds since the Unix epoch of a time given as text or a number.
pub fn parse_time(field: &str, v: &Value) -> Result<i64, LearnError> {
    let bad = || {
        LearnError::BadInput(format!(
            "`{field}` {v} is not a time: give RFC 3339 (`2024-05-01T12:00:00Z`), \
             `YYYY-MM-DD HH:MM:SS` (UTC), `YYYY-MM-DD`, or Unix seconds"
        ))
    };
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
            .ok_or_else(bad),
        Value::String(s) => parse_text(s.trim()).ok_or_else(bad),
        _ => Err(bad()),
    }
}

fn parse_text(s: &str) -> Option<i64> {
    if let Ok(n) = s.parse::<i64>() {
        return Some(n);
    }
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    let mut secs = days_from_civil(y, mo, d) * 86_400;
    if b.len() == 10 {
        return Some(secs);
    }
    if !matches!(b[10], b'T' | b't' | b' ') || b.len() < 19 || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if h > 23 || mi > 59 || se > 60 {
        return None;
    }
    secs += h * 3600 + mi * 60 + se;
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &frac[digits..];
    }
    match rest {
        "" | "Z" | "z" => Some(secs),
        _ => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let off = &rest[1..];
            let (oh, om) = off
                .split_once(':')
                .unwrap_or((off.get(..2)?, off.get(2..)?));
            let (oh, om): (i64, i64) = (oh.parse().ok()?, om.parse().ok()?);
            if oh > 23 || om > 59 {
                return None;
            }
            Some(secs - sign * (oh * 3600 + om * 60))
        }
    }
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn times_parse_in_every_form() {
        let t = |v: Value| parse_time("time", &v).ok();
        assert_eq!(t(json!("1970-01-01")), Some(0));
        assert_eq!(t(json!("2005-12-12 17:53:59")), Some(1_134_410_039));
        assert_eq!(t(json!("2005-12-12T17:53:59Z")), Some(1_134_410_039));
        assert_eq!(t(json!("2005-12-12T19:53:59.5+02:00")), Some(1_134_410_039));
        assert_eq!(t(json!(1_134_410_039)), Some(1_134_410_039));
        assert_eq!(t(json!("2000-02-29")), Some(951_782_400));
        assert!(t(json!("yesterday")).is_none());
        assert!(t(json!("2005-13-01")).is_none());
        assert!(t(json!(true)).is_none());
        let e = parse_time("time", &json!("soon"))
            .err()
            .map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("RFC 3339")));
    }
}
