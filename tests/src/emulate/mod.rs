//! The deployed system on one machine: the synthesized CDK template deployed into moto's
//! CloudFormation, the five real Lambda binaries (host builds) each running against a Lambda
//! Runtime API with the environment the deployed function has, and the parts moto cannot
//! play, emulated from the deployed resources: API Gateway (the HTTP API's routes, stage and
//! integration timeout, payload format 2.0), the SQS event source mappings (batch size,
//! batching window, ReportBatchItemFailures, the queue's visibility timeout and redrive) and
//! the ranker's DynamoDB stream mapping (filter criteria, batch size, batching window,
//! ReportBatchItemFailures; see [`stream_mapping`]).
//!
//! What is not as deployed, and why:
//! - every function gets `AWS_ENDPOINT_URL` pointing at moto;
//! - moto has no ElastiCache Serverless: the cache resource is removed from the template, and
//!   the functions that reach the cache (the ranker, the boards function, and the processor when
//!   it counts the quota there) get `RANK_INDEX_URL` (a local Redis cluster over TLS, the
//!   same protocol in the same cluster mode), `SSL_CERT_FILE` (the test CA that signed its
//!   certificate) and `RANK_INDEX_NAMESPACE` (the stack name, so that emulations sharing the
//!   server keep apart) instead of the cache's address;
//! - moto would play the stream mapping itself (it invokes the function on each write and
//!   empties the shard), so that mapping is removed from the template and played here from
//!   its template properties; the VPC, subnets, security groups and VPC endpoints are deployed
//!   but loopback is not partitioned (infra/test/quota-counter.test.ts checks that the VPC
//!   functions can reach every API they call);
//! - the logging configuration comes from the template (moto drops LoggingConfig);
//! - moto skips the HTTP API, alarms, and queue and topic policies (CloudWatch and IAM are
//!   checked offline in infra/ and by the least-privilege test);
//! - a function invocation that times out is not stopped: its late answer is discarded.
//!
//! [`prepare_dir`] names the directory `scripts/emulate.sh prepare` fills: `cdk.out/` (the
//! synthesized dev stack), `jwt-private.pem` (signs tokens the deployed ingest accepts) and
//! `context.json` (the CDK context it was synthesized with).

pub mod coldstart;
pub mod functions;
pub mod gateway;
pub mod iam;
pub mod moto;
pub mod runtime_api;
pub mod stream_mapping;
pub mod template;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use axum::body::Bytes;
use serde_json::Value;
use shared::auth::TokenAlgorithm;
use shared::aws::AwsClients;
use shared::aws::dynamodb::DynamoUserDirectory;
use shared::aws::provision::{
    QueueProvisioning, ensure_queue_with_dead_letters, subscribe_queue_to_topic,
};
use shared::config::{RANK_INDEX_NAMESPACE, RANK_INDEX_URL};
use shared::redis_index::RedisRankIndex;
use shared::users::User;
use tokio::sync::watch;

use crate::backend::aws::{AwsResources, SqsSource, aws_backend};
use crate::change_feed::{DynamoStreamFeed, spawn_stream_consumer};
use crate::event_source::{HandlerFuture, PollSettings, SqsHandler, spawn_consumer};
use crate::stack::{AssembledParts, LocalStack};
use crate::tokens::TokenMinter;
use functions::{FunctionProcess, LogSink, Supervisor};
use gateway::{GatewaySettings, Route};
use moto::{Moto, MotoError, REGION, StackResources};
use runtime_api::{InvokeOutcome, RuntimeApi};
use template::{Template, TemplateError};

/// moto's default account.
pub const ACCOUNT_ID: &str = "123456789012";
/// Where `scripts/emulate.sh prepare` writes, relative to the repository root.
pub const PREPARE_DIR: &str = "target/emulate";
/// Set (to anything) to echo the emulated functions' log lines to stderr in tests.
pub const ECHO_LOGS_VARIABLE: &str = "EMULATE_ECHO_LOGS";
/// The environment variable naming that directory.
pub const EMULATE_DIR_VARIABLE: &str = "EMULATE_DIR";
/// The CDK bootstrap version the template's rule checks.
const BOOTSTRAP_VERSION_PARAMETER: &str = "/cdk-bootstrap/hnb659fds/version";
const STACK_CREATE_TIMEOUT: Duration = Duration::from_secs(120);
/// The five functions: the stack output naming each, and its binary.
const FUNCTIONS: [(&str, &str); 5] = [
    ("IngestFunctionName", "ingest"),
    ("ProcessorFunctionName", "processor"),
    ("NotifierFunctionName", "notifier"),
    ("RankerFunctionName", "ranker"),
    ("BoardsFunctionName", "boards"),
];
/// How long the emulated stream poller waits on an idle stream before reading it again.
const STREAM_READ_WAIT: Duration = Duration::from_secs(1);

/// Why the emulated deployment could not start.
#[derive(Debug, thiserror::Error)]
pub enum EmulationError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(transparent)]
    Moto(#[from] MotoError),
    #[error("{0}")]
    Prepared(String),
    #[error("the deployed stack lacks {0}")]
    Deployed(String),
    #[error("{what}: {detail}")]
    Setup { what: String, detail: String },
}

fn setup(what: impl Into<String>) -> impl FnOnce(String) -> EmulationError {
    let what = what.into();
    move |detail| EmulationError::Setup { what, detail }
}

/// The directory `scripts/emulate.sh prepare` filled: `EMULATE_DIR`, else `target/emulate`
/// under the workspace root.
pub fn prepare_dir() -> PathBuf {
    std::env::var_os(EMULATE_DIR_VARIABLE)
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(PREPARE_DIR))
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Where the host builds of the three functions are: next to the running executable (a test
/// runs from `target/debug/deps`, a binary from `target/debug`).
pub fn default_bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.parent().map(Path::to_path_buf).unwrap_or(dir)
    } else {
        dir
    }
}

