//! Stored times, written and read as RFC 3339.
//!
//! chrono's `Serialize` formats through `fmt::Write` character by character, and serde_json
//! escapes each of those characters on its way out: a tenth of a callback in the component
//! went there in a profile. [`serialize`] writes the same text (chrono's `AutoSi` seconds:
//! no fraction, or 3, 6 or 9 digits; `Z` for UTC) into a buffer and hands it over whole, and
//! leaves the rare time it has no fixed width for (a year past 9999, a leap second) to
//! chrono.
//!
//! chrono's `Deserialize` reads them back with its lenient parser, which took a quarter of
//! an open-lines page in a profile (four times per dialog). [`deserialize`] reads them with
//! chrono's strict RFC 3339 parser, without copying the text, and falls back to the lenient
//! one for anything else.
//!
//! Use with `#[serde(with = "crate::stored_time")]`, or `crate::stored_time::option` (with
//! `default`) for an optional time.

use std::fmt;

use chrono::{DateTime, Datelike as _, Timelike as _, Utc};
use serde::de::{Error, Visitor};
use serde::{Deserializer, Serialize, Serializer};

/// The longest text [`rfc3339`] writes: `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
const LONGEST: usize = 30;
/// The length of `YYYY-MM-DDTHH:MM:SSZ`.
const TO_THE_SECOND: usize = 20;

/// Writes `at` as chrono's `Serialize` does, into `out`; its length, or `None` for a time
/// outside years 0 to 9999 or in a leap second.
fn rfc3339(at: &DateTime<Utc>, out: &mut [u8; LONGEST]) -> Option<usize> {
    let year = u32::try_from(at.year()).ok().filter(|year| *year <= 9999)?;
    let nanos = at.nanosecond();
    if nanos >= 1_000_000_000 {
        return None;
    }
    let mut put = |at: usize, value: u32, digits: u32| {
        let mut value = value;
        for place in (at..at + digits as usize).rev() {
            out[place] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, year, 4);
    put(5, at.month(), 2);
    put(8, at.day(), 2);
    put(11, at.hour(), 2);
    put(14, at.minute(), 2);
    put(17, at.second(), 2);
    let (fraction, digits) = if nanos == 0 {
        (0, 0)
    } else if nanos.is_multiple_of(1_000_000) {
        (nanos / 1_000_000, 3)
    } else if nanos.is_multiple_of(1_000) {
        (nanos / 1_000, 6)
    } else {
        (nanos, 9)
    };
    put(20, fraction, digits);
    for (place, mark) in [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')] {
        out[place] = mark;
    }
    let mut end = 19;
    if digits > 0 {
        out[19] = b'.';
        end = 20 + digits as usize;
    }
    out[end] = b'Z';
    Some(end + 1)
}

/// [`rfc3339`] into `out`, as text; with `to_the_second`, without the fraction.
fn written<'a>(
    at: &DateTime<Utc>,
    out: &'a mut [u8; LONGEST],
    to_the_second: bool,
) -> Option<&'a str> {
    let mut len = rfc3339(at, out)?;
    if to_the_second {
        len = TO_THE_SECOND;
        out[len - 1] = b'Z';
    }
    std::str::from_utf8(&out[..len]).ok()
}

/// `at` as `to_rfc3339_opts(SecondsFormat::Secs, true)` writes it, without its fraction;
/// `None` where [`rfc3339`] has no fixed width for it.
pub(crate) fn to_the_second(at: DateTime<Utc>) -> Option<String> {
    written(&at, &mut [0; LONGEST], true).map(str::to_owned)
}

/// Writes a stored time.
pub fn serialize<S: Serializer>(at: &DateTime<Utc>, out: S) -> Result<S::Ok, S::Error> {
    match written(at, &mut [0; LONGEST], false) {
        Some(text) => out.serialize_str(text),
        None => at.serialize(out),
    }
}

/// A time written by [`serialize`], for a time stored on its own (not a record's field).
pub struct Stored(pub DateTime<Utc>);

impl Serialize for Stored {
    fn serialize<S: Serializer>(&self, out: S) -> Result<S::Ok, S::Error> {
        serialize(&self.0, out)
    }
}

struct Time;

impl Visitor<'_> for Time {
    type Value = DateTime<Utc>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an RFC 3339 time")
    }

    fn visit_str<E: Error>(self, text: &str) -> Result<DateTime<Utc>, E> {
        DateTime::parse_from_rfc3339(text)
            .map(|at| at.to_utc())
            .or_else(|_| text.parse())
            .map_err(E::custom)
    }
}

/// Reads a stored time.
pub fn deserialize<'de, D: Deserializer<'de>>(stored: D) -> Result<DateTime<Utc>, D::Error> {
    stored.deserialize_str(Time)
}

/// A stored time that may be `null` (use with `#[serde(default)]`: it may be missing too).
pub mod option {
    use std::fmt;

