// One schema for both backends: only types that diesel's `MultiConnection` maps on each.

diesel::table! {
    users (id) {
        id -> Text,
        username -> Text,
        email -> Nullable<Text>,
        password_hash -> Text,
        refresh_token_hash -> Nullable<Text>,
        refresh_token_expires_at -> Nullable<Timestamp>,
        previous_refresh_token_hash -> Nullable<Text>,
        refresh_token_rotated_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        tokens_valid_after -> Nullable<Double>,
        disabled -> Bool,
        session_id -> Nullable<Text>,
        session_created_at -> Nullable<Timestamp>,
        session_user_agent -> Nullable<Text>,
        session_ip -> Nullable<Text>,
        email_verified -> Bool,
        mfa_enabled -> Bool,
        session_amr -> Nullable<Text>,
    }
}

// Mail (src/db/mail.rs).
diesel::table! {
    mail_tokens (user_id, purpose) {
        user_id -> Text,
        purpose -> Text,
        token_hash -> Nullable<Text>,
        nonce -> Text,
        email -> Text,
        created_at_ms -> BigInt,
        expires_at_ms -> BigInt,
    }
}

diesel::table! {
    mail_cooldowns (address_hash) {
        address_hash -> Text,
        until_ms -> BigInt,
    }
}

diesel::table! {
    outbox (id) {
        id -> BigInt,
        kind -> Text,
        payload -> Text,
        attempts -> Integer,
        last_error -> Nullable<Text>,
        created_at_ms -> BigInt,
        next_attempt_at_ms -> BigInt,
        claimed_until_ms -> Nullable<BigInt>,
    }
}

// The sessions of SESSIONS_PER_USER > 1 (with 1, the one session is on the users row).
diesel::table! {
    sessions (id) {
        id -> Text,
        user_id -> Text,
        refresh_token_hash -> Text,
        refresh_token_expires_at -> Timestamp,
        previous_refresh_token_hash -> Nullable<Text>,
        refresh_token_rotated_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        last_used_at -> Timestamp,
        user_agent -> Nullable<Text>,
        ip -> Nullable<Text>,
        amr -> Nullable<Text>,
    }
}

// The second factor (src/db/mfa.rs).
diesel::table! {
    mfa_totp (user_id) {
        user_id -> Text,
        secret -> Nullable<Text>,
        pending_secret -> Nullable<Text>,
        last_step -> Nullable<BigInt>,
        created_at_ms -> BigInt,
    }
}

diesel::table! {
    mfa_recovery_codes (user_id, code_hash) {
        user_id -> Text,
        code_hash -> Text,
    }
}

diesel::table! {
    mfa_challenges (token_hash) {
        token_hash -> Text,
        user_id -> Text,
        expires_at_ms -> BigInt,
        failures -> Integer,
    }
}

diesel::table! {
    passkeys (id) {
        id -> Text,
        user_id -> Text,
        credential_id -> Text,
        name -> Text,
        credential -> Text,
        sign_count -> BigInt,
        backup_eligible -> Bool,
        backup_state -> Bool,
        created_at_ms -> BigInt,
        last_used_at_ms -> Nullable<BigInt>,
    }
}

diesel::table! {
    passkey_flows (id) {
        id -> Text,
        kind -> Text,
        user_id -> Nullable<Text>,
        state -> Text,
        expires_at_ms -> BigInt,
    }
}

diesel::table! {
    user_roles (user_id, role) {
        user_id -> Text,
        role -> Text,
    }
}

// Revocations that outlive their user (a deleted user's), for the revocation feed.
diesel::table! {
    revocations (id) {
        id -> BigInt,
        user_id -> Text,
        session_id -> Nullable<Text>,
        not_before -> Double,
    }
}

diesel::joinable!(user_roles -> users (user_id));
diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(mail_tokens -> users (user_id));
diesel::joinable!(mfa_totp -> users (user_id));
diesel::joinable!(mfa_challenges -> users (user_id));
diesel::joinable!(passkeys -> users (user_id));
diesel::joinable!(passkey_flows -> users (user_id));
diesel::allow_tables_to_appear_in_same_query!(
    users,
    user_roles,
    sessions,
    revocations,
    mail_tokens,
    mfa_totp,
    mfa_challenges,
    passkeys,
    passkey_flows
);

// The abuse limits' tables (src/auth/rate_limit/shared.rs, PostgreSQL only). The list of
// recent failures is left out: an array on PostgreSQL, which `MultiConnection` does not map.
diesel::table! {
    ip_attempts (ip) {
        ip -> Text,
        attempts -> Integer,
        expires_at_ms -> BigInt,
    }
}

diesel::table! {
    login_failures (username_key) {
        username_key -> Text,
        lockouts -> Integer,
        locked_until_ms -> Nullable<BigInt>,
        expires_at_ms -> BigInt,
    }
}
