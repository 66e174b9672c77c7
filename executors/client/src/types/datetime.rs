//! The text layouts of dates and times, shared by the `chrono` and `time` conversions.
//!
//! Written: `YYYY-MM-DD HH:MM:SS[.fffffffff]±HH:MM`, the layout go-dqlite's driver writes for a
//! `time.Time` (fraction without trailing zeros, left out when zero), without the offset for
//! types without a zone, and `YYYY-MM-DD` or `HH:MM:SS[.fffffffff]` for dates and times of
//! day. Read: every layout go-dqlite reads from ISO8601 values (see [`parse_timestamp`]),
//! and `HH:MM[:SS[.f]]` for times of day.

use dqlite_proto::{Text, Value};

use crate::convert::mismatch;
use crate::error::{Error, Misuse, Result};

/// A calendar date as written: year, month (1-12), day (1-31).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ymd {
    pub year: i32,
    pub month: u8,
    pub day: u8,
}

/// A time of day as written: hour, minute, second, nanosecond.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hms {
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    pub nanosecond: u32,
}

/// The fields of a date/time text. `date` is `None` only for a time of day alone; a date
/// alone has the time 00:00:00. `offset` is seconds east of UTC, when the text names one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    pub date: Option<Ymd>,
    pub time: Hms,
    pub offset: Option<i32>,
}

impl Hms {
    pub(crate) const MIDNIGHT: Hms = Hms {
        hour: 0,
        minute: 0,
        second: 0,
        nanosecond: 0,
    };
}

/// A byte cursor over the text being parsed.
struct Cursor<'a> {
    s: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.at).copied()
    }

    fn done(&self) -> bool {
        self.at == self.s.len()
    }

    /// Consumes `b` if it is next.
    fn eat(&mut self, b: u8) -> bool {
        let found = self.peek() == Some(b);
        if found {
            self.at += 1;
        }
        found
    }

    /// Consumes between `min` and `max` ASCII digits, as a number.
    fn number(&mut self, min: usize, max: usize) -> Option<u32> {
        let mut n = 0u32;
        let mut len = 0;
        while len < max {
            match self.peek() {
                Some(d @ b'0'..=b'9') => {
                    n = n * 10 + u32::from(d - b'0');
                    self.at += 1;
                    len += 1;
                }
                _ => break,
            }
        }
        (len >= min).then_some(n)
    }

    /// `YYYY-MM-DD`.
    fn date(&mut self) -> Option<Ymd> {
        let year = self.number(4, 4)?;
        if !self.eat(b'-') {
            return None;
        }
        let month = self.number(2, 2)?;
        if !self.eat(b'-') {
            return None;
        }
        let day = self.number(2, 2)?;
        Some(Ymd {
            year: i32::try_from(year).ok()?,
            month: u8::try_from(month).ok().filter(|m| (1..=12).contains(m))?,
            day: u8::try_from(day).ok().filter(|d| (1..=31).contains(d))?,
        })
    }

    /// `H:MM` or `HH:MM` (the hour may have one digit, as Go allows); `None` if not there.
    fn hour_minute(&mut self) -> Option<(u8, u8)> {
        let hour = self.number(1, 2).filter(|h| *h < 24)?;
        if !self.eat(b':') {
            return None;
        }
        let minute = self.number(2, 2).filter(|m| *m < 60)?;
        Some((u8::try_from(hour).ok()?, u8::try_from(minute).ok()?))
    }

    /// `SS` and an optional fraction (`.` or `,` then digits, read to the nanosecond and
    /// cut after that, as Go does).
    fn second_fraction(&mut self) -> Option<(u8, u32)> {
        let second = self.number(2, 2).filter(|s| *s < 60)?;
        let mut nanosecond = 0;
        let fraction_follows = matches!(self.peek(), Some(b'.' | b','))
            && matches!(self.s.get(self.at + 1), Some(b'0'..=b'9'));
        if fraction_follows {
            self.at += 1;
            let mut scale = 100_000_000;
            while let Some(d @ b'0'..=b'9') = self.peek() {
                nanosecond += u32::from(d - b'0') * scale;
                scale /= 10;
                self.at += 1;
            }
        }
        Some((u8::try_from(second).ok()?, nanosecond))
    }

    /// `+HH:MM` or `-HH:MM`, as seconds east of UTC.
    fn offset(&mut self) -> Option<i32> {
        let sign = match self.peek()? {
            b'+' => 1,
            b'-' => -1,
            _ => return None,
        };
        self.at += 1;
        let hours = self.number(2, 2).filter(|h| *h < 24)?;
        if !self.eat(b':') {
            return None;
        }
        let minutes = self.number(2, 2).filter(|m| *m < 60)?;
        i32::try_from(hours * 3600 + minutes * 60)
            .ok()
            .map(|s| sign * s)
    }
}

