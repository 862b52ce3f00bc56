//! What a compiled expression reads per request: the caller, the submitted body, the
//! query and headers, and the clock used by the `@now`-style macros.

use std::collections::BTreeMap;

use basalt_schema::Collection;
use serde_json::{Map, Value as Json};

use crate::Dialect;

/// How an expression is checked while it is compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FilterMode {
    /// A collection API rule (or any trusted expression): hidden fields, `@request.*`
    /// and `@collection.*` are allowed and joined collections' list rules are not applied.
    Rule,
    /// A client's `?filter=` or `?sort=`. For non-superusers, hidden fields (and the
    /// `email` of auth records whose `emailVisibility` is off) cannot be matched,
    /// `@request.*` / `@collection.*` are refused, and every collection joined through a
    /// relation or back-relation must have a list rule (null is an error), which is
    /// then applied to the joined rows.
    ClientFilter {
        /// Superusers skip every check above.
        superuser: bool,
    },
}

impl FilterMode {
    /// True when the client-filter restrictions apply.
    pub(crate) fn restricted(self) -> bool {
        matches!(self, FilterMode::ClientFilter { superuser: false })
    }
}

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthContext {
    /// Id of the caller's auth collection.
    pub collection_id: String,
    /// Name of the caller's auth collection.
    pub collection_name: String,
    /// The caller's record as stored (field name to value, `id` included).
    pub record: Map<String, Json>,
    /// Whether the caller is a superuser (`_superusers` record).
    pub is_superuser: bool,
}

impl AuthContext {
    /// The caller `record` of `collection`; superuser when the collection is `_superusers`.
    pub fn new(collection: &Collection, record: Map<String, Json>) -> AuthContext {
        AuthContext {
            collection_id: collection.id.clone(),
            collection_name: collection.name.clone(),
            is_superuser: collection.name == "_superusers",
            record,
        }
    }

    /// The caller's record id.
    pub fn id(&self) -> Option<&str> {
        self.record.get("id").and_then(Json::as_str)
    }
}

/// Everything `@request.*` and the macros can read, filled in per request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestContext {
    /// The caller, `None` for guests.
    pub auth: Option<AuthContext>,
    /// The submitted body after modifiers are applied (`@request.body.*`).
    pub body: Map<String, Json>,
    /// The first value of each URL query parameter (`@request.query.*`).
    pub query: BTreeMap<String, String>,
    /// Request headers, keys already in lower snake case (`x_foo`).
    pub headers: BTreeMap<String, String>,
    /// `GET`, `POST`, ...
    pub method: String,
    /// `default`, `oauth2`, `otp`, `password`, `realtime`, `protectedFile`, `batch`, `expand`.
    pub context: String,
    /// The request time in milliseconds since the Unix epoch (UTC); macros read it.
    pub now_unix_ms: i64,
}

impl RequestContext {
    /// A guest `GET` in the `default` context at the given time.
    pub fn guest(now_unix_ms: i64) -> RequestContext {
        RequestContext {
            method: "GET".to_string(),
            context: "default".to_string(),
            now_unix_ms,
            ..RequestContext::default()
        }
    }

    /// Whether the caller is a superuser.
    pub fn is_superuser(&self) -> bool {
        self.auth.as_ref().is_some_and(|auth| auth.is_superuser)
    }
}

/// What a compile needs besides the schema and the expression.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CompileOptions {
    /// The SQL dialect to emit.
    pub dialect: Dialect,
    /// Rule or client filter.
    pub mode: FilterMode,
    /// Id of the caller's auth collection, `None` for guests. Only
    /// `@request.auth.<field>` paths beyond the static ones read it (they join the
    /// caller's row of that collection), but it is part of every cache key.
    pub auth_collection: Option<String>,
}

impl CompileOptions {
    /// Options for compiling a rule for the caller of `ctx`.
    pub fn rule(dialect: Dialect, ctx: &RequestContext) -> CompileOptions {
        CompileOptions {
            dialect,
            mode: FilterMode::Rule,
            auth_collection: ctx.auth.as_ref().map(|auth| auth.collection_id.clone()),
        }
    }

    /// Options for compiling a client filter or sort of the caller of `ctx`.
    pub fn client_filter(dialect: Dialect, ctx: &RequestContext) -> CompileOptions {
        CompileOptions {
            dialect,
            mode: FilterMode::ClientFilter {
                superuser: ctx.is_superuser(),
            },
            auth_collection: ctx.auth.as_ref().map(|auth| auth.collection_id.clone()),
        }
    }
}

/// The date macros: `@now`, `@todayStart`, `@year`, ...
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Macro {
    Now,
    Second,
    Minute,
    Hour,
    Weekday,
    Day,
    Month,
    Year,
    TodayStart,
    TodayEnd,
    MonthStart,
    MonthEnd,
    YearStart,
    YearEnd,
    Yesterday,
    Tomorrow,
}

