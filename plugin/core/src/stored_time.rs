//! Reading stored times. chrono writes them as RFC 3339; its `Deserialize` reads them back
//! with its lenient parser, which took a quarter of an open-lines page in a profile (four
//! times per dialog). These read them with chrono's strict RFC 3339 parser, without copying
//! the text, and fall back to the lenient one for anything else.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::Deserializer;
use serde::de::{Error, Visitor};

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

/// A stored time.
pub fn deserialize<'de, D: Deserializer<'de>>(stored: D) -> Result<DateTime<Utc>, D::Error> {
    stored.deserialize_str(Time)
}

/// A stored time that may be `null` (use with `#[serde(default)]`: it may be missing too).
pub fn option<'de, D: Deserializer<'de>>(stored: D) -> Result<Option<DateTime<Utc>>, D::Error> {
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
            deserialize(stored).map(Some)
        }
    }

    stored.deserialize_option(Maybe)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Deserialize, PartialEq, Debug)]
    struct Record {
        #[serde(deserialize_with = "deserialize")]
        at: DateTime<Utc>,
        #[serde(default, deserialize_with = "option")]
        maybe: Option<DateTime<Utc>>,
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
