//! Leaderboard periods (issue 13): every hero has an all-time board, a daily board per UTC
//! calendar day and a weekly board per ISO week (from Monday 00:00 UTC). A submission counts in
//! the boards of the periods that contain the time it was *received* (the server's clock;
//! `achievedAt` is only the client's word). Pure: which board an instant belongs to, the board's
//! key, and the `period`/`date` query parameters.

use time::{Date, Duration, OffsetDateTime};

/// How long past boards stay readable: 90 days of daily boards, 52 weeks of weekly boards.
pub const DAILY_RETENTION_DAYS: i64 = 90;
pub const WEEKLY_RETENTION_WEEKS: i64 = 52;

/// A board's period kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Period {
    AllTime,
    Daily,
    Weekly,
}

impl Period {
    pub const ALL: [Period; 3] = [Period::AllTime, Period::Daily, Period::Weekly];

    /// The name in the API (`period=`).
    pub fn as_str(self) -> &'static str {
        match self {
            Period::AllTime => "all-time",
            Period::Daily => "daily",
            Period::Weekly => "weekly",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, String> {
        Period::ALL
            .into_iter()
            .find(|p| p.as_str() == raw)
            .ok_or_else(|| "must be `all-time`, `daily` or `weekly`".to_owned())
    }

    /// The board of this period that contains `date`.
    pub fn board_of(self, date: Date) -> Board {
        let start = match self {
            Period::AllTime => None,
            Period::Daily => Some(date),
            Period::Weekly => {
                Some(date - Duration::days(i64::from(date.weekday().number_days_from_monday())))
            }
        };
        Board {
            period: self,
            start,
        }
    }
}

/// One board of one period: the all-time board, or the daily or weekly board starting on
/// `start` (a Monday for weekly boards).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Board {
    pub period: Period,
    /// `None` for the all-time board.
    pub start: Option<Date>,
}

impl Board {
    /// The boards a submission received at `received_at` counts in: one per period.
    pub fn containing(received_at: OffsetDateTime) -> [Board; 3] {
        let date = received_at.to_offset(time::UtcOffset::UTC).date();
        Period::ALL.map(|period| period.board_of(date))
    }

    /// A stable, sortable key naming the board: `all`, `d2026-12-01` or `w2026-11-30` (the
    /// week's Monday, so weekly keys sort by time even across ISO years).
    pub fn key(self) -> String {
        match (self.period, self.start) {
            (Period::AllTime, _) | (_, None) => "all".to_owned(),
            (Period::Daily, Some(start)) => format!("d{}", iso_date(start)),
            (Period::Weekly, Some(start)) => format!("w{}", iso_date(start)),
        }
    }

    /// Whether the board is still readable on `today`: the all-time board always; a daily
    /// board until [`DAILY_RETENTION_DAYS`] days after its day, a weekly one until
    /// [`WEEKLY_RETENTION_WEEKS`] weeks after its last day; never a board that has not started.
    pub fn is_retained_on(self, today: Date) -> bool {
        let Some(start) = self.start else {
            return true;
        };
        if start > today {
            return false;
        }
        let (length, kept) = match self.period {
            Period::AllTime => return true,
            Period::Daily => (Duration::days(1), Duration::days(DAILY_RETENTION_DAYS)),
            Period::Weekly => (Duration::weeks(1), Duration::weeks(WEEKLY_RETENTION_WEEKS)),
        };
        let last_day = start + length - Duration::days(1);
        today - last_day <= kept
    }

    /// The first instant the board is no longer retained (midnight UTC after its last retained
    /// day), when its entries may be dropped; `None` for the all-time board, which is kept.
    pub fn expires_at(self) -> Option<OffsetDateTime> {
        let start = self.start?;
        let (length, kept) = match self.period {
            Period::AllTime => return None,
            Period::Daily => (Duration::days(1), Duration::days(DAILY_RETENTION_DAYS)),
            Period::Weekly => (Duration::weeks(1), Duration::weeks(WEEKLY_RETENTION_WEEKS)),
        };
        let first_gone_day = start + length + kept;
        Some(first_gone_day.midnight().assume_utc())
    }

    /// The first day of the board, `None` for the all-time board (`periodStart` in the API).
    pub fn start_text(self) -> Option<String> {
        self.start.map(iso_date)
    }
}

