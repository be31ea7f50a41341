//! The README's walk-through, run verbatim against a real server; only the
//! server address and the way to call the binary are swapped in. It waits for
//! a delivery planned one minute ahead, so it takes a little over a minute.

use std::time::Duration;

use chrono::DateTime;
use tokio::process::Command;

use crate::helpers::spawn_app;

fn walkthrough() -> String {
    let readme = include_str!("../../README.md");
    let section = readme
        .split("## Walk-through")
        .nth(1)
        .expect("a Walk-through section");
    let block = section.split("```sh\n").nth(1).expect("a sh block");
    block.split("```").next().unwrap().to_string()
}

#[tokio::test]
async fn the_readme_walkthrough_works_verbatim() {
    let app = spawn_app().await;
    let script = walkthrough();
    assert!(script.contains("HERALD_URL=http://127.0.0.1:8080\n"));
    assert!(script.contains("herald() { cargo run -q --release -- \"$@\"; }\n"));
    let script = script
        .replace(
            "HERALD_URL=http://127.0.0.1:8080\n",
            &format!("HERALD_URL={}\n", app.address),
        )
        .replace(
            "herald() { cargo run -q --release -- \"$@\"; }\n",
            "herald() { \"$HERALD_BIN\" \"$@\"; }\n",
        );
    // The walk-through waits about a minute for its post, then up to a
    // minute and a half for the replies; past four minutes something hangs.
    let out = tokio::time::timeout(
        Duration::from_secs(240),
        Command::new("bash")
            .args(["-euo", "pipefail", "-c", &script])
            .env("HERALD_BIN", env!("CARGO_BIN_EXE_herald"))
            .env("HERALD_DATABASE_URL", &app.database_url)
            .env("HERALD_LOG", "error")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the walk-through finishes within four minutes")
    .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "walk-through failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("\"status\":\"in_review\""), "{stdout}");
    assert!(
        stdout.contains("\"status\":403"),
        "the author's own approval is refused: {stdout}"
    );
    assert!(stdout.contains("\"status\":\"approved\""), "{stdout}");
    assert!(
        stdout.contains("\"ok\":true"),
        "the chain verifies: {stdout}"
    );
    let account_line = stdout
        .lines()
        .find(|l| l.contains("\"name\":\"Kettle Co drill\""))
        .unwrap_or_else(|| panic!("the sandbox account is added: {stdout}"));
    assert!(
        account_line.contains("\"platform\":\"sandbox\"")
            && account_line.contains("\"status\":\"active\""),
        "the sandbox account is active: {account_line}"
    );
    assert!(
        stdout.contains("\"timezone\":\"Europe/Paris\""),
        "scheduled in Paris time: {stdout}"
    );
    assert!(
        stdout.contains(" scheduled\n") && stdout.contains(" published\n"),
        "the watch loop sees it scheduled, then published: {stdout}"
    );
    assert!(
        stdout.contains("\"attempt_log\":[{\"number\":1,")
            && stdout.contains("\"outcome\":\"published\""),
        "one attempt, published: {stdout}"
    );
    assert!(
        stdout.contains("\"action\":\"delivery.published\""),
        "the publish log records it: {stdout}"
    );
    assert!(
        stdout.contains(
            "\"text\":\"We are recalling the K-200 kettle (batch 42). Stop using it. Refunds: https://example.com/recall\""
        ),
        "the sandbox holds the sandbox variant: {stdout}"
    );

    let list = app
        .get(&app.admin, "/v1/statements?status=approved")
        .await
        .ok();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let id = list["items"][0]["id"].as_str().unwrap();
    let actions = app.log_actions(id).await;
    let expected: Vec<(String, String)> = [
        ("statement.created", "alice"),
        ("statement.submitted", "alice"),
        ("statement.approved", "bob"),
        ("delivery.scheduled", "alice"),
        ("delivery.claimed", "system"),
        ("delivery.published", "system"),
        // Alice's answer to Jeanne.
        ("delivery.scheduled", "alice"),
        ("delivery.claimed", "system"),
        ("delivery.published", "system"),
        ("reply.answered", "system"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(actions, expected);

    // One delivery, planned a minute after it was scheduled (the Paris wall
    // clock read back as the right instant), published once, not early.
    let deliveries = app
        .get(&app.admin, &format!("/v1/deliveries?statement_id={id}"))
        .await
        .ok();
    let items: Vec<&serde_json::Value> = deliveries["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["kind"] != "response")
        .collect();
    assert_eq!(items.len(), 1, "{deliveries}");
    let d = items[0];
    assert_eq!(d["status"], "published", "{d}");
    assert_eq!(d["platform"], "sandbox");
    assert_eq!(d["attempts"], 1, "{d}");
    let instant = |field: &str| {
        DateTime::parse_from_rfc3339(d[field].as_str().unwrap_or_else(|| panic!("{field}: {d}")))
            .unwrap()
    };
    let ahead = (instant("planned_at") - instant("created_at")).num_milliseconds();
    assert!(
        (50_000..=61_000).contains(&ahead),
        "planned {ahead} ms after scheduling, not about a minute: {d}"
    );
    assert!(instant("published_at") >= instant("planned_at"), "{d}");
    assert!(d["lateness_ms"].as_i64().is_some_and(|l| l >= 0), "{d}");
    // Replies: collected with sentiment, one answered through the API.
    assert!(
        stdout.contains("\"author\":\"jeanne\"") && stdout.contains("\"question\":true"),
        "Jeanne's question is in the queue: {stdout}"
    );
    assert!(
        stdout.contains("\"author\":\"sam\"") && stdout.contains("\"sentiment\":\"positive\""),
        "Sam's thanks are positive: {stdout}"
    );
    assert!(
        stdout.contains("\"field\":\"text\"") && stdout.contains("all caps"),
        "the shouted answer is refused: {stdout}"
    );
    assert!(
        stdout.contains("\"follow_up\":\"answered\""),
        "the reply is answered: {stdout}"
    );
    let stats = stdout
        .lines()
        .find(|l| l.contains("\"assignees\""))
        .unwrap_or_else(|| panic!("the stats are printed: {stdout}"));
    let stats: serde_json::Value = serde_json::from_str(stats).unwrap();
    assert_eq!(stats["response_time"]["answered"], 1, "{stats}");
    assert!(
        stats["response_time"]["median_s"].as_i64().is_some(),
        "{stats}"
    );
    // The sandbox holds the post, the two replies and the answer to Jeanne.
    let posts = app.get(&app.admin, "/v1/sandbox/posts").await.ok();
    let posts = posts["items"].as_array().unwrap();
    assert_eq!(posts.len(), 4, "{posts:?}");
    let answer = posts
        .iter()
        .find(|p| p["text"].as_str().unwrap().starts_with("Bonjour Jeanne"))
        .unwrap();
    let jeanne = posts.iter().find(|p| p["author"] == "jeanne").unwrap();
    assert_eq!(answer["in_reply_to"], jeanne["id"]);
}