/// How to run the emulation.
#[derive(Clone, Debug)]
pub struct EmulationOptions {
    pub prepared: PathBuf,
    pub moto_endpoint: String,
    pub bin_dir: PathBuf,
    /// The CloudFormation stack name; unique per emulation sharing one moto.
    pub stack_name: String,
    pub gateway_addr: SocketAddr,
    pub users: Vec<User>,
    /// Echo every function log line to stderr as it arrives.
    pub echo_logs: bool,
    /// Base64-encode every request body, text ones too (API Gateway may; the function must
    /// decode them all).
    pub encode_every_body: bool,
    /// The Redis cluster standing in for the template's serverless cache (moto has none).
    pub rank_index: RankIndexStandIn,
}

/// The local server the deployed functions reach instead of the stack's ElastiCache Serverless
/// cache, and the key namespace that keeps this emulation's boards apart from others sharing it.
#[derive(Clone, Debug)]
pub struct RankIndexStandIn {
    /// What the functions get: `rediss://` as deployed (the serverless cache only speaks TLS).
    pub url: String,
    /// The CA that signed the stand-in's certificate, which the functions then trust
    /// (`SSL_CERT_FILE`); `None` when it has a publicly trusted one.
    pub ca_file: Option<PathBuf>,
    /// How the harness reads the same server (for the checks that read boards directly).
    pub harness_url: String,
    pub namespace: String,
}

/// One function as deployed.
#[derive(Clone, Debug)]
pub struct DeployedFunction {
    pub binary: &'static str,
    pub logical_id: String,
    pub name: String,
    pub arn: String,
    pub timeout: Duration,
    pub role_logical_id: Option<String>,
    /// The environment the process runs with (AWS_ENDPOINT_URL included).
    pub environment: BTreeMap<String, String>,
    /// The access key id it signs with: one per function, so recorded calls name the caller.
    pub access_key_id: String,
}

/// One event source mapping as deployed.
#[derive(Clone, Debug)]
pub struct DeployedMapping {
    pub function: String,
    pub queue_url: String,
    pub queue_arn: String,
    pub poll: PollSettings,
    pub report_batch_item_failures: bool,
    pub visibility_timeout: Duration,
    pub max_receive_count: Option<u32>,
}

/// One DynamoDB stream event source mapping as deployed.
#[derive(Clone, Debug)]
pub struct DeployedStreamMapping {
    pub function: String,
    /// The table whose stream it reads (its logical id).
    pub table_logical_id: String,
    pub stream_arn: String,
    pub batch_size: usize,
    pub batching_window: Duration,
    pub filters: stream_mapping::EventFilters,
    pub report_batch_item_failures: bool,
}

/// What was deployed and is running.
pub struct Emulation {
    pub stack_name: String,
    pub stack: LocalStack,
    pub template: Template,
    pub resources: StackResources,
    pub functions: Vec<DeployedFunction>,
    pub mappings: Vec<DeployedMapping>,
    pub stream_mappings: Vec<DeployedStreamMapping>,
    pub logs: LogSink,
    /// The queue subscribed to the topic that [`Emulation::stack`]'s observer reads.
    pub notifications_tap_url: String,
    /// The emulated Runtime API, whose record of invocations stands in for Lambda's own.
    pub runtime: Arc<RuntimeApi>,
}

/// The access key id `caller` (a function's binary, or an operator tool) signs with in the
/// emulation `stack_name`: distinct per caller and per emulation, so moto's request recorder
/// tells whose call each request was even when emulations share one moto.
pub fn access_key_for(stack_name: &str, caller: &str) -> String {
    let stack: String = stack_name
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_uppercase();
    let stack = &stack[stack.len().saturating_sub(10)..];
    format!("AKIA{stack}{}", caller.to_ascii_uppercase())
}

/// Credentials for one caller of the emulation.
pub fn credentials_for(access_key_id: &str) -> aws_sdk_sqs::config::Credentials {
    aws_sdk_sqs::config::Credentials::new(
        access_key_id,
        "emulated-secret",
        Some("emulated-session".to_owned()),
        None,
        "emulation",
    )
}

/// The token minter for the deployed ingest: ES256 with the prepared key, the synthesized
/// issuer and audience.
pub fn minter(prepared: &Path) -> Result<TokenMinter, EmulationError> {
    let read = |name: &str| {
        std::fs::read_to_string(prepared.join(name)).map_err(|e| {
            EmulationError::Prepared(format!(
                "cannot read {}: {e} (run `scripts/emulate.sh prepare`; make test does)",
                prepared.join(name).display()
            ))
        })
    };
    let context: Value = serde_json::from_str(&read("context.json")?)
        .map_err(|e| EmulationError::Prepared(format!("context.json: {e}")))?;
    let field = |name: &str| {
        context[name]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| EmulationError::Prepared(format!("context.json has no {name}")))
    };
    TokenMinter::asymmetric(
        TokenAlgorithm::Es256,
        &read("jwt-private.pem")?,
        &read("jwt-public.pem")?,
        field("jwtIssuer")?,
        field("jwtAudience")?,
    )
    .map_err(|e| EmulationError::Prepared(e.to_string()))
}

/// The synthesized template `scripts/emulate.sh prepare` wrote.
pub fn prepared_template() -> Result<Template, EmulationError> {
    let (template, _) = synthesized(&prepare_dir())?;
    Ok(Template::read(&template)?)
}

/// The synthesized template and its asset manifest in `cdk.out/`.
fn synthesized(prepared: &Path) -> Result<(PathBuf, PathBuf), EmulationError> {
    let out = prepared.join("cdk.out");
    let entries = std::fs::read_dir(&out).map_err(|e| {
        EmulationError::Prepared(format!(
            "cannot read {}: {e} (run `scripts/emulate.sh prepare`; make test does)",
            out.display()
        ))
    })?;
    let mut template = None;
    let mut assets = None;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".template.json") {
            template = Some(entry.path());
        } else if name.ends_with(".assets.json") {
            assets = Some(entry.path());
        }
    }
    match (template, assets) {
        (Some(t), Some(a)) => Ok((t, a)),
        _ => Err(EmulationError::Prepared(format!(
            "{} holds no synthesized stack (*.template.json and *.assets.json)",
            out.display()
        ))),
    }
}

