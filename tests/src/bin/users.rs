//! `users`: add, suspend, re-activate and list users in the users directory (the DynamoDB users
//! table the processor authorizes against), and take a suspended cheater's scores off the
//! leaderboards. AWS endpoint, region and credentials come from the standard AWS environment, so
//! it works against AWS, moto or LocalStack alike.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use shared::aws::dynamodb::{DynamoSubmissionStore, DynamoUserDirectory};
use shared::aws::{AwsClients, load_sdk_config};
use shared::ids::UserId;
use shared::limits::STORE_WRITE_BATCH;
use shared::ports::{PortError, SubmissionStore};
use shared::record::revoke_accepted;
use shared::rejection::RejectionReason;
use shared::users::{SUBMIT_SCORES_PERMISSION, User, UserStatus};
use tokio::time::Instant;

/// How long the rewrites of one revocation may retry throttled items in all.
const REVOKE_WRITE_BUDGET: Duration = Duration::from_secs(120);

/// Manage the users directory of the score pipeline.
///
/// Changes reach the processor within its cache TTL (USER_CACHE_TTL_SECONDS, 60 s by default).
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// The users table (the processor's USERS_TABLE).
    #[arg(long, env = "USERS_TABLE")]
    table: String,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Add a user, or replace an existing one.
    Add {
        /// The user id: the `sub` claim of the user's tokens.
        user_id: String,
        /// Add the user suspended.
        #[arg(long)]
        suspended: bool,
        /// Permissions to grant (repeatable); by default the one needed to submit scores.
        #[arg(long = "permission", default_value = SUBMIT_SCORES_PERMISSION)]
        permissions: Vec<String>,
    },
    /// Suspend a user: their submissions are rejected with `suspended_user`.
    Suspend {
        user_id: String,
        /// Also rewrite every accepted submission of the user already stored as rejected with
        /// `suspended_user`, which takes those scores off every leaderboard. Submissions a warm
        /// processor accepts within its cache TTL after the suspension are not caught: run
        /// `suspend --revoke-scores` again after USER_CACHE_TTL_SECONDS.
        #[arg(long, requires = "submissions_table")]
        revoke_scores: bool,
        /// The submissions table (the processor's SUBMISSIONS_TABLE); needed by --revoke-scores.
        #[arg(long, env = "SUBMISSIONS_TABLE")]
        submissions_table: Option<String>,
    },
    /// Make a suspended user active again.
    Activate { user_id: String },
    /// List every user, one per line (`--json` for JSON lines).
    List {
        #[arg(long)]
        json: bool,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("users: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Rewrites the user's stored accepted submissions as rejected; returns how many.
async fn revoke(store: &DynamoSubmissionStore, user: &UserId) -> Result<usize, PortError> {
    let revoked = revoke_accepted(
        store.all_of_user(user).await?,
        RejectionReason::SuspendedUser,
        time::OffsetDateTime::now_utc(),
    );
    let deadline = Instant::now() + REVOKE_WRITE_BUDGET;
    for chunk in revoked.chunks(STORE_WRITE_BATCH) {
        let report = store.write(chunk, deadline).await?;
        if !report.failed.is_empty() {
            return Err(PortError::Throttled {
                service: "dynamodb",
                detail: format!(
                    "{} submission(s) could not be rewritten in time; run the command again",
                    report.failed.len()
                ),
            });
        }
    }
    Ok(revoked.len())
}

async fn run(args: Args) -> Result<(), String> {
    let clients = AwsClients::new(&load_sdk_config().await);
    let directory = DynamoUserDirectory::new(clients.dynamodb.clone(), &args.table);
    let parse = |raw: &str| UserId::parse(raw).map_err(|e| format!("user id {raw:?} {e}"));
    let failed = |e: shared::ports::PortError| format!("{e} (table {})", args.table);
    match args.command {
        Command::Add {
            user_id,
            suspended,
            permissions,
        } => {
            let user = User {
                user_id: parse(&user_id)?,
                status: if suspended {
                    UserStatus::Suspended
                } else {
                    UserStatus::Active
                },
                permissions,
            };
            directory.put_user(&user).await.map_err(failed)?;
            eprintln!("added {user_id}");
        }
        Command::Suspend {
            user_id,
            revoke_scores,
            submissions_table,
        } => {
            let user = parse(&user_id)?;
            directory
                .set_status(&user, UserStatus::Suspended)
                .await
                .map_err(failed)?;
            eprintln!("suspended {user_id}");
            if let (true, Some(table)) = (revoke_scores, submissions_table) {
                let store = DynamoSubmissionStore::new(clients.dynamodb.clone(), &table);
                let revoked = revoke(&store, &user)
                    .await
                    .map_err(|e| format!("{e} (table {table})"))?;
                eprintln!(
                    "{revoked} accepted submission(s) of {user_id} revoked (stored as rejected: suspended_user), off every leaderboard"
                );
            }
        }
        Command::Activate { user_id } => {
            directory
                .set_status(&parse(&user_id)?, UserStatus::Active)
                .await
                .map_err(failed)?;
            eprintln!("activated {user_id}");
        }
        Command::List { json } => {
            let mut users = directory.list_users().await.map_err(failed)?;
            users.sort_by(|a, b| a.user_id.cmp(&b.user_id));
            for user in users {
                if json {
                    println!(
                        "{}",
                        serde_json::to_string(&user).map_err(|e| e.to_string())?
                    );
                } else {
                    let status = match user.status {
                        UserStatus::Active => "active",
                        UserStatus::Suspended => "suspended",
                    };
                    println!("{}\t{status}\t{}", user.user_id, user.permissions.join(","));
                }
            }
        }
    }
    Ok(())
}
