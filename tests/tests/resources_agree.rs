//! One source of truth for resources: what `--provision` creates for the local stack and the
//! tests (shared/src/aws/provision.rs) must be what the CDK template defines. Provisions into
//! moto, reads the result back through the AWS APIs and compares it with the synthesized
//! template: table keys, attribute types, indexes and their projections, billing mode, TTL;
//! queue retention, redrive and, given the template's visibility, the same visibility.
//!
//! Needs moto and the prepared template: `make test` provides both.

use std::collections::BTreeSet;

use std::time::Duration;

use pipeline_tests::emulate::template::Template;
use pipeline_tests::emulate::{QueueSettings, prepared_template, queue_settings};
use serde_json::Value;
use shared::aws::provision::{QueueProvisioning, ensure_queue_with_dead_letters, ensure_stack};
use shared::aws::{AwsClients, load_sdk_config};

/// `(attribute, key type)` pairs of a key schema, in order.
type Keys = Vec<(String, String)>;

/// A table's shape in the template's terms, to compare across both sources.
#[derive(Debug, PartialEq, Eq)]
struct TableShape {
    keys: BTreeSet<(String, String)>,
    attributes: BTreeSet<(String, String)>,
    /// `(name, keys, projection type)`.
    indexes: BTreeSet<(String, Keys, String)>,
    billing: String,
    ttl: Option<String>,
    /// The stream's view type, if the table has a stream.
    stream: Option<String>,
}