fn iso_date(date: Date) -> String {
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

/// Parses the `date` parameter: a UTC calendar date `YYYY-MM-DD`.
pub fn parse_date(raw: &str) -> Result<Date, String> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let fail = || "must be a date as YYYY-MM-DD".to_owned();
    if raw.len() != 10 {
        return Err(fail());
    }
    Date::parse(raw, format).map_err(|_| fail())
}

#[cfg(test)]
mod tests {
    use time::macros::{date, datetime};

    use super::*;

    #[test]
    fn a_submission_counts_in_its_receipt_days_and_weeks_boards() {
        let boards = Board::containing(datetime!(2026-12-06 23:59:59.999 UTC));
        assert_eq!(boards[0].key(), "all");
        assert_eq!(boards[1].key(), "d2026-12-06");
        assert_eq!(
            boards[2].key(),
            "w2026-11-30",
            "Sunday belongs to the week from Monday"
        );
        let next = Board::containing(datetime!(2026-12-07 00:00 UTC));
        assert_eq!(
            next[2].key(),
            "w2026-12-07",
            "Monday 00:00 UTC starts a new week"
        );
    }

    #[test]
    fn the_receipt_time_is_taken_in_utc() {
        // 01:30 on Tuesday in UTC+3 is 22:30 on Monday in UTC.
        let boards = Board::containing(datetime!(2026-12-08 01:30 +3));
        assert_eq!(boards[1].key(), "d2026-12-07");
    }

    #[test]
    fn weeks_cross_years_as_iso_weeks_do() {
        // 2027-01-01 is a Friday: its ISO week (2026-W53) started on Monday 2026-12-28.
        assert_eq!(
            Period::Weekly.board_of(date!(2027 - 01 - 01)).key(),
            "w2026-12-28"
        );
        assert_eq!(
            date!(2027 - 01 - 01).iso_week(),
            date!(2026 - 12 - 28).iso_week()
        );
        let sunday = Period::Weekly.board_of(date!(2027 - 01 - 03));
        assert_eq!(sunday.start.unwrap().weekday(), time::Weekday::Monday);
    }

    #[test]
    fn past_boards_are_kept_for_the_documented_retention() {
        let today = date!(2026 - 12 - 02);
        let day = |d: Date| Period::Daily.board_of(d);
        assert!(day(today).is_retained_on(today));
        assert!(day(today - Duration::days(90)).is_retained_on(today));
        assert!(!day(today - Duration::days(91)).is_retained_on(today));
        assert!(!day(today + Duration::days(1)).is_retained_on(today));
        let week = Period::Weekly.board_of(today - Duration::weeks(52));
        assert!(week.is_retained_on(today));
        assert!(
            !Period::Weekly
                .board_of(today - Duration::weeks(53))
                .is_retained_on(today)
        );
        assert!(Period::AllTime.board_of(today).is_retained_on(today));
    }

    #[test]
    fn a_board_expires_the_midnight_after_its_last_retained_day() {
        let day = Period::Daily.board_of(date!(2026 - 12 - 02));
        let expires = day.expires_at().unwrap();
        let last_kept = (expires - Duration::nanoseconds(1)).date();
        assert!(day.is_retained_on(last_kept));
        assert!(!day.is_retained_on(expires.date()));
        let week = Period::Weekly.board_of(date!(2026 - 12 - 02));
        let expires = week.expires_at().unwrap();
        assert!(week.is_retained_on((expires - Duration::nanoseconds(1)).date()));
        assert!(!week.is_retained_on(expires.date()));
        assert_eq!(
            Period::AllTime.board_of(date!(2026 - 12 - 02)).expires_at(),
            None
        );
    }

    #[test]
    fn the_query_parameters_parse_strictly() {
        assert_eq!(Period::parse("weekly"), Ok(Period::Weekly));
        assert!(Period::parse("Weekly").is_err());
        assert!(Period::parse("monthly").is_err());
        assert_eq!(parse_date("2026-02-28"), Ok(date!(2026 - 02 - 28)));
        for bad in [
            "2026-02-30",
            "2026-2-28",
            "20260228",
            "2026-02-28T00:00:00Z",
            "",
        ] {
            assert!(parse_date(bad).is_err(), "{bad}");
        }
    }
}
