//! Player leaderboards: one entry per player and board, ranked; what a stored change does to the
//! boards; the reads a client may make. Pure: the rank index (`ports::RankIndex`) keeps the
//! entries, this module says what they are and how they order.
//!
//! Every hero has an all-time board, a daily board per UTC day and a weekly board per ISO week
//! ([`crate::period`]). A player's entry on a board is their best accepted score among the
//! submissions *received* in the board's period. Entries order by score (higher first), then by
//! receipt time (earlier first: who reached the score first), then by user id (byte order of its
//! UTF-8 form). A rank is the 1-based position in that order, so no two entries share one.
//!
//! The order is carried by a [`RankKey`]: a string whose byte order is the board order, so that an
//! index ordering members lexicographically (a Redis sorted set with one score for every member,
//! a `BTreeMap`) ranks and pages without knowing anything about scores.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use time::{Date, OffsetDateTime};

use crate::ids::{SubmissionId, UserId};
use crate::limits::{
    LEADERBOARD_AROUND_DEFAULT, LEADERBOARD_AROUND_MAX, LEADERBOARD_DEFAULT_ENTRIES,
    LEADERBOARD_MAX_ENTRIES, SCORE_MAX,
};
use crate::period::{Board, Period, parse_date};
use crate::record::{Outcome, SubmissionRecord};
use crate::submission::{FieldError, HeroId, Score};

/// The path parameter naming the hero.
pub const HERO_ID_PARAMETER: &str = "heroId";
/// The path parameter naming the player.
pub const USER_ID_PARAMETER: &str = "userId";
/// `userId` standing for the caller.
pub const ME: &str = "me";
pub const PERIOD_PARAMETER: &str = "period";
pub const DATE_PARAMETER: &str = "date";
pub const LIMIT_PARAMETER: &str = "limit";
pub const CURSOR_PARAMETER: &str = "cursor";
pub const AROUND_PARAMETER: &str = "around";
/// Most problems one refused read reports.
pub const MAX_REPORTED_ERRORS: usize = 10;

/// One board of one hero.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BoardRef {
    pub hero_id: HeroId,
    pub board: Board,
}

impl BoardRef {
    /// The boards a submission of `hero_id` received at `received_at` counts in.
    pub fn containing(hero_id: &HeroId, received_at: OffsetDateTime) -> [BoardRef; 3] {
        Board::containing(received_at).map(|board| BoardRef {
            hero_id: hero_id.clone(),
            board,
        })
    }

    /// `storm:all`, `storm:d2026-12-01`, `storm:w2026-11-30`: unique per hero and board (hero
    /// ids have no `:`).
    pub fn key(&self) -> String {
        format!("{}:{}", self.hero_id.as_str(), self.board.key())
    }
}

/// A player's entry on a board: their best accepted submission of the period.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub user_id: UserId,
    pub score: Score,
    pub submission_id: SubmissionId,
    pub received_at: OffsetDateTime,
}

/// Hex digits of the inverted score and of the receipt time in a [`RankKey`].
const SCORE_DIGITS: usize = 8;
const TIME_DIGITS: usize = 16;
/// Between the user id and the submission id: sorts below every character a user id may hold
/// (they hold no control characters), so `alice` ranks before `alice2` on a tie.
const USER_END: char = '\0';

impl Entry {
    /// The entry an accepted record offers; `None` for a receipt time outside 1970..2554, which
    /// ingest never stamps.
    pub fn from_record(record: &SubmissionRecord) -> Option<Entry> {
        let entry = Entry {
            user_id: record.user_id.clone(),
            score: record.score,
            submission_id: record.submission_id,
            received_at: record.received_at,
        };
        receipt_nanos(entry.received_at).map(|_| entry)
    }

