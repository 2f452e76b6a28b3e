//! What a queue message asks for: our own job message, or an S3
//! `ObjectCreated` event notification for an upload under `originals/`.

use crate::store::{media_id_of_original, original_key};
use serde::{Deserialize, Serialize};

/// The job message body: process the original at `key` for `media_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobMessage {
    pub media_id: String,
    pub key: String,
}

impl JobMessage {
    /// The message for a media whose original follows the layout.
    pub fn for_media(media_id: &str) -> Self {
        Self {
            media_id: media_id.to_owned(),
            key: original_key(media_id),
        }
    }

    pub fn to_body(&self) -> String {
        // A struct of two strings always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// What a message body turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Jobs to run (an S3 event may carry several records).
    Jobs(Vec<JobMessage>),
    /// Nothing to do (an `s3:TestEvent`, or events about other keys): delete it.
    Ignore(String),
}

/// A body that is neither a job message nor an S3 event. Final: such a
/// message can never succeed and is deleted.
#[derive(Debug, thiserror::Error)]
#[error("unreadable job message: {0}")]
pub struct BadMessage(pub String);

/// Parses a message body: `{"media_id", "key"}`, an S3 event notification
/// (`Records[].s3.object.key`, URL-encoded with `+` for space), or either of
/// those wrapped in an SNS notification (`"Message"` holding the JSON text).
pub fn parse_message(body: &str) -> Result<Parsed, BadMessage> {
    let value: serde_json::Value =
        serde_json::from_str(body).map_err(|e| BadMessage(e.to_string()))?;
    parse_value(&value, true)
}

fn parse_value(value: &serde_json::Value, unwrap_sns: bool) -> Result<Parsed, BadMessage> {
    if value.get("media_id").is_some() {
        let job: JobMessage =
            serde_json::from_value(value.clone()).map_err(|e| BadMessage(e.to_string()))?;
        return Ok(Parsed::Jobs(vec![job]));
    }
    if value.get("Event").and_then(|e| e.as_str()) == Some("s3:TestEvent") {
        return Ok(Parsed::Ignore("s3:TestEvent".to_owned()));
    }
    if let Some(records) = value.get("Records").and_then(|r| r.as_array()) {
        return Ok(from_records(records));
    }
    if unwrap_sns {
        if let Some(inner) = value.get("Message").and_then(|m| m.as_str()) {
            let inner: serde_json::Value =
                serde_json::from_str(inner).map_err(|e| BadMessage(format!("SNS Message: {e}")))?;
            return parse_value(&inner, false);
        }
    }
    Err(BadMessage(
        "neither a job message nor an S3 event".to_owned(),
    ))
}

fn from_records(records: &[serde_json::Value]) -> Parsed {
    let jobs: Vec<JobMessage> = records
        .iter()
        .filter(|r| {
            r.get("eventName")
                .and_then(|n| n.as_str())
                .is_some_and(|n| {
                    n.starts_with("ObjectCreated:") || n.starts_with("s3:ObjectCreated:")
                })
        })
        .filter_map(|r| r.pointer("/s3/object/key").and_then(|k| k.as_str()))
        .filter_map(|raw| {
            let key = decode_s3_key(raw)?;
            let media_id = media_id_of_original(&key)?.to_owned();
            Some(JobMessage { media_id, key })
        })
        .collect();
    if jobs.is_empty() {
        Parsed::Ignore("no ObjectCreated record for an original".to_owned())
    } else {
        Parsed::Jobs(jobs)
    }
}

/// S3 event keys are URL-encoded with `+` for a space.
pub fn decode_s3_key(raw: &str) -> Option<String> {
    let spaced = raw.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .ok()
        .map(|k| k.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0192a3b4-c5d6-7e8f-9a0b-1c2d3e4f5a6b";

    fn s3_event(key: &str, event: &str) -> String {
        format!(
            r#"{{"Records":[{{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-east-1",
            "eventTime":"2025-01-01T00:00:00.000Z","eventName":"{event}",
            "userIdentity":{{"principalId":"AWS:EXAMPLE"}},
            "requestParameters":{{"sourceIPAddress":"127.0.0.1"}},
            "responseElements":{{"x-amz-request-id":"C3D13FE58DE4C810","x-amz-id-2":"FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD"}},
            "s3":{{"s3SchemaVersion":"1.0","configurationId":"originals",
                "bucket":{{"name":"sori-media","ownerIdentity":{{"principalId":"EXAMPLE"}},"arn":"arn:aws:s3:::sori-media"}},
                "object":{{"key":"{key}","size":28688,"eTag":"d41d8cd98f00b204e9800998ecf8427e","sequencer":"0055AED6DCD90281E5"}}}}}}]}}"#
        )
    }

    #[test]
    fn own_messages_round_trip() {
        let job = JobMessage::for_media(ID);
        assert_eq!(
            parse_message(&job.to_body()).unwrap(),
            Parsed::Jobs(vec![job])
        );
    }

    #[test]
    fn s3_object_created_names_the_media() {
        let parsed =
            parse_message(&s3_event(&format!("originals/{ID}"), "ObjectCreated:Put")).unwrap();
        assert_eq!(parsed, Parsed::Jobs(vec![JobMessage::for_media(ID)]));
    }

    #[test]
    fn s3_keys_are_url_decoded_with_plus_as_space() {
        assert_eq!(
            decode_s3_key("originals/a+b%2Bc%20d").as_deref(),
            Some("originals/a b+c d")
        );
        let parsed = parse_message(&s3_event(
            "originals/a+b%2Bc",
            "ObjectCreated:CompleteMultipartUpload",
        ))
        .unwrap();
        assert_eq!(
            parsed,
            Parsed::Jobs(vec![JobMessage {
                media_id: "a b+c".into(),
                key: "originals/a b+c".into()
            }])
        );
    }

    #[test]
    fn test_events_other_keys_and_deletes_are_ignored() {
        let test_event = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2025-01-01T00:00:00.000Z",
            "Bucket":"sori-media","RequestId":"5582815E1AEA5ADF","HostId":"8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE"}"#;
        assert!(matches!(
            parse_message(test_event).unwrap(),
            Parsed::Ignore(_)
        ));
        let output = s3_event(&format!("media/{ID}/v1/audio.opus"), "ObjectCreated:Put");
        assert!(matches!(parse_message(&output).unwrap(), Parsed::Ignore(_)));
        let removed = s3_event(&format!("originals/{ID}"), "ObjectRemoved:Delete");
        assert!(matches!(
            parse_message(&removed).unwrap(),
            Parsed::Ignore(_)
        ));
    }

    #[test]
    fn sns_wrapped_events_are_unwrapped() {
        let inner = s3_event(&format!("originals/{ID}"), "ObjectCreated:Put");
        let sns = serde_json::json!({"Type": "Notification", "Message": inner}).to_string();
        assert_eq!(
            parse_message(&sns).unwrap(),
            Parsed::Jobs(vec![JobMessage::for_media(ID)])
        );
    }

    #[test]
    fn garbage_is_a_bad_message() {
        assert!(parse_message("not json").is_err());
        assert!(parse_message(r#"{"hello": 1}"#).is_err());
        assert!(parse_message(r#"{"media_id": 5}"#).is_err());
    }
}
