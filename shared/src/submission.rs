//! A score submission: its validated domain type and the strict parsing of client JSON into it.
//!
//! Parsing never stops at the first problem: every bad field is reported with a JSON pointer.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::limits::{
    ACHIEVED_AT_EARLIEST, ACHIEVED_AT_EARLIEST_TEXT, ACHIEVED_AT_MAX_FUTURE, CLIENT_REF_MAX_CHARS,
    HERO_ID_MAX_CHARS, IDEMPOTENCY_KEY_MAX_CHARS, MAX_BATCH_SUBMISSIONS, SCORE_MAX, SCORE_MIN,
};

/// `heroId`: 1 to 64 characters of `[A-Za-z0-9_-]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HeroId(String);

impl HeroId {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty() || raw.len() > HERO_ID_MAX_CHARS {
            return Err(format!("must be 1 to {HERO_ID_MAX_CHARS} characters long"));
        }
        if !raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err("may only contain A-Z, a-z, 0-9, '_' and '-'".to_owned());
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for HeroId {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<HeroId> for String {
    fn from(value: HeroId) -> Self {
        value.0
    }
}

/// `score`: an integer in `0..=1_000_000_000`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Score(u32);

impl Score {
    pub fn new(value: u32) -> Result<Self, String> {
        if (SCORE_MIN..=SCORE_MAX).contains(&value) {
            Ok(Self(value))
        } else {
            Err(score_range_message())
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

fn score_range_message() -> String {
    format!("must be an integer from {SCORE_MIN} to {SCORE_MAX}")
}

impl TryFrom<u32> for Score {
    type Error = String;
    fn try_from(value: u32) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<Score> for u32 {
    fn from(value: Score) -> Self {
        value.0
    }
}

/// `clientRef`: 1 to 64 visible ASCII characters (no spaces or control characters).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ClientRef(String);

impl ClientRef {
    pub fn parse(raw: &str) -> Result<Self, String> {
        check_visible_ascii(raw, CLIENT_REF_MAX_CHARS).map(|()| Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ClientRef {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<ClientRef> for String {
    fn from(value: ClientRef) -> Self {
        value.0
    }
}

fn check_visible_ascii(raw: &str, max_chars: usize) -> Result<(), String> {
    if raw.is_empty() || raw.len() > max_chars {
        return Err(format!("must be 1 to {max_chars} characters long"));
    }
    if !raw.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(
            "may only contain visible ASCII characters (no spaces or control characters)"
                .to_owned(),
        );
    }
    Ok(())
}

/// Checks an `Idempotency-Key` header value: 1 to 255 visible ASCII characters.
pub fn check_idempotency_key(raw: &str) -> Result<(), String> {
    check_visible_ascii(raw, IDEMPOTENCY_KEY_MAX_CHARS)
}

/// One validated score submission.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScoreSubmission {
    pub hero_id: HeroId,
    pub score: Score,
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub achieved_at: Option<OffsetDateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ref: Option<ClientRef>,
}

/// Where a problem was found: a JSON pointer into the body, or a header name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum FieldLocation {
    /// A JSON pointer into the body.
    Pointer(String),
    /// A request header, by name.
    Header(String),
    /// A path or query parameter, by name.
    Parameter(String),
}

/// One problem with one field, as reported in problem JSON `errors`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldError {
    #[serde(flatten)]
    pub location: FieldLocation,
    pub detail: String,
}

impl FieldError {
    pub fn at(pointer: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            location: FieldLocation::Pointer(pointer.into()),
            detail: detail.into(),
        }
    }

    pub fn header(name: &str, detail: impl Into<String>) -> Self {
        Self {
            location: FieldLocation::Header(name.to_owned()),
            detail: detail.into(),
        }
    }

    pub fn parameter(name: &str, detail: impl Into<String>) -> Self {
        Self {
            location: FieldLocation::Parameter(name.to_owned()),
            detail: detail.into(),
        }
    }
}

/// Why a body could not be turned into submissions.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidInput {
    /// Not JSON at all (syntax error, truncated, too deeply nested, not UTF-8).
    #[error("the body is not valid JSON: {0}")]
    Json(String),
    /// JSON, but one or more fields are wrong.
    #[error("{} field(s) are invalid", .0.len())]
    Fields(Vec<FieldError>),
}

/// The client's object, each field kept raw so that all of them can be checked and reported.
/// Unknown and duplicate keys are refused by serde.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawSubmission {
    hero_id: Option<Value>,
    score: Option<Value>,
    achieved_at: Option<Value>,
    client_ref: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBatch<'a> {
    #[serde(borrow)]
    submissions: Option<Vec<&'a RawValue>>,
}

/// Parses and validates the body of `POST /v1/scores`.
pub fn parse_submission(body: &[u8], now: OffsetDateTime) -> Result<ScoreSubmission, InvalidInput> {
    let text = as_utf8(body)?;
    let mut errors = Vec::new();
    let parsed = parse_raw_submission(text, "", now, &mut errors)?;
    match parsed {
        Some(submission) if errors.is_empty() => Ok(submission),
        _ => Err(InvalidInput::Fields(errors)),
    }
}

/// Parses and validates the body of `POST /v1/scores/batch`: all submissions are valid or none is taken.
pub fn parse_batch(body: &[u8], now: OffsetDateTime) -> Result<Vec<ScoreSubmission>, InvalidInput> {
    let text = as_utf8(body)?;
    let batch: RawBatch<'_> = serde_json::from_str(text).map_err(|e| classify(e, ""))?;
    let Some(items) = batch.submissions else {
        return Err(InvalidInput::Fields(vec![FieldError::at(
            "/submissions",
            "is required",
        )]));
    };
    if items.is_empty() || items.len() > MAX_BATCH_SUBMISSIONS {
        return Err(InvalidInput::Fields(vec![FieldError::at(
            "/submissions",
            format!("must hold 1 to {MAX_BATCH_SUBMISSIONS} submissions"),
        )]));
    }
    let mut errors = Vec::new();
    let mut submissions = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let pointer = format!("/submissions/{index}");
        if let Some(submission) = parse_raw_submission(item.get(), &pointer, now, &mut errors)? {
            submissions.push(submission);
        }
    }
    let mut seen = std::collections::HashMap::new();
    for (index, submission) in submissions.iter().enumerate() {
        if let Some(client_ref) = &submission.client_ref
            && let Some(first) = seen.insert(client_ref.as_str(), index)
        {
            errors.push(FieldError::at(
                format!("/submissions/{index}/clientRef"),
                format!("repeats the clientRef of /submissions/{first}"),
            ));
        }
    }
    if errors.is_empty() {
        Ok(submissions)
    } else {
        Err(InvalidInput::Fields(errors))
    }
}

fn as_utf8(body: &[u8]) -> Result<&str, InvalidInput> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(InvalidInput::Json("the body is empty".to_owned()));
    }
    std::str::from_utf8(body).map_err(|e| InvalidInput::Json(format!("the body is not UTF-8: {e}")))
}