    /// The entry's place in board order, as a string whose byte order is that order:
    /// `SCORE_MAX - score` (8 hex digits), the receipt time in nanoseconds since 1970 (16 hex
    /// digits), the user id, NUL, the submission id.
    pub fn rank_key(&self) -> RankKey {
        let nanos = receipt_nanos(self.received_at).unwrap_or(u64::MAX);
        RankKey(format!(
            "{:08x}{:016x}{}{USER_END}{}",
            SCORE_MAX - self.score.get(),
            nanos,
            self.user_id.as_str(),
            self.submission_id
        ))
    }

    /// Whether this entry ranks above `other` (a better score, or the same score reached first).
    pub fn ranks_above(&self, other: &Entry) -> bool {
        self.rank_key() < other.rank_key()
    }
}

fn receipt_nanos(at: OffsetDateTime) -> Option<u64> {
    u64::try_from(at.unix_timestamp_nanos()).ok()
}

/// An entry's place in board order (see [`Entry::rank_key`]). Ordered as its bytes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RankKey(String);

impl RankKey {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Reads a key back, as the index returns it; `None` for anything [`Entry::rank_key`] would
    /// not have made.
    pub fn parse(raw: &str) -> Option<RankKey> {
        decode_key(raw).map(|_| RankKey(raw.to_owned()))
    }

    /// The entry this key was made from.
    pub fn entry(&self) -> Entry {
        decode_key(&self.0).expect("a RankKey is only made from an entry or checked by parse")
    }
}

fn decode_key(raw: &str) -> Option<Entry> {
    let fixed = SCORE_DIGITS + TIME_DIGITS;
    if raw.len() <= fixed || !raw.is_char_boundary(fixed) {
        return None;
    }
    let (numbers, rest) = raw.split_at(fixed);
    let lower_hex = |s: &str| s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !lower_hex(numbers) {
        return None;
    }
    let inverted = u32::from_str_radix(&numbers[..SCORE_DIGITS], 16).ok()?;
    let nanos = u64::from_str_radix(&numbers[SCORE_DIGITS..], 16).ok()?;
    let score = Score::new(SCORE_MAX.checked_sub(inverted)?).ok()?;
    let received_at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos)).ok()?;
    let (user, submission) = rest.split_once(USER_END)?;
    let user_id = UserId::parse(user).ok()?;
    let submission_id = SubmissionId::parse(submission)?;
    let entry = Entry {
        user_id,
        score,
        submission_id,
        received_at,
    };
    // Only the canonical form: one key per entry.
    (entry.rank_key().0 == raw).then_some(entry)
}

/// An entry and its rank (1-based) on its board.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RankedEntry {
    pub rank: u64,
    pub entry: Entry,
}

/// One page of a board.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BoardPage {
    pub entries: Vec<RankedEntry>,
    /// Present while more entries follow: where the next page starts (after this key).
    pub next: Option<RankKey>,
}

impl BoardPage {
    /// The page from up to `limit + 1` entries read in rank order: the first `limit`, and where
    /// the next page starts if the extra one shows that more follow.
    pub fn from_read(mut entries: Vec<RankedEntry>, limit: usize) -> Self {
        let next = (entries.len() > limit && limit > 0).then(|| {
            entries.truncate(limit);
            entries[limit - 1].entry.rank_key()
        });
        Self { entries, next }
    }
}

/// A player's place on a board and the entries around it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Standing {
    pub player: RankedEntry,
    /// Up to `around` entries above the player, the player's own, and up to `around` below, in
    /// rank order.
    pub entries: Vec<RankedEntry>,
}

/// What one stored change asks of one board.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BoardChange {
    /// An accepted submission: it becomes the player's entry if it ranks above their current
    /// one (or they have none), unless the player was revoked on this board at or after its
    /// receipt. Offering the same entry again changes nothing.
    Offer {
        board: BoardRef,
        entry: Entry,
        /// When the board may be dropped ([`Board::expires_at`]).
        expires_at: Option<OffsetDateTime>,
    },
    /// An operator revoked the player's scores at `through`: their entry goes if it was received
    /// at or before then, and no submission received at or before then enters again. A later
    /// revocation moves `through` on; an earlier one changes nothing.
    Revoke {
        board: BoardRef,
        user_id: UserId,
        through: OffsetDateTime,
    },
}

