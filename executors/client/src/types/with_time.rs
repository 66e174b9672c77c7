//! `time` dates and times (feature `time`); the layouts are in the [module docs](super).

use dqlite_proto::Value;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

use super::datetime::{self, FromStamp, Hms, Stamp, Ymd};
use crate::error::Result;
use crate::params::Param;

fn date(stamp: &Stamp) -> Option<Date> {
    let Ymd { year, month, day } = stamp.date?;
    Date::from_calendar_date(year, Month::try_from(month).ok()?, day).ok()
}

fn time_of_day(time: Hms) -> Option<Time> {
    Time::from_hms_nano(time.hour, time.minute, time.second, time.nanosecond).ok()
}

fn utc(seconds: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(seconds).ok()
}

fn ymd(date: Date) -> Ymd {
    Ymd {
        year: date.year(),
        month: date.month().into(),
        day: date.day(),
    }
}

fn hms(time: Time) -> Hms {
    Hms {
        hour: time.hour(),
        minute: time.minute(),
        second: time.second(),
        nanosecond: time.nanosecond(),
    }
}

impl FromStamp for PrimitiveDateTime {
    const NAME: &'static str = "time::PrimitiveDateTime";

    fn from_stamp(stamp: &Stamp) -> Option<Self> {
        Some(PrimitiveDateTime::new(
            date(stamp)?,
            time_of_day(stamp.time)?,
        ))
    }

    fn from_unix(seconds: i64) -> Option<Self> {
        utc(seconds).map(|t| PrimitiveDateTime::new(t.date(), t.time()))
    }
}

impl FromStamp for Date {
    const NAME: &'static str = "time::Date";

    fn from_stamp(stamp: &Stamp) -> Option<Self> {
        // The time must exist too: the whole text is checked, not only its date.
        time_of_day(stamp.time)?;
        date(stamp)
    }

    fn from_unix(seconds: i64) -> Option<Self> {
        utc(seconds).map(OffsetDateTime::date)
    }
}

impl FromStamp for Time {
    const NAME: &'static str = "time::Time";
    const TIME_OF_DAY: bool = true;

    fn from_stamp(stamp: &Stamp) -> Option<Self> {
        if stamp.date.is_some() {
            date(stamp)?;
        }
        time_of_day(stamp.time)
    }

    fn from_unix(seconds: i64) -> Option<Self> {
        utc(seconds).map(OffsetDateTime::time)
    }
}

impl FromStamp for OffsetDateTime {
    const NAME: &'static str = "time::OffsetDateTime";

    fn from_stamp(stamp: &Stamp) -> Option<Self> {
        let offset = UtcOffset::from_whole_seconds(stamp.offset.unwrap_or(0)).ok()?;
        Some(PrimitiveDateTime::from_stamp(stamp)?.assume_offset(offset))
    }

    fn from_unix(seconds: i64) -> Option<Self> {
        utc(seconds)
    }
}

super::stamp_from_value!(PrimitiveDateTime, Date, Time, OffsetDateTime);

impl Param for PrimitiveDateTime {
    /// `2006-01-02 15:04:05.999999999`, without an offset (go-dqlite reads it as UTC).
    fn into_value(self, index: usize) -> Result<Value> {
        datetime::write(Some(ymd(self.date())), Some(hms(self.time())), None, index)
    }
}

impl Param for Date {
    /// `2006-01-02`.
    fn into_value(self, index: usize) -> Result<Value> {
        datetime::write(Some(ymd(self)), None, None, index)
    }
}

impl Param for Time {
    /// `15:04:05.999999999`.
    fn into_value(self, index: usize) -> Result<Value> {
        datetime::write(None, Some(hms(self)), None, index)
    }
}

impl Param for OffsetDateTime {
    /// `2006-01-02 15:04:05.999999999-07:00`, the wall time in the value's own offset.
    fn into_value(self, index: usize) -> Result<Value> {
        datetime::write(
            Some(ymd(self.date())),
            Some(hms(self.time())),
            Some(self.offset().whole_seconds()),
            index,
        )
    }
}

#[cfg(test)]
mod tests {
    use dqlite_proto::Text;

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
        let d = Date::from_calendar_date(2024, Month::February, 29).unwrap();
        let tod = Time::from_hms_nano(18, 44, 15, 5).unwrap();
        let ist = UtcOffset::from_hms(5, 30, 0).unwrap();
        let t = PrimitiveDateTime::new(d, tod).assume_offset(ist);
        assert_eq!(written(t), "2024-02-29 18:44:15.000000005+05:30");
        assert_eq!(
            OffsetDateTime::from_value(&t.into_value(1).unwrap()).unwrap(),
            t
        );
        let west = UtcOffset::from_hms(-7, 0, 0).unwrap();
        assert_eq!(
            written(t.to_offset(west)),
            "2024-02-29 06:14:15.000000005-07:00"
        );
        assert_eq!(
            written(t.to_offset(UtcOffset::UTC)),
            "2024-02-29 13:14:15.000000005+00:00"
        );
        assert_eq!(
            PrimitiveDateTime::from_value(&iso("2024-02-29 18:44:15.000000005+05:30")).unwrap(),
            PrimitiveDateTime::new(d, tod),
            "types without a zone keep the wall time as written"
        );
        assert_eq!(
            written(PrimitiveDateTime::new(d, tod)),
            "2024-02-29 18:44:15.000000005"
        );
        assert_eq!(written(d), "2024-02-29");
        assert_eq!(written(tod), "18:44:15.000000005");
        assert_eq!(
            Time::from_value(&Value::from("18:44:15.000000005")).unwrap(),
            tod
        );
        assert_eq!(Date::from_value(&iso("2024-02-29T23:59Z")).unwrap(), d);
        assert_eq!(
            OffsetDateTime::from_value(&iso("2024-02-29 13:14:15")).unwrap(),
            PrimitiveDateTime::new(d, Time::from_hms(13, 14, 15).unwrap()).assume_utc()
        );
        assert_eq!(
            OffsetDateTime::from_value(&Value::UnixTime(1_709_212_455)).unwrap(),
            PrimitiveDateTime::new(d, Time::from_hms(13, 14, 15).unwrap()).assume_utc()
        );
    }

    #[test]
    fn refusals_and_null() {
        assert_eq!(Option::<Date>::from_value(&iso("")).unwrap(), None);
        assert_eq!(
            Option::<OffsetDateTime>::from_value(&Value::Null).unwrap(),
            None
        );
        for bad in [
            iso(""),
            iso("2023-02-29"),
            Value::from("soon"),
            Value::Float(1.0),
        ] {
            let e = OffsetDateTime::from_value(&bad).unwrap_err();
            assert!(
                matches!(
                    e,
                    Error::Conversion {
                        expected: "time::OffsetDateTime",
                        ..
                    }
                ),
                "{bad:?}: {e:?}"
            );
        }
        // The ends of the range, where the instant in UTC is a year further.
        assert!(OffsetDateTime::from_value(&iso("0000-01-01 00:00:00+05:00")).is_ok());
        assert!(OffsetDateTime::from_value(&iso("9999-12-31 23:59:59-05:00")).is_ok());
        assert!(OffsetDateTime::from_value(&Value::UnixTime(i64::MAX)).is_err());
        let odd = UtcOffset::from_hms(1, 0, 30).unwrap();
        assert!(OffsetDateTime::UNIX_EPOCH
            .to_offset(odd)
            .into_value(1)
            .is_err());
    }
}
