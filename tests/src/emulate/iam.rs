//! Least privilege, checked from both sides: the AWS calls a caller made (read from moto's
//! request recorder, attributed by the access key id each caller signs with) against the
//! statements of its IAM policies in the synthesized template.
//!
//! A call is named as IAM authorizes it, not as the API names it: SQS and SNS batch APIs are
//! authorized as their single-message actions (`SendMessageBatch` needs `sqs:SendMessage`,
//! `PublishBatch` needs `sns:Publish`), and a DynamoDB batch or query is authorized per table
//! or index it touches. moto's own IAM enforcement cannot judge these roles, so this evaluator
//! handles what the stack uses: `Allow` and `Deny` statements with `Action` and `Resource`
//! (wildcards included); a statement with a `Condition` is reported, never silently trusted.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::Value;

use super::template::{Template, referenced_id};
use super::{ACCOUNT_ID, moto::REGION};

/// One authorized action on one resource, as a recorded request needed it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Call {
    /// `service:Action`, in IAM's naming.
    pub action: String,
    pub resource: String,
}

/// One statement of a policy, resolved to deployed ARNs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement {
    /// Where it comes from: `<policy logical id>#<index>`.
    pub id: String,
    pub allow: bool,
    pub actions: Vec<String>,
    pub resources: Vec<String>,
    pub has_condition: bool,
}

/// A recorded request and the access key id that signed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    pub access_key_id: String,
    pub calls: Vec<Call>,
}

/// `pattern` with IAM's `*` and `?` wildcards matches `text` (actions case-insensitively).
pub fn wildcard_match(pattern: &str, text: &str, ignore_case: bool) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = if ignore_case {
        (
            pattern.to_ascii_lowercase().chars().collect(),
            text.to_ascii_lowercase().chars().collect(),
        )
    } else {
        (pattern.chars().collect(), text.chars().collect())
    };
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

impl Statement {
    pub fn grants(&self, call: &Call) -> bool {
        self.actions
            .iter()
            .any(|a| wildcard_match(a, &call.action, true))
            && self
                .resources
                .iter()
                .any(|r| wildcard_match(r, &call.resource, false))
    }
}

/// Whether `statements` allow `call`: some Allow grants it and no Deny does.
pub fn allowed(statements: &[Statement], call: &Call) -> bool {
    let granted = |allow: bool| {
        statements
            .iter()
            .any(|s| s.allow == allow && s.grants(call))
    };
    granted(true) && !granted(false)
}

fn as_list(value: &Value) -> Vec<&Value> {
    match value {
        Value::Array(items) => items.iter().collect(),
        Value::Null => Vec::new(),
        other => vec![other],
    }
}

/// The deployed ARN (or value) a template expression stands for.
pub fn resolve(
    template: &Template,
    physical_ids: &BTreeMap<String, String>,
    value: &Value,
) -> Option<String> {
    match value {
        Value::String(text) => Some(
            text.replace("${AWS::AccountId}", ACCOUNT_ID)
                .replace("${AWS::Region}", REGION)
                .replace("${AWS::Partition}", "aws"),
        ),
        Value::Object(object) => {
            if let Some(Value::String(id)) = object.get("Ref") {
                return match id.as_str() {
                    "AWS::AccountId" => Some(ACCOUNT_ID.to_owned()),
                    "AWS::Region" => Some(REGION.to_owned()),
                    "AWS::Partition" => Some("aws".to_owned()),
                    _ => physical_ids.get(id).cloned(),
                };
            }
            if let Some(join) = object.get("Fn::Join") {
                let separator = join[0].as_str()?;
                let parts = join[1]
                    .as_array()?
                    .iter()
                    .map(|p| resolve(template, physical_ids, p))
                    .collect::<Option<Vec<_>>>()?;
                return Some(parts.join(separator));
            }
            if let (Some(id), Some(attribute)) = (
                value["Fn::GetAtt"][0].as_str(),
                value["Fn::GetAtt"][1].as_str(),
            ) && attribute != "Arn"
            {
                // What the deployment read back (a table's `StreamArn`), or a security group's
                // id, which is its physical id.
                if let Some(known) = physical_ids.get(&format!("{id}.{attribute}")) {
                    return Some(known.clone());
                }
                let kind = template.resource(id)?["Type"].as_str()?;
                return match (kind, attribute) {
                    ("AWS::EC2::SecurityGroup", "GroupId") => physical_ids.get(id).cloned(),
                    _ => None,
                };
            }
            if object.contains_key("Fn::GetAtt") && value["Fn::GetAtt"][1] == "Arn" {
                let id = referenced_id(value)?;
                let physical = physical_ids.get(&id)?;
                let kind = template.resource(&id)?["Type"].as_str()?;
                return Some(match kind {
                    "AWS::DynamoDB::Table" => {
                        format!("arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{physical}")
                    }
                    "AWS::SQS::Queue" => format!(
                        "arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{}",
                        physical.rsplit('/').next().unwrap_or(physical)
                    ),
                    "AWS::Logs::LogGroup" => {
                        format!("arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:{physical}:*")
                    }
                    "AWS::KMS::Key" => format!("arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/{physical}"),
                    _ if physical.starts_with("arn:") => physical.clone(),
                    _ => return None,
                });
            }
            None
        }
        _ => None,
    }
}

