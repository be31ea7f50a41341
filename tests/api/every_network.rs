//! Each of the eleven networks end to end, through Herald's HTTP API,
//! dispatcher and store, against its fake: connect the account, publish a
//! three-part thread (Instagram: one image post), check the chain on the
//! network, retract (where the network allows it), and renew (tokens that
//! expire) or check (credentials that never do) the credentials.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use herald::config::{NetworkApp, Settings};
use herald::db::schema::accounts;
use herald::fakes::bluesky::FakeBluesky;
use herald::fakes::discord::FakeDiscord;
use herald::fakes::facebook::FakeFacebook;
use herald::fakes::instagram::FakeInstagram;
use herald::fakes::linkedin::{self, FakeLinkedin};
use herald::fakes::mastodon::FakeMastodon;
use herald::fakes::telegram::FakeTelegram;
use herald::fakes::threads::FakeThreads;
use herald::fakes::x::FakeX;
use herald::keys::Role;
use serde_json::{json, Map, Value};

use crate::helpers::{spawn_app_with, LocalServer, TestApp};

const PARTS: [&str; 3] = [
    "1/3 We are recalling the K-200 kettle.",
    "2/3 Stop using it now and unplug it.",
    "3/3 Refunds are paid in every shop.",
];

/// Herald with fast account jobs, configured by `tweak`.
async fn herald(tweak: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_with(|s| {
        s.dispatch.account_jobs_s = 1;
        tweak(s);
    })
    .await
}

/// Connect an account through OAuth: the fake approves at once and sends the
/// browser back to Herald's callback. Returns the account id.
async fn connect(app: &TestApp, platform: &str, body: Value) -> String {
    let account = app.connect(platform, body).await;
    assert_eq!(account["platform"], platform);
    assert_eq!(account["status"], "active", "{account}");
    account["id"].as_str().unwrap().to_string()
}

/// An approved crisis statement with one variant for `platform`: the
/// three-part thread, or (with `media`) a single post with an image.
async fn approved(app: &TestApp, platform: &str, media: Option<Value>) -> String {
    let variant = match media {
        Some(media) => json!({"platform": platform, "text": PARTS[0], "media": [media]}),
        None => json!({"platform": platform, "text": PARTS[0], "thread": &PARTS[1..]}),
    };
    app.approved_crisis(json!([variant])).await
}

/// Publish now and wait for the outcome; asserts it is published with one
/// part per post of the thread.
async fn publish(app: &TestApp, statement: &str, account: &str, parts: usize) -> Value {
    let d = app.publish_now(statement, account).await;
    assert_eq!(d["status"], "published", "{d}");
    assert_eq!(d["parts"].as_array().unwrap().len(), parts, "{d}");
    d
}

