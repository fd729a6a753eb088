//! The few control-plane calls the emulation makes to moto that the pipeline itself never makes
//! (S3, SSM, CloudFormation, Lambda), as plain HTTP: moto does not check signatures, so a request
//! only has to name its service in the credential scope. This keeps four large SDK crates out
//! of the build for a handful of calls against loopback.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

/// The region the emulated stack is deployed in.
pub const REGION: &str = "us-east-1";

/// Why a call to moto failed.
#[derive(Debug, thiserror::Error)]
pub enum MotoError {
    #[error("{service} {action}: {source}")]
    Http {
        service: &'static str,
        action: String,
        source: reqwest::Error,
    },
    #[error("{service} {action} answered {status}: {body}")]
    Status {
        service: &'static str,
        action: String,
        status: u16,
        body: String,
    },
    #[error("{service} {action}: unexpected answer: {detail}")]
    Unexpected {
        service: &'static str,
        action: String,
        detail: String,
    },
}

/// A moto server's control-plane API.
#[derive(Clone)]
pub struct Moto {
    endpoint: String,
    http: reqwest::Client,
    /// The access key id every request names, which moto's request recorder attributes it to.
    caller: String,
}

/// Resources of a deployed stack: logical id to physical id, and its outputs.
#[derive(Clone, Debug, Default)]
pub struct StackResources {
    /// Logical id to physical id, and `{logical id}.{attribute}` to the attributes the
    /// emulation read back (a table's `StreamArn`).
    pub physical_ids: BTreeMap<String, String>,
    pub outputs: BTreeMap<String, String>,
}

impl Moto {
    pub fn new(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into().trim_end_matches('/').to_owned(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .expect("a plain HTTP client builds"),
            caller: "emulator".to_owned(),
        }
    }

    /// The same server, its requests made in the name of `access_key_id` (as the deployed
    /// caller would sign them), so that recorded calls name that caller.
    pub fn as_caller(mut self, access_key_id: impl Into<String>) -> Self {
        self.caller = access_key_id.into();
        self
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn authorization(&self, service: &str) -> String {
        format!(
            "AWS4-HMAC-SHA256 Credential={}/20261201/{REGION}/{service}/aws4_request, \
             SignedHeaders=host, Signature=0",
            self.caller
        )
    }

    async fn send(
        &self,
        service: &'static str,
        action: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<String, MotoError> {
        let http = |source| MotoError::Http {
            service,
            action: action.to_owned(),
            source,
        };
        let response = request
            .header("authorization", self.authorization(service))
            .send()
            .await
            .map_err(http)?;
        let status = response.status().as_u16();
        let body = response.text().await.map_err(http)?;
        if !(200..300).contains(&status) {
            return Err(MotoError::Status {
                service,
                action: action.to_owned(),
                status,
                body,
            });
        }
        Ok(body)
    }

    /// S3 CreateBucket (path style).
    pub async fn create_bucket(&self, bucket: &str) -> Result<(), MotoError> {
        let url = format!("{}/{bucket}", self.endpoint);
        self.send("s3", "CreateBucket", self.http.put(url)).await?;
        Ok(())
    }

    /// S3 PutObject (path style).
    pub async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
    ) -> Result<(), MotoError> {
        let url = format!("{}/{bucket}/{key}", self.endpoint);
        self.send("s3", "PutObject", self.http.put(url).body(body))
            .await?;
        Ok(())
    }

    async fn json_target(
        &self,
        service: &'static str,
        target: &str,
        body: &Value,
    ) -> Result<Value, MotoError> {
        let request = self
            .http
            .post(format!("{}/", self.endpoint))
            .header("x-amz-target", target)
            .header("content-type", "application/x-amz-json-1.1")
            .body(body.to_string());
        let text = self.send(service, target, request).await?;
        serde_json::from_str(&text).map_err(|e| MotoError::Unexpected {
            service,
            action: target.to_owned(),
            detail: e.to_string(),
        })
    }

    /// A DynamoDB Streams call (`DescribeStream`, `GetShardIterator`, `GetRecords`).
    pub async fn dynamodb_streams(&self, action: &str, body: &Value) -> Result<Value, MotoError> {
        self.json_target(
            "dynamodb",
            &format!("DynamoDBStreams_20120810.{action}"),
            body,
        )
        .await
    }

    /// SSM PutParameter (a String, overwritten).
    pub async fn put_parameter(&self, name: &str, value: &str) -> Result<(), MotoError> {
        self.json_target(
            "ssm",
            "AmazonSSM.PutParameter",
            &serde_json::json!({"Name": name, "Value": value, "Type": "String", "Overwrite": true}),
        )
        .await?;
        Ok(())
    }

    async fn cloudformation(
        &self,
        action: &str,
        params: &[(&str, &str)],
    ) -> Result<String, MotoError> {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("Action", action);
        form.append_pair("Version", "2010-05-15");
        for (name, value) in params {
            form.append_pair(name, value);
        }
        let request = self
            .http
            .post(format!("{}/", self.endpoint))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.finish());
        self.send("cloudformation", action, request).await
    }

