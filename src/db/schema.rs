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
        author -> Nullable<Text>,
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

diesel::table! {
    replies (id) {
        id -> Text,
        delivery_id -> Text,
        statement_id -> Text,
        lineage_id -> Text,
        account_id -> Text,
        platform -> Text,
        remote_id -> Text,
        parent_remote_id -> Nullable<Text>,
        author -> Text,
        text -> Text,
        url -> Nullable<Text>,
        created_at -> Timestamp,
        collected_at -> Timestamp,
        language -> Nullable<Text>,
        sentiment -> Text,
        score -> Double,
        question -> Bool,
        follow_up -> Text,
        follow_up_reason -> Nullable<Text>,
        assignee -> Nullable<Text>,
        first_response_at -> Nullable<Timestamp>,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    reply_polls (delivery_id) {
        delivery_id -> Text,
        account_id -> Text,
        published_at -> Timestamp,
        cursor -> Nullable<Text>,
        next_poll_at -> Timestamp,
        lease_until -> Nullable<Timestamp>,
        polls -> Integer,
        last_polled_at -> Nullable<Timestamp>,
        last_error -> Nullable<Text>,
        done_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    responses (delivery_id) {
        delivery_id -> Text,
        reply_id -> Text,
        text -> Text,
        template_id -> Nullable<Text>,
        forced -> Bool,
        created_by -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    reply_spikes (scope, scope_id, started_at) {
        scope -> Text,
        scope_id -> Text,
        started_at -> Timestamp,
        ended_at -> Nullable<Timestamp>,
        negative -> Integer,
        total -> Integer,
    }
}

diesel::table! {
    webhooks (id) {
        id -> Text,
        url -> Text,
        events -> Text,
        secret -> Text,
        created_by -> Text,
        created_at -> Timestamp,
        removed_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    webhook_deliveries (id) {
        id -> Text,
        webhook_id -> Text,
        event -> Text,
        payload -> Text,
        status -> Text,
        attempts -> Integer,
        next_attempt_at -> Nullable<Timestamp>,
        lease_until -> Nullable<Timestamp>,
        last_status -> Nullable<Integer>,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
        delivered_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    webhook_attempts (delivery_id, number) {
        delivery_id -> Text,
        number -> Integer,
        at -> Timestamp,
        status -> Nullable<Integer>,
        error -> Nullable<Text>,
        duration_ms -> BigInt,
    }
}

diesel::joinable!(deliveries -> statements (statement_id));
diesel::joinable!(deliveries -> accounts (account_id));
diesel::joinable!(delivery_attempts -> deliveries (delivery_id));
diesel::joinable!(variants -> statements (statement_id));
diesel::joinable!(approvals -> statements (statement_id));
diesel::joinable!(replies -> deliveries (delivery_id));
diesel::joinable!(reply_polls -> deliveries (delivery_id));
diesel::joinable!(responses -> deliveries (delivery_id));
diesel::joinable!(responses -> replies (reply_id));
diesel::joinable!(webhook_deliveries -> webhooks (webhook_id));
diesel::joinable!(webhook_attempts -> webhook_deliveries (delivery_id));

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
    replies,
    reply_polls,
    responses,
    reply_spikes,
    webhooks,
    webhook_deliveries,
    webhook_attempts,
    telegram_comments,
    telegram_offsets,
);

diesel::table! {
    telegram_comments (account_id, chat_id, message_id) {
        account_id -> Text,
        chat_id -> BigInt,
        message_id -> BigInt,
        chat_username -> Nullable<Text>,
        thread_id -> Nullable<BigInt>,
        reply_to_message_id -> Nullable<BigInt>,
        automatic_forward -> Bool,
        forward_origin_chat_id -> Nullable<BigInt>,
        forward_origin_message_id -> Nullable<BigInt>,
        forward_origin_username -> Nullable<Text>,
        author_id -> Nullable<BigInt>,
        author -> Text,
        text -> Text,
        date -> Timestamp,
        update_id -> BigInt,
        received_at -> Timestamp,
    }
}

diesel::table! {
    telegram_offsets (bot_key) {
        bot_key -> Text,
        next_offset -> BigInt,
        retry_at -> Nullable<Timestamp>,
        last_error -> Nullable<Text>,
        updated_at -> Timestamp,
    }
}