/// Parses the layouts go-dqlite's driver reads from ISO8601 values, after taking off one
/// trailing `Z` as it does (the value is then UTC):
///
/// ```text
/// YYYY-MM-DD HH:MM:SS.fffffffff-07:00   YYYY-MM-DDTHH:MM:SS.fffffffff-07:00
/// YYYY-MM-DD HH:MM:SS.fffffffff         YYYY-MM-DDTHH:MM:SS.fffffffff
/// YYYY-MM-DD HH:MM:SS                   YYYY-MM-DDTHH:MM:SS
/// YYYY-MM-DD HH:MM                      YYYY-MM-DDTHH:MM
/// YYYY-MM-DD
/// ```
///
/// The fraction is optional wherever it appears (one or more digits after `.` or `,`), the
/// offset too. Field ranges are checked here; whether the day exists in its month is checked
/// by the types built from the result.
pub(crate) fn parse_timestamp(text: &str) -> Option<Stamp> {
    let text = text.strip_suffix('Z').unwrap_or(text);
    let mut c = Cursor {
        s: text.as_bytes(),
        at: 0,
    };
    let date = c.date()?;
    let mut stamp = Stamp {
        date: Some(date),
        time: Hms::MIDNIGHT,
        offset: None,
    };
    if c.done() {
        return Some(stamp);
    }
    if !(c.eat(b' ') || c.eat(b'T')) {
        return None;
    }
    let (hour, minute) = c.hour_minute()?;
    stamp.time.hour = hour;
    stamp.time.minute = minute;
    if c.done() {
        return Some(stamp);
    }
    if !c.eat(b':') {
        return None;
    }
    let (second, nanosecond) = c.second_fraction()?;
    stamp.time.second = second;
    stamp.time.nanosecond = nanosecond;
    if !c.done() {
        stamp.offset = Some(c.offset()?);
    }
    c.done().then_some(stamp)
}

/// Parses a time of day alone, `HH:MM`, `HH:MM:SS` or `HH:MM:SS.f` (SQLite's `time()`
/// layouts), for the time-of-day types.
pub(crate) fn parse_time_of_day(text: &str) -> Option<Hms> {
    let mut c = Cursor {
        s: text.as_bytes(),
        at: 0,
    };
    let (hour, minute) = c.hour_minute()?;
    let mut time = Hms {
        hour,
        minute,
        ..Hms::MIDNIGHT
    };
    if c.eat(b':') {
        let (second, nanosecond) = c.second_fraction()?;
        time.second = second;
        time.nanosecond = nanosecond;
    }
    c.done().then_some(time)
}

/// A Rust date or time type read from date/time text or UNIXTIME seconds.
pub(crate) trait FromStamp: Sized {
    /// The type's name for conversion errors.
    const NAME: &'static str;
    /// Whether text with a time of day alone is accepted.
    const TIME_OF_DAY: bool = false;
    /// The value for parsed text, if it exists (a real day, a representable instant).
    fn from_stamp(stamp: &Stamp) -> Option<Self>;
    /// The value for seconds since the Unix epoch, if representable.
    fn from_unix(seconds: i64) -> Option<Self>;
}

/// [`FromValue::from_value`](crate::FromValue::from_value) for the date and time types:
/// TEXT and ISO8601 values in the layouts above, UNIXTIME values as seconds since the epoch.
pub(crate) fn read<T: FromStamp>(value: &Value) -> Result<T> {
    let converted = match value {
        Value::Text(t) | Value::Iso8601(t) => {
            let text = t.as_str();
            match parse_timestamp(text) {
                Some(stamp) => T::from_stamp(&stamp),
                None if T::TIME_OF_DAY => parse_time_of_day(text).and_then(|time| {
                    T::from_stamp(&Stamp {
                        date: None,
                        time,
                        offset: None,
                    })
                }),
                None => None,
            }
        }
        Value::UnixTime(seconds) => T::from_unix(*seconds),
        _ => None,
    };
    match converted {
        Some(v) => Ok(v),
        None => mismatch(T::NAME, value),
    }
}

