//! API Gateway HTTP API in front of the ingest function, as far as the deployed template
//! configures it: the routes (route keys and their Lambda proxy integrations, payload format
//! 2.0), the stage, and the integration timeout. Each HTTP request becomes the event API
//! Gateway would send, and the function's answer becomes the HTTP response API Gateway would
//! give, following the documented payload format:
//!
//! - header names are lowercased and repeated headers are folded into one, joined by commas;
//!   `cookie` headers go to `cookies`, one entry per cookie;
//! - `rawPath` is the path percent-decoded (HTTP APIs decode it; REST APIs and function URLs
//!   do not), `rawQueryString` stays as sent, and `queryStringParameters` folds repeated
//!   parameters with commas;
//! - a body whose content type is not textual arrives base64-encoded with `isBase64Encoded`;
//! - a function error is a 500 `{"message":"Internal Server Error"}`, an integration timeout a
//!   503 `{"message":"Service Unavailable"}`, as API Gateway answers them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::runtime_api::{InvokeOutcome, RuntimeApi};

/// API Gateway refuses request bodies over 10 MB.
const MAX_PAYLOAD_BYTES: usize = 10 * 1024 * 1024;

/// One route of the HTTP API and the function it integrates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// `$default`, or `METHOD /path/{param}` (`ANY` matches every method, `{name+}` the rest).
    pub route_key: String,
    pub function_name: String,
    pub function_arn: String,
    /// The integration's timeout (API Gateway's default is 30 s).
    pub timeout: Duration,
}

/// What the gateway needs from the deployment.
#[derive(Clone, Debug)]
pub struct GatewaySettings {
    pub api_id: String,
    pub stage: String,
    pub routes: Vec<Route>,
    /// Base64-encode text bodies too.
    pub encode_every_body: bool,
}

struct Gateway {
    settings: GatewaySettings,
    runtime: Arc<RuntimeApi>,
}

/// The gateway's server task; stops when `stop` turns true.
pub struct RunningGateway {
    pub addr: SocketAddr,
    pub stop: watch::Sender<bool>,
    pub task: JoinHandle<std::io::Result<()>>,
}

pub async fn serve(
    addr: SocketAddr,
    settings: GatewaySettings,
    runtime: Arc<RuntimeApi>,
) -> std::io::Result<RunningGateway> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let gateway = Arc::new(Gateway { settings, runtime });
    let router = Router::new().fallback(handle).with_state(gateway);
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        })
        .await
    });
    Ok(RunningGateway { addr, stop, task })
}

fn gateway_message(status: StatusCode, message: &str) -> Response {
    (
        status,
        [("content-type", "application/json")],
        json!({ "message": message }).to_string(),
    )
        .into_response()
}

async fn handle(
    State(gateway): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_PAYLOAD_BYTES).await else {
        return gateway_message(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large");
    };
    let raw_path = parts.uri.path();
    let path = decoded_path(raw_path);
    let method = parts.method.as_str();
    let Some((route, path_parameters)) = match_route(&gateway.settings.routes, method, &path)
    else {
        return gateway_message(StatusCode::NOT_FOUND, "Not Found");
    };
    let request_id = format!("{:016x}", rand::random::<u64>());
    let event = request_event(
        &gateway.settings,
        route,
        &EventParts {
            method,
            path: &path,
            raw_query: parts.uri.query().unwrap_or(""),
            headers: &parts.headers,
            body: &body,
            source_ip: peer.ip().to_string(),
            path_parameters,
            request_id: &request_id,
        },
    );
    let outcome = gateway
        .runtime
        .invoke(
            &route.function_name,
            &route.function_arn,
            Bytes::from(event.to_string()),
            route.timeout,
            new_trace_header(),
        )
        .await;
    let mut response = match outcome {
        InvokeOutcome::Response(payload) => function_response(&payload),
        InvokeOutcome::TimedOut => {
            gateway_message(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable")
        }
        InvokeOutcome::Error(detail) | InvokeOutcome::Unavailable(detail) => {
            tracing::warn!(function = %route.function_name, %detail, "the integration failed");
            gateway_message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
        }
    };
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("apigw-requestid", value);
    }
    response
}

/// An X-Ray trace header for a new trace, as Lambda starts one when tracing is active and the
/// caller sent none (HTTP APIs do not trace).
pub fn new_trace_header() -> String {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let root: u128 = rand::random();
    let parent: u64 = rand::random();
    format!(
        "Root=1-{now:08x}-{:024x};Parent={parent:016x};Sampled=1",
        root >> 32
    )
}

/// The path as HTTP APIs hand it on: percent-decoded (invalid UTF-8 kept as sent).
pub fn decoded_path(raw: &str) -> String {
    let bytes: Vec<u8> = percent_decode(raw.as_bytes());
    String::from_utf8(bytes).unwrap_or_else(|_| raw.to_owned())
}

fn percent_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'%' && i + 2 < input.len() {
            let hex = std::str::from_utf8(&input[i + 1..i + 3]).ok();
            if let Some(byte) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(input[i]);
        i += 1;
    }
    out
}

