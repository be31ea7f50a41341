//! The README's walk-through, run verbatim against a real server; only the
//! server address and the way to call the binary are swapped in.

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
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .env("HERALD_BIN", env!("CARGO_BIN_EXE_herald"))
        .env("HERALD_DATABASE_URL", &app.database_url)
        .env("HERALD_LOG", "error")
        .output()
        .await
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
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(actions, expected);
}
