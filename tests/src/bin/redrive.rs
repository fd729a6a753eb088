//! `redrive`: moves parked messages from a dead-letter queue back to the queue it serves, so the
//! pipeline processes them again: what `aws sqs start-message-move-task` does on AWS, for
//! endpoints without that call (moto) and for bounded moves. AWS endpoint, region and credentials
//! come from the standard AWS environment.
//!
//! A parked submission shows `failed` in the status API; after a redrive it reaches its outcome,
//! and the `failed` marker is replaced. Fix the cause first (the alarm and the processor's logs
//! name it), or the messages are parked again after the redrive limit.

use std::process::ExitCode;

use clap::Parser;
use shared::aws::sqs::move_messages;
use shared::aws::{AwsClients, load_sdk_config};

/// Move parked messages from a dead-letter queue back to their queue.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// The dead-letter queue's URL (the stack's SubmissionsDeadLetterQueueUrl or RejectionsDeadLetterQueueUrl output).
    #[arg(long)]
    from: String,
    /// The queue to move them to (SubmissionsQueueUrl or RejectionsQueueUrl).
    #[arg(long)]
    to: String,
    /// Move at most this many messages.
    #[arg(long, default_value_t = usize::MAX, hide_default_value = true)]
    max: usize,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let clients = AwsClients::new(&load_sdk_config().await);
    match move_messages(&clients.sqs, &args.from, &args.to, args.max).await {
        Ok(redriven) => {
            println!(
                "{}",
                serde_json::json!({ "moved": redriven.moved, "from": args.from, "to": args.to })
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!(
                "redrive: {error}. Check the queue URLs (the stack's outputs), the AWS region and \
                 credentials; messages already moved stay moved."
            );
            ExitCode::FAILURE
        }
    }
}