fn substitute(text: &str) -> String {
    text.replace("${AWS::AccountId}", ACCOUNT_ID)
        .replace("${AWS::Region}", REGION)
        .replace("${AWS::Partition}", "aws")
}

/// The objects this process has put into each moto server: (endpoint, bucket, key).
///
/// moto closes an object's body as soon as its key is written again (`setlist` disposes of
/// the version it replaces), even while another request is still reading that body: two
/// emulations started side by side made one of them fail with a 500 on its `PutObject` (the
/// ETag of its own, already replaced, object), and a read of the template by CloudFormation
/// could meet the same fate. Asset keys are hashes of their content, so an object this process
/// put once is what every later emulation needs: it is written once, and the emulations that
/// start meanwhile wait for it.
static UPLOADED: std::sync::LazyLock<
    tokio::sync::Mutex<std::collections::HashSet<(String, String, String)>>,
> = std::sync::LazyLock::new(Default::default);

/// Uploads the file assets where the template expects them (each once per moto server and
/// process, see [`UPLOADED`]); returns the template's URL.
async fn upload_assets(
    moto: &Moto,
    template_path: &Path,
    assets_path: &Path,
) -> Result<String, EmulationError> {
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(assets_path)
            .map_err(|e| EmulationError::Prepared(format!("{}: {e}", assets_path.display())))?,
    )
    .map_err(|e| EmulationError::Prepared(format!("{}: {e}", assets_path.display())))?;
    let out_dir = assets_path.parent().unwrap_or(Path::new("."));
    let template_file = template_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut template_url = None;
    let mut uploaded = UPLOADED.lock().await;
    for (id, asset) in manifest["files"].as_object().into_iter().flatten() {
        let source = asset["source"]["path"].as_str().unwrap_or_default();
        if asset["source"]["packaging"].as_str() == Some("zip") {
            return Err(EmulationError::Prepared(format!(
                "asset {id} is a directory to zip; the emulation uploads file assets only"
            )));
        }
        let mut bytes = std::fs::read(out_dir.join(source))
            .map_err(|e| EmulationError::Prepared(format!("asset {source}: {e}")))?;
        if source == template_file {
            bytes = moto_compatible(&bytes)?;
        }
        for destination in asset["destinations"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(_, d)| d)
        {
            let bucket = substitute(destination["bucketName"].as_str().unwrap_or_default());
            let key = substitute(destination["objectKey"].as_str().unwrap_or_default());
            let object = (moto.endpoint().to_owned(), bucket.clone(), key.clone());
            if !uploaded.contains(&object) {
                let bucket_made = uploaded
                    .iter()
                    .any(|(endpoint, b, _)| endpoint == moto.endpoint() && *b == bucket);
                if !bucket_made {
                    moto.create_bucket(&bucket).await?;
                }
                moto.put_object(&bucket, &key, bytes.clone()).await?;
                uploaded.insert(object);
            }
            if source == template_file {
                template_url = Some(format!("https://{bucket}.s3.amazonaws.com/{key}"));
            }
        }
    }
    template_url.ok_or_else(|| {
        EmulationError::Prepared(format!(
            "{} does not list the template {template_file}",
            assets_path.display()
        ))
    })
}

/// The template as moto 5.2 can create it: `AWS::KMS::Key` loses its `Tags` (moto fails on
/// them with `KeyError: 'TagKey'`). Nothing else is changed; tags are asserted in infra/.
/// Where the emulated functions find the rank index that stands in for the template's
/// ElastiCache Serverless cache (moto has none): what the template's references to the cache
/// read as in moto.
const EMULATED_CACHE_ADDRESS: &str = "127.0.0.1";
const EMULATED_CACHE_PORT: &str = "6379";

fn moto_compatible(template: &[u8]) -> Result<Vec<u8>, EmulationError> {
    let mut document: Value = serde_json::from_slice(template)
        .map_err(|e| EmulationError::Prepared(format!("the template is not JSON: {e}")))?;
    let mut caches = Vec::new();
    let mut stream_mappings = Vec::new();
    if let Some(resources) = document["Resources"].as_object_mut() {
        for (id, resource) in resources.iter_mut() {
            if is_stream_mapping(resource) {
                stream_mappings.push(id.clone());
            }
            if resource["Type"] == "AWS::KMS::Key"
                && let Some(properties) = resource["Properties"].as_object_mut()
            {
                properties.remove("Tags");
            }
            if resource["Type"] == "AWS::ElastiCache::ServerlessCache" {
                caches.push(id.clone());
            }
        }
        // moto's CloudFormation has no serverless cache: the resource goes, and what refers to
        // it reads as a local one.
        for id in &caches {
            resources.remove(id);
        }
        // moto plays a DynamoDB stream mapping itself, enabled or not: every write invokes the
        // function in moto and, whatever the answer, empties the shard the emulation reads. The
        // mapping goes, and the emulation plays it from the template.
        for id in &stream_mappings {
            resources.remove(id);
        }
    }
    for id in caches.iter().chain(&stream_mappings) {
        replace_references(&mut document, id);
    }
    Ok(document.to_string().into_bytes())
}

/// Replaces `Ref` and `Fn::GetAtt` of the removed resource `id` with the local stand-in's
/// values, and drops it from `DependsOn` lists.
fn replace_references(value: &mut Value, id: &str) {
    match value {
        Value::Object(object) => {
            if object.len() == 1 {
                if object.get("Ref").and_then(Value::as_str) == Some(id) {
                    *value = Value::String(format!("emulated-{id}"));
                    return;
                }
                if let Some(Value::Array(parts)) = object.get("Fn::GetAtt")
                    && parts.first().and_then(Value::as_str) == Some(id)
                {
                    let attribute = parts.get(1).and_then(Value::as_str).unwrap_or_default();
                    *value = Value::String(
                        if attribute.ends_with("Port") {
                            EMULATED_CACHE_PORT
                        } else {
                            EMULATED_CACHE_ADDRESS
                        }
                        .to_owned(),
                    );
                    return;
                }
            }
            if let Some(Value::Array(depends)) = object.get_mut("DependsOn") {
                depends.retain(|d| d.as_str() != Some(id));
            }
            if object.get("DependsOn").and_then(Value::as_str) == Some(id) {
                object.remove("DependsOn");
            }
            for child in object.values_mut() {
                replace_references(child, id);
            }
        }
        Value::Array(items) => {
            for item in items {
                replace_references(item, id);
            }
        }
        _ => {}
    }
}

