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
diesel::allow_tables_to_appear_in_same_query!(users, user_roles);

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