/// Syntax problems make the whole body unusable; data problems (unknown or duplicate keys, wrong
/// top-level type) are reported against the object at `pointer`.
fn classify(error: serde_json::Error, pointer: &str) -> InvalidInput {
    use serde_json::error::Category;
    match error.classify() {
        Category::Data => {
            let message = error.to_string();
            let field_pointer = offending_field(&message)
                .map_or_else(|| pointer.to_owned(), |field| format!("{pointer}/{field}"));
            InvalidInput::Fields(vec![FieldError::at(field_pointer, message)])
        }
        Category::Syntax | Category::Eof | Category::Io => InvalidInput::Json(error.to_string()),
    }
}

/// The key named by serde's "unknown field `x`" and "duplicate field `x`" messages.
fn offending_field(message: &str) -> Option<&str> {
    let rest = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("duplicate field `"))?;
    rest.split_once('`').map(|(field, _)| field)
}

/// Parses one submission object. Field problems go to `errors`; a body that is not JSON ends parsing.
fn parse_raw_submission(
    text: &str,
    pointer: &str,
    now: OffsetDateTime,
    errors: &mut Vec<FieldError>,
) -> Result<Option<ScoreSubmission>, InvalidInput> {
    let raw: RawSubmission = match serde_json::from_str(text) {
        Ok(raw) => raw,
        Err(e) => match classify(e, pointer) {
            InvalidInput::Fields(mut field_errors) => {
                errors.append(&mut field_errors);
                return Ok(None);
            }
            json => return Err(json),
        },
    };
    let before = errors.len();
    let hero_id = required(raw.hero_id, pointer, "heroId", errors)
        .and_then(|v| check(parse_hero_id(&v), pointer, "heroId", errors));
    let score = required(raw.score, pointer, "score", errors)
        .and_then(|v| check(parse_score(&v), pointer, "score", errors));
    let achieved_at = raw
        .achieved_at
        .and_then(|v| check(parse_achieved_at(&v, now), pointer, "achievedAt", errors));
    let client_ref = raw
        .client_ref
        .and_then(|v| check(parse_client_ref(&v), pointer, "clientRef", errors));
    match (hero_id, score) {
        (Some(hero_id), Some(score)) if errors.len() == before => Ok(Some(ScoreSubmission {
            hero_id,
            score,
            achieved_at,
            client_ref,
        })),
        _ => Ok(None),
    }
}

