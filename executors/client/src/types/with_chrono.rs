//! `chrono` dates and times (feature `chrono`); the layouts are in the [module docs](super).

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Utc};
use dqlite_proto::Value;

use super::datetime::{self, FromStamp, Hms, Stamp, Ymd};
use crate::error::Result;
use crate::params::Param;

fn naive_date(stamp: &Stamp) -> Option<NaiveDate> {
    let Ymd { year, month, day } = stamp.date?;
    NaiveDate::from_ymd_opt(year, month.into(), day.into())
}

fn naive_time(time: Hms) -> Option<NaiveTime> {
    NaiveTime::from_hms_nano_opt(
        time.hour.into(),
        time.minute.into(),
        time.second.into(),
        time.nanosecond,
    )
}

fn fixed(stamp: &Stamp) -> Option<DateTime<FixedOffset>> {
    let wall = NaiveDateTime::from_stamp(stamp)?;
    let offset = FixedOffset::east_opt(stamp.offset.unwrap_or(0))?;
    wall.and_local_timezone(offset).single()
}

fn ymd(date: NaiveDate) -> Ymd {
    // chrono's months and days are 1-12 and 1-31.
    Ymd {
        year: date.year(),
        month: date.month() as u8,
        day: date.day() as u8,
    }
}

fn hms(time: NaiveTime) -> Hms {
    // chrono's hours, minutes and seconds are below 60.
    Hms {
        hour: time.hour() as u8,
        minute: time.minute() as u8,
        second: time.second() as u8,
        nanosecond: time.nanosecond(),
    }
}

impl FromStamp for NaiveDateTime {
    const NAME: &'static str = "chrono::NaiveDateTime";

    fn from_stamp(stamp: &Stamp) -> Option<Self> {
        Some(NaiveDateTime::new(
            naive_date(stamp)?,
            naive_time(stamp.time)?,
        ))
    }

    fn from_unix(seconds: i64) -> Option<Self> {
        DateTime::from_timestamp(seconds, 0).map(|t| t.naive_utc())
    }
}

impl FromStamp for NaiveDate {
    const NAME: &'static str = "chrono::NaiveDate";

    fn from_stamp(stamp: &Stamp) -> Option<Self> {
        // The time must exist too: the whole text is checked, not only its date.
        naive_time(stamp.time)?;
        naive_date(stamp)
    }

    fn from_unix(seconds: i64) -> Option<Self> {
        DateTime::from_timestamp(seconds, 0).map(|t| t.date_naive())
    }
}

impl FromStamp for NaiveTime {
    const NAME: &'static str = "chrono::NaiveTime";
    const TIME_OF_DAY: bool = true;

    fn from_stamp(stamp: &Stamp) -> Option<Self> {
        if stamp.date.is_some() {
            naive_date(stamp)?;
        }
        naive_time(stamp.time)
    }

    fn from_unix(seconds: i64) -> Option<Self> {
        DateTime::from_timestamp(seconds, 0).map(|t| t.time())
    }
}

impl FromStamp for DateTime<FixedOffset> {
    const NAME: &'static str = "chrono::DateTime<FixedOffset>";

    fn from_stamp(stamp: &Stamp) -> Option<Self> {
        fixed(stamp)
    }

    fn from_unix(seconds: i64) -> Option<Self> {
        DateTime::from_timestamp(seconds, 0).map(|t| t.fixed_offset())
    }
}

impl FromStamp for DateTime<Utc> {
    const NAME: &'static str = "chrono::DateTime<Utc>";

    fn from_stamp(stamp: &Stamp) -> Option<Self> {
        fixed(stamp).map(|t| t.with_timezone(&Utc))
    }

    fn from_unix(seconds: i64) -> Option<Self> {
        DateTime::from_timestamp(seconds, 0)
    }
}

super::stamp_from_value!(
    NaiveDateTime,
    NaiveDate,
    NaiveTime,
    DateTime<FixedOffset>,
    DateTime<Utc>,
);

impl Param for NaiveDateTime {
    /// `2006-01-02 15:04:05.999999999`, without an offset (go-dqlite reads it as UTC).
    fn into_value(self, index: usize) -> Result<Value> {
        datetime::write(Some(ymd(self.date())), Some(hms(self.time())), None, index)
    }
}

impl Param for NaiveDate {
    /// `2006-01-02`.
    fn into_value(self, index: usize) -> Result<Value> {
        datetime::write(Some(ymd(self)), None, None, index)
    }
}

impl Param for NaiveTime {
    /// `15:04:05.999999999`.
    fn into_value(self, index: usize) -> Result<Value> {
        datetime::write(None, Some(hms(self)), None, index)
    }
}