/// Every statement of the policy resources whose `Roles` include `role_logical_id`, plus the
/// role's inline policies.
pub fn role_statements(
    template: &Template,
    physical_ids: &BTreeMap<String, String>,
    role_logical_id: &str,
) -> Vec<Statement> {
    let mut documents: Vec<(String, &Value)> = Vec::new();
    if let Some(role) = template.resource(role_logical_id) {
        for (i, policy) in as_list(&role["Properties"]["Policies"])
            .into_iter()
            .enumerate()
        {
            documents.push((
                format!("{role_logical_id}.Policies[{i}]"),
                &policy["PolicyDocument"],
            ));
        }
    }
    for kind in ["AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"] {
        for (id, policy) in template.resources_of_type(kind) {
            let attached = as_list(&policy["Properties"]["Roles"])
                .iter()
                .any(|r| referenced_id(r).as_deref() == Some(role_logical_id));
            if attached {
                documents.push((id.to_owned(), &policy["Properties"]["PolicyDocument"]));
            }
        }
    }
    documents
        .into_iter()
        .flat_map(|(id, document)| statements_of(template, physical_ids, &id, document))
        .collect()
}

/// The statements of one policy resource (for a managed policy attached to people, not roles).
pub fn policy_statements(
    template: &Template,
    physical_ids: &BTreeMap<String, String>,
    policy_logical_id: &str,
) -> Vec<Statement> {
    template
        .resource(policy_logical_id)
        .map(|p| {
            statements_of(
                template,
                physical_ids,
                policy_logical_id,
                &p["Properties"]["PolicyDocument"],
            )
        })
        .unwrap_or_default()
}

fn statements_of(
    template: &Template,
    physical_ids: &BTreeMap<String, String>,
    id: &str,
    document: &Value,
) -> Vec<Statement> {
    as_list(&document["Statement"])
        .into_iter()
        .enumerate()
        .map(|(i, statement)| Statement {
            id: format!("{id}#{i}"),
            allow: statement["Effect"] == "Allow",
            actions: as_list(&statement["Action"])
                .into_iter()
                .filter_map(|a| a.as_str().map(str::to_owned))
                .collect(),
            resources: as_list(&statement["Resource"])
                .into_iter()
                .map(|r| {
                    resolve(template, physical_ids, r).unwrap_or_else(|| format!("unresolved:{r}"))
                })
                .collect(),
            has_condition: statement.get("Condition").is_some(),
        })
        .collect()
}

/// The access key id in a SigV4 `Authorization` header.
fn access_key_of(authorization: &str) -> Option<String> {
    let credential = authorization.split("Credential=").nth(1)?;
    Some(credential.split('/').next()?.to_owned())
}

fn header<'e>(entry: &'e Value, name: &str) -> Option<&'e str> {
    entry["headers"]
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.as_str())
}

fn body_of(entry: &Value) -> String {
    let body = entry["body"].as_str().unwrap_or_default();
    if entry["body_encoded"].as_bool() == Some(true) {
        BASE64
            .decode(body)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    } else {
        body.to_owned()
    }
}

fn table_arn(table: &str) -> String {
    format!("arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{table}")
}

fn queue_arn(url: &str) -> String {
    let mut parts = url.trim_end_matches('/').rsplit('/');
    let name = parts.next().unwrap_or_default();
    let account = parts.next().unwrap_or(ACCOUNT_ID);
    format!("arn:aws:sqs:{REGION}:{account}:{name}")
}

