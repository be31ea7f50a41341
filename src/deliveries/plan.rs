//! When a delivery is planned: an instant with an offset, a wall-clock time
//! in an IANA time zone, or now. Pure rules, no I/O.

use chrono::{DateTime, Duration, LocalResult, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

/// How far in the past a planned instant may be and still be accepted as
/// "now" (clock skew between a client and Herald, time to type).
pub const PAST_TOLERANCE: Duration = Duration::seconds(30);

/// What a client asked for.
#[derive(Debug, Clone, Default)]
pub struct WhenRequest {
    pub at: Option<String>,
    pub local_time: Option<String>,
    pub timezone: Option<String>,
    pub now: Option<bool>,
}

/// The resolved plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub at: DateTime<Utc>,
    pub timezone: Option<String>,
    /// Said to the client when the wall-clock time was ambiguous.
    pub notice: Option<String>,
}

/// A field and what is wrong with it.
pub type FieldProblem = (&'static str, String);

pub fn resolve(req: &WhenRequest, now: DateTime<Utc>) -> Result<Planned, Vec<FieldProblem>> {
    let wants_now = req.now == Some(true);
    let given = [req.at.is_some(), req.local_time.is_some(), wants_now]
        .iter()
        .filter(|g| **g)
        .count();
    if given != 1 {
        return Err(vec![(
            "at",
            "give exactly one of `at` (RFC 3339 with offset), `local_time` with `timezone`, or `now: true`".into(),
        )]);
    }
    let zone = match req.timezone.as_deref() {
        None => None,
        Some(name) => match name.parse::<Tz>() {
            Ok(tz) => Some(tz),
            Err(_) => {
                return Err(vec![(
                    "timezone",
                    format!("'{name}' is not an IANA time zone name (such as Europe/Paris)"),
                )])
            }
        },
    };
    let timezone = zone.map(|tz| tz.name().to_string());
    if wants_now {
        return Ok(Planned {
            at: now,
            timezone,
            notice: None,
        });
    }
    if let Some(at) = &req.at {
        let parsed = DateTime::parse_from_rfc3339(at).map_err(|_| {
            vec![(
                "at",
                format!("'{at}' is not an RFC 3339 instant with an offset, such as 2026-11-25T09:30:00+01:00"),
            )]
        })?;
        return check_future(
            Planned {
                at: parsed.with_timezone(&Utc),
                timezone,
                notice: None,
            },
            now,
            "at",
        );
    }
    let local = req.local_time.as_deref().unwrap_or_default();
    let Some(tz) = zone else {
        return Err(vec![(
            "timezone",
            "is required with `local_time` (an IANA name such as Europe/Paris)".into(),
        )]);
    };
    let naive = parse_local(local).ok_or_else(|| {
        vec![(
            "local_time",
            format!("'{local}' is not a local time of the form YYYY-MM-DDTHH:MM[:SS] (no offset)"),
        )]
    })?;
    let planned = match tz.from_local_datetime(&naive) {
        LocalResult::Single(at) => Planned {
            at: at.with_timezone(&Utc),
            timezone,
            notice: None,
        },
        LocalResult::Ambiguous(earlier, later) => Planned {
            at: earlier.with_timezone(&Utc),
            timezone,
            notice: Some(format!(
                "{local} happens twice in {} (clocks go back): planned at the earlier instant, {} ({}); the later one would be {}",
                tz.name(),
                earlier.with_timezone(&Utc).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                earlier.format("%Z"),
                later.with_timezone(&Utc).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            )),
        },
        LocalResult::None => {
            return Err(vec![(
                "local_time",
                format!(
                    "{local} does not exist in {} (clocks go forward at that time); choose a time outside the gap",
                    tz.name()
                ),
            )])
        }
    };
    check_future(planned, now, "local_time")
}

fn parse_local(text: &str) -> Option<NaiveDateTime> {
    [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%dT%H:%M:%S%.f",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
}

fn check_future(
    planned: Planned,
    now: DateTime<Utc>,
    field: &'static str,
) -> Result<Planned, Vec<FieldProblem>> {
    if planned.at < now - PAST_TOLERANCE {
        return Err(vec![(
            field,
            format!(
                "{} is in the past (it is now {}); use `now: true` to publish at once",
                planned
                    .at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        )]);
    }
    Ok(planned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
    }

    fn local(time: &str, zone: &str) -> WhenRequest {
        WhenRequest {
            local_time: Some(time.into()),
            timezone: Some(zone.into()),
            ..Default::default()
        }
    }

    #[test]
    fn paris_summer_time_starts_with_a_gap() {
        // 2026-03-29: 02:00 → 03:00 in Europe/Paris.
        let err = resolve(&local("2026-03-29T02:30", "Europe/Paris"), now()).unwrap_err();
        assert_eq!(err[0].0, "local_time");
        assert!(err[0].1.contains("does not exist"));
        let ok = resolve(&local("2026-03-29T03:00", "Europe/Paris"), now()).unwrap();
        assert_eq!(ok.at, Utc.with_ymd_and_hms(2026, 3, 29, 1, 0, 0).unwrap());
    }

    #[test]
    fn paris_winter_time_repeats_an_hour_and_takes_the_earlier() {
        // 2026-10-25: 03:00 → 02:00; 02:30 happens at 00:30Z (CEST) and 01:30Z (CET).
        let p = resolve(&local("2026-10-25T02:30", "Europe/Paris"), now()).unwrap();
        assert_eq!(p.at, Utc.with_ymd_and_hms(2026, 10, 25, 0, 30, 0).unwrap());
        assert!(p.notice.unwrap().contains("twice"));
    }

    #[test]
    fn new_york_transitions() {
        // 2026-03-08 02:00 → 03:00 EST→EDT; 2026-11-01 02:00 → 01:00 EDT→EST.
        assert!(resolve(&local("2026-03-08T02:15:00", "America/New_York"), now()).is_err());
        let p = resolve(&local("2026-11-01T01:30", "America/New_York"), now()).unwrap();
        assert_eq!(p.at, Utc.with_ymd_and_hms(2026, 11, 1, 5, 30, 0).unwrap());
        assert!(p.notice.is_some());
        let p = resolve(&local("2026-07-04T12:00", "America/New_York"), now()).unwrap();
        assert_eq!(p.at, Utc.with_ymd_and_hms(2026, 7, 4, 16, 0, 0).unwrap());
        assert_eq!(p.timezone.as_deref(), Some("America/New_York"));
        assert!(p.notice.is_none());
    }

    #[test]
    fn offsets_and_now() {
        let p = resolve(
            &WhenRequest {
                at: Some("2026-06-01T09:00:00+02:00".into()),
                ..Default::default()
            },
            now(),
        )
        .unwrap();
        assert_eq!(p.at, Utc.with_ymd_and_hms(2026, 6, 1, 7, 0, 0).unwrap());
        let p = resolve(
            &WhenRequest {
                now: Some(true),
                ..Default::default()
            },
            now(),
        )
        .unwrap();
        assert_eq!(p.at, now());
    }

    #[test]
    fn bad_requests_name_the_field() {
        let none = resolve(&WhenRequest::default(), now()).unwrap_err();
        assert_eq!(none[0].0, "at");
        let both = WhenRequest {
            at: Some("2026-06-01T09:00:00Z".into()),
            now: Some(true),
            ..Default::default()
        };
        assert_eq!(resolve(&both, now()).unwrap_err()[0].0, "at");
        let no_offset = WhenRequest {
            at: Some("2026-06-01T09:00:00".into()),
            ..Default::default()
        };
        assert_eq!(resolve(&no_offset, now()).unwrap_err()[0].0, "at");
        assert_eq!(
            resolve(&local("2026-06-01T09:00", "Mars/Olympus"), now()).unwrap_err()[0].0,
            "timezone"
        );
        let no_zone = WhenRequest {
            local_time: Some("2026-06-01T09:00".into()),
            ..Default::default()
        };
        assert_eq!(resolve(&no_zone, now()).unwrap_err()[0].0, "timezone");
        assert_eq!(
            resolve(&local("tomorrow", "Europe/Paris"), now()).unwrap_err()[0].0,
            "local_time"
        );
    }

    #[test]
    fn the_past_is_refused_beyond_a_small_tolerance() {
        let slightly = WhenRequest {
            at: Some("2025-12-31T23:59:50Z".into()),
            ..Default::default()
        };
        assert!(resolve(&slightly, now()).is_ok());
        let long_ago = WhenRequest {
            at: Some("2025-12-31T23:00:00Z".into()),
            ..Default::default()
        };
        let err = resolve(&long_ago, now()).unwrap_err();
        assert!(err[0].1.contains("in the past"));
    }
}
