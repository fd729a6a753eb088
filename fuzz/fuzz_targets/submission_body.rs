//! Coverage-guided fuzzing of body validation: any bytes, as a single submission and as a batch.
//! Nothing may panic, and whatever validation accepts must survive a round trip: serialized
//! again, it validates to the same value.

#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::submission::{ScoreSubmission, parse_batch, parse_submission};
use time::OffsetDateTime;

fn round_trips(submission: &ScoreSubmission, now: OffsetDateTime) {
    let json = serde_json::to_vec(submission).expect("a valid submission serializes");
    let again = parse_submission(&json, now).expect("a valid submission validates again");
    assert_eq!(&again, submission);
}

fuzz_target!(|body: &[u8]| {
    let now = OffsetDateTime::now_utc();
    if let Ok(submission) = parse_submission(body, now) {
        round_trips(&submission, now);
    }
    if let Ok(batch) = parse_batch(body, now) {
        assert!(!batch.is_empty() && batch.len() <= shared::limits::MAX_BATCH_SUBMISSIONS);
        for submission in &batch {
            round_trips(submission, now);
        }
    }
});