fn required(
    value: Option<Value>,
    pointer: &str,
    field: &str,
    errors: &mut Vec<FieldError>,
) -> Option<Value> {
    if value.is_none() {
        errors.push(FieldError::at(format!("{pointer}/{field}"), "is required"));
    }
    value
}

fn check<T>(
    result: Result<T, String>,
    pointer: &str,
    field: &str,
    errors: &mut Vec<FieldError>,
) -> Option<T> {
    result
        .map_err(|detail| errors.push(FieldError::at(format!("{pointer}/{field}"), detail)))
        .ok()
}

fn parse_hero_id(value: &Value) -> Result<HeroId, String> {
    match value {
        Value::String(s) => HeroId::parse(s),
        _ => Err("must be a string".to_owned()),
    }
}

fn parse_score(value: &Value) -> Result<Score, String> {
    let Value::Number(n) = value else {
        return Err(score_range_message());
    };
    match n.as_u64() {
        Some(v) => u32::try_from(v)
            .map_err(|_| score_range_message())
            .and_then(Score::new),
        None => Err(score_range_message()),
    }
}

fn parse_achieved_at(value: &Value, now: OffsetDateTime) -> Result<OffsetDateTime, String> {
    let Value::String(s) = value else {
        return Err("must be an RFC 3339 date-time string".to_owned());
    };
    let at = OffsetDateTime::parse(s, &Rfc3339)
        .map_err(|_| "must be an RFC 3339 date-time, like 2026-01-31T12:00:00Z".to_owned())?;
    // Stored timestamps are UTC: before the floor, an instant may have no UTC form to store.
    if at < ACHIEVED_AT_EARLIEST {
        return Err(format!("must not be before {ACHIEVED_AT_EARLIEST_TEXT}"));
    }
    if at > now + ACHIEVED_AT_MAX_FUTURE {
        return Err(format!(
            "must not be more than {} seconds in the future",
            ACHIEVED_AT_MAX_FUTURE.as_secs()
        ));
    }
    Ok(at)
}

