//! Hostile input against the HTTP API: forged and broken tokens, malicious bodies, poison in
//! the queue. Every case gets its specific, documented error — never a panic, never a 5xx.
//! The stack verifies ES256 tokens with a pinned key id, as a production deployment would.

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use pipeline_tests::backend::memory::memory_backend;
use pipeline_tests::{LocalStack, StackOptions, TokenMinter};
use serde_json::{Value, json};
use shared::auth::TokenAlgorithm;
use shared::ids::UserId;
use shared::limits::{MAX_BODY_BYTES, MAX_TOKEN_BYTES};
use shared::memory::QueueSettings;
use shared::users::User;
use time::OffsetDateTime;

const EC_PRIVATE: &str = include_str!("../../shared/testdata/ec-private.pem");
const EC_PUBLIC: &str = include_str!("../../shared/testdata/ec-public.pem");
const RSA_PRIVATE: &str = include_str!("../../shared/testdata/rsa-private.pem");
const KEY_ID: &str = "scores-2026-11";
const ISSUER: &str = "https://issuer.example";
const AUDIENCE: &str = "scores-api";

/// What a hostile request should get.
enum Expect {
    /// 401 whose WWW-Authenticate error_description contains this text.
    Unauthorized(&'static str),
    /// This status and problem type; for 400s, the JSON pointer (or header or parameter name) of
    /// the first error.
    Problem(u16, &'static str, Option<&'static str>),
}

struct Case {
    name: &'static str,
    token: Option<String>,
    path: String,
    content_type: Option<&'static str>,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    expect: Expect,
}

fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

fn claims() -> Value {
    json!({ "sub": "alice", "iss": ISSUER, "aud": AUDIENCE, "exp": now() + 600, "iat": now(), "jti": "j-1" })
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

fn header(algorithm: Algorithm, kid: Option<&str>) -> Header {
    let mut header = Header::new(algorithm);
    header.kid = kid.map(str::to_owned);
    header
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn minter() -> TokenMinter {
    TokenMinter::asymmetric(
        TokenAlgorithm::Es256,
        EC_PRIVATE,
        EC_PUBLIC,
        ISSUER,
        AUDIENCE,
    )
    .unwrap()
}

fn sign(claims: &Value) -> String {
    minter().mint_with_header(&header(Algorithm::ES256, Some(KEY_ID)), claims)
}

fn valid_body() -> Vec<u8> {
    br#"{"heroId":"storm","score":1}"#.to_vec()
}

fn jwt_case(name: &'static str, token: String, description: &'static str) -> Case {
    Case {
        name,
        token: Some(token),
        path: "/v1/scores".into(),
        content_type: Some("application/json"),
        headers: vec![],
        body: valid_body(),
        expect: Expect::Unauthorized(description),
    }
}

fn body_case(name: &'static str, body: impl Into<Vec<u8>>, expect: Expect) -> Case {
    Case {
        name,
        token: Some(sign(&claims())),
        path: "/v1/scores".into(),
        content_type: Some("application/json"),
        headers: vec![],
        body: body.into(),
        expect,
    }
}

fn cases() -> Vec<Case> {
    let payload = b64(claims().to_string().as_bytes());
    let good = sign(&claims());
    let nested = format!(
        r#"{{"heroId":"a","score":{}1{}}}"#,
        "[".repeat(5_000),
        "]".repeat(5_000)
    );
    let mut cases = vec![
        jwt_case(
            "alg none",
            format!(
                "{}.{payload}.",
                b64(br#"{"alg":"none","typ":"JWT","kid":"scores-2026-11"}"#)
            ),
            "expected algorithm",
        ),
        jwt_case(
            "HS256 signed with the ES256 public key",
            jsonwebtoken::encode(
                &header(Algorithm::HS256, Some(KEY_ID)),
                &claims(),
                &EncodingKey::from_secret(EC_PUBLIC.as_bytes()),
            )
            .unwrap(),
            "expected algorithm",
        ),
        jwt_case(
            "RS256 token for an ES256 deployment",
            jsonwebtoken::encode(
                &header(Algorithm::RS256, Some(KEY_ID)),
                &claims(),
                &EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap(),
            )
            .unwrap(),
            "expected algorithm",
        ),
        jwt_case(
            "expired",
            sign(&with(claims(), "exp", json!(now() - 3600))),
            "expired",
        ),
        jwt_case(
            "not yet valid",
            sign(&with(claims(), "nbf", json!(now() + 3600))),
            "not valid yet",
        ),
        jwt_case(
            "wrong issuer",
            sign(&with(claims(), "iss", json!("https://evil.example"))),
            "another issuer",
        ),
        jwt_case(
            "wrong audience",
            sign(&with(claims(), "aud", json!("billing-api"))),
            "another audience",
        ),
        jwt_case(
            "bad signature",
            format!("{}.{}", good.rsplit_once('.').unwrap().0, b64(&[7u8; 64])),
            "signature is invalid",
        ),
        jwt_case(
            "payload swapped under a valid signature",
            {
                let (head_and_payload, signature) = good.rsplit_once('.').unwrap();
                let head = head_and_payload.split('.').next().unwrap();
                let forged = b64(with(claims(), "sub", json!("mallory"))
                    .to_string()
                    .as_bytes());
                format!("{head}.{forged}.{signature}")
            },
            "signature is invalid",
        ),
        jwt_case(
            "truncated",
            good[..good.len() / 2].to_owned(),
            "not a well-formed JWT",
        ),
        jwt_case("not a JWT at all", "hello".into(), "not a well-formed JWT"),
        jwt_case(
            "oversized header",
            format!(
                "{}.{payload}.sig",
                b64(
                    format!(r#"{{"alg":"ES256","x":"{}"}}"#, "x".repeat(MAX_TOKEN_BYTES))
                        .as_bytes()
                )
            ),
            "larger than",
        ),
        jwt_case(
            "unknown kid",
            minter().mint_with_header(
                &header(Algorithm::ES256, Some("someone-elses-key")),
                &claims(),
            ),
            "unknown key",
        ),
        jwt_case(
            "no kid",
            minter().mint_with_header(&header(Algorithm::ES256, None), &claims()),
            "unknown key",
        ),
        jwt_case(
            "control characters in the subject",
            sign(&with(claims(), "sub", json!("al\u{0}ice"))),
            "not a valid user id",
        ),
        body_case(
            "over the size limit",
            vec![b' '; MAX_BODY_BYTES + 1],
            Expect::Problem(413, "payload-too-large", None),
        ),
        body_case(
            "deeply nested JSON",
            nested,
            Expect::Problem(400, "invalid-json", None),
        ),
        body_case(
            "invalid UTF-8",
            b"{\"heroId\":\"\xff\xfe\",\"score\":1}".to_vec(),
            Expect::Problem(400, "invalid-json", None),
        ),
        body_case(
            "empty body",
            Vec::new(),
            Expect::Problem(400, "invalid-json", None),
        ),
        body_case(
            "truncated JSON",
            r#"{"heroId":"a","sco"#,
            Expect::Problem(400, "invalid-json", None),
        ),
        body_case(
            "a JSON array",
            "[1,2,3]",
            Expect::Problem(400, "validation-failed", Some("")),
        ),
        body_case(
            "duplicate keys",
            r#"{"heroId":"a","score":1,"score":1000000000}"#,
            Expect::Problem(400, "validation-failed", Some("/score")),
        ),
        body_case(
            "unknown fields",
            r#"{"heroId":"a","score":1,"isAdmin":true}"#,
            Expect::Problem(400, "validation-failed", Some("/isAdmin")),
        ),
        body_case(
            "float score",
            r#"{"heroId":"a","score":1.5}"#,
            Expect::Problem(400, "validation-failed", Some("/score")),
        ),
        body_case(
            "negative score",
            r#"{"heroId":"a","score":-1}"#,
            Expect::Problem(400, "validation-failed", Some("/score")),
        ),
        body_case(
            "overflowing score",
            r#"{"heroId":"a","score":99999999999999999999999}"#,
            Expect::Problem(400, "validation-failed", Some("/score")),
        ),
        body_case(
            "score as a string",
            r#"{"heroId":"a","score":"1"}"#,
            Expect::Problem(400, "validation-failed", Some("/score")),
        ),
        body_case(
            "control characters in heroId",
            r#"{"heroId":"a\u0000b","score":1}"#,
            Expect::Problem(400, "validation-failed", Some("/heroId")),
        ),
        body_case(
            "path separators in heroId",
            r#"{"heroId":"../../etc/passwd","score":1}"#,
            Expect::Problem(400, "validation-failed", Some("/heroId")),
        ),
        body_case(
            "control characters in clientRef",
            r#"{"heroId":"a","score":1,"clientRef":"x\ny"}"#,
            Expect::Problem(400, "validation-failed", Some("/clientRef")),
        ),
        body_case(
            "oversized batch",
            format!(
                r#"{{"submissions":[{}]}}"#,
                vec![r#"{"heroId":"a","score":1}"#; 101].join(",")
            ),
            Expect::Problem(400, "validation-failed", Some("/submissions")),
        ),
    ];
    cases.last_mut().unwrap().path = "/v1/scores/batch".into();
    let mut wrong_type = body_case(
        "wrong content type",
        valid_body(),
        Expect::Problem(415, "unsupported-media-type", None),
    );
    wrong_type.content_type = Some("text/plain");
    let mut no_type = body_case(
        "no content type",
        valid_body(),
        Expect::Problem(415, "unsupported-media-type", None),
    );
    no_type.content_type = None;
    let mut bad_key = body_case(
        "control characters in Idempotency-Key",
        valid_body(),
        Expect::Problem(400, "validation-failed", Some("Idempotency-Key")),
    );
    bad_key
        .headers
        .push(("idempotency-key", "key\twith\ttabs".into()));
    let mut traversal = body_case(
        "path separators in a submission id",
        Vec::new(),
        Expect::Problem(404, "not-found", None),
    );
    traversal.path = "/v1/submissions/..%2F..%2Fetc%2Fpasswd".into();
    let mut undecodable_id = body_case(
        "invalid UTF-8 in a submission id",
        Vec::new(),
        Expect::Problem(404, "not-found", None),
    );
    undecodable_id.path = "/v1/submissions/%FF%FE".into();
    cases.extend([wrong_type, no_type, bad_key, traversal, undecodable_id]);
    cases.extend(
        [
            (
                "path separators in a leaderboard hero id",
                "/v1/leaderboards/..%2F..%2Fetc%2Fpasswd",
                "heroId",
            ),
            (
                "invalid UTF-8 in a leaderboard hero id",
                "/v1/leaderboards/%FF%FE",
                "heroId",
            ),
            (
                "overflowing leaderboard limit",
                "/v1/leaderboards/storm?limit=99999999999999999999",
                "limit",
            ),
            (
                "negative leaderboard limit",
                "/v1/leaderboards/storm?limit=-1",
                "limit",
            ),
            (
                "repeated leaderboard limit",
                "/v1/leaderboards/storm?limit=1&limit=100",
                "limit",
            ),
            (
                "control characters in a query parameter name",
                "/v1/leaderboards/storm?%00%1B[2J=1",
                "(unprintable or overlong name)",
            ),
            (
                "a forged leaderboard cursor",
                "/v1/leaderboards/storm?cursor=eyJhZG1pbiI6dHJ1ZX0",
                "cursor",
            ),
            (
                "a leaderboard date far in the past",
                "/v1/leaderboards/storm?period=daily&date=0001-01-01",
                "date",
            ),
            (
                "control characters in a player id",
                "/v1/leaderboards/storm/players/a%00b",
                "userId",
            ),
            (
                "an overflowing around",
                "/v1/leaderboards/storm/players/me?around=99999999999999999999",
                "around",
            ),
        ]
        .map(|(name, path, parameter)| {
            let mut case = body_case(
                name,
                Vec::new(),
                Expect::Problem(400, "validation-failed", Some(parameter)),
            );
            case.path = path.into();
            case
        }),
    );
    cases
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hostile_request_gets_its_documented_error() {
    let mut options = StackOptions::for_tests(vec![User::active(UserId::parse("alice").unwrap())]);
    let mut minter_auth = minter().auth_config();
    minter_auth.key_id = Some(KEY_ID.to_owned());
    options.minter = minter();
    options.auth = Some(minter_auth);
    let settings = QueueSettings {
        visibility_timeout: Duration::from_millis(20),
        max_receive_count: 3,
    };
    let (backend, memory) = memory_backend(settings, None);
    let stack = LocalStack::start(options, backend).await.unwrap();
    let client = reqwest::Client::new();

    let cases = cases();
    for case in &cases {
        let mut request = if case.path.starts_with("/v1/submissions/")
            || case.path.starts_with("/v1/leaderboards/")
        {
            client.get(format!("{}{}", stack.url, case.path))
        } else {
            client
                .post(format!("{}{}", stack.url, case.path))
                .body(case.body.clone())
        };
        if let Some(token) = &case.token {
            request = request.bearer_auth(token);
        }
        if let Some(content_type) = case.content_type {
            request = request.header("content-type", content_type);
        }
        for (name, value) in &case.headers {
            request = request.header(*name, value);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let status = response.status().as_u16();
        let challenge = response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned());
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned());
        let body: Value = response
            .json()
            .await
            .unwrap_or_else(|e| panic!("{}: body is not JSON: {e}", case.name));
        assert!(status < 500, "{}: {status} {body}", case.name);
        assert_eq!(
            content_type.as_deref(),
            Some("application/problem+json"),
            "{}",
            case.name
        );
        match &case.expect {
            Expect::Unauthorized(description) => {
                assert_eq!(status, 401, "{}: {body}", case.name);
                assert_eq!(body["type"], "/problems/unauthorized", "{}", case.name);
                let challenge =
                    challenge.unwrap_or_else(|| panic!("{}: no WWW-Authenticate", case.name));
                assert!(
                    challenge.contains(description),
                    "{}: {challenge}",
                    case.name
                );
            }
            Expect::Problem(expected_status, slug, pointer) => {
                assert_eq!(status, *expected_status, "{}: {body}", case.name);
                assert_eq!(
                    body["type"],
                    format!("/problems/{slug}"),
                    "{}: {body}",
                    case.name
                );
                if let Some(pointer) = pointer {
                    let first = &body["errors"][0];
                    let at = first["pointer"]
                        .as_str()
                        .or(first["header"].as_str())
                        .or(first["parameter"].as_str());
                    assert_eq!(at, Some(*pointer), "{}: {body}", case.name);
                }
            }
        }
    }
    assert!(
        memory.store.is_empty() && memory.submissions.depth().is_drained(),
        "nothing hostile got in"
    );
    println!(
        "hostile cases: {} HTTP requests, all answered with their documented error",
        cases.len()
    );

    // The valid token itself works, so the refusals above are about what each case changed.
    let response = client
        .post(format!("{}/v1/scores", stack.url))
        .bearer_auth(sign(&claims()))
        .header("content-type", "application/json")
        .body(valid_body())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);

    // Queue-side poison: a malformed message fails only itself and is parked; the pipeline goes on.
    stack
        .backend
        .observe
        .send_raw_submission("\u{0}not json at all")
        .await
        .unwrap();
    stack
        .backend
        .observe
        .send_raw_submission(r#"{"v":99}"#)
        .await
        .unwrap();
    assert!(stack.wait_until_drained(Duration::from_secs(30)).await);
    assert_eq!(
        memory.submissions.dead_letters().len(),
        2,
        "both poison messages are parked"
    );
    assert_eq!(
        memory.store.len(),
        1,
        "the valid submission went through beside them"
    );
}