fn string_map(value: &Value) -> BTreeMap<String, String> {
    value
        .as_object()
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// The environment Lambda gives a function's process, on top of its configured variables.
fn lambda_environment(
    template: &Template,
    function: &DeployedFunction,
    configuration: &Value,
    runtime_api: &str,
    moto_endpoint: &str,
    rank_index: &RankIndexStandIn,
) -> BTreeMap<String, String> {
    let mut env = string_map(&configuration["Environment"]["Variables"]);
    let logging = template.logging_config(&function.logical_id);
    let memory = configuration["MemorySize"].as_u64().unwrap_or(128);
    let mut set = |name: &str, value: String| {
        env.insert(name.to_owned(), value);
    };
    set("AWS_LAMBDA_FUNCTION_NAME", function.name.clone());
    set("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned());
    set("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", memory.to_string());
    set("AWS_LAMBDA_RUNTIME_API", runtime_api.to_owned());
    set("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_owned());
    set(
        "AWS_LAMBDA_LOG_GROUP_NAME",
        format!("/aws/lambda/{}", function.name),
    );
    set(
        "AWS_LAMBDA_LOG_STREAM_NAME",
        format!("emulated/[$LATEST]{}", uuid::Uuid::now_v7().simple()),
    );
    if let Some(format) = logging.log_format {
        set("AWS_LAMBDA_LOG_FORMAT", format);
    }
    if let Some(level) = logging.application_log_level {
        set("AWS_LAMBDA_LOG_LEVEL", level);
    }
    set("AWS_REGION", REGION.to_owned());
    set("AWS_DEFAULT_REGION", REGION.to_owned());
    set("AWS_ACCESS_KEY_ID", function.access_key_id.clone());
    set("AWS_SECRET_ACCESS_KEY", "emulated-secret".to_owned());
    set("AWS_SESSION_TOKEN", "emulated-session".to_owned());
    set("AWS_EC2_METADATA_DISABLED", "true".to_owned());
    set(
        "_HANDLER",
        configuration["Handler"]
            .as_str()
            .unwrap_or("bootstrap")
            .to_owned(),
    );
    set("LAMBDA_TASK_ROOT", "/var/task".to_owned());
    set("LAMBDA_RUNTIME_DIR", "/var/runtime".to_owned());
    set("LANG", "en_US.UTF-8".to_owned());
    set("TZ", ":UTC".to_owned());
    set("PATH", "/usr/local/bin:/usr/bin/:/bin".to_owned());
    // The one thing that is not as deployed: every AWS call goes to moto.
    set("AWS_ENDPOINT_URL", moto_endpoint.to_owned());
    if let Ok(backtrace) = std::env::var("RUST_BACKTRACE") {
        set("RUST_BACKTRACE", backtrace);
    }
    // The second: the rank index is the local stand-in for the cache, under this emulation's
    // namespace.
    if env.contains_key(RANK_INDEX_URL) {
        env.insert(RANK_INDEX_URL.to_owned(), rank_index.url.clone());
        env.insert(
            RANK_INDEX_NAMESPACE.to_owned(),
            rank_index.namespace.clone(),
        );
        if let Some(ca_file) = &rank_index.ca_file {
            env.insert(
                "SSL_CERT_FILE".to_owned(),
                ca_file.to_string_lossy().into_owned(),
            );
        }
    }
    env
}

/// Whether a template resource is an event source mapping on a DynamoDB stream (its source
/// is a table's `StreamArn`).
fn is_stream_mapping(resource: &Value) -> bool {
    resource["Type"] == "AWS::Lambda::EventSourceMapping"
        && resource["Properties"]["EventSourceArn"]["Fn::GetAtt"][1] == "StreamArn"
}

/// The template's DynamoDB stream mappings, with the functions they feed and the streams of
/// the deployed tables.
async fn stream_mappings_of(
    template: &Template,
    resources: &StackResources,
    functions: &[DeployedFunction],
    dynamodb: &aws_sdk_dynamodb::Client,
) -> Result<Vec<DeployedStreamMapping>, EmulationError> {
    let mut mappings = Vec::new();
    for (id, resource) in template.resources_of_type("AWS::Lambda::EventSourceMapping") {
        if !is_stream_mapping(resource) {
            continue;
        }
        let properties = &resource["Properties"];
        let function = template::referenced_id(&properties["FunctionName"])
            .and_then(|logical_id| functions.iter().find(|f| f.logical_id == logical_id))
            .ok_or_else(|| EmulationError::Deployed(format!("the function of the mapping {id}")))?;
        let table_logical_id = template::referenced_id(&properties["EventSourceArn"])
            .ok_or_else(|| EmulationError::Deployed(format!("the table of the mapping {id}")))?;
        let table = resources
            .physical_ids
            .get(&table_logical_id)
            .ok_or_else(|| EmulationError::Deployed(format!("the table {table_logical_id}")))?;
        let stream_arn = dynamodb
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| {
                setup(format!("describing {table}"))(
                    shared::aws::sdk_error("dynamodb", e).to_string(),
                )
            })?
            .table()
            .and_then(|t| t.latest_stream_arn())
            .map(str::to_owned)
            .ok_or_else(|| EmulationError::Deployed(format!("a stream on {table}")))?;
        mappings.push(stream_mapping_of(
            &function.name,
            table_logical_id,
            stream_arn,
            properties,
        )?);
    }
    Ok(mappings)
}

/// A DynamoDB stream mapping from its template properties.
fn stream_mapping_of(
    function: &str,
    table_logical_id: String,
    stream_arn: String,
    mapping: &Value,
) -> Result<DeployedStreamMapping, EmulationError> {
    if mapping["StartingPosition"].as_str() != Some("TRIM_HORIZON") {
        return Err(EmulationError::Deployed(format!(
            "a TRIM_HORIZON starting position on the mapping of {function} (the emulation reads \
             streams from their start; it has {})",
            mapping["StartingPosition"]
        )));
    }
    let filters = stream_mapping::EventFilters::parse(&mapping["FilterCriteria"])
        .map_err(|e| EmulationError::Deployed(format!("filters it can judge: {e}")))?;
    Ok(DeployedStreamMapping {
        function: function.to_owned(),
        table_logical_id,
        stream_arn,
        batch_size: mapping["BatchSize"].as_u64().unwrap_or(100) as usize,
        batching_window: Duration::from_secs(
            mapping["MaximumBatchingWindowInSeconds"]
                .as_u64()
                .unwrap_or(0),
        ),
        filters,
        report_batch_item_failures: mapping["FunctionResponseTypes"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t == "ReportBatchItemFailures")),
    })
}

/// The deployed function `name`, which a mapping feeds.
fn function_named(
    functions: &[DeployedFunction],
    name: &str,
) -> Result<DeployedFunction, EmulationError> {
    functions
        .iter()
        .find(|f| f.name == name)
        .cloned()
        .ok_or_else(|| EmulationError::Deployed(format!("function {name}")))
}

/// The queue URL of a queue ARN on moto.
fn queue_url(moto_endpoint: &str, arn: &str) -> String {
    let mut parts = arn.rsplit(':');
    let name = parts.next().unwrap_or_default();
    let account = parts.next().unwrap_or(ACCOUNT_ID);
    format!("{moto_endpoint}/{account}/{name}")
}

/// A queue's deployed settings, as SQS reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueSettings {
    pub visibility_timeout: Duration,
    pub retention: Duration,
    /// The redrive policy's `maxReceiveCount`, when the queue has one.
    pub max_receive_count: Option<u32>,
}