/// The IAM calls one recorded request needed; `None` when it is not an AWS API request this
/// evaluator knows (it then fails the check, naming the request).
pub fn decode(entry: &Value) -> Option<Recorded> {
    let access_key_id = access_key_of(header(entry, "authorization")?)?;
    let body = body_of(entry);
    let calls = if let Some(target) = header(entry, "x-amz-target") {
        let (prefix, operation) = target.split_once('.')?;
        let json: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        if prefix.starts_with("DynamoDB") {
            dynamodb_calls(operation, &json)
        } else if prefix == "AmazonSQS" {
            let action = match operation {
                "SendMessageBatch" => "SendMessage",
                "DeleteMessageBatch" => "DeleteMessage",
                "ChangeMessageVisibilityBatch" => "ChangeMessageVisibility",
                other => other,
            };
            vec![Call {
                action: format!("sqs:{action}"),
                resource: queue_arn(json["QueueUrl"].as_str().unwrap_or_default()),
            }]
        } else {
            return None;
        }
    } else {
        let form: BTreeMap<String, String> = form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
        let action = form.get("Action")?;
        let credential_service = header(entry, "authorization")?
            .split('/')
            .nth(3)
            .unwrap_or_default();
        match credential_service {
            "sns" => vec![Call {
                action: format!(
                    "sns:{}",
                    if action == "PublishBatch" {
                        "Publish"
                    } else {
                        action
                    }
                ),
                resource: form
                    .get("TopicArn")
                    .cloned()
                    .unwrap_or_else(|| "*".to_owned()),
            }],
            _ => return None,
        }
    };
    Some(Recorded {
        access_key_id,
        calls,
    })
}

