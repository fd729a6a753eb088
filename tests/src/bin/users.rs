//! `users`: add, suspend, re-activate and list users in the users directory (the DynamoDB users
//! table the processor authorizes against). AWS endpoint, region and credentials come from the
//! standard AWS environment, so it works against AWS, moto or LocalStack alike.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use shared::aws::dynamodb::DynamoUserDirectory;
use shared::aws::{AwsClients, load_sdk_config};
use shared::ids::UserId;
use shared::users::{SUBMIT_SCORES_PERMISSION, User, UserStatus};

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
    Suspend { user_id: String },
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

async fn run(args: Args) -> Result<(), String> {
    let clients = AwsClients::new(&load_sdk_config().await);
    let directory = DynamoUserDirectory::new(clients.dynamodb, &args.table);
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
        Command::Suspend { user_id } => {
            directory
                .set_status(&parse(&user_id)?, UserStatus::Suspended)
                .await
                .map_err(failed)?;
            eprintln!("suspended {user_id}");
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