/// [`FromValue::reads_as_none`](crate::FromValue::reads_as_none) for the date and time
/// types: NULL, and the empty ISO8601 text servers send for NULL in date columns.
pub(crate) fn reads_as_none(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Iso8601(t) => t.as_str().is_empty(),
        _ => false,
    }
}

/// Writes an ISO8601 parameter: the date, time and offset that are given, in that order.
pub(crate) fn write(
    date: Option<Ymd>,
    time: Option<Hms>,
    offset: Option<i32>,
    index: usize,
) -> Result<Value> {
    let refuse = |reason: String| Error::Misuse(Misuse::ParamNotRepresentable { index, reason });
    let mut out = String::with_capacity(35);
    if let Some(Ymd { year, month, day }) = date {
        if !(0..=9999).contains(&year) {
            return Err(refuse(format!(
                "the year {year} is outside 0000 to 9999, the years of SQLite's and go-dqlite's date layouts"
            )));
        }
        out.push_str(&format!("{year:04}-{month:02}-{day:02}"));
    }
    if let Some(Hms {
        hour,
        minute,
        second,
        nanosecond,
    }) = time
    {
        if nanosecond >= 1_000_000_000 {
            return Err(refuse(
                "a leap second has no representation in the date layouts".to_owned(),
            ));
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&format!("{hour:02}:{minute:02}:{second:02}"));
        if nanosecond != 0 {
            let digits = format!("{nanosecond:09}");
            out.push('.');
            out.push_str(digits.trim_end_matches('0'));
        }
    }
    if let Some(seconds) = offset {
        if seconds % 60 != 0 || seconds.unsigned_abs() >= 24 * 3600 {
            return Err(refuse(format!(
                "the time zone offset of {seconds} s is not whole minutes within a day (±HH:MM)"
            )));
        }
        let sign = if seconds < 0 { '-' } else { '+' };
        let minutes = seconds.unsigned_abs() / 60;
        out.push_str(&format!("{sign}{:02}:{:02}", minutes / 60, minutes % 60));
    }
    Ok(Value::Iso8601(Text::from(out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(date: (i32, u8, u8), time: (u8, u8, u8, u32), offset: Option<i32>) -> Stamp {
        Stamp {
            date: Some(Ymd {
                year: date.0,
                month: date.1,
                day: date.2,
            }),
            time: Hms {
                hour: time.0,
                minute: time.1,
                second: time.2,
                nanosecond: time.3,
            },
            offset,
        }
    }

    #[test]
    fn every_go_dqlite_layout_parses() {
        let full = stamp((2024, 2, 29), (13, 14, 15, 123_456_789), Some(19800));
        let cases = [
            ("2024-02-29 13:14:15.123456789+05:30", full),
            ("2024-02-29T13:14:15.123456789+05:30", full),
            ("2024-02-29 13:14:15.123456789+05:30Z", full),
            (
                "2024-02-29 13:14:15.5-07:00",
                stamp((2024, 2, 29), (13, 14, 15, 500_000_000), Some(-25200)),
            ),
            (
                "2024-02-29 13:14:15+00:00",
                stamp((2024, 2, 29), (13, 14, 15, 0), Some(0)),
            ),
            (
                "2024-02-29 13:14:15.123456789",
                stamp((2024, 2, 29), (13, 14, 15, 123_456_789), None),
            ),
            (
                "2024-02-29T13:14:15,25Z",
                stamp((2024, 2, 29), (13, 14, 15, 250_000_000), None),
            ),
            (
                "2024-02-29 13:14:15.1234567891234",
                stamp((2024, 2, 29), (13, 14, 15, 123_456_789), None),
            ),
            (
                "2024-02-29 13:14:15",
                stamp((2024, 2, 29), (13, 14, 15, 0), None),
            ),
            (
                "2024-02-29T13:14:15Z",
                stamp((2024, 2, 29), (13, 14, 15, 0), None),
            ),
            (
                "2024-02-29 13:14",
                stamp((2024, 2, 29), (13, 14, 0, 0), None),
            ),
            ("2024-02-29T3:14", stamp((2024, 2, 29), (3, 14, 0, 0), None)),
            ("2024-02-29", stamp((2024, 2, 29), (0, 0, 0, 0), None)),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_timestamp(text), Some(expected), "{text}");
        }
    }

    #[test]
    fn other_text_is_refused() {
        for text in [
            "",
            "Z",
            "2024-2-29",
            "24-02-29",
            "2024-13-01",
            "2024-02-00",
            "2024-02-29 24:00:00",
            "2024-02-29 13:60",
            "2024-02-29 13:14:60",
            "2024-02-29 13:14+05:30",
            "2024-02-29 13:14:15.",
            "2024-02-29 13:14:15+0530",
            "2024-02-29 13:14:15+05",
            "2024-02-29 13:14:15 +05:30",
            "2024-02-29 13:14:15+24:00",
            "2024-02-29  13:14:15",
            "2024-02-29x13:14:15",
            "2024-02-29 13:14:15ZZ",
            "13:14:15",
            "１２３４-02-29",
        ] {
            assert_eq!(parse_timestamp(text), None, "{text:?}");
        }
    }

    #[test]
    fn times_of_day() {
        let t = |h, m, s, n| Hms {
            hour: h,
            minute: m,
            second: s,
            nanosecond: n,
        };
        assert_eq!(parse_time_of_day("13:14"), Some(t(13, 14, 0, 0)));
        assert_eq!(parse_time_of_day("13:14:15"), Some(t(13, 14, 15, 0)));
        assert_eq!(
            parse_time_of_day("13:14:15.000000001"),
            Some(t(13, 14, 15, 1))
        );
        for text in ["", "13", "13:14:", "13:14:15+00:00", "25:00", "13:14:15.x"] {
            assert_eq!(parse_time_of_day(text), None, "{text:?}");
        }
    }

    #[test]
    fn written_layouts() {
        let date = Ymd {
            year: 2024,
            month: 2,
            day: 9,
        };
        let time = |nanosecond| Hms {
            hour: 3,
            minute: 4,
            second: 5,
            nanosecond,
        };
        let text = |v: Result<Value>| match v.unwrap() {
            Value::Iso8601(t) => t.as_str().to_owned(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            text(write(Some(date), Some(time(120_000_000)), Some(19800), 1)),
            "2024-02-09 03:04:05.12+05:30"
        );
        assert_eq!(
            text(write(Some(date), Some(time(0)), Some(-3600), 1)),
            "2024-02-09 03:04:05-01:00"
        );
        assert_eq!(
            text(write(Some(date), Some(time(1)), Some(0), 1)),
            "2024-02-09 03:04:05.000000001+00:00"
        );
        assert_eq!(
            text(write(Some(date), Some(time(0)), None, 1)),
            "2024-02-09 03:04:05"
        );
        assert_eq!(text(write(Some(date), None, None, 1)), "2024-02-09");
        assert_eq!(
            text(write(None, Some(time(5)), None, 1)),
            "03:04:05.000000005"
        );

        let refused = |v: Result<Value>| match v.unwrap_err().misuse() {
            Some(Misuse::ParamNotRepresentable { index: 3, .. }) => {}
            other => panic!("{other:?}"),
        };
        refused(write(
            Some(Ymd {
                year: 10000,
                ..date
            }),
            None,
            None,
            3,
        ));
        refused(write(Some(Ymd { year: -1, ..date }), None, None, 3));
        refused(write(None, Some(time(1_000_000_000)), None, 3));
        refused(write(Some(date), Some(time(0)), Some(30), 3));
        refused(write(Some(date), Some(time(0)), Some(24 * 3600), 3));
    }

    #[test]
    fn empty_iso8601_reads_as_none() {
        assert!(reads_as_none(&Value::Null));
        assert!(reads_as_none(&Value::Iso8601(Text::from(""))));
        assert!(!reads_as_none(&Value::Text(Text::from(""))));
        assert!(!reads_as_none(&Value::Iso8601(Text::from("2024-01-01"))));
    }
}
