use std::process::Command;

use crate::helpers::spawn_app;

fn herald(database_url: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(args)
        .env("HERALD_DATABASE_URL", database_url)
        .env("HERALD_LOG", "error")
        .output()
        .expect("run herald")
}

#[tokio::test]
async fn keys_created_and_revoked_with_the_cli_take_effect_on_a_running_server() {
    let app = spawn_app().await;
    let out = herald(
        &app.database_url,
        &["keys", "create", "--name", "dana", "--role", "approver"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let key = stdout.lines().last().unwrap().trim().to_string();
    assert!(
        key.starts_with("hrld_"),
        "the key is alone on the last line: {stdout}"
    );

    assert_eq!(app.get(&key, "/v1/statements").await.status, 200);

    let listed = herald(&app.database_url, &["keys", "list"]);
    let listing = String::from_utf8(listed.stdout).unwrap();
    assert!(
        listing.contains("dana") && listing.contains("approver"),
        "{listing}"
    );
    assert!(!listing.contains(&key), "a listing never shows a key");

    let out = herald(&app.database_url, &["keys", "revoke", "dana"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    app.get(&key, "/v1/statements").await.problem(401);

    let log = app.get(&app.admin, "/v1/log?actor=cli").await.ok();
    let actions: Vec<&str> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["key.revoked", "key.created"]);
}

#[tokio::test]
async fn the_cli_refuses_an_unknown_role_and_a_duplicate_name() {
    let app = spawn_app().await;
    let out = herald(
        &app.database_url,
        &["keys", "create", "--name", "eve", "--role", "root"],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown role"));
    assert!(herald(
        &app.database_url,
        &["keys", "create", "--name", "eve", "--role", "viewer"]
    )
    .status
    .success());
    let again = herald(
        &app.database_url,
        &["keys", "create", "--name", "eve", "--role", "viewer"],
    );
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
}

#[tokio::test]
async fn log_verify_exits_zero_on_an_intact_chain() {
    let app = spawn_app().await;
    app.draft(&app.admin, "minor").await;
    let out = herald(&app.database_url, &["log", "verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("intact"));
}

#[tokio::test]
async fn the_openapi_command_prints_the_committed_document() {
    let out = Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg("openapi")
        .output()
        .unwrap();
    assert!(out.status.success());
    let committed =
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json")).unwrap();
    assert!(
        out.stdout == committed,
        "`herald openapi` differs from openapi/openapi.json"
    );
}

#[tokio::test]
async fn serve_without_a_secret_key_generates_a_private_key_file_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("herald.db");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg("serve")
        .env("HERALD_DATABASE_URL", format!("sqlite://{}", db.display()))
        .env("HERALD_BIND", "127.0.0.1:0")
        .env_remove("HERALD_SECRET_KEY")
        .env("HERALD_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let key_file = dir.path().join("herald.key");
    for _ in 0..100 {
        if key_file.exists() && db.exists() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    child.start_kill().unwrap();
    let out = child.wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(key_file.exists(), "no key file: {stderr}");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let key = std::fs::read_to_string(&key_file).unwrap();
    assert!(herald::crypto::SecretKey::from_base64(&key).is_ok());
    assert!(
        stderr.contains("herald.key"),
        "the log names the file: {stderr}"
    );
    assert!(
        !stderr.contains(key.trim()),
        "the key itself is never logged"
    );
}

#[test]
fn migrate_reads_a_config_file_and_creates_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("from-config.db");
    let config = dir.path().join("herald.toml");
    std::fs::write(
        &config,
        format!("database_url = \"sqlite://{}\"\n", db.display()),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["--config", config.to_str().unwrap(), "migrate"])
        .env_remove("HERALD_DATABASE_URL")
        .env("HERALD_LOG", "error")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("up to date"));
    assert!(db.exists());
    let again = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["--config", config.to_str().unwrap(), "migrate"])
        .env_remove("HERALD_DATABASE_URL")
        .output()
        .unwrap();
    assert!(again.status.success(), "migrating twice is harmless");

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "database_url = \"mysql://x/y\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["--config", bad.to_str().unwrap(), "migrate"])
        .env_remove("HERALD_DATABASE_URL")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unsupported database URL"));
}
