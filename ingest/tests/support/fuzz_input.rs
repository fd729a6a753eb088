//! Turning fuzzed bytes into requests, shared by the stable smoke run (`ingest/tests/fuzz_smoke.rs`)
//! and the coverage-guided target (`fuzz/fuzz_targets/request.rs`, which includes this file).

/// `/v1/leaderboards/<hero>?<query>` from the input split at its first `?`: every byte of the hero
/// id percent-encoded, and the query's bytes too except `&`, `=`, `+` and `%`, so the URI is
/// always valid, the parameters keep their shape, and the decoder meets raw `+` (a space) and
/// broken escapes such as `%ZZ` or a trailing `%`.
pub fn leaderboard_path(input: &[u8]) -> String {
    let split = input.iter().position(|&b| b == b'?').unwrap_or(input.len());
    let hero: String = form_urlencoded::byte_serialize(&input[..split]).collect();
    let query: String = input
        .get(split + 1..)
        .unwrap_or_default()
        .iter()
        .map(|&b| match b {
            b'&' | b'=' | b'+' | b'%' => char::from(b).to_string(),
            _ => form_urlencoded::byte_serialize(&[b]).collect(),
        })
        .collect();
    format!("/v1/leaderboards/{hero}?{query}")
}