/// The route that takes `method path`: the most specific match, `$default` last.
pub fn match_route<'r>(
    routes: &'r [Route],
    method: &str,
    path: &str,
) -> Option<(&'r Route, Map<String, Value>)> {
    let mut best: Option<(&Route, Map<String, Value>, usize)> = None;
    for route in routes {
        if route.route_key == "$default" {
            continue;
        }
        let Some((route_method, template)) = route.route_key.split_once(' ') else {
            continue;
        };
        if route_method != "ANY" && !route_method.eq_ignore_ascii_case(method) {
            continue;
        }
        if let Some((parameters, literal_segments)) = match_template(template, path)
            && best
                .as_ref()
                .is_none_or(|(_, _, score)| literal_segments > *score)
        {
            best = Some((route, parameters, literal_segments));
        }
    }
    if let Some((route, parameters, _)) = best {
        return Some((route, parameters));
    }
    routes
        .iter()
        .find(|r| r.route_key == "$default")
        .map(|r| (r, Map::new()))
}

fn match_template(template: &str, path: &str) -> Option<(Map<String, Value>, usize)> {
    let mut parameters = Map::new();
    let mut literal = 0;
    let mut path_segments = path.trim_start_matches('/').split('/');
    let template_segments: Vec<&str> = template.trim_start_matches('/').split('/').collect();
    for (i, segment) in template_segments.iter().enumerate() {
        if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix("+}")) {
            if i + 1 != template_segments.len() {
                return None;
            }
            let rest: Vec<&str> = path_segments.collect();
            parameters.insert(name.to_owned(), Value::String(rest.join("/")));
            return Some((parameters, literal));
        }
        let actual = path_segments.next()?;
        if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            if actual.is_empty() {
                return None;
            }
            parameters.insert(name.to_owned(), Value::String(actual.to_owned()));
        } else if *segment == actual {
            literal += 1;
        } else {
            return None;
        }
    }
    path_segments
        .next()
        .is_none()
        .then_some((parameters, literal))
}

struct EventParts<'a> {
    method: &'a str,
    path: &'a str,
    raw_query: &'a str,
    headers: &'a HeaderMap,
    body: &'a [u8],
    source_ip: String,
    path_parameters: Map<String, Value>,
    request_id: &'a str,
}

/// Media types API Gateway passes as text; every other body is base64-encoded.
fn is_text(content_type: Option<&str>) -> bool {
    let Some(content_type) = content_type else {
        return false;
    };
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence.starts_with("text/")
        || matches!(
            essence.as_str(),
            "application/json" | "application/javascript" | "application/xml"
        )
        || essence.ends_with("+json")
        || essence.ends_with("+xml")
}

fn request_event(settings: &GatewaySettings, route: &Route, parts: &EventParts<'_>) -> Value {
    let mut headers = Map::new();
    let mut cookies = Vec::new();
    for (name, value) in parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        if name == "cookie" {
            cookies.extend(value.split(';').map(|c| c.trim().to_owned()));
            continue;
        }
        match headers.get_mut(name.as_str()) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&value);
            }
            _ => {
                headers.insert(name.as_str().to_owned(), Value::String(value));
            }
        }
    }
    let host = headers
        .get("host")
        .and_then(Value::as_str)
        .unwrap_or("localhost")
        .to_owned();
    headers.insert("x-forwarded-proto".to_owned(), json!("http"));
    headers.insert("x-forwarded-for".to_owned(), json!(parts.source_ip));
    let mut query = Map::new();
    for (name, value) in form_urlencoded::parse(parts.raw_query.as_bytes()) {
        match query.get_mut(name.as_ref()) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&value);
            }
            _ => {
                query.insert(name.into_owned(), Value::String(value.into_owned()));
            }
        }
    }
    let content_type = headers.get("content-type").and_then(Value::as_str);
    let base64 = !parts.body.is_empty() && (settings.encode_every_body || !is_text(content_type));
    let now = time::OffsetDateTime::now_utc();
    let mut event = json!({
        "version": "2.0",
        "routeKey": route.route_key,
        "rawPath": parts.path,
        "rawQueryString": parts.raw_query,
        "headers": headers,
        "requestContext": {
            "accountId": super::ACCOUNT_ID,
            "apiId": settings.api_id,
            "domainName": host,
            "domainPrefix": host.split('.').next().unwrap_or_default(),
            "http": {
                "method": parts.method,
                "path": parts.path,
                "protocol": "HTTP/1.1",
                "sourceIp": parts.source_ip,
                "userAgent": headers.get("user-agent").and_then(Value::as_str).unwrap_or_default(),
            },
            "requestId": parts.request_id,
            "routeKey": route.route_key,
            "stage": settings.stage,
            "time": now.format(time::macros::format_description!(
                "[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000"
            )).unwrap_or_default(),
            "timeEpoch": now.unix_timestamp() * 1000 + i64::from(now.millisecond()),
        },
        "isBase64Encoded": base64,
    });
    if !cookies.is_empty() {
        event["cookies"] = json!(cookies);
    }
    if !query.is_empty() {
        event["queryStringParameters"] = Value::Object(query);
    }
    if !parts.path_parameters.is_empty() {
        event["pathParameters"] = Value::Object(parts.path_parameters.clone());
    }
    if !parts.body.is_empty() {
        event["body"] = if base64 {
            json!(BASE64.encode(parts.body))
        } else {
            json!(String::from_utf8_lossy(parts.body))
        };
    }
    event
}

