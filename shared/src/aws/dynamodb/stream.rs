//! The submissions table's stream as the rank index's feed: a DynamoDB stream record (as Lambda
//! delivers it) read back as the change it describes. Pure.

use aws_lambda_events::event::dynamodb::EventRecord;

use super::items::{Item, ItemError, item_to_record};
use crate::board::StoredChange;

/// The change a stream record describes: its old and new image, each read as a submission
/// record. A record without an image of a kind (an insert has no old image, a removal no new one)
/// has `None` there. The stream must carry both images (`NEW_AND_OLD_IMAGES`).
pub fn stored_change(record: &EventRecord) -> Result<StoredChange, ItemError> {
    let image = |image: &serde_dynamo::Item| -> Result<_, ItemError> {
        if image.is_empty() {
            return Ok(None);
        }
        let item: Item = image.clone().into();
        item_to_record(&item).map(Some)
    };
    Ok(StoredChange {
        old: image(&record.change.old_image)?,
        new: image(&record.change.new_image)?,
    })
}

#[cfg(test)]
mod tests {
    use aws_lambda_events::event::dynamodb::Event;

    use super::*;
    use crate::record::Outcome;

    /// A stream event as Lambda delivers it, with the images the processor's put and an
    /// operator's revocation write.
    const EVENT: &str = r#"{"Records":[
      {"eventID":"1","eventName":"INSERT","eventVersion":"1.1","eventSource":"aws:dynamodb",
       "awsRegion":"eu-west-1","eventSourceARN":"arn:aws:dynamodb:eu-west-1:123456789012:table/s/stream/2026-12-01T00:00:00.000",
       "dynamodb":{"ApproximateCreationDateTime":1764590400,"Keys":{"userId":{"S":"auth0|alice"},"submissionId":{"S":"019a9f3e-7c41-7d2a-9a0e-5b3c1f2d4e6a"}},
        "NewImage":{"submissionId":{"S":"019a9f3e-7c41-7d2a-9a0e-5b3c1f2d4e6a"},"userId":{"S":"auth0|alice"},
          "heroId":{"S":"storm"},"score":{"N":"4200"},"receivedAt":{"S":"2026-12-01T12:00:00.500000000Z"},
          "correlationId":{"S":"req-1"},"status":{"S":"accepted"},"decidedAt":{"S":"2026-12-01T12:00:01.000000000Z"}},
        "SequenceNumber":"100","SizeBytes":300,"StreamViewType":"NEW_AND_OLD_IMAGES"}},
      {"eventID":"2","eventName":"REMOVE","eventVersion":"1.1","eventSource":"aws:dynamodb","awsRegion":"eu-west-1",
       "dynamodb":{"Keys":{"userId":{"S":"auth0|alice"},"submissionId":{"S":"019a9f3e-7c41-7d2a-9a0e-5b3c1f2d4e6a"}},
        "OldImage":{"submissionId":{"S":"019a9f3e-7c41-7d2a-9a0e-5b3c1f2d4e6a"},"userId":{"S":"auth0|alice"},
          "heroId":{"S":"storm"},"score":{"N":"4200"},"receivedAt":{"S":"2026-12-01T12:00:00.500000000Z"},
          "correlationId":{"S":"req-1"},"status":{"S":"accepted"},"decidedAt":{"S":"2026-12-01T12:00:01.000000000Z"}},
        "SequenceNumber":"200","SizeBytes":300,"StreamViewType":"NEW_AND_OLD_IMAGES"}},
      {"eventID":"3","eventName":"INSERT","eventVersion":"1.1","eventSource":"aws:dynamodb","awsRegion":"eu-west-1",
       "dynamodb":{"Keys":{"submissionId":{"S":"x"}},"NewImage":{"submissionId":{"S":"written-by-hand"}},
        "SequenceNumber":"300","SizeBytes":30,"StreamViewType":"NEW_AND_OLD_IMAGES"}}]}"#;

    #[test]
    fn a_stream_record_reads_back_as_its_old_and_new_submission_records() {
        let event: Event = serde_json::from_str(EVENT).unwrap();
        let insert = stored_change(&event.records[0]).unwrap();
        assert_eq!(insert.old, None);
        let new = insert.new.unwrap();
        assert_eq!(new.outcome, Outcome::Accepted);
        assert_eq!(new.user_id.as_str(), "auth0|alice");
        assert_eq!(new.score.get(), 4200);
        assert_eq!(
            insert_change_count(&event),
            3,
            "an accepted insert offers to three boards"
        );

        let removal = stored_change(&event.records[1]).unwrap();
        assert!(removal.old.is_some() && removal.new.is_none());
        assert!(removal.board_changes().is_empty());

        let error = stored_change(&event.records[2]).unwrap_err();
        assert!(error.to_string().contains("submissionId"), "{error}");
    }

    fn insert_change_count(event: &Event) -> usize {
        stored_change(&event.records[0])
            .unwrap()
            .board_changes()
            .len()
    }
}