/// Reads a queue's visibility timeout, retention and redrive limit.
pub async fn queue_settings(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
) -> Result<QueueSettings, EmulationError> {
    use aws_sdk_sqs::types::QueueAttributeName;
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .map_err(|e| EmulationError::Setup {
            what: format!("reading the attributes of {url}"),
            detail: shared::aws::sdk_error("sqs", e).to_string(),
        })?;
    let attributes = attributes.attributes().cloned().unwrap_or_default();
    let seconds = |name: QueueAttributeName, default: u64| {
        Duration::from_secs(
            attributes
                .get(&name)
                .and_then(|v| v.parse().ok())
                .unwrap_or(default),
        )
    };
    let max_receive_count = attributes
        .get(&QueueAttributeName::RedrivePolicy)
        .and_then(|p| serde_json::from_str::<Value>(p).ok())
        .and_then(|p| match &p["maxReceiveCount"] {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        })
        .map(|n| n as u32);
    Ok(QueueSettings {
        visibility_timeout: seconds(QueueAttributeName::VisibilityTimeout, 30),
        retention: seconds(QueueAttributeName::MessageRetentionPeriod, 345_600),
        max_receive_count,
    })
}

/// The event source mapping's handler: invoke the function with the batch, and read its answer
/// as Lambda does.
fn mapping_handler(
    runtime: Arc<RuntimeApi>,
    function: DeployedFunction,
    report_batch_item_failures: bool,
) -> SqsHandler {
    Arc::new(move |event: SqsEvent| -> HandlerFuture {
        let runtime = runtime.clone();
        let function = function.clone();
        Box::pin(async move {
            let ids: Vec<String> = event
                .records
                .iter()
                .filter_map(|r| r.message_id.clone())
                .collect();
            let trace = event
                .records
                .first()
                .and_then(|r| r.attributes.get("AWSTraceHeader").cloned())
                .unwrap_or_else(gateway::new_trace_header);
            let payload = match serde_json::to_vec(&event) {
                Ok(payload) => Bytes::from(payload),
                Err(_) => return crate::emulate::all_failed(&ids),
            };
            let outcome = runtime
                .invoke(
                    &function.name,
                    &function.arn,
                    payload,
                    function.timeout,
                    trace,
                )
                .await;
            batch_outcome(outcome, &ids, report_batch_item_failures, &function.name)
        })
    })
}

fn all_failed(ids: &[String]) -> SqsBatchResponse {
    shared::lambda::batch_response(ids.iter().cloned())
}

/// What Lambda makes of a function's answer to an SQS batch: with ReportBatchItemFailures, the
/// named records are retried (an empty or unknown identifier fails the whole batch); without
/// it, any answer deletes the batch. An error or a timeout retries the whole batch.
pub fn batch_outcome(
    outcome: InvokeOutcome,
    ids: &[String],
    report_batch_item_failures: bool,
    function: &str,
) -> SqsBatchResponse {
    let payload = match outcome {
        InvokeOutcome::Response(payload) => payload,
        other => {
            tracing::warn!(function, outcome = ?other, records = ids.len(), "the invocation failed; the whole batch will be retried");
            return all_failed(ids);
        }
    };
    if !report_batch_item_failures {
        return SqsBatchResponse::default();
    }
    if payload.is_empty() || payload.as_ref() == b"null" {
        return SqsBatchResponse::default();
    }
    let Ok(response) = serde_json::from_slice::<SqsBatchResponse>(&payload) else {
        tracing::warn!(
            function,
            "the batch response is not a partial batch response; the whole batch will be retried"
        );
        return all_failed(ids);
    };
    let known = response
        .batch_item_failures
        .iter()
        .all(|f| ids.contains(&f.item_identifier));
    if known {
        response
    } else {
        tracing::warn!(
            function,
            "the batch response names a record not in the batch; the whole batch will be retried"
        );
        all_failed(ids)
    }
}

/// What `scripts/redis.sh run` exports besides `RANK_INDEX_URL`: the same server's TLS address
/// and the CA its certificate is from.
pub const RANK_INDEX_TLS_URL_VARIABLE: &str = "RANK_INDEX_TLS_URL";
pub const RANK_INDEX_CA_FILE_VARIABLE: &str = "RANK_INDEX_CA_FILE";