impl Macro {
    pub(crate) fn from_name(name: &str) -> Option<Macro> {
        Some(match name {
            "@now" => Macro::Now,
            "@second" => Macro::Second,
            "@minute" => Macro::Minute,
            "@hour" => Macro::Hour,
            "@weekday" => Macro::Weekday,
            "@day" => Macro::Day,
            "@month" => Macro::Month,
            "@year" => Macro::Year,
            "@todayStart" => Macro::TodayStart,
            "@todayEnd" => Macro::TodayEnd,
            "@monthStart" => Macro::MonthStart,
            "@monthEnd" => Macro::MonthEnd,
            "@yearStart" => Macro::YearStart,
            "@yearEnd" => Macro::YearEnd,
            "@yesterday" => Macro::Yesterday,
            "@tomorrow" => Macro::Tomorrow,
            _ => return None,
        })
    }

    /// Whether the macro is a number (the others are datetime strings).
    pub(crate) fn is_number(self) -> bool {
        matches!(
            self,
            Macro::Second
                | Macro::Minute
                | Macro::Hour
                | Macro::Weekday
                | Macro::Day
                | Macro::Month
                | Macro::Year
        )
    }

    /// The macro's value at `now_ms`: a number or a `YYYY-MM-DD HH:MM:SS.mmmZ` string.
    pub(crate) fn value(self, now_ms: i64) -> Json {
        const DAY_MS: i64 = 86_400_000;
        let at = DateTime::from_unix_ms(now_ms);
        let day_start = now_ms.div_euclid(DAY_MS) * DAY_MS;
        let text = |ms: i64| Json::String(DateTime::from_unix_ms(ms).format());
        match self {
            Macro::Now => text(now_ms),
            Macro::Second => Json::from(at.second),
            Macro::Minute => Json::from(at.minute),
            Macro::Hour => Json::from(at.hour),
            Macro::Weekday => Json::from(at.weekday),
            Macro::Day => Json::from(at.day),
            Macro::Month => Json::from(at.month),
            Macro::Year => Json::from(at.year),
            Macro::TodayStart => text(day_start),
            Macro::TodayEnd => text(day_start + DAY_MS - 1),
            Macro::MonthStart => text(days_from_civil(at.year, at.month, 1) * DAY_MS),
            Macro::MonthEnd => {
                let (year, month) = if at.month == 12 {
                    (at.year + 1, 1)
                } else {
                    (at.year, at.month + 1)
                };
                text(days_from_civil(year, month, 1) * DAY_MS - 1)
            }
            Macro::YearStart => text(days_from_civil(at.year, 1, 1) * DAY_MS),
            Macro::YearEnd => text(days_from_civil(at.year + 1, 1, 1) * DAY_MS - 1),
            Macro::Yesterday => text(now_ms - DAY_MS),
            Macro::Tomorrow => text(now_ms + DAY_MS),
        }
    }
}

/// A broken-down UTC time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DateTime {
    pub(crate) year: i64,
    pub(crate) month: i64,
    pub(crate) day: i64,
    pub(crate) hour: i64,
    pub(crate) minute: i64,
    pub(crate) second: i64,
    pub(crate) milli: i64,
    /// 0 = Sunday.
    pub(crate) weekday: i64,
}

impl DateTime {
    pub(crate) fn from_unix_ms(ms: i64) -> DateTime {
        let days = ms.div_euclid(86_400_000);
        let rem = ms.rem_euclid(86_400_000);
        let (year, month, day) = civil_from_days(days);
        DateTime {
            year,
            month,
            day,
            hour: rem / 3_600_000,
            minute: rem / 60_000 % 60,
            second: rem / 1000 % 60,
            milli: rem % 1000,
            // 1970-01-01 was a Thursday (4).
            weekday: (days + 4).rem_euclid(7),
        }
    }

    /// PocketBase's storage format, `YYYY-MM-DD HH:MM:SS.mmmZ`.
    pub(crate) fn format(&self) -> String {
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:03}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second, self.milli
        )
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub(crate) fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date of a day number (inverse of [`days_from_civil`]).
pub(crate) fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_round_trip() {
        for days in [-800_000, -1, 0, 1, 59, 60, 365, 11_016, 19_782, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
    }

    #[test]
    fn macros_at_a_leap_day() {
        // 2024-02-29 13:45:30.250Z, a Thursday.
        let now = (days_from_civil(2024, 2, 29) * 86_400 + 13 * 3600 + 45 * 60 + 30) * 1000 + 250;
        let value = |m: Macro| m.value(now).to_string();
        assert_eq!(value(Macro::Now), "\"2024-02-29 13:45:30.250Z\"");
        assert_eq!(value(Macro::Weekday), "4");
        assert_eq!(value(Macro::MonthEnd), "\"2024-02-29 23:59:59.999Z\"");
        assert_eq!(value(Macro::MonthStart), "\"2024-02-01 00:00:00.000Z\"");
        assert_eq!(value(Macro::YearEnd), "\"2024-12-31 23:59:59.999Z\"");
        assert_eq!(value(Macro::Tomorrow), "\"2024-03-01 13:45:30.250Z\"");
        assert_eq!(value(Macro::TodayStart), "\"2024-02-29 00:00:00.000Z\"");
    }
}
