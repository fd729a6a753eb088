//! The users directory's view of a user: the state that authorization needs.

use serde::{Deserialize, Serialize};

use crate::ids::UserId;

/// The permission a user needs for their scores to be accepted.
pub const SUBMIT_SCORES_PERMISSION: &str = "scores:submit";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    Active,
    Suspended,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub user_id: UserId,
    pub status: UserStatus,
    #[serde(default)]
    pub permissions: Vec<String>,
}

impl User {
    /// An active user allowed to submit scores.
    pub fn active(user_id: UserId) -> Self {
        Self {
            user_id,
            status: UserStatus::Active,
            permissions: vec![SUBMIT_SCORES_PERMISSION.to_owned()],
        }
    }

    /// A suspended user (who otherwise holds the submit permission).
    pub fn suspended(user_id: UserId) -> Self {
        Self {
            status: UserStatus::Suspended,
            ..Self::active(user_id)
        }
    }

    pub fn may_submit_scores(&self) -> bool {
        self.permissions
            .iter()
            .any(|p| p == SUBMIT_SCORES_PERMISSION)
    }
}

/// A directory entry that exists but cannot be read as a user (written by hand, or by another
/// version). Only that user's submissions wait for it to be fixed; the rest of a batch goes on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the directory entry of {user_id} cannot be read: {reason}")]
pub struct UnreadableUser {
    pub user_id: UserId,
    pub reason: String,
}

/// What the directory holds for one user id it has an entry for.
pub type DirectoryEntry = Result<User, UnreadableUser>;
