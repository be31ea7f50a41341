//! Diesel table definitions shared by both back ends (portable types only).
//! Keep in step with `migrations/sqlite` and `migrations/postgres`.

diesel::table! {
    api_keys (id) {
        id -> Text,
        name -> Text,
        role -> Text,
        key_hash -> Text,
        key_prefix -> Text,
        created_by -> Text,
        created_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
        revoked_by -> Nullable<Text>,
    }
}

diesel::table! {
    statements (id) {
        id -> Text,
        lineage_id -> Text,
        version -> Integer,
        previous_version_id -> Nullable<Text>,
        title -> Text,
        kind -> Text,
        severity -> Nullable<Text>,
        status -> Text,
        author -> Text,
        editors -> Text,
        rejection_reason -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        submitted_at -> Nullable<Timestamp>,
        approved_at -> Nullable<Timestamp>,
        retired_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    variants (statement_id, platform) {
        statement_id -> Text,
        platform -> Text,
        text -> Text,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    approvals (statement_id, approver) {
        statement_id -> Text,
        approver -> Text,
        approved_at -> Timestamp,
    }
}

diesel::table! {
    accounts (id) {
        id -> Text,
        platform -> Text,
        name -> Text,
        base_url -> Nullable<Text>,
        status -> Text,
        status_reason -> Nullable<Text>,
        credentials -> Nullable<Text>,
        max_characters -> Nullable<Integer>,
        created_by -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        removed_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    publish_log (seq) {
        seq -> BigInt,
        id -> Text,
        at -> Timestamp,
        actor -> Text,
        action -> Text,
        statement_id -> Nullable<Text>,
        account_id -> Nullable<Text>,
        delivery_id -> Nullable<Text>,
        details -> Text,
        prev_hash -> Text,
        hash -> Text,
    }
}

diesel::table! {
    write_gate (id) {
        id -> Integer,
        ticks -> BigInt,
    }
}

diesel::table! {
    idempotency_keys (actor, key, route) {
        actor -> Text,
        key -> Text,
        route -> Text,
        request_hash -> Text,
        status -> Integer,
        body -> Text,
        created_at -> Timestamp,
    }
}

diesel::joinable!(variants -> statements (statement_id));
diesel::joinable!(approvals -> statements (statement_id));

diesel::allow_tables_to_appear_in_same_query!(
    api_keys,
    statements,
    variants,
    approvals,
    accounts,
    publish_log,
    write_gate,
    idempotency_keys,
);