/// A variable naming the Redis cluster that stands in for the cache; panics saying what to do
/// when it is not set.
fn stand_in_variable(name: &str) -> String {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => value,
        _ => panic!(
            "{name} is not set: the emulated ranker and boards need a Redis cluster (with TLS, as \
             the cache has) standing in for the cache; run the tests through \
             `scripts/redis.sh run -- scripts/moto.sh run -- cargo test` (make test does)"
        ),
    }
}

/// For tests: an emulation in the moto that `MOTO_ENDPOINT` names, with the Redis cluster that
/// `scripts/redis.sh` started standing in for the cache (the functions over TLS), as its own stack (and rank index
/// namespace), on an ephemeral port, with `users` seeded; `EMULATE_ECHO_LOGS` echoes the
/// functions' logs. Panics saying what to do when it cannot start.
pub async fn start_for_tests(
    users: Vec<User>,
    configure: impl FnOnce(&mut EmulationOptions),
) -> Emulation {
    let moto_endpoint = match std::env::var("MOTO_ENDPOINT") {
        Ok(endpoint) if !endpoint.is_empty() => endpoint,
        _ => panic!(
            "MOTO_ENDPOINT is not set: the emulated deployment runs in moto; run the tests \
             through `scripts/moto.sh run -- cargo test` after `scripts/emulate.sh prepare` \
             (make test does both)"
        ),
    };
    let mut options = EmulationOptions {
        prepared: prepare_dir(),
        moto_endpoint,
        bin_dir: default_bin_dir(),
        stack_name: format!("emu-{}", &uuid::Uuid::now_v7().simple().to_string()[20..]),
        gateway_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        users,
        echo_logs: std::env::var_os(ECHO_LOGS_VARIABLE).is_some(),
        encode_every_body: false,
        rank_index: RankIndexStandIn {
            url: stand_in_variable(RANK_INDEX_TLS_URL_VARIABLE),
            ca_file: Some(PathBuf::from(stand_in_variable(
                RANK_INDEX_CA_FILE_VARIABLE,
            ))),
            harness_url: stand_in_variable(RANK_INDEX_URL),
            namespace: String::new(),
        },
    };
    options.rank_index.namespace = options.stack_name.clone();
    configure(&mut options);
    match Emulation::start(options).await {
        Ok(emulation) => emulation,
        Err(error) => panic!("the emulated deployment did not start: {error}"),
    }
}

impl Emulation {
    /// Deploys the prepared template into moto and starts everything.
    pub async fn start(options: EmulationOptions) -> Result<Self, EmulationError> {
        let (template_path, assets_path) = synthesized(&options.prepared)?;
        let template = Template::read(&template_path)?;
        let minter = minter(&options.prepared)?;
        let moto = Moto::new(&options.moto_endpoint);

        moto.put_parameter(BOOTSTRAP_VERSION_PARAMETER, "30")
            .await?;
        let template_url = upload_assets(&moto, &template_path, &assets_path).await?;
        let resources = moto
            .create_stack(&options.stack_name, &template_url, STACK_CREATE_TIMEOUT)
            .await?;
        let output = |name: &str| {
            resources
                .outputs
                .get(name)
                .cloned()
                .ok_or_else(|| EmulationError::Deployed(format!("the output {name}")))
        };

        let sdk_config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(REGION))
            .endpoint_url(moto.endpoint())
            .credentials_provider(credentials_for(&access_key_for(
                &options.stack_name,
                "harness",
            )))
            .load()
            .await;
        let clients = AwsClients::new(&sdk_config);