    use chrono::{DateTime, Utc};
    use serde::de::{Error, Visitor};
    use serde::{Deserializer, Serializer};

    /// Writes `null` or the time.
    pub fn serialize<S: Serializer>(at: &Option<DateTime<Utc>>, out: S) -> Result<S::Ok, S::Error> {
        match at {
            Some(at) => out.serialize_some(&super::Stored(*at)),
            None => out.serialize_none(),
        }
    }

    /// Reads `null` or a time.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        stored: D,
    ) -> Result<Option<DateTime<Utc>>, D::Error> {
        struct Maybe;

        impl<'de> Visitor<'de> for Maybe {
            type Value = Option<DateTime<Utc>>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 time or null")
            }

            fn visit_none<E: Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }

            fn visit_unit<E: Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }

            fn visit_some<D: Deserializer<'de>>(self, stored: D) -> Result<Self::Value, D::Error> {
                super::deserialize(stored).map(Some)
            }
        }

        stored.deserialize_option(Maybe)
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Deserialize, PartialEq, Debug)]
    struct Record {
        #[serde(deserialize_with = "deserialize")]
        at: DateTime<Utc>,
        #[serde(default, deserialize_with = "option::deserialize")]
        maybe: Option<DateTime<Utc>>,
    }

    /// Times across the years and every width of fraction, the edges included.
    fn samples() -> impl Iterator<Item = DateTime<Utc>> {
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let last = DateTime::<Utc>::MAX_UTC.timestamp();
        let first = DateTime::<Utc>::MIN_UTC.timestamp();
        let edges = [
            first,
            -62_167_219_200,
            -1,
            0,
            1,
            253_402_300_799,
            253_402_300_800,
            last,
        ];
        let random: Vec<i64> = (0..20_000)
            .map(|n| {
                let span = if n % 2 == 0 {
                    253_402_300_800
                } else {
                    (last - first) as u64
                };
                let offset = (next() % span) as i64;
                if n % 2 == 0 { offset } else { first + offset }
            })
            .collect();
        edges
            .into_iter()
            .chain(random)
            .enumerate()
            .map(move |(n, secs)| {
                let nanos = match n % 4 {
                    0 => 0,
                    1 => (next() % 1000) as u32 * 1_000_000,
                    2 => (next() % 1_000_000) as u32 * 1_000,
                    _ => (next() % 1_000_000_000) as u32,
                };
                DateTime::from_timestamp(secs, nanos).expect("in chrono's range")
            })
    }

    #[test]
    fn stored_times_are_written_as_chrono_writes_them() {
        #[derive(serde::Serialize)]
        struct Written {
            #[serde(with = "super")]
            at: DateTime<Utc>,
            #[serde(with = "option")]
            maybe: Option<DateTime<Utc>>,
        }
        let leap = chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
            .and_then(|day| day.and_hms_nano_opt(23, 59, 59, 1_500_000_000))
            .expect("a leap second")
            .and_utc();
        for at in samples().chain([leap, Utc::now()]) {
            let ours = serde_json::to_string(&Written {
                at,
                maybe: Some(at),
            })
            .expect("writes");
            let chrono =
                serde_json::to_string(&serde_json::json!({"at": at, "maybe": at})).expect("writes");
            assert_eq!(ours, chrono);
        }
        for at in samples() {
            assert_eq!(
                to_the_second(at),
                Some(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                    .filter(|_| (0..=9999).contains(&at.year())),
            );
        }
        assert_eq!(to_the_second(leap), None);
        let none = serde_json::to_string(&Written {
            at: leap,
            maybe: None,
        })
        .expect("writes");
        assert!(none.ends_with(r#""maybe":null}"#), "{none}");
    }

    #[test]
    fn stored_times_read_back_as_chrono_reads_them() {
        let now = Utc::now();
        let written = serde_json::to_string(&serde_json::json!({"at": now, "maybe": now}))
            .expect("serializes");
        let read: Record = serde_json::from_str(&written).expect("reads");
        assert_eq!(
            read,
            Record {
                at: now,
                maybe: Some(now)
            }
        );
        for (text, expected) in [
            (r#"{"at": "2026-12-01T05:00:00Z", "maybe": null}"#, None),
            (r#"{"at": "2026-12-01T05:00:00Z"}"#, None),
            (
                r#"{"at": "2026-12-01 08:00:00+03:00", "maybe": "2026-12-01T05:00:00.5Z"}"#,
                Some("2026-12-01T05:00:00.5Z"),
            ),
        ] {
            let read: Record = serde_json::from_str(text).expect("reads");
            assert_eq!(
                read.at,
                "2026-12-01T05:00:00Z"
                    .parse::<DateTime<Utc>>()
                    .expect("a time")
            );
            assert_eq!(read.maybe, expected.map(|t| t.parse().expect("a time")));
        }
        assert!(serde_json::from_str::<Record>(r#"{"at": "yesterday"}"#).is_err());
    }
}