impl BoardChange {
    pub fn board(&self) -> &BoardRef {
        match self {
            BoardChange::Offer { board, .. } | BoardChange::Revoke { board, .. } => board,
        }
    }
}

/// A submission item as it changed in the store: before and after (either may be absent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredChange {
    pub old: Option<SubmissionRecord>,
    pub new: Option<SubmissionRecord>,
}

impl StoredChange {
    /// What the change asks of the boards:
    /// - an item now accepted offers its entry to its three boards (a new verdict, a redriven
    ///   `failed` marker, or a repeat of either: offers are idempotent);
    /// - an accepted item rewritten as rejected is an operator's revocation (the only change of
    ///   a verdict),
    ///   which takes the player off those boards as of the rewrite's `decidedAt`;
    /// - anything else (a rejection, a notifier's mark, a removal) changes no board.
    pub fn board_changes(&self) -> Vec<BoardChange> {
        let Some(new) = &self.new else {
            return Vec::new();
        };
        let was_accepted = self
            .old
            .as_ref()
            .is_some_and(|old| old.outcome == Outcome::Accepted);
        match new.outcome {
            Outcome::Accepted => {
                let Some(entry) = Entry::from_record(new) else {
                    return Vec::new();
                };
                BoardRef::containing(&new.hero_id, new.received_at)
                    .into_iter()
                    .map(|board| BoardChange::Offer {
                        expires_at: board.board.expires_at(),
                        board,
                        entry: entry.clone(),
                    })
                    .collect()
            }
            Outcome::Rejected(_) if was_accepted => {
                BoardRef::containing(&new.hero_id, new.received_at)
                    .into_iter()
                    .map(|board| BoardChange::Revoke {
                        board,
                        user_id: new.user_id.clone(),
                        through: new.decided_at,
                    })
                    .collect()
            }
            _ => Vec::new(),
        }
    }
}

/// A cursor as the API hands it out: the board it belongs to and the key after which the next
/// page starts, base64url without padding.
pub fn encode_cursor(board: &BoardRef, after: &RankKey) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}\n{}", board.key(), after.as_str()))
}

fn decode_cursor(board: &BoardRef, raw: &str) -> Result<RankKey, String> {
    let not_ours = || "is not a cursor this API issued; start again without one".to_owned();
    let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| not_ours())?;
    let text = String::from_utf8(bytes).map_err(|_| not_ours())?;
    let (board_key, key) = text.split_once('\n').ok_or_else(not_ours)?;
    let key = RankKey::parse(key).ok_or_else(not_ours)?;
    if board_key != board.key() {
        return Err(
            "belongs to another board (hero, period or date); start again without one".to_owned(),
        );
    }
    Ok(key)
}

/// The player a standing read names: the caller (`me`) or a user id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlayerRef {
    Me,
    User(UserId),
}

impl PlayerRef {
    pub fn resolve(&self, caller: &UserId) -> UserId {
        match self {
            PlayerRef::Me => caller.clone(),
            PlayerRef::User(user) => user.clone(),
        }
    }
}

/// A validated `GET /v1/leaderboards/{heroId}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BoardQuery {
    pub board: BoardRef,
    /// 1 to [`LEADERBOARD_MAX_ENTRIES`].
    pub limit: usize,
    /// Where the page starts: after this key; `None` for the top.
    pub after: Option<RankKey>,
}

/// A validated `GET /v1/leaderboards/{heroId}/players/{userId}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StandingQuery {
    pub board: BoardRef,
    pub player: PlayerRef,
    /// 0 to [`LEADERBOARD_AROUND_MAX`] entries above and below the player.
    pub around: usize,
}