fn template_table(template: &Template, prefix: &str) -> TableShape {
    let (_, table) = template
        .resources_of_type("AWS::DynamoDB::Table")
        .into_iter()
        .find(|(id, _)| id.starts_with(prefix))
        .unwrap_or_else(|| panic!("the template has no {prefix} table"));
    let p = &table["Properties"];
    let pairs = |list: &Value, a: &str, b: &str| -> Vec<(String, String)> {
        list.as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                (
                    e[a].as_str().unwrap().to_owned(),
                    e[b].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    TableShape {
        keys: pairs(&p["KeySchema"], "AttributeName", "KeyType")
            .into_iter()
            .collect(),
        attributes: pairs(&p["AttributeDefinitions"], "AttributeName", "AttributeType")
            .into_iter()
            .collect(),
        indexes: p["GlobalSecondaryIndexes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|i| {
                (
                    i["IndexName"].as_str().unwrap().to_owned(),
                    pairs(&i["KeySchema"], "AttributeName", "KeyType"),
                    i["Projection"]["ProjectionType"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                )
            })
            .collect(),
        billing: p["BillingMode"]
            .as_str()
            .unwrap_or("PROVISIONED")
            .to_owned(),
        ttl: (p["TimeToLiveSpecification"]["Enabled"] == true).then(|| {
            p["TimeToLiveSpecification"]["AttributeName"]
                .as_str()
                .unwrap()
                .to_owned()
        }),
        stream: p["StreamSpecification"]["StreamViewType"]
            .as_str()
            .map(str::to_owned),
    }
}

async fn provisioned_table(clients: &AwsClients, name: &str) -> TableShape {
    let table = clients
        .dynamodb
        .describe_table()
        .table_name(name)
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    let ttl = clients
        .dynamodb
        .describe_time_to_live()
        .table_name(name)
        .send()
        .await
        .unwrap()
        .time_to_live_description
        .filter(|d| {
            d.time_to_live_status()
                .is_some_and(|s| s.as_str() == "ENABLED")
        })
        .and_then(|d| d.attribute_name().map(str::to_owned));
    let keys = |schema: &[aws_sdk_dynamodb::types::KeySchemaElement]| -> Vec<(String, String)> {
        schema
            .iter()
            .map(|k| {
                (
                    k.attribute_name().to_owned(),
                    k.key_type().as_str().to_owned(),
                )
            })
            .collect()
    };
    TableShape {
        keys: keys(table.key_schema()).into_iter().collect(),
        attributes: table
            .attribute_definitions()
            .iter()
            .map(|a| {
                (
                    a.attribute_name().to_owned(),
                    a.attribute_type().as_str().to_owned(),
                )
            })
            .collect(),
        indexes: table
            .global_secondary_indexes()
            .iter()
            .map(|i| {
                (
                    i.index_name().unwrap().to_owned(),
                    keys(i.key_schema()),
                    i.projection()
                        .and_then(|p| p.projection_type())
                        .map(|t| t.as_str().to_owned())
                        .unwrap_or_default(),
                )
            })
            .collect(),
        billing: table
            .billing_mode_summary()
            .and_then(|b| b.billing_mode())
            .map_or("PROVISIONED".to_owned(), |b| b.as_str().to_owned()),
        ttl,
        stream: table
            .stream_specification()
            .filter(|s| s.stream_enabled())
            .and_then(|s| s.stream_view_type())
            .map(|v| v.as_str().to_owned()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_provisioning_creates_what_the_template_defines() {
    assert!(
        std::env::var("MOTO_ENDPOINT").is_ok_and(|e| !e.is_empty()),
        "MOTO_ENDPOINT is not set: run through `scripts/moto.sh run -- cargo test` (make test does)"
    );
    let template = prepared_template().unwrap_or_else(|e| panic!("{e}"));
    let clients = AwsClients::new(&load_sdk_config().await);
    let prefix = format!("agree-{}", &uuid::Uuid::now_v7().simple().to_string()[20..]);
    let stack = ensure_stack(&clients, &prefix, QueueProvisioning::default())
        .await
        .unwrap();

    for (logical, name) in [
        ("SubmissionsByPlayerTable", &stack.submissions_table),
        ("UsersTable", &stack.users_table),
        ("QuotasTable", &stack.quotas_table),
    ] {
        assert_eq!(
            provisioned_table(&clients, name).await,
            template_table(&template, logical),
            "{logical}: --provision and the CDK stack disagree"
        );
    }

    for logical in ["SubmissionsQueue", "RejectionsQueue"] {
        let (_, queue) = template
            .resources_of_type("AWS::SQS::Queue")
            .into_iter()
            .find(|(id, _)| id.starts_with(logical))
            .unwrap_or_else(|| panic!("the template has no {logical}"));
        let p = &queue["Properties"];
        let visibility = p["VisibilityTimeout"].as_u64().unwrap();
        let max_receive = p["RedrivePolicy"]["maxReceiveCount"].as_u64().unwrap();
        let dead_letter_id = pipeline_tests::emulate::template::referenced_id(
            &p["RedrivePolicy"]["deadLetterTargetArn"],
        )
        .unwrap();
        let dead_letter_retention =
            template.resource(&dead_letter_id).unwrap()["Properties"]["MessageRetentionPeriod"]
                .as_u64()
                .unwrap();
        // The local stack chooses its visibility (tests redeliver in a second); given the
        // template's, it must create the same queue.
        let provisioned = ensure_queue_with_dead_letters(
            &clients.sqs,
            &format!("{prefix}-{logical}"),
            QueueProvisioning {
                visibility_timeout_seconds: visibility as u32,
                max_receive_count: max_receive as u32,
            },
        )
        .await
        .unwrap();
        let queue = queue_settings(&clients.sqs, &provisioned.queue_url)
            .await
            .unwrap();
        assert_eq!(
            queue,
            QueueSettings {
                visibility_timeout: Duration::from_secs(visibility),
                retention: Duration::from_secs(p["MessageRetentionPeriod"].as_u64().unwrap()),
                max_receive_count: Some(max_receive as u32),
            },
            "{logical}: visibility, retention and redrive"
        );
        let dead_letters = queue_settings(&clients.sqs, &provisioned.dead_letter_queue_url)
            .await
            .unwrap();
        assert_eq!(
            dead_letters.retention,
            Duration::from_secs(dead_letter_retention),
            "{logical}'s dead-letter queue retention"
        );
    }
}
