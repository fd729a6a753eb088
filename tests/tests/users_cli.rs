//! The `users` operator tool against moto: add, suspend, activate, list.

use std::process::{Command, Output};

use serde_json::Value;
use shared::aws::provision::ensure_users_table;
use shared::aws::{AwsClients, load_sdk_config};

fn users(table: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_users"))
        .arg("--table")
        .arg(table)
        .args(args)
        .output()
        .expect("the users tool runs")
}

fn listed(table: &str) -> Vec<Value> {
    let output = users(table, &["list", "--json"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[tokio::test]
async fn operators_add_suspend_activate_and_list_users() {
    assert!(
        std::env::var("MOTO_ENDPOINT").is_ok_and(|v| !v.is_empty()),
        "MOTO_ENDPOINT is not set: run this test through `scripts/moto.sh run -- cargo test` (make test does this)"
    );
    let clients = AwsClients::new(&load_sdk_config().await);
    let table = format!(
        "users-cli-{}",
        &uuid::Uuid::now_v7().simple().to_string()[20..]
    );
    ensure_users_table(&clients.dynamodb, &table).await.unwrap();

    assert!(users(&table, &["add", "zoe"]).status.success());
    assert!(
        users(
            &table,
            &["add", "yann", "--suspended", "--permission", "profile:read"]
        )
        .status
        .success()
    );
    let all = listed(&table);
    assert_eq!(all.len(), 2);
    assert_eq!(all[0]["userId"], "yann");
    assert_eq!(all[0]["status"], "suspended");
    assert_eq!(all[1]["userId"], "zoe");
    assert_eq!(all[1]["permissions"][0], "scores:submit");

    assert!(users(&table, &["suspend", "zoe"]).status.success());
    assert_eq!(listed(&table)[1]["status"], "suspended");
    assert!(users(&table, &["activate", "zoe"]).status.success());
    assert_eq!(listed(&table)[1]["status"], "active");

    let missing = users(&table, &["suspend", "nobody"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not in the directory"));
}