impl BoardQuery {
    /// Validates the hero id from the path and the raw query string (`period`, `date`, `limit`,
    /// `cursor`), `today` being the current UTC date. Every problem is reported, each naming its
    /// parameter; unknown and repeated parameters are refused.
    pub fn parse(hero_id: &str, query: Option<&str>, today: Date) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let hero_id = parse_hero(hero_id, &mut errors);
        let params = Params::parse(
            query,
            &[
                PERIOD_PARAMETER,
                DATE_PARAMETER,
                LIMIT_PARAMETER,
                CURSOR_PARAMETER,
            ],
            &mut errors,
        );
        let board = params.board(today, &mut errors);
        let limit = params
            .number(LIMIT_PARAMETER, 1, LEADERBOARD_MAX_ENTRIES, &mut errors)
            .unwrap_or(LEADERBOARD_DEFAULT_ENTRIES);
        let (Some(hero_id), Some(board)) = (hero_id, board) else {
            return Err(errors);
        };
        let board = BoardRef { hero_id, board };
        let after = params.get(CURSOR_PARAMETER).and_then(|raw| {
            decode_cursor(&board, raw)
                .map_err(|detail| errors.push(FieldError::parameter(CURSOR_PARAMETER, detail)))
                .ok()
        });
        if errors.is_empty() {
            Ok(Self {
                board,
                limit,
                after,
            })
        } else {
            Err(errors)
        }
    }
}

impl StandingQuery {
    /// Validates the hero and user ids from the path and the raw query string (`period`,
    /// `date`, `around`), as [`BoardQuery::parse`] does.
    pub fn parse(
        hero_id: &str,
        user_id: &str,
        query: Option<&str>,
        today: Date,
    ) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let hero_id = parse_hero(hero_id, &mut errors);
        let player = if user_id == ME {
            Some(PlayerRef::Me)
        } else {
            UserId::parse(user_id)
                .map(PlayerRef::User)
                .map_err(|detail| errors.push(FieldError::parameter(USER_ID_PARAMETER, detail)))
                .ok()
        };
        let params = Params::parse(
            query,
            &[PERIOD_PARAMETER, DATE_PARAMETER, AROUND_PARAMETER],
            &mut errors,
        );
        let board = params.board(today, &mut errors);
        let around = params
            .number(AROUND_PARAMETER, 0, LEADERBOARD_AROUND_MAX, &mut errors)
            .unwrap_or(LEADERBOARD_AROUND_DEFAULT);
        match (hero_id, player, board) {
            (Some(hero_id), Some(player), Some(board)) if errors.is_empty() => Ok(Self {
                board: BoardRef { hero_id, board },
                player,
                around,
            }),
            _ => Err(errors),
        }
    }
}

fn parse_hero(raw: &str, errors: &mut Vec<FieldError>) -> Option<HeroId> {
    HeroId::parse(raw)
        .map_err(|detail| errors.push(FieldError::parameter(HERO_ID_PARAMETER, detail)))
        .ok()
}

/// The query string's parameters, each named at most once and only from an allowed list.
struct Params {
    pairs: Vec<(&'static str, String)>,
}

impl Params {
    fn parse(query: Option<&str>, allowed: &[&'static str], errors: &mut Vec<FieldError>) -> Self {
        let mut pairs: Vec<(&'static str, String)> = Vec::new();
        let mut repeated: Vec<&'static str> = Vec::new();
        for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            if errors.len() >= MAX_REPORTED_ERRORS {
                // A long query of bad parameters must not buy a far longer answer.
                break;
            }
            if name.is_empty() && value.is_empty() {
                // `?&limit=5&`: empty pairs say nothing.
                continue;
            }
            match allowed.iter().find(|known| **known == name) {
                None => {
                    let detail = if name.is_empty() {
                        "a parameter has no name".to_owned()
                    } else {
                        format!("unknown parameter; accepted: {}", allowed.join(", "))
                    };
                    errors.push(FieldError::parameter(&printable(&name), detail));
                }
                Some(known) if pairs.iter().any(|(seen, _)| seen == known) => {
                    if !repeated.contains(known) {
                        repeated.push(known);
                        errors.push(FieldError::parameter(known, "given more than once"));
                    }
                }
                Some(known) => pairs.push((known, value.into_owned())),
            }
        }
        Self { pairs }
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(known, _)| *known == name)
            .map(|(_, value)| value.as_str())
    }

