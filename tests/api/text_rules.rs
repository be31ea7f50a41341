use herald::keys::Role;
use serde_json::{json, Value};

use crate::helpers::spawn_app;

/// (platform, limit in its unit). "a" is one unit on every network.
const LIMITS: [(&str, usize); 10] = [
    ("mastodon", 500),
    ("bluesky", 300),
    ("x", 280),
    ("threads", 500),
    ("linkedin", 3_000),
    ("facebook", 63_206),
    ("telegram", 4_096),
    ("discord", 2_000),
    ("webhook", 100_000),
    ("sandbox", 100_000),
];

#[tokio::test]
async fn every_network_accepts_its_limit_and_refuses_one_more_on_check_and_on_create() {
    let app = spawn_app().await;
    let editor = app.key(Role::Editor);
    for (platform, limit) in LIMITS {
        let at = "a".repeat(limit);
        let over = "a".repeat(limit + 1);
        let checked = app
            .post(
                &editor,
                "/v1/variants/check",
                json!({"variants": [
                    {"platform": platform, "text": at}, {"platform": platform, "text": over}
                ]}),
            )
            .await
            .ok();
        let results = checked["variants"].as_array().unwrap();
        assert_eq!(results[0]["used"], limit, "{platform}");
        assert_eq!(results[0]["limit"], limit, "{platform}");
        assert_eq!(results[0]["ok"], true, "{platform}: {}", results[0]);
        assert_eq!(results[1]["used"], limit + 1, "{platform}");
        assert_eq!(results[1]["ok"], false, "{platform}");
        assert!(!results[1]["problems"].as_array().unwrap().is_empty());

        let created = app
            .post(&editor, "/v1/statements", json!({"title": platform, "kind": "routine", "variants": [{"platform": platform, "text": at}]}))
            .await;
        assert_eq!(created.status, 201, "{platform}: {}", created.text);
        app.post(&editor, "/v1/statements", json!({"title": platform, "kind": "routine", "variants": [{"platform": platform, "text": over}]}))
            .await
            .invalid("variants[0].text");
    }
}

#[tokio::test]
async fn instagram_variants_need_an_image() {
    let app = spawn_app().await;
    let p = app
        .post(&app.admin, "/v1/statements", json!({"title": "t", "kind": "routine", "variants": [{"platform": "instagram", "text": "hello"}]}))
        .await
        .invalid("variants[0].media");
    assert!(p["detail"].as_str().unwrap().contains("image"), "{p}");
    let id = app.draft(&app.admin, "minor").await;
    app.put(
        &app.admin,
        &format!("/v1/statements/{id}/variants/instagram"),
        json!({"text": "hello"}),
    )
    .await
    .invalid("media");
    // With an image it is accepted.
    app.put(
        &app.admin,
        &format!("/v1/statements/{id}/variants/instagram"),
        json!({"text": "hello", "media": [{"url": "https://example.com/k200.jpg", "alt": "The kettle"}]}),
    )
    .await
    .ok();
}

fn used(results: &Value, i: usize) -> u64 {
    results["variants"][i]["used"].as_u64().unwrap()
}

#[tokio::test]
async fn check_counts_graphemes_weights_urls_and_mentions_as_each_network_does() {
    let app = spawn_app().await;
    let family = "👨‍👩‍👧‍👦";
    let thumbs = "👍🏽";
    let url = "https://example.com/a/very/long/path/that/goes/on/and/on/for/ever";
    let r = app
        .post(
            &app.admin,
            "/v1/variants/check",
            json!({"variants": [
                {"platform": "bluesky", "text": family},
                {"platform": "x", "text": format!("{family}{thumbs}")},
                {"platform": "mastodon", "text": format!("see {url}")},
                {"platform": "x", "text": format!("see {url}")},
                {"platform": "bluesky", "text": format!("see {url}")},
                {"platform": "mastodon", "text": "@alice@example.social hi"},
                {"platform": "x", "text": "日本語"},
                {"platform": "bluesky", "text": "e\u{301}"},
                {"platform": "telegram", "text": family},
                {"platform": "mastodon", "text": "hi", "limit": 1},
            ]}),
        )
        .await
        .ok();
    assert_eq!(used(&r, 0), 1, "a ZWJ family is one grapheme");
    assert_eq!(used(&r, 1), 4, "each emoji sequence weighs 2 on X");
    assert_eq!(used(&r, 2), 4 + 23, "URLs count 23 on Mastodon");
    assert_eq!(used(&r, 3), 4 + 23, "URLs count 23 on X");
    assert_eq!(
        used(&r, 4),
        4 + url.chars().count() as u64,
        "URLs count in full on Bluesky"
    );
    assert_eq!(
        used(&r, 5),
        "@alice hi".len() as u64,
        "a remote mention counts its local part"
    );
    assert_eq!(used(&r, 6), 6, "CJK weighs 2 on X");
    assert_eq!(used(&r, 7), 1, "a combining mark joins its letter");
    assert_eq!(used(&r, 8), 11, "Telegram counts UTF-16 units");
    assert_eq!(
        r["variants"][9]["ok"], false,
        "an instance limit replaces the default"
    );
    assert_eq!(r["variants"][9]["limit"], 1);
}

#[tokio::test]
async fn check_refuses_unknown_platforms_with_the_field_named() {
    let app = spawn_app().await;
    let p = app
        .post(
            &app.admin,
            "/v1/variants/check",
            json!({"variants": [{"platform": "myspace", "text": "x"}]}),
        )
        .await
        .invalid("variants[0].platform");
    assert!(p["detail"].as_str().unwrap().contains("mastodon"), "{p}");
}

#[tokio::test]
async fn check_uses_a_mastodon_accounts_own_limit_when_asked() {
    let app = spawn_app().await;
    let account = app
        .post(
            &app.admin,
            "/v1/accounts",
            json!({
                "platform": "mastodon", "name": "big instance", "base_url": "https://big.example",
                "credentials": {"access_token": "t"}, "max_characters": 1000
            }),
        )
        .await
        .ok();
    let id = account["id"].as_str().unwrap();
    let text = "a".repeat(600);
    let r = app
        .post(
            &app.admin,
            "/v1/variants/check",
            json!({"variants": [
                {"platform": "mastodon", "text": text, "account_id": id},
                {"platform": "mastodon", "text": text},
            ]}),
        )
        .await
        .ok();
    assert_eq!(r["variants"][0]["limit"], 1000);
    assert_eq!(r["variants"][0]["ok"], true);
    assert_eq!(r["variants"][1]["limit"], 500);
    assert_eq!(r["variants"][1]["ok"], false);

    app.post(
        &app.admin,
        "/v1/variants/check",
        json!({"variants": [{"platform": "bluesky", "text": "x", "account_id": id}]}),
    )
    .await
    .invalid("variants[0].account_id");
    app.post(
        &app.admin,
        "/v1/variants/check",
        json!({"variants": [{"platform": "mastodon", "text": "x", "account_id": "nope"}]}),
    )
    .await
    .invalid("variants[0].account_id");
}