fn dynamodb_calls(operation: &str, body: &Value) -> Vec<Call> {
    let call = |action: &str, resource: String| Call {
        action: format!("dynamodb:{action}"),
        resource,
    };
    match operation {
        "BatchGetItem" | "BatchWriteItem" => body["RequestItems"]
            .as_object()
            .map(|tables| {
                tables
                    .keys()
                    .map(|t| call(operation, table_arn(t)))
                    .collect()
            })
            .unwrap_or_default(),
        "TransactWriteItems" | "TransactGetItems" => as_list(&body["TransactItems"])
            .into_iter()
            .filter_map(|item| {
                let (kind, detail) = item.as_object()?.iter().next()?;
                let action = match kind.as_str() {
                    "Put" => "PutItem",
                    "Update" => "UpdateItem",
                    "Delete" => "DeleteItem",
                    "ConditionCheck" => "ConditionCheckItem",
                    "Get" => "GetItem",
                    _ => return None,
                };
                Some(call(action, table_arn(detail["TableName"].as_str()?)))
            })
            .collect(),
        "Query" | "Scan" => {
            let table = table_arn(body["TableName"].as_str().unwrap_or_default());
            let resource = match body["IndexName"].as_str() {
                Some(index) => format!("{table}/index/{index}"),
                None => table,
            };
            vec![call(operation, resource)]
        }
        // DynamoDB Streams: IAM names them dynamodb:* on the stream's ARN.
        "DescribeStream" | "GetShardIterator" => vec![call(
            operation,
            body["StreamArn"].as_str().unwrap_or_default().to_owned(),
        )],
        // moto's shard iterators are `{stream ARN}|1|{id}`.
        "GetRecords" => vec![call(
            operation,
            body["ShardIterator"]
                .as_str()
                .and_then(|iterator| iterator.split('|').next())
                .unwrap_or_default()
                .to_owned(),
        )],
        "ListStreams" => vec![call(operation, "*".to_owned())],
        other => vec![call(
            other,
            table_arn(body["TableName"].as_str().unwrap_or_default()),
        )],
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn statement(allow: bool, actions: &[&str], resources: &[&str]) -> Statement {
        Statement {
            id: "s".to_owned(),
            allow,
            actions: actions.iter().map(|a| (*a).to_owned()).collect(),
            resources: resources.iter().map(|r| (*r).to_owned()).collect(),
            has_condition: false,
        }
    }

    fn call(action: &str, resource: &str) -> Call {
        Call {
            action: action.to_owned(),
            resource: resource.to_owned(),
        }
    }

    #[test]
    fn wildcards_match_as_iam_matches_them() {
        assert!(wildcard_match(
            "kms:GenerateDataKey*",
            "kms:GenerateDataKeyWithoutPlaintext",
            true
        ));
        assert!(wildcard_match(
            "arn:aws:logs:*:*:log-group:g:*",
            "arn:aws:logs:r:1:log-group:g:*",
            false
        ));
        assert!(wildcard_match("DYNAMODB:getitem", "dynamodb:GetItem", true));
        assert!(!wildcard_match(
            "arn:a:table/t",
            "arn:a:table/t/index/i",
            false
        ));
        assert!(wildcard_match(
            "arn:a:table/t/index/*",
            "arn:a:table/t/index/i",
            false
        ));
        assert!(!wildcard_match("a?c", "abbc", false));
    }

    #[test]
    fn an_allow_grants_and_a_deny_overrides() {
        let allow = statement(true, &["dynamodb:GetItem", "dynamodb:PutItem"], &["arn:t"]);
        let deny = statement(false, &["dynamodb:PutItem"], &["*"]);
        assert!(allowed(
            std::slice::from_ref(&allow),
            &call("dynamodb:GetItem", "arn:t")
        ));
        assert!(!allowed(
            std::slice::from_ref(&allow),
            &call("dynamodb:GetItem", "arn:other")
        ));
        assert!(!allowed(
            &[allow.clone(), deny],
            &call("dynamodb:PutItem", "arn:t")
        ));
        assert!(!allowed(&[allow], &call("dynamodb:Query", "arn:t")));
    }

    #[test]
    fn recorded_requests_are_named_as_iam_authorizes_them() {
        let auth = "AWS4-HMAC-SHA256 Credential=AKIAX/20261201/us-east-1/sqs/aws4_request, SignedHeaders=host, Signature=0";
        let sqs = json!({
            "headers": {"Authorization": auth, "X-Amz-Target": "AmazonSQS.SendMessageBatch"},
            "body": r#"{"QueueUrl": "http://127.0.0.1:5000/123456789012/q"}"#,
            "body_encoded": false,
        });
        let recorded = decode(&sqs).unwrap();
        assert_eq!(recorded.access_key_id, "AKIAX");
        assert_eq!(
            recorded.calls,
            [call(
                "sqs:SendMessage",
                "arn:aws:sqs:us-east-1:123456789012:q"
            )]
        );

        let batch_get = json!({
            "headers": {"authorization": auth, "x-amz-target": "DynamoDB_20120810.BatchGetItem"},
            "body": BASE64.encode(r#"{"RequestItems": {"users": {}, "subs": {}}}"#),
            "body_encoded": true,
        });
        let calls = decode(&batch_get).unwrap().calls;
        assert_eq!(calls.len(), 2);
        assert!(calls.contains(&call("dynamodb:BatchGetItem", &table_arn("users"))));

        // A Query names the table, or the index when it reads one.
        let query = json!({
            "headers": {"authorization": auth, "x-amz-target": "DynamoDB_20120810.Query"},
            "body": r#"{"TableName": "subs"}"#,
        });
        assert_eq!(
            decode(&query).unwrap().calls,
            [call("dynamodb:Query", &table_arn("subs"))]
        );
        let index_query = json!({
            "headers": {"authorization": auth, "x-amz-target": "DynamoDB_20120810.Query"},
            "body": r#"{"TableName": "subs", "IndexName": "someIndex"}"#,
        });
        assert_eq!(
            decode(&index_query).unwrap().calls,
            [call(
                "dynamodb:Query",
                &format!("{}/index/someIndex", table_arn("subs"))
            )]
        );

        let stream = format!("{}/stream/2026-12-02T00:00:00.000", table_arn("subs"));
        let records = json!({
            "headers": {"authorization": auth, "x-amz-target": "DynamoDBStreams_20120810.GetRecords"},
            "body": json!({"ShardIterator": format!("{stream}|1|abc"), "Limit": 100}).to_string(),
        });
        assert_eq!(
            decode(&records).unwrap().calls,
            [call("dynamodb:GetRecords", &stream)]
        );
        let iterator = json!({
            "headers": {"authorization": auth, "x-amz-target": "DynamoDBStreams_20120810.GetShardIterator"},
            "body": json!({"StreamArn": stream, "ShardId": "s-1"}).to_string(),
        });
        assert_eq!(
            decode(&iterator).unwrap().calls,
            [call("dynamodb:GetShardIterator", &stream)]
        );

        let sns = json!({
            "headers": {"authorization": auth.replace("/sqs/", "/sns/")},
            "body": "Action=PublishBatch&TopicArn=arn%3Aaws%3Asns%3Aus-east-1%3A123456789012%3At",
        });
        assert_eq!(
            decode(&sns).unwrap().calls,
            [call("sns:Publish", "arn:aws:sns:us-east-1:123456789012:t")]
        );
        assert!(
            decode(&json!({"headers": {}})).is_none(),
            "an unsigned request names no caller"
        );
    }
}