    /// `period` (default all-time) and `date` (default today): the board of that period
    /// containing that date, if it is still retained.
    fn board(&self, today: Date, errors: &mut Vec<FieldError>) -> Option<Board> {
        let period = match self.get(PERIOD_PARAMETER).map(Period::parse) {
            None => Some(Period::AllTime),
            Some(Ok(period)) => Some(period),
            Some(Err(detail)) => {
                errors.push(FieldError::parameter(PERIOD_PARAMETER, detail));
                None
            }
        };
        let date = match self.get(DATE_PARAMETER).map(parse_date) {
            None => Some(today),
            Some(Ok(date)) if date > today => {
                errors.push(FieldError::parameter(
                    DATE_PARAMETER,
                    "is after today (UTC); no board of that date has started",
                ));
                None
            }
            Some(Ok(date)) => Some(date),
            Some(Err(detail)) => {
                errors.push(FieldError::parameter(DATE_PARAMETER, detail));
                None
            }
        };
        let board = period?.board_of(date?);
        if !board.is_retained_on(today) {
            errors.push(FieldError::parameter(
                DATE_PARAMETER,
                format!(
                    "names a {} board that is no longer kept: daily boards are kept {} days, weekly boards {} weeks",
                    board.period.as_str(),
                    crate::period::DAILY_RETENTION_DAYS,
                    crate::period::WEEKLY_RETENTION_WEEKS
                ),
            ));
            return None;
        }
        Some(board)
    }