        let runtime = Arc::new(
            RuntimeApi::start()
                .await
                .map_err(|e| setup("starting the Lambda Runtime API")(e.to_string()))?,
        );
        let logs = LogSink::new(options.echo_logs);
        let mut functions = Vec::new();
        let mut supervisors = Vec::new();
        for (output_name, binary) in FUNCTIONS {
            let name = output(output_name)?;
            let logical_id = template.output_ref(output_name)?;
            let configuration = moto.function_configuration(&name).await?;
            let mut function = DeployedFunction {
                binary,
                logical_id: logical_id.clone(),
                name: name.clone(),
                arn: configuration["FunctionArn"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                timeout: Duration::from_secs(configuration["Timeout"].as_u64().unwrap_or(3)),
                role_logical_id: template
                    .resource(&logical_id)
                    .and_then(|f| template::referenced_id(&f["Properties"]["Role"])),
                environment: BTreeMap::new(),
                access_key_id: access_key_for(&options.stack_name, binary),
            };
            let runtime_api = runtime.register(&name);
            function.environment = lambda_environment(
                &template,
                &function,
                &configuration,
                &runtime_api,
                moto.endpoint(),
                &options.rank_index,
            );
            let binary_path = options.bin_dir.join(binary);
            if !binary_path.is_file() {
                return Err(EmulationError::Prepared(format!(
                    "{} is missing: build the functions for this machine first (cargo build --workspace --bins)",
                    binary_path.display()
                )));
            }
            supervisors.push(Supervisor::start(
                FunctionProcess {
                    name: name.clone(),
                    binary: binary_path,
                    environment: function.environment.clone(),
                },
                logs.clone(),
            ));
            functions.push(function);
        }

        // Event source mappings: read, disabled in moto, played here.
        let stream_mappings =
            stream_mappings_of(&template, &resources, &functions, &clients.dynamodb).await?;
        let mut mappings = Vec::new();
        for function in &functions {
            for mapping in moto.event_source_mappings(&function.name).await? {
                let uuid = mapping["UUID"].as_str().unwrap_or_default();
                moto.disable_event_source_mapping(uuid).await?;
                let queue_arn = mapping["EventSourceArn"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let url = queue_url(moto.endpoint(), &queue_arn);
                let QueueSettings {
                    visibility_timeout,
                    max_receive_count,
                    ..
                } = queue_settings(&clients.sqs, &url).await?;
                let report_batch_item_failures = mapping["FunctionResponseTypes"]
                    .as_array()
                    .is_some_and(|t| t.iter().any(|t| t == "ReportBatchItemFailures"));
                mappings.push(DeployedMapping {
                    function: function.name.clone(),
                    queue_url: url,
                    queue_arn,
                    poll: PollSettings {
                        batch_size: mapping["BatchSize"].as_u64().unwrap_or(10) as usize,
                        wait: Duration::from_secs(1),
                        batching_window: Duration::from_secs(
                            mapping["MaximumBatchingWindowInSeconds"]
                                .as_u64()
                                .unwrap_or(0),
                        ),
                    },
                    report_batch_item_failures,
                    visibility_timeout,
                    max_receive_count,
                });
            }
        }

        // Seed the users, and tap the topic for the observer and the printed notifications.
        let users_table = output("UsersTableName")?;
        let directory = DynamoUserDirectory::new(clients.dynamodb.clone(), &users_table);
        for user in &options.users {
            directory
                .put_user(user)
                .await
                .map_err(|e| setup(format!("seeding user {}", user.user_id))(e.to_string()))?;
        }
        let topic_arn = output("RejectionsTopicArn")?;
        let tap = ensure_queue_with_dead_letters(
            &clients.sqs,
            &format!("{}-notifications-tap", options.stack_name),
            QueueProvisioning {
                visibility_timeout_seconds: 30,
                max_receive_count: 5,
            },
        )
        .await
        .map_err(|e| setup("creating the notifications tap")(e.to_string()))?;
        subscribe_queue_to_topic(&clients, &topic_arn, &tap.queue_url, &[])
            .await
            .map_err(|e| setup("subscribing the tap to the topic")(e.to_string()))?;

        let submissions_queue_url = output("SubmissionsQueueUrl")?;
        let submissions_mapping = mappings
            .iter()
            .find(|m| {
                m.queue_url
                    .ends_with(submissions_queue_url.rsplit('/').next().unwrap_or("?"))
            })
            .ok_or_else(|| {
                EmulationError::Deployed(
                    "an event source mapping on the submissions queue".to_owned(),
                )
            })?;
        let aws_resources = AwsResources {
            submissions_table: output("SubmissionsTableName")?,
            users_table,
            quotas_table: resources.outputs.get("QuotasTableName").cloned(),
            submissions_queue_url,
            submissions_dlq_url: Some(output("SubmissionsDeadLetterQueueUrl")?),
            rejections_queue_url: output("RejectionsQueueUrl")?,
            rejections_dlq_url: Some(output("RejectionsDeadLetterQueueUrl")?),
            rejections_topic_arn: topic_arn,
            notifications_tap_url: Some(tap.queue_url.clone()),
        };
        // The boards the deployed functions keep, for the checks that read them directly.
        let rank_index = RedisRankIndex::with_namespace(
            &options.rank_index.harness_url,
            &options.rank_index.namespace,
        )
        .map_err(|e| setup("connecting to the rank index stand-in")(e.to_string()))?;
        let mut backend = aws_backend(
            &clients,
            aws_resources,
            submissions_mapping.visibility_timeout,
            moto.endpoint(),
            Arc::new(rank_index),
        );
        backend.label = "emulated";
        backend.max_receive_count = submissions_mapping.max_receive_count;

        // API Gateway.
        let stage = template.stage_name()?;
        let mut routes = Vec::new();
        for route in template.routes()? {
            let Some(function) = functions
                .iter()
                .find(|f| f.logical_id == route.function_logical_id)
            else {
                return Err(EmulationError::Deployed(format!(
                    "the function of route {}",
                    route.route_key
                )));
            };
            if route.payload_format_version != "2.0" {
                return Err(EmulationError::Deployed(format!(
                    "payload format 2.0 on route {} (it has {})",
                    route.route_key, route.payload_format_version
                )));
            }
            routes.push(Route {
                route_key: route.route_key,
                function_name: function.name.clone(),
                function_arn: function.arn.clone(),
                timeout: route.timeout,
            });
        }
        let running = gateway::serve(
            options.gateway_addr,
            GatewaySettings {
                api_id: format!("emu{}", &uuid::Uuid::now_v7().simple().to_string()[..7]),
                stage,
                routes,
                encode_every_body: options.encode_every_body,
            },
            runtime.clone(),
        )
        .await
        .map_err(|e| setup(format!("listening on {}", options.gateway_addr))(e.to_string()))?;

        // The event source mappings.
        let (stop_consumers, consumers_stopped) = watch::channel(false);
        let mut consumers = Vec::new();
        for mapping in &mappings {
            let function = function_named(&functions, &mapping.function)?;
            // Lambda's poller receives and deletes with the function's role: so does this one.
            let poller = aws_sdk_sqs::Client::from_conf(
                aws_sdk_sqs::config::Builder::from(&sdk_config)
                    .credentials_provider(credentials_for(&function.access_key_id))
                    .build(),
            );
            let source =
                SqsSource::new(poller, &mapping.queue_url).with_arn(&mapping.queue_arn, REGION);
            consumers.push(spawn_consumer(
                Arc::new(source),
                mapping_handler(
                    runtime.clone(),
                    function,
                    mapping.report_batch_item_failures,
                ),
                mapping.poll,
                consumers_stopped.clone(),
            ));
        }

        // The stream mappings (the ranker's): a drain waits until they have caught up.
        let mut ranking = None;
        for mapping in &stream_mappings {
            let function = function_named(&functions, &mapping.function)?;
            // Lambda reads the stream with the function's role: so does this poller.
            let stream = DynamoStreamFeed::of_stream(
                Moto::new(moto.endpoint()).as_caller(&function.access_key_id),
                &mapping.stream_arn,
            );
            let feed = stream_mapping::MappedFeed {
                stream: Arc::new(stream),
                filters: mapping.filters.clone(),
                batching_window: mapping.batching_window,
            };
            let (task, progress) = spawn_stream_consumer(
                Arc::new(feed),
                stream_mapping::stream_handler(
                    runtime.clone(),
                    function,
                    mapping.report_batch_item_failures,
                ),
                mapping.batch_size,
                STREAM_READ_WAIT,
                consumers_stopped.clone(),
            );
            consumers.push(task);
            if ranking.replace(progress).is_some() {
                return Err(EmulationError::Deployed(
                    "one stream mapping (the ranker's); the stack has more".to_owned(),
                ));
            }
        }

        let held: Vec<Box<dyn std::any::Any + Send + Sync>> =
            vec![Box::new(supervisors), Box::new(runtime.clone())];
        let stack = LocalStack::assembled(AssembledParts {
            url: format!("http://{}", running.addr),
            addr: running.addr,
            minter,
            backend,
            stop_http: running.stop,
            http: running.task,
            stop_consumers,
            consumers,
            ranking,
            held,
        });
        // What the policies name by attribute: the streams, as moto labelled them.
        let mut resources = resources;
        for mapping in &stream_mappings {
            resources.physical_ids.insert(
                format!("{}.StreamArn", mapping.table_logical_id),
                mapping.stream_arn.clone(),
            );
        }
        Ok(Self {
            stack_name: options.stack_name,
            stack,
            template,
            resources,
            functions,
            mappings,
            stream_mappings,
            logs,
            notifications_tap_url: tap.queue_url,
            runtime,
        })
    }
}

#[cfg(test)]
mod tests {
    use aws_lambda_events::event::sqs::BatchItemFailure;