fn parse_client_ref(value: &Value) -> Result<ClientRef, String> {
    match value {
        Value::String(s) => ClientRef::parse(s),
        _ => Err("must be a string".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-22 12:00:00 UTC);

    fn single(body: &str) -> Result<ScoreSubmission, InvalidInput> {
        parse_submission(body.as_bytes(), NOW)
    }

    fn field_errors(result: Result<impl std::fmt::Debug, InvalidInput>) -> Vec<(String, String)> {
        match result {
            Err(InvalidInput::Fields(errors)) => errors
                .into_iter()
                .map(|e| match e.location {
                    FieldLocation::Pointer(p)
                    | FieldLocation::Header(p)
                    | FieldLocation::Parameter(p) => (p, e.detail),
                })
                .collect(),
            other => panic!("expected field errors, got {other:?}"),
        }
    }

    fn pointers(result: Result<impl std::fmt::Debug, InvalidInput>) -> Vec<String> {
        field_errors(result).into_iter().map(|(p, _)| p).collect()
    }

    #[test]
    fn a_complete_submission_is_accepted() {
        let s = single(
            r#"{"heroId":"storm_01","score":9001,"achievedAt":"2026-11-22T11:59:00Z","clientRef":"run-42"}"#,
        )
        .unwrap();
        assert_eq!(s.hero_id.as_str(), "storm_01");
        assert_eq!(s.score.get(), 9001);
        assert_eq!(s.achieved_at, Some(datetime!(2026-11-22 11:59:00 UTC)));
        assert_eq!(s.client_ref.unwrap().as_str(), "run-42");
    }

    #[test]
    fn optional_fields_may_be_absent_or_null() {
        let s = single(r#"{"heroId":"a","score":0,"achievedAt":null}"#).unwrap();
        assert_eq!(s.achieved_at, None);
        assert_eq!(s.client_ref, None);
    }

    #[test]
    fn every_bad_field_is_reported_at_once() {
        let errors = pointers(single(
            r#"{"heroId":"bad id!","score":-1,"achievedAt":"yesterday","clientRef":""}"#,
        ));
        assert_eq!(errors, ["/heroId", "/score", "/achievedAt", "/clientRef"]);
    }

    #[test]
    fn missing_required_fields_are_named() {
        assert_eq!(pointers(single("{}")), ["/heroId", "/score"]);
    }

    #[test]
    fn hero_id_length_and_alphabet_are_enforced() {
        assert!(
            single(&format!(
                r#"{{"heroId":"{}","score":1}}"#,
                "h".repeat(HERO_ID_MAX_CHARS)
            ))
            .is_ok()
        );
        for bad in [
            format!(r#""{}""#, "h".repeat(HERO_ID_MAX_CHARS + 1)),
            r#""""#.to_owned(),
            r#""../etc/passwd""#.to_owned(),
            r#""a\u0000b""#.to_owned(),
            r#""héros""#.to_owned(),
            "42".to_owned(),
        ] {
            let body = format!(r#"{{"heroId":{bad},"score":1}}"#);
            assert_eq!(pointers(single(&body)), ["/heroId"], "{body}");
        }
    }

    #[test]
    fn score_must_be_an_integer_in_range() {
        assert_eq!(
            single(r#"{"heroId":"a","score":1000000000}"#)
                .unwrap()
                .score
                .get(),
            SCORE_MAX
        );
        for bad in [
            "1000000001",
            "-1",
            "1.5",
            "1e3",
            "18446744073709551616",
            "\"7\"",
            "null",
            "true",
        ] {
            let body = format!(r#"{{"heroId":"a","score":{bad}}}"#);
            let errors = field_errors(single(&body));
            assert_eq!(errors.len(), 1, "{body}");
            assert_eq!(errors[0].0, "/score", "{body}");
        }
    }

    #[test]
    fn achieved_at_may_not_be_before_the_epoch() {
        assert!(single(r#"{"heroId":"a","score":1,"achievedAt":"1970-01-01T00:00:00Z"}"#).is_ok());
        assert!(
            single(r#"{"heroId":"a","score":1,"achievedAt":"1970-01-01T01:00:00+01:00"}"#).is_ok()
        );
        for early in [
            "1969-12-31T23:59:59.999999999Z",
            "1970-01-01T00:59:59+01:00",
            // Year 0000 east of UTC is an instant in year -1: it has no RFC 3339 form in UTC.
            "0000-01-01T00:00:00+01:00",
        ] {
            let body = format!(r#"{{"heroId":"a","score":1,"achievedAt":"{early}"}}"#);
            let errors = field_errors(single(&body));
            assert_eq!(errors.len(), 1, "{early}");
            assert_eq!(errors[0].0, "/achievedAt");
            assert!(
                errors[0].1.contains(ACHIEVED_AT_EARLIEST_TEXT),
                "{errors:?}"
            );
        }
    }

    #[test]
    fn achieved_at_may_be_at_most_five_minutes_ahead() {
        assert!(single(r#"{"heroId":"a","score":1,"achievedAt":"2026-11-22T12:05:00Z"}"#).is_ok());
        assert!(
            single(r#"{"heroId":"a","score":1,"achievedAt":"2026-11-22T13:04:00+01:00"}"#).is_ok()
        );
        let errors = field_errors(single(
            r#"{"heroId":"a","score":1,"achievedAt":"2026-11-22T12:05:01Z"}"#,
        ));
        assert!(errors[0].1.contains("future"), "{errors:?}");
        assert_eq!(
            pointers(single(
                r#"{"heroId":"a","score":1,"achievedAt":"2026-11-22"}"#
            )),
            ["/achievedAt"]
        );
    }

    #[test]
    fn client_ref_is_bounded_visible_ascii() {
        assert!(
            single(&format!(
                r#"{{"heroId":"a","score":1,"clientRef":"{}"}}"#,
                "r".repeat(64)
            ))
            .is_ok()
        );
        for bad in [
            format!(r#""{}""#, "r".repeat(65)),
            r#""a b""#.to_owned(),
            r#""a\tb""#.to_owned(),
        ] {
            let body = format!(r#"{{"heroId":"a","score":1,"clientRef":{bad}}}"#);
            assert_eq!(pointers(single(&body)), ["/clientRef"], "{body}");
        }
    }

    #[test]
    fn unknown_and_duplicate_keys_are_refused() {
        let errors = field_errors(single(r#"{"heroId":"a","score":1,"admin":true}"#));
        assert_eq!(errors[0].0, "/admin");
        assert!(errors[0].1.contains("unknown field `admin`"), "{errors:?}");
        let errors = field_errors(single(r#"{"heroId":"a","score":1,"score":2}"#));
        assert_eq!(errors[0].0, "/score");
        assert!(
            errors[0].1.contains("duplicate field `score`"),
            "{errors:?}"
        );
        let errors = field_errors(parse_batch(
            br#"{"submissions":[{"heroId":"a","score":1,"x":1}]}"#,
            NOW,
        ));
        assert_eq!(errors[0].0, "/submissions/0/x");
    }

    #[test]
    fn bodies_that_are_not_json_objects_are_told_apart_from_bad_fields() {
        assert!(matches!(single(""), Err(InvalidInput::Json(_))));
        assert!(matches!(single("{\"heroId\":"), Err(InvalidInput::Json(_))));
        assert!(matches!(
            parse_submission(b"{\"heroId\":\"\xff\"}", NOW),
            Err(InvalidInput::Json(_))
        ));
        let nested = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(matches!(single(&nested), Err(InvalidInput::Json(_))));
        assert_eq!(
            pointers(single("[1,2]")),
            [""],
            "a non-object is reported against the whole body"
        );
    }

    #[test]
    fn a_batch_is_all_or_nothing_with_indexed_pointers() {
        let ok = parse_batch(
            br#"{"submissions":[{"heroId":"a","score":1},{"heroId":"b","score":2}]}"#,
            NOW,
        )
        .unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[1].hero_id.as_str(), "b");
        let errors = pointers(parse_batch(
            br#"{"submissions":[{"heroId":"a","score":1},{"heroId":"b","score":-2},{"x":1}]}"#,
            NOW,
        ));
        assert_eq!(errors, ["/submissions/1/score", "/submissions/2/x"]);
    }

    #[test]
    fn a_batch_holds_one_to_one_hundred_submissions() {
        assert_eq!(
            pointers(parse_batch(br#"{"submissions":[]}"#, NOW)),
            ["/submissions"]
        );
        assert_eq!(pointers(parse_batch(b"{}", NOW)), ["/submissions"]);
        let item = r#"{"heroId":"a","score":1}"#;
        let full = format!(
            r#"{{"submissions":[{}]}}"#,
            vec![item; MAX_BATCH_SUBMISSIONS].join(",")
        );
        assert_eq!(
            parse_batch(full.as_bytes(), NOW).unwrap().len(),
            MAX_BATCH_SUBMISSIONS
        );
        let over = format!(
            r#"{{"submissions":[{}]}}"#,
            vec![item; MAX_BATCH_SUBMISSIONS + 1].join(",")
        );
        assert_eq!(
            pointers(parse_batch(over.as_bytes(), NOW)),
            ["/submissions"]
        );
    }

    #[test]
    fn a_batch_may_not_repeat_a_client_ref() {
        let errors = field_errors(parse_batch(
            br#"{"submissions":[{"heroId":"a","score":1,"clientRef":"r"},{"heroId":"a","score":2,"clientRef":"r"}]}"#,
            NOW,
        ));
        assert_eq!(errors[0].0, "/submissions/1/clientRef");
        assert!(errors[0].1.contains("/submissions/0"));
    }

    #[test]
    fn queued_submissions_round_trip_and_revalidate() {
        let s = single(r#"{"heroId":"a","score":5,"achievedAt":"2026-11-22T11:00:00Z"}"#).unwrap();
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<ScoreSubmission>(&json).unwrap(), s);
        assert!(serde_json::from_str::<ScoreSubmission>(r#"{"heroId":"a b","score":5}"#).is_err());
        assert!(
            serde_json::from_str::<ScoreSubmission>(r#"{"heroId":"a","score":2000000000}"#)
                .is_err()
        );
    }

    #[test]
    fn idempotency_keys_are_bounded_visible_ascii() {
        assert!(check_idempotency_key("3f2b-retry-1").is_ok());
        assert!(check_idempotency_key("").is_err());
        assert!(check_idempotency_key("has space").is_err());
        assert!(check_idempotency_key(&"k".repeat(IDEMPOTENCY_KEY_MAX_CHARS + 1)).is_err());
    }
}