    /// An integer parameter from `min` to `max`; `None` if absent or refused.
    fn number(
        &self,
        name: &str,
        min: usize,
        max: usize,
        errors: &mut Vec<FieldError>,
    ) -> Option<usize> {
        let raw = self.get(name)?;
        let range = || format!("must be an integer from {min} to {max}");
        // Digits only (no sign, no spaces); leading zeros are fine, overlong numbers are not parsed.
        let value = (!raw.is_empty() && raw.len() <= 10 && raw.bytes().all(|b| b.is_ascii_digit()))
            .then(|| raw.parse::<usize>().ok())
            .flatten()
            .filter(|value| (min..=max).contains(value));
        if value.is_none() {
            errors.push(FieldError::parameter(name, range()));
        }
        value
    }
}

/// A parameter name fit to echo in an error: short visible ASCII (or empty), or a placeholder.
fn printable(name: &str) -> String {
    const MAX_SHOWN: usize = 64;
    if name.len() <= MAX_SHOWN && name.bytes().all(|b| b.is_ascii_graphic()) {
        name.to_owned()
    } else {
        "(unprintable or overlong name)".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use time::macros::{date, datetime};

    use super::*;
    use crate::record::example_record;
    use crate::rejection::RejectionReason;
    use crate::submission::FieldLocation;

    const TODAY: Date = date!(2026 - 12 - 02);

    fn entry(user: &str, score: u32, received_at: OffsetDateTime) -> Entry {
        let mut record = example_record(user, "storm", score, Outcome::Accepted);
        record.received_at = received_at;
        Entry::from_record(&record).unwrap()
    }

    fn storm_all() -> BoardRef {
        BoardRef {
            hero_id: HeroId::parse("storm").unwrap(),
            board: Period::AllTime.board_of(TODAY),
        }
    }

    fn named(errors: &[FieldError]) -> Vec<(String, &str)> {
        errors
            .iter()
            .map(|e| match &e.location {
                FieldLocation::Parameter(name) => (name.clone(), e.detail.as_str()),
                other => panic!("not a parameter: {other:?}"),
            })
            .collect()
    }

    #[test]
    fn higher_scores_rank_first_then_the_earlier_receipt_then_the_user_id() {
        let t = datetime!(2026-12-02 12:00 UTC);
        let later = t + time::Duration::nanoseconds(1);
        let mut entries = [
            entry("carol", 50, t),
            entry("bob", 90, later),
            entry("alice2", 90, t),
            entry("alice", 90, t),
            entry("dave", 1_000_000_000, later),
            entry("erin", 0, t),
        ];
        entries.sort_by_key(Entry::rank_key);
        let order: Vec<&str> = entries.iter().map(|e| e.user_id.as_str()).collect();
        assert_eq!(order, ["dave", "alice", "alice2", "bob", "carol", "erin"]);
        assert!(entries[1].ranks_above(&entries[2]));
        assert!(!entries[2].ranks_above(&entries[1]));
    }

    #[test]
    fn a_rank_key_reads_back_as_its_entry_and_nothing_else_parses() {
        let e = entry(
            "auth0|alice",
            4200,
            datetime!(2026-12-02 12:00:00.123456789 UTC),
        );
        let key = e.rank_key();
        assert_eq!(RankKey::parse(key.as_str()), Some(key.clone()));
        assert_eq!(key.entry(), e);
        let id = e.submission_id;
        for bad in [
            String::new(),
            "zz".to_owned(),
            key.as_str().to_uppercase(),
            key.as_str().replace('\0', "|"),
            format!("{}x", key.as_str()),
            // a score above the maximum: the inverted score would underflow
            format!("ffffffff0000000000000000alice\0{id}"),
            // not the canonical form of the score
            format!("{:08X}0000000000000000alice\0{id}", 10),
        ] {
            assert_eq!(RankKey::parse(&bad), None, "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn rank_key_order_is_board_order(
            a in (0u32..=1_000_000_000, 0i64..4_000_000_000, "[a-z|0-9]{1,12}"),
            b in (0u32..=1_000_000_000, 0i64..4_000_000_000, "[a-z|0-9]{1,12}"),
        ) {
            let at = |s: i64| OffsetDateTime::from_unix_timestamp(s).unwrap();
            let x = entry(&a.2, a.0, at(a.1));
            let y = entry(&b.2, b.0, at(b.1));
            let by_rules = (std::cmp::Reverse(a.0), a.1, a.2.as_bytes())
                .cmp(&(std::cmp::Reverse(b.0), b.1, b.2.as_bytes()));
            if by_rules != std::cmp::Ordering::Equal {
                prop_assert_eq!(x.rank_key().cmp(&y.rank_key()), by_rules);
            }
            prop_assert_eq!(RankKey::parse(x.rank_key().as_str()).map(|k| k.entry()), Some(x));
        }
    }

    fn record(user: &str, outcome: Outcome) -> SubmissionRecord {
        let mut record = example_record(user, "storm", 70, outcome);
        record.received_at = datetime!(2026-12-06 23:00 UTC);
        record
    }

    #[test]
    fn an_accepted_item_offers_its_entry_to_its_three_boards() {
        let accepted = record("alice", Outcome::Accepted);
        let change = StoredChange {
            old: None,
            new: Some(accepted.clone()),
        };
        let changes = change.board_changes();
        let keys: Vec<String> = changes.iter().map(|c| c.board().key()).collect();
        assert_eq!(
            keys,
            ["storm:all", "storm:d2026-12-06", "storm:w2026-11-30"]
        );
        let BoardChange::Offer {
            entry, expires_at, ..
        } = &changes[1]
        else {
            panic!("{changes:?}")
        };
        assert_eq!(entry, &Entry::from_record(&accepted).unwrap());
        assert_eq!(*expires_at, Some(datetime!(2027-03-07 00:00 UTC)));
        // A redriven `failed` marker turned accepted offers the same.
        let redriven = StoredChange {
            old: Some(record(
                "alice",
                Outcome::Failed(crate::record::FailureReason::StoreUnavailable),
            )),
            new: Some(accepted),
        };
        assert_eq!(redriven.board_changes(), changes);
    }

    #[test]
    fn only_an_accepted_item_turned_rejected_revokes_and_as_of_its_rewrite() {
        let accepted = record("alice", Outcome::Accepted);
        let mut revoked = record("alice", Outcome::Rejected(RejectionReason::SuspendedUser));
        revoked.decided_at = datetime!(2026-12-07 08:00 UTC);
        let changes = StoredChange {
            old: Some(accepted),
            new: Some(revoked.clone()),
        }
        .board_changes();
        assert_eq!(changes.len(), 3);
        for change in &changes {
            assert_eq!(
                change,
                &BoardChange::Revoke {
                    board: change.board().clone(),
                    user_id: UserId::parse("alice").unwrap(),
                    through: datetime!(2026-12-07 08:00 UTC),
                }
            );
        }
        // A rejection stored as such, its notifier's mark, and a removal change no board.
        let mut marked = revoked.clone();
        marked.notified_at = Some(datetime!(2026-12-07 09:00 UTC));
        for change in [
            StoredChange {
                old: None,
                new: Some(revoked.clone()),
            },
            StoredChange {
                old: Some(revoked.clone()),
                new: Some(marked),
            },
            StoredChange {
                old: Some(record("alice", Outcome::Accepted)),
                new: None,
            },
        ] {
            assert_eq!(change.board_changes(), Vec::new(), "{change:?}");
        }
    }

    #[test]
    fn a_board_read_defaults_to_the_all_time_top_ten() {
        assert_eq!(
            BoardQuery::parse("storm", None, TODAY),
            Ok(BoardQuery {
                board: storm_all(),
                limit: LEADERBOARD_DEFAULT_ENTRIES,
                after: None,
            })
        );
    }

    #[test]
    fn period_and_date_name_the_board_containing_that_date() {
        let query =
            BoardQuery::parse("storm", Some("period=weekly&date=2026-11-29"), TODAY).unwrap();
        assert_eq!(query.board.key(), "storm:w2026-11-23");
        let query = BoardQuery::parse("storm", Some("period=daily"), TODAY).unwrap();
        assert_eq!(query.board.key(), "storm:d2026-12-02");
    }

    #[test]
    fn a_future_or_expired_date_and_a_bad_period_are_refused_by_name() {
        for (bad, name) in [
            ("period=daily&date=2026-12-03", DATE_PARAMETER),
            ("period=daily&date=2026-09-02", DATE_PARAMETER),
            ("period=weekly&date=2025-11-30", DATE_PARAMETER),
            ("period=monthly", PERIOD_PARAMETER),
            ("date=2026-13-01", DATE_PARAMETER),
        ] {
            let errors = BoardQuery::parse("storm", Some(bad), TODAY).unwrap_err();
            assert_eq!(errors.len(), 1, "{bad}: {errors:?}");
            assert_eq!(named(&errors)[0].0, name, "{bad}");
        }
        assert!(BoardQuery::parse("storm", Some("period=daily&date=2026-09-03"), TODAY).is_ok());
    }

    #[test]
    fn limits_and_around_are_bounded_integers() {
        let over = format!("limit={}", LEADERBOARD_MAX_ENTRIES + 1);
        for bad in [
            "limit=0",
            over.as_str(),
            "limit=-1",
            "limit=1.5",
            "limit=",
            "limit=+5",
        ] {
            let errors = BoardQuery::parse("storm", Some(bad), TODAY).unwrap_err();
            assert_eq!(
                named(&errors),
                [(
                    LIMIT_PARAMETER.to_owned(),
                    "must be an integer from 1 to 100"
                )],
                "{bad}"
            );
        }
        assert_eq!(
            BoardQuery::parse("storm", Some("limit=%33"), TODAY)
                .unwrap()
                .limit,
            3
        );
        let around =
            |q: &str| StandingQuery::parse("storm", "me", Some(q), TODAY).map(|q| q.around);
        assert_eq!(around("around=0"), Ok(0));
        assert_eq!(
            around(&format!("around={LEADERBOARD_AROUND_MAX}")),
            Ok(LEADERBOARD_AROUND_MAX)
        );
        assert!(around(&format!("around={}", LEADERBOARD_AROUND_MAX + 1)).is_err());
        assert_eq!(
            StandingQuery::parse("storm", "me", None, TODAY)
                .unwrap()
                .around,
            LEADERBOARD_AROUND_DEFAULT
        );
    }

    #[test]
    fn unknown_repeated_and_nameless_parameters_are_refused_boundedly() {
        let errors = BoardQuery::parse("storm", Some("limit=5&limit=6&limit=7&page=2&=1"), TODAY)
            .unwrap_err();
        let names: Vec<String> = named(&errors).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["limit", "page", ""]);
        let errors = StandingQuery::parse("storm", "me", Some("limit=5"), TODAY).unwrap_err();
        assert_eq!(
            named(&errors)[0].0,
            "limit",
            "a board parameter is not a standing one"
        );
        let errors = BoardQuery::parse("storm", Some(&"a&".repeat(10_000)), TODAY).unwrap_err();
        assert_eq!(errors.len(), MAX_REPORTED_ERRORS);
        let errors = BoardQuery::parse("storm", Some("%00evil=1"), TODAY).unwrap_err();
        assert_eq!(named(&errors)[0].0, "(unprintable or overlong name)");
        assert_eq!(
            BoardQuery::parse("storm", Some("&&limit=5&"), TODAY)
                .unwrap()
                .limit,
            5
        );
    }

    #[test]
    fn bad_path_parameters_are_reported_with_the_query_problems() {
        let errors = StandingQuery::parse("../etc", "", Some("around=99"), TODAY).unwrap_err();
        let names: Vec<String> = named(&errors).into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [HERO_ID_PARAMETER, USER_ID_PARAMETER, AROUND_PARAMETER]
        );
        let query = StandingQuery::parse("storm", "auth0|bob", None, TODAY).unwrap();
        let caller = UserId::parse("auth0|alice").unwrap();
        assert_eq!(query.player.resolve(&caller).as_str(), "auth0|bob");
        let me = StandingQuery::parse("storm", ME, None, TODAY).unwrap();
        assert_eq!(me.player.resolve(&caller), caller);
    }

    #[test]
    fn a_cursor_reads_back_on_its_own_board_only() {
        let board = storm_all();
        let key = entry("alice", 10, datetime!(2026-12-02 12:00 UTC)).rank_key();
        let cursor = encode_cursor(&board, &key);
        let query = format!("cursor={cursor}");
        assert_eq!(
            BoardQuery::parse("storm", Some(&query), TODAY)
                .unwrap()
                .after,
            Some(key)
        );
        let errors =
            BoardQuery::parse("storm", Some(&format!("{query}&period=daily")), TODAY).unwrap_err();
        assert!(named(&errors)[0].1.contains("another board"), "{errors:?}");
        let errors = BoardQuery::parse("blade", Some(&query), TODAY).unwrap_err();
        assert!(named(&errors)[0].1.contains("another board"), "{errors:?}");
        for forged in ["!!", "bm90IGEgY3Vyc29y", ""] {
            let errors =
                BoardQuery::parse("storm", Some(&format!("cursor={forged}")), TODAY).unwrap_err();
            assert_eq!(named(&errors)[0].0, CURSOR_PARAMETER, "{forged}");
        }
    }
}