/// The ids of the delivery's parts, in order.
fn part_ids(delivery: &Value) -> Vec<String> {
    delivery["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect()
}

/// Retract the statement as a manager; asserts the one delivery's outcome
/// and, when retracted, its status.
async fn retract(app: &TestApp, statement: &str, delivery: &Value, outcome: &str) {
    let manager = app.key(Role::Manager);
    let reply = app
        .post(
            &manager,
            &format!("/v1/statements/{statement}/retract"),
            json!({"reason": "Wrong batch numbers"}),
        )
        .await
        .ok();
    assert_eq!(reply["deliveries"][0]["outcome"], outcome, "{reply}");
    let id = delivery["id"].as_str().unwrap();
    let d = app
        .get(&manager, &format!("/v1/deliveries/{id}"))
        .await
        .ok();
    let status = if outcome == "retracted" {
        "retracted"
    } else {
        "published"
    };
    assert_eq!(d["status"], status, "{d}");
}

/// The network holds the three parts in order, each answering the one
/// before, and the delivery's parts are their ids: `posts` are the fake's
/// `(id, text, reply_to)`.
fn assert_reply_chain(delivery: &Value, posts: &[(&str, &str, Option<&str>)]) {
    assert_eq!(posts.len(), 3);
    let texts: Vec<&str> = posts.iter().map(|p| p.1).collect();
    assert_eq!(texts, PARTS);
    let ids: Vec<&str> = posts.iter().map(|p| p.0).collect();
    let replies: Vec<Option<&str>> = posts.iter().map(|p| p.2).collect();
    assert_eq!(replies, [None, Some(ids[0]), Some(ids[1])]);
    assert_eq!(part_ids(delivery), ids);
}

/// Meta's 60-day tokens may be renewed once they are a day old: age the
/// token on both sides (the fake's `age_token`, and Herald's copy under
/// `issued_key`), bring its expiry inside the 7-day lead and wait for the
/// refresh job. Returns the old token and the renewed one.
async fn renew_a_day_old_token(
    app: &TestApp,
    account: &str,
    issued_key: &str,
    age_token: impl FnOnce(&str, Duration),
) -> (String, String) {
    let access_token = |app: &TestApp| {
        credentials(app, account)["access_token"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let token = access_token(app);
    let day = chrono::Duration::hours(25);
    age_token(&token, day.to_std().unwrap());
    backdate_credentials(app, account, issued_key, day);
    app.expire_token_in(account, chrono::Duration::days(3));
    wait_refreshed(app, account, chrono::Duration::days(50)).await;
    (token, access_token(app))
}

/// `POST /v1/accounts/{id}/check` answers ok.
async fn check_ok(app: &TestApp, account: &str) {
    let editor = app.key(Role::Editor);
    let reply = app
        .post(&editor, &format!("/v1/accounts/{account}/check"), json!({}))
        .await
        .ok();
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(reply["account"]["status"], "active", "{reply}");
}

/// The account's token expiry as Herald shows it.
async fn token_expires_at(app: &TestApp, account: &str) -> chrono::DateTime<chrono::Utc> {
    let a = app
        .get(&app.admin, &format!("/v1/accounts/{account}"))
        .await
        .ok();
    let at = a["token_expires_at"]
        .as_str()
        .unwrap_or_else(|| panic!("no token expiry: {a}"));
    chrono::DateTime::parse_from_rfc3339(at).unwrap().into()
}

/// The account's decrypted credentials.
fn credentials(app: &TestApp, account: &str) -> Map<String, Value> {
    let mut conn = app.pool.get().unwrap();
    let sealed: Option<String> = accounts::table
        .find(account)
        .select(accounts::credentials)
        .first(&mut conn)
        .unwrap();
    let key = herald::crypto::SecretKey::from_base64(&app.secret_key).unwrap();
    let plain = key.open(&sealed.unwrap(), account).unwrap();
    serde_json::from_slice(&plain).unwrap()
}

/// Pretend Herald got the account's token `by` ago: move its stored issue
/// time and expiry back (Meta refuses to renew a token younger than 24 h,
/// and Herald does not ask).
fn backdate_credentials(app: &TestApp, account: &str, issued_key: &str, by: chrono::Duration) {
    let mut values = credentials(app, account);
    for key in [issued_key, "expires_at"] {
        let at = values[key].as_str().unwrap_or_else(|| panic!("no {key}"));
        let at = chrono::DateTime::parse_from_rfc3339(at).unwrap() - by;
        values[key] = json!(at
            .with_timezone(&chrono::Utc)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    }
    let key = herald::crypto::SecretKey::from_base64(&app.secret_key).unwrap();
    let sealed = key.seal(&serde_json::to_vec(&values).unwrap(), account);
    let mut conn = app.pool.get().unwrap();
    diesel::update(accounts::table.find(account))
        .set((
            accounts::credentials.eq(Some(sealed)),
            accounts::updated_at.eq(herald::db::now()),
        ))
        .execute(&mut conn)
        .unwrap();
}

/// Wait until the refresh job has pushed the token's expiry past `beyond`
/// from now and logged it (two writes: the credentials, then the log).
async fn wait_refreshed(app: &TestApp, account: &str, beyond: chrono::Duration) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if token_expires_at(app, account).await > chrono::Utc::now() + beyond
            && app
                .recent_actions()
                .await
                .contains(&"account.token_refreshed".to_string())
        {
            break;
        }
        assert!(Instant::now() < deadline, "the token was never renewed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let a = app
        .get(&app.admin, &format!("/v1/accounts/{account}"))
        .await
        .ok();
    assert_eq!(a["status"], "active", "{a}");
}

#[tokio::test]
async fn x_publishes_threads_retracts_and_refreshes() {
    let fake = FakeX::start().await;
    fake.add_user("kettleco");
    let network = fake.network_app();
    let app = herald(|s| s.networks.x = network).await;
    let account = connect(&app, "x", json!({"name": "Kettle Co"})).await;

    let statement = approved(&app, "x", None).await;
    let d = publish(&app, &statement, &account, 3).await;
    let posts = fake.posts();
    let chain: Vec<_> = posts
        .iter()
        .map(|p| (p.id.as_str(), p.text.as_str(), p.reply_to.as_deref()))
        .collect();
    assert_reply_chain(&d, &chain);

    retract(&app, &statement, &d, "retracted").await;
    assert!(fake.posts().iter().all(|p| p.deleted));

    // X tokens last 2 hours and are renewed 30 minutes ahead.
    assert_eq!(fake.refreshes(), 0);
    app.expire_token_in(&account, chrono::Duration::minutes(10));
    wait_refreshed(&app, &account, chrono::Duration::minutes(90)).await;
    assert_eq!(fake.refreshes(), 1);
}

#[tokio::test]
async fn mastodon_publishes_threads_retracts_and_checks() {
    let fake = FakeMastodon::start().await;
    fake.add_account("kettleco");
    let app = herald(|_| {}).await;
    let account = connect(
        &app,
        "mastodon",
        json!({"name": "Kettle Co", "base_url": fake.base_url()}),
    )
    .await;
    assert_eq!(
        fake.apps().len(),
        1,
        "Herald registers itself on the instance"
    );

    let statement = approved(&app, "mastodon", None).await;
    let d = publish(&app, &statement, &account, 3).await;
    let posts = fake.posts();
    assert!(posts.iter().all(|p| p.username == "kettleco"));
    let chain: Vec<_> = posts
        .iter()
        .map(|p| (p.id.as_str(), p.text.as_str(), p.in_reply_to_id.as_deref()))
        .collect();
    assert_reply_chain(&d, &chain);

    retract(&app, &statement, &d, "retracted").await;
    assert!(fake.posts().iter().all(|p| p.deleted));

    // Mastodon tokens do not expire: their lifecycle is the check.
    check_ok(&app, &account).await;
}

#[tokio::test]
async fn bluesky_publishes_threads_retracts_and_checks() {
    let fake = FakeBluesky::start().await;
    let did = fake.add_account("kettleco.bsky.social", "abcd-efgh-ijkl-mnop");
    let app = herald(|_| {}).await;
    let account = app
        .add_account(
            "bluesky",
            "Kettle Co",
            Some(&fake.base_url()),
            json!({"identifier": "kettleco.bsky.social", "app_password": "abcd-efgh-ijkl-mnop"}),
        )
        .await;

    let statement = approved(&app, "bluesky", None).await;
    let d = publish(&app, &statement, &account, 3).await;
    let posts = fake.posts();
    assert_eq!(posts.len(), 3);
    assert!(posts.iter().all(|p| p.did == did));
    assert_eq!(
        posts.iter().map(|p| p.text.as_str()).collect::<Vec<_>>(),
        PARTS
    );
    assert!(posts[0].reply.is_none());
    for (i, parent) in [(1, 0), (2, 1)] {
        let reply = posts[i].reply.as_ref().unwrap();
        assert_eq!(reply.root_uri, posts[0].uri);
        assert_eq!(reply.root_cid, posts[0].cid);
        assert_eq!(reply.parent_uri, posts[parent].uri);
        assert_eq!(reply.parent_cid, posts[parent].cid);
    }
    assert_eq!(
        part_ids(&d),
        posts.iter().map(|p| p.uri.clone()).collect::<Vec<_>>()
    );

    retract(&app, &statement, &d, "retracted").await;
    assert!(fake.posts().iter().all(|p| p.deleted));

    // App passwords do not expire: their lifecycle is the check.
    check_ok(&app, &account).await;
}

#[tokio::test]
async fn threads_publishes_threads_retracts_and_refreshes() {
    let fake = FakeThreads::start().await;
    fake.add_user("kettleco");
    let network = NetworkApp {
        client_id: Some(fake.client_id()),
        client_secret: Some(fake.client_secret()),
        api_url: fake.base_url(),
        auth_url: fake.base_url(),
        token_url: None,
    };
    let app = herald(|s| s.networks.threads = network).await;
    let account = connect(&app, "threads", json!({"name": "Kettle Co"})).await;

    let statement = approved(&app, "threads", None).await;
    let d = publish(&app, &statement, &account, 3).await;
    let posts = fake.posts();
    let chain: Vec<_> = posts
        .iter()
        .map(|p| (p.id.as_str(), p.text.as_str(), p.reply_to_id.as_deref()))
        .collect();
    assert_reply_chain(&d, &chain);

    retract(&app, &statement, &d, "retracted").await;
    assert!(fake.posts().iter().all(|p| p.deleted));

    // The 60-day token is renewed once it is a day old, 7 days ahead.
    assert_eq!(fake.requests_to("/refresh_access_token"), 0);
    let (_, renewed) = renew_a_day_old_token(&app, &account, "issued_at", |token, age| {
        fake.age_token(token, age)
    })
    .await;
    assert_eq!(fake.requests_to("/refresh_access_token"), 1);
    assert!(
        fake.token_expires_at(&renewed).unwrap() > chrono::Utc::now() + chrono::Duration::days(50)
    );
    check_ok(&app, &account).await;
}

#[tokio::test]
async fn linkedin_publishes_threads_retracts_and_refreshes() {
    let fake = FakeLinkedin::start().await;
    let member = fake.add_member("Kettle Co");
    let network = NetworkApp {
        client_id: Some(linkedin::CLIENT_ID.into()),
        client_secret: Some(linkedin::CLIENT_SECRET.into()),
        api_url: fake.base_url(),
        auth_url: fake.base_url(),
        token_url: None,
    };
    let app = herald(|s| {
        s.networks.linkedin = network;
        s.networks.linkedin_version = linkedin::VERSION.into();
    })
    .await;
    let account = connect(&app, "linkedin", json!({"name": "Kettle Co"})).await;
    assert!(credentials(&app, &account).contains_key("refresh_token"));

    let statement = approved(&app, "linkedin", None).await;
    let d = publish(&app, &statement, &account, 3).await;
    // The first part is the post; the others are comments on it.
    let posts = fake.posts();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].author, member.urn);
    assert_eq!(posts[0].commentary, linkedin_escaped(PARTS[0]));
    let comments = fake.comments();
    assert_eq!(comments.len(), 2);
    for (comment, text) in comments.iter().zip(&PARTS[1..]) {
        assert_eq!(comment.object, posts[0].urn);
        assert_eq!(comment.text, *text);
    }
    let ids = part_ids(&d);
    assert_eq!(ids[0], posts[0].urn);
    assert!(ids[1].contains(&comments[0].id), "{ids:?}");
    assert!(ids[2].contains(&comments[1].id), "{ids:?}");

    retract(&app, &statement, &d, "retracted").await;
    assert!(fake.posts()[0].deleted);
    assert!(fake.comments().iter().all(|c| c.deleted));

    // The 60-day token is renewed with the refresh token a week ahead.
    assert_eq!(fake.refreshes(), 0);
    app.expire_token_in(&account, chrono::Duration::days(3));
    wait_refreshed(&app, &account, chrono::Duration::days(50)).await;
    assert_eq!(fake.refreshes(), 1);
    check_ok(&app, &account).await;
}

/// LinkedIn's "little text" escaping of a plain sentence (none needed here
/// but for the reserved characters it holds).
fn linkedin_escaped(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if "\\|{}@[]()<>#*_~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[tokio::test]
async fn facebook_publishes_threads_retracts_and_checks() {
    let fake = FakeFacebook::start().await;
    let user = fake.add_user("Ada");
    let page = fake.add_page(&user, "Kettle Co");
    let network = fake.app();
    let app = herald(|s| s.networks.facebook = network).await;
    let account = connect(&app, "facebook", json!({"name": "Kettle Co"})).await;

    let statement = approved(&app, "facebook", None).await;
    let d = publish(&app, &statement, &account, 3).await;
    // The first part is a feed post of the Page; the others comment on it.
    let posts = fake.posts();
    assert_eq!(posts.len(), 3);
    assert_eq!(posts[0].kind, "feed");
    assert_eq!(posts[0].page_id, page.id);
    assert_eq!(posts[0].parent_id, None);
    for (post, text) in posts.iter().zip(PARTS) {
        assert_eq!(post.message, text);
    }
    for comment in &posts[1..] {
        assert_eq!(comment.kind, "comment");
        assert_eq!(comment.parent_id.as_deref(), Some(posts[0].id.as_str()));
    }
    assert_eq!(
        part_ids(&d),
        posts.iter().map(|p| p.id.clone()).collect::<Vec<_>>()
    );

    retract(&app, &statement, &d, "retracted").await;
    assert!(fake.posts().iter().all(|p| p.deleted));

    // Page tokens from a long-lived login do not expire: the check.
    check_ok(&app, &account).await;
}

#[tokio::test]
async fn instagram_publishes_an_image_cannot_retract_and_refreshes() {
    let fake = FakeInstagram::start().await;
    let ig = fake.add_account("kettleco");
    let network = fake.app();
    let app = herald(|s| s.networks.instagram = network).await;
    let account = connect(&app, "instagram", json!({"name": "Kettle Co"})).await;

    // No threads on Instagram: one post, with its image.
    let image = "https://cdn.example.com/k200.jpg";
    let statement = approved(
        &app,
        "instagram",
        Some(json!({"url": image, "alt": "A K-200 kettle"})),
    )
    .await;
    let d = publish(&app, &statement, &account, 1).await;
    let media = fake.media();
    assert_eq!(media.len(), 1);
    assert_eq!(media[0].user_id, ig.user_id);
    assert_eq!(media[0].caption, PARTS[0]);
    assert_eq!(media[0].image_url, image);
    assert_eq!(part_ids(&d), [media[0].id.clone()]);

    // Instagram does not let apps delete posts: said so, nothing deleted.
    retract(&app, &statement, &d, "not_possible").await;
    assert_eq!(fake.media(), media);

    // The 60-day token is renewed once it is a day old, 7 days ahead.
    assert_eq!(fake.requests_to("/refresh_access_token"), 0);
    let (token, renewed) =
        renew_a_day_old_token(&app, &account, "token_issued_at", |token, age| {
            fake.age_token(token, age)
        })
        .await;
    assert_eq!(fake.requests_to("/refresh_access_token"), 1);
    assert_ne!(renewed, token);
    assert!(fake.token_works(&renewed));
    check_ok(&app, &account).await;
}

#[tokio::test]
async fn telegram_publishes_threads_retracts_and_checks() {
    let fake = FakeTelegram::start().await;
    let bot = fake.add_bot("kettleco_bot");
    let chat = fake.add_channel(&bot, Some("kettleco"));
    let api = fake.base_url();
    let app = herald(|s| s.networks.telegram_api_url = api).await;
    let account = app
        .add_account(
            "telegram",
            "Kettle Co",
            None,
            json!({"bot_token": bot, "chat_id": chat.to_string()}),
        )
        .await;

    let statement = approved(&app, "telegram", None).await;
    let d = publish(&app, &statement, &account, 3).await;
    let messages = fake.messages();
    assert_eq!(messages.len(), 3);
    assert!(messages.iter().all(|m| m.chat_id == chat));
    assert_eq!(
        messages.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(),
        PARTS
    );
    assert_eq!(messages[0].reply_to, None);
    assert_eq!(messages[1].reply_to, Some(messages[0].message_id));
    assert_eq!(messages[2].reply_to, Some(messages[1].message_id));
    for (id, m) in part_ids(&d).iter().zip(&messages) {
        assert!(id.ends_with(&m.message_id.to_string()), "{id}");
    }

    retract(&app, &statement, &d, "retracted").await;
    assert!(fake.messages().iter().all(|m| m.deleted));

    // Bot tokens do not expire: their lifecycle is the check.
    check_ok(&app, &account).await;
}

#[tokio::test]
async fn discord_publishes_a_sequence_retracts_and_checks() {
    let fake = FakeDiscord::start().await;
    let hook = fake.add_webhook("status");
    let api = fake.api_url();
    let app = herald(|s| s.networks.discord_api_url = api).await;
    let account = app
        .add_account(
            "discord",
            "Kettle Co",
            None,
            json!({"webhook_url": hook.url}),
        )
        .await;

    let statement = approved(&app, "discord", None).await;
    let d = publish(&app, &statement, &account, 3).await;
    // No replies on a webhook: three messages, in order, in the channel.
    let messages = fake.messages();
    assert_eq!(messages.len(), 3);
    assert!(messages
        .iter()
        .all(|m| m.webhook_id.as_deref() == Some(hook.id.as_str())
            && m.channel_id == hook.channel_id));
    assert_eq!(
        messages
            .iter()
            .map(|m| m.content.as_str())
            .collect::<Vec<_>>(),
        PARTS
    );
    assert!(messages
        .windows(2)
        .all(|w| w[0].timestamp <= w[1].timestamp));
    assert_eq!(
        part_ids(&d),
        messages.iter().map(|m| m.id.clone()).collect::<Vec<_>>()
    );

    retract(&app, &statement, &d, "retracted").await;
    assert!(fake.messages().iter().all(|m| m.deleted));

    // A webhook URL does not expire: its lifecycle is the check.
    check_ok(&app, &account).await;
}

/// A receiver for the webhook network: records each JSON body and answers
/// with an id of its own (`rcv-1`, `rcv-2`, …).
struct Receiver {
    url: String,
    bodies: Arc<Mutex<Vec<Value>>>,
    _server: LocalServer,
}

impl Receiver {
    async fn start() -> Receiver {
        use actix_web::{web, App, HttpResponse, HttpServer};
        let bodies = Arc::new(Mutex::new(Vec::<Value>::new()));
        let data = web::Data::from(bodies.clone());
        let server = LocalServer::start("/hooks/herald", move |listener| {
            HttpServer::new(move || {
                App::new().app_data(data.clone()).default_service(web::to(
                    |body: web::Bytes, bodies: web::Data<Mutex<Vec<Value>>>| async move {
                        let mut bodies = bodies.lock().unwrap();
                        bodies.push(serde_json::from_slice(&body).unwrap_or(Value::Null));
                        let id = format!("rcv-{}", bodies.len());
                        HttpResponse::Ok().json(json!({"id": id}))
                    },
                ))
            })
            .workers(1)
            .disable_signals()
            .listen(listener)
            .unwrap()
            .run()
        })
        .await;
        Receiver {
            url: server.url.clone(),
            bodies,
            _server: server,
        }
    }

    fn bodies(&self) -> Vec<Value> {
        self.bodies.lock().unwrap().clone()
    }
}

#[tokio::test]
async fn webhook_publishes_threads_cannot_retract_and_checks() {
    let receiver = Receiver::start().await;
    let app = herald(|_| {}).await;
    let account = app
        .add_account("webhook", "Intranet", None, json!({"url": receiver.url}))
        .await;

    let statement = approved(&app, "webhook", None).await;
    let d = publish(&app, &statement, &account, 3).await;
    let bodies = receiver.bodies();
    assert_eq!(bodies.len(), 3, "{bodies:?}");
    for (i, body) in bodies.iter().enumerate() {
        assert_eq!(body["text"], PARTS[i], "{body}");
        assert_eq!(body["delivery_id"], d["id"], "{body}");
    }
    // The first part has neither `part` nor `in_reply_to`; each later part
    // answers the id the receiver gave the one before.
    assert!(bodies[0].get("part").is_none(), "{}", bodies[0]);
    assert!(bodies[0].get("in_reply_to").is_none(), "{}", bodies[0]);
    assert_eq!(bodies[1]["part"], 1);
    assert_eq!(bodies[1]["in_reply_to"], "rcv-1");
    assert_eq!(bodies[2]["part"], 2);
    assert_eq!(bodies[2]["in_reply_to"], "rcv-2");
    assert_eq!(part_ids(&d), ["rcv-1", "rcv-2", "rcv-3"]);

    // A receiver cannot be told to delete: said so, nothing sent.
    retract(&app, &statement, &d, "not_possible").await;
    assert_eq!(receiver.bodies().len(), 3);

    // Nothing to check remotely: ok without a call.
    check_ok(&app, &account).await;
    assert_eq!(receiver.bodies().len(), 3);
}

#[tokio::test]
async fn sandbox_publishes_threads_retracts_and_checks() {
    let app = herald(|_| {}).await;
    let account = app.add_account("sandbox", "Drill", None, json!({})).await;

    let statement = approved(&app, "sandbox", None).await;
    let d = publish(&app, &statement, &account, 3).await;
    let viewer = app.key(Role::Viewer);
    let list = app
        .get(&viewer, &format!("/v1/sandbox/posts?account_id={account}"))
        .await
        .ok();
    // Newest first.
    let mut posts = list["items"].as_array().unwrap().clone();
    posts.reverse();
    assert_eq!(posts.len(), 3, "{list}");
    for (post, text) in posts.iter().zip(PARTS) {
        assert_eq!(post["text"], text, "{post}");
    }
    assert!(posts[0]["in_reply_to"].is_null(), "{}", posts[0]);
    assert_eq!(posts[1]["in_reply_to"], posts[0]["id"]);
    assert_eq!(posts[2]["in_reply_to"], posts[1]["id"]);
    let ids: Vec<String> = posts
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(part_ids(&d), ids);

    retract(&app, &statement, &d, "retracted").await;
    let list = app
        .get(&viewer, &format!("/v1/sandbox/posts?account_id={account}"))
        .await
        .ok();
    assert_eq!(list["items"].as_array().unwrap().len(), 0, "{list}");

    check_ok(&app, &account).await;
}