    use super::*;

    fn ids() -> Vec<String> {
        vec!["a".to_owned(), "b".to_owned()]
    }

    fn failures(response: &SqsBatchResponse) -> Vec<&str> {
        response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect()
    }

    #[test]
    fn the_serverless_cache_goes_and_what_refers_to_it_reads_as_a_local_one() {
        let template = serde_json::json!({
            "Resources": {
                "RankIndex": {"Type": "AWS::ElastiCache::ServerlessCache", "Properties": {"Engine": "valkey"}},
                "Key": {"Type": "AWS::KMS::Key", "Properties": {"Tags": [{"Key": "a", "Value": "b"}]}},
                "Ranker1": {"Type": "AWS::Lambda::Function", "DependsOn": ["RankIndex", "Key"], "Properties": {
                    "Environment": {"Variables": {"RANK_INDEX_URL": {"Fn::Join": ["", [
                        "rediss://", {"Fn::GetAtt": ["RankIndex", "Endpoint.Address"]},
                        ":", {"Fn::GetAtt": ["RankIndex", "Endpoint.Port"]}]]}}}
                }}
            },
            "Outputs": {"RankIndexName": {"Value": {"Ref": "RankIndex"}}}
        });
        let out: Value =
            serde_json::from_slice(&moto_compatible(template.to_string().as_bytes()).unwrap())
                .unwrap();
        assert!(out["Resources"].get("RankIndex").is_none());
        assert!(out["Resources"]["Key"]["Properties"].get("Tags").is_none());
        let ranker = &out["Resources"]["Ranker1"];
        assert_eq!(ranker["DependsOn"], serde_json::json!(["Key"]));
        assert_eq!(
            ranker["Properties"]["Environment"]["Variables"]["RANK_INDEX_URL"]["Fn::Join"][1],
            serde_json::json!(["rediss://", "127.0.0.1", ":", "6379"])
        );
        assert_eq!(
            out["Outputs"]["RankIndexName"]["Value"],
            "emulated-RankIndex"
        );
    }

    #[test]
    fn a_stream_mapping_goes_and_a_queue_mapping_stays() {
        let template = serde_json::json!({
            "Resources": {
                "Table": {"Type": "AWS::DynamoDB::Table"},
                "Ranker": {"Type": "AWS::Lambda::Function"},
                "RankerStream": {"Type": "AWS::Lambda::EventSourceMapping", "Properties": {
                    "FunctionName": {"Ref": "Ranker"},
                    "EventSourceArn": {"Fn::GetAtt": ["Table", "StreamArn"]}}},
                "ProcessorQueue": {"Type": "AWS::Lambda::EventSourceMapping", "DependsOn": ["RankerStream"], "Properties": {
                    "FunctionName": {"Ref": "Ranker"},
                    "EventSourceArn": {"Fn::GetAtt": ["Queue", "Arn"]}}}
            }
        });
        let out: Value =
            serde_json::from_slice(&moto_compatible(template.to_string().as_bytes()).unwrap())
                .unwrap();
        assert!(out["Resources"].get("RankerStream").is_none());
        assert_eq!(
            out["Resources"]["ProcessorQueue"]["DependsOn"],
            serde_json::json!([])
        );
        assert!(is_stream_mapping(&template["Resources"]["RankerStream"]));
        assert!(!is_stream_mapping(&template["Resources"]["ProcessorQueue"]));
    }

    #[test]
    fn a_batch_response_is_read_as_lambda_reads_it() {
        let mut named = SqsBatchResponse::default();
        let mut failure = BatchItemFailure::default();
        failure.item_identifier = "b".to_owned();
        named.batch_item_failures.push(failure);
        let payload = Bytes::from(serde_json::to_vec(&named).unwrap());

        let response = batch_outcome(InvokeOutcome::Response(payload.clone()), &ids(), true, "f");
        assert_eq!(failures(&response), ["b"]);
        let ignored = batch_outcome(InvokeOutcome::Response(payload), &ids(), false, "f");
        assert!(
            failures(&ignored).is_empty(),
            "without ReportBatchItemFailures the batch is done"
        );
        let unknown = batch_outcome(
            InvokeOutcome::Response(Bytes::from_static(
                br#"{"batchItemFailures":[{"itemIdentifier":"zz"}]}"#,
            )),
            &ids(),
            true,
            "f",
        );
        assert_eq!(failures(&unknown), ["a", "b"]);
        let timed_out = batch_outcome(InvokeOutcome::TimedOut, &ids(), true, "f");
        assert_eq!(failures(&timed_out), ["a", "b"]);
        let null = batch_outcome(
            InvokeOutcome::Response(Bytes::from_static(b"null")),
            &ids(),
            true,
            "f",
        );
        assert!(failures(&null).is_empty());
    }

    #[test]
    fn a_queue_arn_becomes_its_moto_url() {
        assert_eq!(
            queue_url(
                "http://127.0.0.1:5000",
                "arn:aws:sqs:us-east-1:123456789012:q-1"
            ),
            "http://127.0.0.1:5000/123456789012/q-1"
        );
    }
}
