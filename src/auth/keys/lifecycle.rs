//! Key states, all derived from activation times (see the module docs of `keys`).

use std::sync::Arc;

use super::jwk::KeyMaterial;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    Pending,
    Active,
    Verifying,
    Retired,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Pending => "pending",
            KeyState::Active => "active",
            KeyState::Verifying => "verifying",
            KeyState::Retired => "retired",
        }
    }
}

/// The keys in activation order, each with its state at `now`. A superseded key retires
/// `retire_after_secs` (access token TTL + leeway) after its successor activates.
pub(super) fn timeline(
    mut keys: Vec<Arc<KeyMaterial>>,
    now: i64,
    retire_after_secs: i64,
) -> Vec<(Arc<KeyMaterial>, KeyState)> {
    keys.sort_by(|a, b| (a.activate_at, &a.kid).cmp(&(b.activate_at, &b.kid)));
    let activated: Vec<i64> = keys.iter().map(|k| k.activate_at).filter(|at| *at <= now).collect();
    let active_index = activated.len().checked_sub(1);
    keys.into_iter()
        .enumerate()
        .map(|(index, key)| {
            let state = if key.activate_at > now {
                KeyState::Pending
            } else if Some(index) == active_index {
                KeyState::Active
            } else {
                // The next key to activate ended this one's signing.
                let superseded_at = activated[index + 1];
                if now > superseded_at + retire_after_secs { KeyState::Retired } else { KeyState::Verifying }
            };
            (key, state)
        })
        .collect()
}