impl Param for DateTime<FixedOffset> {
    /// `2006-01-02 15:04:05.999999999-07:00`, the wall time in the value's own offset.
    fn into_value(self, index: usize) -> Result<Value> {
        let wall = self.naive_local();
        datetime::write(
            Some(ymd(wall.date())),
            Some(hms(wall.time())),
            Some(self.offset().local_minus_utc()),
            index,
        )
    }
}

impl Param for DateTime<Utc> {
    /// `2006-01-02 15:04:05.999999999+00:00`.
    fn into_value(self, index: usize) -> Result<Value> {
        self.fixed_offset().into_value(index)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use dqlite_proto::{Text, ValueType};

    use super::*;
    use crate::convert::FromValue;
    use crate::error::Error;

    fn iso(s: &str) -> Value {
        Value::Iso8601(Text::from(s))
    }

    fn written(v: impl Param) -> String {
        match v.into_value(1).unwrap() {
            Value::Iso8601(t) => t.as_str().to_owned(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn round_trips_and_layouts() {
        let ist = FixedOffset::east_opt(19800).unwrap();
        let t = ist
            .with_ymd_and_hms(2024, 2, 29, 18, 44, 15)
            .unwrap()
            .with_nanosecond(123_000_000)
            .unwrap();
        assert_eq!(written(t), "2024-02-29 18:44:15.123+05:30");
        assert_eq!(
            DateTime::<FixedOffset>::from_value(&t.into_value(1).unwrap()).unwrap(),
            t
        );
        let utc = t.with_timezone(&Utc);
        assert_eq!(written(utc), "2024-02-29 13:14:15.123+00:00");
        assert_eq!(
            DateTime::<Utc>::from_value(&iso("2024-02-29 18:44:15.123+05:30")).unwrap(),
            utc
        );
        assert_eq!(
            NaiveDateTime::from_value(&iso("2024-02-29 18:44:15.123+05:30")).unwrap(),
            t.naive_local(),
            "naive types keep the wall time as written"
        );
        assert_eq!(written(t.naive_local()), "2024-02-29 18:44:15.123");
        assert_eq!(written(t.date_naive()), "2024-02-29");
        assert_eq!(written(t.time()), "18:44:15.123");
        assert_eq!(
            NaiveTime::from_value(&Value::from("18:44:15.123")).unwrap(),
            t.time()
        );
        assert_eq!(
            NaiveTime::from_value(&iso("2024-02-29 18:44:15.123+05:30")).unwrap(),
            t.time()
        );
        assert_eq!(
            NaiveDate::from_value(&iso("2024-02-29")).unwrap(),
            t.date_naive()
        );
        assert_eq!(
            DateTime::<FixedOffset>::from_value(&iso("2024-02-29T13:14:15Z")).unwrap(),
            Utc.with_ymd_and_hms(2024, 2, 29, 13, 14, 15)
                .unwrap()
                .fixed_offset()
        );
        assert_eq!(
            DateTime::<Utc>::from_value(&Value::UnixTime(1_709_212_455)).unwrap(),
            Utc.with_ymd_and_hms(2024, 2, 29, 13, 14, 15).unwrap()
        );
        assert_eq!(
            NaiveDate::from_value(&Value::UnixTime(1_709_212_455)).unwrap(),
            NaiveDate::from_ymd_opt(2024, 2, 29).unwrap()
        );
    }

    #[test]
    fn refusals_and_null() {
        assert_eq!(Option::<NaiveDate>::from_value(&iso("")).unwrap(), None);
        assert_eq!(
            Option::<DateTime<Utc>>::from_value(&Value::Null).unwrap(),
            None
        );
        for bad in [
            iso(""),
            iso("2023-02-29"),
            Value::from("soon"),
            Value::Integer(5),
        ] {
            let e = DateTime::<Utc>::from_value(&bad).unwrap_err();
            assert!(
                matches!(
                    e,
                    Error::Conversion {
                        expected: "chrono::DateTime<Utc>",
                        ..
                    }
                ),
                "{bad:?}: {e:?}"
            );
        }
        assert!(matches!(
            NaiveTime::from_value(&iso("2023-02-29 10:00")),
            Err(Error::Conversion {
                found: ValueType::Iso8601,
                ..
            })
        ));
        assert!(NaiveDate::from_value(&Value::from("10:00")).is_err());
        assert!(NaiveDate::from_ymd_opt(10_000, 1, 1)
            .unwrap()
            .into_value(1)
            .is_err());
        let leap = NaiveTime::from_hms_nano_opt(23, 59, 59, 1_500_000_000).unwrap();
        assert!(leap.into_value(1).is_err());
    }
}
