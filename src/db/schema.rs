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
        language -> Nullable<Text>,
    }
}

diesel::table! {
    variants (statement_id, platform) {
        statement_id -> Text,
        platform -> Text,
        text -> Text,
        updated_at -> Timestamp,
        thread -> Nullable<Text>,
        media -> Nullable<Text>,
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
        remote_name -> Nullable<Text>,
        token_expires_at -> Nullable<Timestamp>,
        refresh_lease_until -> Nullable<Timestamp>,
        checked_at -> Nullable<Timestamp>,
        check_error -> Nullable<Text>,
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

diesel::table! {
    deliveries (id) {
        id -> Text,
        statement_id -> Text,
        lineage_id -> Text,
        statement_version -> Integer,
        account_id -> Text,
        platform -> Text,
        kind -> Text,
        planned_at -> Timestamp,
        timezone -> Nullable<Text>,
        max_lateness_s -> Integer,
        deadline -> Timestamp,
        status -> Text,
        attempts -> Integer,
        retries -> Integer,
        reconcile_tries -> Integer,
        next_attempt_at -> Nullable<Timestamp>,
        lease_owner -> Nullable<Text>,
        lease_expires_at -> Nullable<Timestamp>,
        idempotency_key -> Text,
        first_attempt_at -> Nullable<Timestamp>,
        published_at -> Nullable<Timestamp>,
        lateness_ms -> Nullable<BigInt>,
        remote_id -> Nullable<Text>,
        remote_url -> Nullable<Text>,
        last_error -> Nullable<Text>,
        created_by -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        remote_parts -> Nullable<Text>,
        reply_to_delivery_id -> Nullable<Text>,
        retracted_at -> Nullable<Timestamp>,
        retraction_error -> Nullable<Text>,
    }
}

diesel::table! {
    delivery_checks (delivery_id, stage) {
        delivery_id -> Text,
        stage -> Text,
        checked_at -> Timestamp,
        ok -> Bool,
        error -> Nullable<Text>,
    }
}

diesel::table! {
    delivery_attempts (delivery_id, number) {
        delivery_id -> Text,
        number -> Integer,
        owner -> Text,
        started_at -> Timestamp,
        ended_at -> Nullable<Timestamp>,
        outcome -> Nullable<Text>,
        http_status -> Nullable<Integer>,
        error -> Nullable<Text>,
    }
}

diesel::table! {
    publishing_control (id) {
        id -> Integer,
        scope -> Nullable<Text>,
        reason -> Nullable<Text>,
        changed_by -> Nullable<Text>,
        changed_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    sandbox_posts (id) {
        id -> Text,
        account_id -> Text,
        delivery_id -> Nullable<Text>,
        idempotency_key -> Text,
        text -> Text,
        language -> Nullable<Text>,
        created_at -> Timestamp,
        in_reply_to -> Nullable<Text>,
        media -> Nullable<Text>,
    }
}

diesel::table! {
    oauth_states (state) {
        state -> Text,
        platform -> Text,
        name -> Text,
        base_url -> Nullable<Text>,
        target -> Nullable<Text>,
        redirect_uri -> Text,
        verifier -> Nullable<Text>,
        account_id -> Nullable<Text>,
        created_by -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    oauth_apps (platform, base_url, redirect_uri) {
        platform -> Text,
        base_url -> Text,
        redirect_uri -> Text,
        client_id -> Text,
        client_secret -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    media (id) {
        id -> Text,
        content_type -> Text,
        size -> BigInt,
        sha256 -> Text,
        bytes -> Binary,
        created_by -> Text,
        created_at -> Timestamp,
    }
}

diesel::joinable!(deliveries -> statements (statement_id));
diesel::joinable!(deliveries -> accounts (account_id));
diesel::joinable!(delivery_attempts -> deliveries (delivery_id));
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
    deliveries,
    delivery_attempts,
    publishing_control,
    sandbox_posts,
    oauth_states,
    oauth_apps,
    media,
    delivery_checks,
);