/// The HTTP response API Gateway makes of a payload format 2.0 answer.
fn function_response(payload: &[u8]) -> Response {
    let Ok(answer) = serde_json::from_slice::<Value>(payload) else {
        return gateway_message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
    };
    let Some(status) = answer.get("statusCode").and_then(Value::as_u64) else {
        // Without a statusCode, API Gateway takes the whole answer as a JSON body.
        return (
            StatusCode::OK,
            [("content-type", "application/json")],
            answer.to_string(),
        )
            .into_response();
    };
    let Some(status) = u16::try_from(status)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
    else {
        return gateway_message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
    };
    let body = match answer.get("body").and_then(Value::as_str) {
        None => Vec::new(),
        Some(text) if answer["isBase64Encoded"].as_bool() == Some(true) => {
            match BASE64.decode(text) {
                Ok(bytes) => bytes,
                Err(_) => {
                    return gateway_message(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "Internal Server Error",
                    );
                }
            }
        }
        Some(text) => text.as_bytes().to_vec(),
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    if let Some(headers) = answer.get("headers").and_then(Value::as_object) {
        for (name, value) in headers {
            let (Ok(name), Some(Ok(value))) = (
                HeaderName::from_bytes(name.as_bytes()),
                value.as_str().map(HeaderValue::from_str),
            ) else {
                continue;
            };
            response.headers_mut().insert(name, value);
        }
    }
    if let Some(cookies) = answer.get("cookies").and_then(Value::as_array) {
        for cookie in cookies.iter().filter_map(Value::as_str) {
            if let Ok(value) = HeaderValue::from_str(cookie) {
                response.headers_mut().append("set-cookie", value);
            }
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(key: &str) -> Route {
        Route {
            route_key: key.to_owned(),
            function_name: "f".to_owned(),
            function_arn: "arn".to_owned(),
            timeout: Duration::from_secs(30),
        }
    }

    #[test]
    fn the_most_specific_route_wins_and_default_takes_the_rest() {
        let routes = [
            route("$default"),
            route("GET /v1/submissions/{id}"),
            route("ANY /v1/{proxy+}"),
        ];
        let (r, params) = match_route(&routes, "GET", "/v1/submissions/abc").unwrap();
        assert_eq!(r.route_key, "GET /v1/submissions/{id}");
        assert_eq!(params["id"], "abc");
        let (r, params) = match_route(&routes, "POST", "/v1/scores/x").unwrap();
        assert_eq!(r.route_key, "ANY /v1/{proxy+}");
        assert_eq!(params["proxy"], "scores/x");
        let (r, _) = match_route(&routes, "GET", "/other").unwrap();
        assert_eq!(r.route_key, "$default");
        assert!(match_route(&routes[1..2], "GET", "/other").is_none());
    }

    #[test]
    fn paths_are_decoded_as_http_apis_decode_them() {
        assert_eq!(decoded_path("/v1/submissions/a%20b"), "/v1/submissions/a b");
        assert_eq!(decoded_path("/x%2Fy"), "/x/y");
        assert_eq!(decoded_path("/bad%zz%"), "/bad%zz%");
        assert_eq!(decoded_path("/%"), "/%");
    }

    #[test]
    fn repeated_headers_fold_and_binary_bodies_are_base64() {
        let settings = GatewaySettings {
            api_id: "api".to_owned(),
            stage: "$default".to_owned(),
            routes: vec![route("$default")],
            encode_every_body: false,
        };
        let mut headers = HeaderMap::new();
        headers.append("X-Thing", HeaderValue::from_static("a"));
        headers.append("X-Thing", HeaderValue::from_static("b"));
        headers.append("cookie", HeaderValue::from_static("c1=1; c2=2"));
        headers.append(
            "content-type",
            HeaderValue::from_static("application/octet-stream"),
        );
        let event = request_event(
            &settings,
            &settings.routes[0],
            &EventParts {
                method: "POST",
                path: "/p",
                raw_query: "a=1&a=2&b=%20",
                headers: &headers,
                body: b"\x00\x01",
                source_ip: "127.0.0.1".to_owned(),
                path_parameters: Map::new(),
                request_id: "r",
            },
        );
        assert_eq!(event["headers"]["x-thing"], "a,b");
        assert_eq!(event["cookies"], json!(["c1=1", "c2=2"]));
        assert_eq!(event["queryStringParameters"]["a"], "1,2");
        assert_eq!(event["queryStringParameters"]["b"], " ");
        assert_eq!(event["rawQueryString"], "a=1&a=2&b=%20");
        assert_eq!(event["isBase64Encoded"], true);
        assert_eq!(event["body"], "AAE=");
        assert!(is_text(Some("application/json; charset=utf-8")));
        assert!(is_text(Some("application/problem+json")));
        assert!(!is_text(None));
    }
}