    /// CloudFormation CreateStack from a template in S3, waiting until it is complete.
    pub async fn create_stack(
        &self,
        name: &str,
        template_url: &str,
        timeout: Duration,
    ) -> Result<StackResources, MotoError> {
        self.cloudformation(
            "CreateStack",
            &[
                ("StackName", name),
                ("TemplateURL", template_url),
                ("Capabilities.member.1", "CAPABILITY_IAM"),
                ("Capabilities.member.2", "CAPABILITY_NAMED_IAM"),
            ],
        )
        .await?;
        let until = tokio::time::Instant::now() + timeout;
        loop {
            let described = self
                .cloudformation("DescribeStacks", &[("StackName", name)])
                .await?;
            let status = xml_values(&described, "StackStatus")
                .into_iter()
                .next()
                .unwrap_or_default();
            match status.as_str() {
                "CREATE_COMPLETE" => {
                    let outputs = xml_members(&described, "Outputs")
                        .iter()
                        .filter_map(|m| {
                            Some((
                                xml_values(m, "OutputKey").pop()?,
                                xml_values(m, "OutputValue").pop()?,
                            ))
                        })
                        .collect();
                    let listed = self
                        .cloudformation("ListStackResources", &[("StackName", name)])
                        .await?;
                    let physical_ids = xml_members(&listed, "StackResourceSummaries")
                        .iter()
                        .filter_map(|m| {
                            Some((
                                xml_values(m, "LogicalResourceId").pop()?,
                                xml_values(m, "PhysicalResourceId").pop()?,
                            ))
                        })
                        .collect();
                    return Ok(StackResources {
                        physical_ids,
                        outputs,
                    });
                }
                "CREATE_IN_PROGRESS" if tokio::time::Instant::now() < until => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                other => {
                    return Err(MotoError::Unexpected {
                        service: "cloudformation",
                        action: "CreateStack".to_owned(),
                        detail: format!("stack {name} is {other:?}: {described}"),
                    });
                }
            }
        }
    }

    async fn lambda(
        &self,
        action: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<Value, MotoError> {
        let text = self.send("lambda", action, request).await?;
        serde_json::from_str(&text).map_err(|e| MotoError::Unexpected {
            service: "lambda",
            action: action.to_owned(),
            detail: e.to_string(),
        })
    }

    /// Lambda GetFunctionConfiguration.
    pub async fn function_configuration(&self, function: &str) -> Result<Value, MotoError> {
        let url = format!(
            "{}/2015-03-31/functions/{function}/configuration",
            self.endpoint
        );
        self.lambda("GetFunctionConfiguration", self.http.get(url))
            .await
    }

    /// Lambda ListEventSourceMappings of one function.
    pub async fn event_source_mappings(&self, function: &str) -> Result<Vec<Value>, MotoError> {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("FunctionName", function)
            .finish();
        let url = format!(
            "{}/2015-03-31/event-source-mappings/?{query}",
            self.endpoint
        );
        let listed = self
            .lambda("ListEventSourceMappings", self.http.get(url))
            .await?;
        Ok(listed["EventSourceMappings"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// Lambda UpdateEventSourceMapping to disabled: moto would otherwise try to run the function
    /// in Docker for every message.
    pub async fn disable_event_source_mapping(&self, uuid: &str) -> Result<(), MotoError> {
        let url = format!("{}/2015-03-31/event-source-mappings/{uuid}", self.endpoint);
        self.lambda(
            "UpdateEventSourceMapping",
            self.http
                .put(url)
                .header("content-type", "application/json")
                .body(r#"{"Enabled": false}"#),
        )
        .await?;
        Ok(())
    }

    /// The requests moto's recorder has kept since it was started.
    pub async fn recorded_requests(&self) -> Result<String, MotoError> {
        let url = format!("{}/moto-api/recorder/download-recording", self.endpoint);
        self.send("moto", "download-recording", self.http.get(url))
            .await
    }

    /// Stops moto's request recorder (what it recorded stays downloadable).
    pub async fn stop_recording(&self) -> Result<(), MotoError> {
        let url = format!("{}/moto-api/recorder/stop-recording", self.endpoint);
        self.send("moto", "stop-recording", self.http.post(url))
            .await?;
        Ok(())
    }

    /// Starts moto's request recorder.
    pub async fn start_recording(&self) -> Result<(), MotoError> {
        let url = format!("{}/moto-api/recorder/start-recording", self.endpoint);
        self.send("moto", "start-recording", self.http.post(url))
            .await?;
        Ok(())
    }
}

/// The text of every `<tag>...</tag>` element, unescaped (moto's XML is regular enough).
pub fn xml_values(xml: &str, tag: &str) -> Vec<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut values = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(&close) else { break };
        values.push(unescape(&after[..end]));
        rest = &after[end + close.len()..];
    }
    values
}

/// The `<member>` elements inside the first `<list>` element.
fn xml_members(xml: &str, list: &str) -> Vec<String> {
    let open = format!("<{list}>");
    let close = format!("</{list}>");
    let Some(start) = xml.find(&open) else {
        return Vec::new();
    };
    let inner = &xml[start + open.len()..];
    let inner = &inner[..inner.find(&close).unwrap_or(inner.len())];
    inner
        .split("<member>")
        .skip(1)
        .map(|m| m.split("</member>").next().unwrap_or_default().to_owned())
        .collect()
}

fn unescape(text: &str) -> String {
    text.trim()
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_members_are_read_from_query_protocol_xml() {
        let xml = "<R><Outputs><member><OutputKey>ApiUrl</OutputKey><OutputValue>http://a/?x=1&amp;y=2</OutputValue></member>\
                   <member><OutputKey>T</OutputKey><OutputValue>t-1</OutputValue></member></Outputs><StackStatus>CREATE_COMPLETE</StackStatus></R>";
        let members = xml_members(xml, "Outputs");
        assert_eq!(members.len(), 2);
        assert_eq!(
            xml_values(&members[0], "OutputValue"),
            ["http://a/?x=1&y=2"]
        );
        assert_eq!(xml_values(xml, "StackStatus"), ["CREATE_COMPLETE"]);
        assert!(xml_members(xml, "Missing").is_empty());
    }
}
