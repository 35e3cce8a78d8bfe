//! The example service, started for real on SQLite and driven over HTTP:
//! CRUD, JSON errors, health turning warning and critical under held
//! connections, timeouts, metrics, leak reports, config errors, shutdown.

mod support;

use std::sync::Arc;

use serde_json::{Value, json};
use support::{Launch, marker_line};

const DEBUG_RS: &str = "examples/src/service/debug.rs";

#[tokio::test]
async fn items_crud_round_trip() {
    let svc = Launch::sqlite().start();

    let created = svc
        .post("/items", json!({ "name": "apple", "quantity": 3 }))
        .await;
    assert_eq!(created.status().as_u16(), 201);
    let location = created.headers()["location"].to_str().unwrap().to_owned();
    let item: Value = created.json().await.unwrap();
    let id = item["id"].as_i64().expect("id");
    assert_eq!(location, format!("/items/{id}"));
    assert_eq!(item, json!({ "id": id, "name": "apple", "quantity": 3 }));

    let second: Value = svc
        .post("/items", json!({ "name": "pear" }))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(second["quantity"], 0, "quantity defaults to 0");

    let list: Value = svc.get("/items").await.json().await.unwrap();
    assert_eq!(list.as_array().map(Vec::len), Some(2), "{list}");
    let one: Value = svc.get("/items?limit=1").await.json().await.unwrap();
    assert_eq!(one, json!([item]));

    let read = svc.get(&location).await;
    assert_eq!(read.status().as_u16(), 200);
    assert_eq!(read.json::<Value>().await.unwrap(), item);

    let replaced = svc
        .put(&location, json!({ "name": "green apple", "quantity": 5 }))
        .await;
    assert_eq!(replaced.status().as_u16(), 200);
    assert_eq!(
        replaced.json::<Value>().await.unwrap(),
        json!({ "id": id, "name": "green apple", "quantity": 5 })
    );

    assert_eq!(svc.delete(&location).await.status().as_u16(), 204);
    assert_eq!(svc.get(&location).await.status().as_u16(), 404);
    assert_eq!(svc.delete(&location).await.status().as_u16(), 404);
    assert_eq!(
        svc.put(&location, json!({ "name": "x" }))
            .await
            .status()
            .as_u16(),
        404
    );
}

#[tokio::test]
async fn errors_are_json_with_the_right_status() {
    let svc = Launch::sqlite().start();
    let cases = [
        (svc.get("/items/999").await, 404, "not found"),
        (svc.get("/items/abc").await, 400, "abc"),
        (svc.get("/items?limit=0").await, 400, "limit"),
        (
            svc.post("/items", json!({ "name": "  " })).await,
            422,
            "name must not be empty",
        ),
        (
            svc.post("/items", json!({ "name": "a", "quantity": -1 }))
                .await,
            422,
            "negative",
        ),
        (
            svc.post("/items", json!({ "nme": "typo" })).await,
            422,
            "unknown field",
        ),
        (
            svc.client
                .post(svc.url("/items"))
                .header("content-type", "application/json")
                .body("{")
                .send()
                .await
                .unwrap(),
            400,
            "",
        ),
        (
            svc.client
                .post(svc.url("/items"))
                .body("name=x")
                .send()
                .await
                .unwrap(),
            415,
            "Content-Type",
        ),
    ];
    for (response, code, needle) in cases {
        let url = response.url().to_string();
        assert_eq!(response.status().as_u16(), code, "{url}");
        let body: Value = response
            .json()
            .await
            .unwrap_or_else(|e| panic!("{url}: error body is not JSON: {e}"));
        let message = body["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{url}: no error field in {body}"));
        assert!(
            message.contains(needle),
            "{url}: {message:?} should mention {needle:?}"
        );
    }
}

#[tokio::test]
async fn health_turns_warning_then_critical_with_held_connections() {
    // Capacity 10: 7 held is 70 % (warning), 9 held is 90 % (critical).
    let svc = Launch::sqlite()
        .one_pool()
        .debug()
        .env("APP_DB_POOL_SIZE", "5")
        .env("APP_DB_MAX_OVERFLOW", "5")
        .start();

    let (code, body) = svc.health().await;
    assert_eq!(
        (code, body["health"].as_str()),
        (200, Some("healthy")),
        "{body}"
    );
    assert_eq!(body["name"], "items");

    svc.hold(7, 600_000).await;
    let (code, body) = svc.health().await;
    assert_eq!(
        (code, body["health"].as_str()),
        (200, Some("warning")),
        "{body}"
    );
    assert_eq!(body["checked_out"], 7, "{body}");
    assert_eq!(body["overflow"], 2, "{body}");
    assert_eq!(body["utilization_percent"], 70.0, "{body}");

    svc.hold(2, 600_000).await;
    let (code, body) = svc.health().await;
    assert_eq!(
        (code, body["health"].as_str()),
        (503, Some("critical")),
        "{body}"
    );
    assert_eq!(body["checked_out"], 9, "{body}");
    let site = body["oldest_checkout"]["site"]
        .as_str()
        .expect("oldest checkout site");
    let (file, line) = marker_line(DEBUG_RS, "marker: debug-hold-acquire");
    assert!(
        site.starts_with(&format!("{file}:{line}:")),
        "{site} should be {file}:{line}"
    );

    // The body never shows where the database is.
    let text = body.to_string();
    assert!(
        !text.contains("sqlite:") && !text.contains(svc.dir().to_str().unwrap()),
        "{text}"
    );

    svc.release().await;
    let (code, body) = svc.health().await;
    assert_eq!(
        (code, body["health"].as_str()),
        (200, Some("healthy")),
        "{body}"
    );
    assert_eq!(body["checked_out"], 0, "{body}");
    // The service's overflow_linger (10 s by default) keeps the returned
    // extras for the next burst instead of closing them at once.
    assert_eq!(
        (&body["size"], &body["overflow"]),
        (&json!(9), &json!(4)),
        "overflow connections linger after return: {body}"
    );
}

#[tokio::test]
async fn a_timed_out_request_gets_503_and_health_stays_critical_for_a_while() {
    let svc = Launch::sqlite()
        .one_pool()
        .debug()
        .env("APP_DB_POOL_SIZE", "1")
        .env("APP_DB_MAX_OVERFLOW", "1")
        .env("APP_DB_POOL_TIMEOUT", "200ms")
        .start();
    svc.hold(2, 600_000).await;

    let response = svc.get("/items").await;
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["error"],
        "database busy: no connection within pool_timeout"
    );

    // The log names the holder that starves everyone.
    let (file, line) = marker_line(DEBUG_RS, "marker: debug-hold-acquire");
    let logged = svc
        .wait_for_line("with the timeout", |l| {
            l.contains("QueuePool limit of size 1 overflow 1")
        })
        .await;
    assert!(
        logged.contains(&format!("acquired at {file}:{line}:")),
        "{logged}"
    );

    svc.release().await;
    let (code, body) = svc.health().await;
    assert_eq!(
        (code, body["health"].as_str()),
        (503, Some("critical")),
        "recent timeouts keep it critical: {body}"
    );
    assert_eq!(body["wait"]["recent_timeouts"], 1, "{body}");
    assert_eq!(body["totals"]["timeouts"], 1, "{body}");
    let advice = body["recommendations"].to_string();
    assert!(
        advice.contains("raise pool_size or max_overflow"),
        "{advice}"
    );
}

#[tokio::test]
async fn metrics_endpoint_serves_pool_series_in_prometheus_text() {
    let svc = Launch::sqlite().one_pool().debug().start();
    svc.post("/items", json!({ "name": "a" })).await;
    svc.hold(3, 600_000).await;
    svc.health().await; // publishes the gauges now, not at the next tick

    let response = svc.get("/metrics").await;
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = response.text().await.unwrap();
    for needle in [
        "# HELP db_pool_connections_open ",
        "# TYPE db_pool_connections_open gauge",
        "db_pool_connections_in_use{pool=\"items\"} 3",
        "# TYPE db_pool_acquire_wait_seconds histogram",
        "db_pool_acquire_wait_seconds_bucket{pool=\"items\",le=\"0.001\"}",
        "# TYPE db_pool_connections_opened_total counter",
        "db_pool_connections_closed_total{pool=\"items\",reason=\"overflow\"} 0",
        "db_pool_timeouts_total{pool=\"items\"} 0",
        "db_pool_leaks_total{pool=\"items\"} 0",
        // /debug/hold takes its 3 connections in one task: 2 nested.
        "db_pool_nested_checkouts_total{pool=\"items\"} 2",
    ] {
        assert!(text.contains(needle), "metrics lack {needle:?}:\n{text}");
    }
    let opened = sample(&text, "db_pool_connections_opened_total{pool=\"items\"}");
    assert!(
        opened >= 3.0,
        "at least the 3 held connections were opened: {opened}"
    );
}

/// The value of the series that starts with `series`.
fn sample(text: &str, series: &str) -> f64 {
    let line = text
        .lines()
        .find(|l| l.starts_with(series))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"));
    line.rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("bad sample {line}"))
}

#[tokio::test]
async fn a_leaked_connection_is_reported_with_the_file_and_line_that_acquired_it() {
    let svc = Launch::sqlite()
        .debug()
        .env("APP_DB_LEAK_THRESHOLD", "100ms")
        .start();
    let (file, line) = marker_line(DEBUG_RS, "marker: debug-leak-acquire");
    let site = format!("{file}:{line}:");

    let response = svc.post_empty("/debug/leak?ms=800").await;
    assert_eq!(response.status().as_u16(), 200);

    let reported = svc
        .wait_for_line("reporting the leak", |l| {
            l.contains("pool_runtime::leak") && l.contains("connection held for")
        })
        .await;
    assert!(reported.contains("leak_threshold 0.1s"), "{reported}");
    assert!(
        reported.contains(&format!("acquired at {site}")),
        "{reported} should name {site}"
    );
    let returned = svc
        .wait_for_line("reporting the return", |l| {
            l.contains("leaked connection returned")
        })
        .await;
    assert!(returned.contains(&site), "{returned}");

    let (_, body) = svc.health().await;
    assert_eq!(body["totals"]["leaks"], 1, "{body}");
    let metrics = svc.get("/metrics").await.text().await.unwrap();
    assert_eq!(sample(&metrics, "db_pool_leaks_total{pool=\"items\"}"), 1.0);
}

#[tokio::test]
async fn debug_endpoints_are_off_unless_asked_for() {
    let svc = Launch::sqlite().start();
    assert_eq!(
        svc.post_empty("/debug/hold?ms=10").await.status().as_u16(),
        404
    );
    assert_eq!(
        svc.post_empty("/debug/leak?ms=10").await.status().as_u16(),
        404
    );
}

#[tokio::test]
async fn start_logs_the_effective_config_redacted() {
    let svc = Launch::sqlite()
        .one_pool()
        .env("APP_DB_POOL_SIZE", "4")
        .env("APP_DB_MAX_OVERFLOW", "2")
        .start();
    let out = svc.output();
    for needle in [
        "effective configuration",
        "APP_DB_POOL_SIZE",
        "= 4",
        "(env)",
        "APP_DB_POOL_TIMEOUT",
        "(default)",
    ] {
        assert!(out.contains(needle), "start log lacks {needle:?}:\n{out}");
    }
    let (_, body) = svc.health().await;
    assert_eq!(
        (body["pool_size"].as_u64(), body["max_overflow"].as_u64()),
        (Some(4), Some(2)),
        "{body}"
    );
}

#[tokio::test]
async fn runs_with_no_setup_on_a_sqlite_file_under_data() {
    let cwd = tempfile::tempdir().unwrap();
    let svc = Launch::defaults_in(cwd.path()).start();
    assert_eq!(
        svc.post("/items", json!({ "name": "a" }))
            .await
            .status()
            .as_u16(),
        201
    );
    assert!(
        cwd.path().join("data/app.db").is_file(),
        "data/app.db was not created"
    );
    assert!(svc.output().contains("sqlite://data/app.db"));
}

#[tokio::test]
async fn sigterm_closes_the_pool_and_exits_cleanly() {
    let mut svc = Launch::sqlite().start();
    svc.post("/items", json!({ "name": "a" })).await;
    let status = svc.terminate();
    assert!(
        status.success(),
        "exit status {status}; output:\n{}",
        svc.output()
    );
    svc.wait_for_line("saying the pool closed", |l| l.contains("pool closed"))
        .await;
}

#[test]
fn a_bad_config_is_refused_with_every_problem_named_and_no_secret() {
    let (status, out) = Launch::url("postgres://app:hunter2@localhost:1/app")
        .env("APP_DB_POOL_SIZE", "0")
        .env("APP_DB_POOL_TIMEOUT", "30x")
        .run_to_exit();
    assert_eq!(status.code(), Some(2), "{out}");
    assert!(
        out.contains("APP_DB_POOL_SIZE") && out.contains("APP_DB_POOL_TIMEOUT"),
        "{out}"
    );
    assert!(!out.contains("hunter2"), "{out}");
}

#[test]
fn an_unknown_url_scheme_is_refused_without_echoing_the_url() {
    let (status, out) = Launch::url("mysql://app:hunter2@localhost/app").run_to_exit();
    assert!(!status.success(), "{out}");
    assert!(out.contains("scheme \"mysql\""), "{out}");
    assert!(!out.contains("hunter2"), "{out}");
}

/// Issue 10: one refused connect at start was printed three times (the
/// pool's `connect failed` event, an ERROR log and the final `error:`
/// line). Now once: `Pool::connect` returns its first failure without
/// logging it too.
#[test]
fn a_dead_database_is_reported_once_at_start() {
    let (status, out) = Launch::url("postgres://app:hunter2@127.0.0.1:1/app").run_to_exit();
    assert_eq!(status.code(), Some(1), "{out}");
    let mentions: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("could not connect to postgres://app:***@127.0.0.1:1/app"))
        .collect();
    let service_lines: Vec<&&str> = mentions
        .iter()
        .filter(|l| !l.contains("pool_runtime::events"))
        .collect();
    assert_eq!(service_lines.len(), 1, "{out}");
    assert!(service_lines[0].starts_with("error: "), "{out}");
    assert_eq!(mentions.len(), 1, "{out}");
    assert!(!out.contains("hunter2"), "{out}");
}

/// Issue 10: `DB_POOL_SIZE=abc` (the README's prefix) was silently ignored
/// by the service, which reads `APP_DB_`; the start log now names the
/// prefix and profile, and the stray variable is a warning.
#[tokio::test]
async fn a_variable_under_another_prefix_is_a_warning_at_start() {
    let svc = Launch::sqlite()
        .one_pool()
        .env("DB_POOL_SIZE", "abc")
        .start();
    svc.wait_for_line("warning about DB_POOL_SIZE", |l| {
        l.contains("WARN")
            && l.contains(
                "DB_POOL_SIZE is set but no configuration field reads it; field `pool_size` \
                 reads APP_DB_POOL_SIZE (the prefix is APP_DB_): did you mean APP_DB_POOL_SIZE?",
            )
    })
    .await;
    svc.wait_for_line("naming the prefix and profile", |l| {
        l.contains("configuration: prefix APP_DB_ (also DATABASE_URL, SERVICE_ADDR, SERVICE_DEBUG_ENDPOINTS), profile development (APP_ENV unset, development assumed)")
    })
    .await;
    let (_, body) = svc.health().await;
    assert_eq!(body["pool_size"].as_u64(), Some(5), "{body}");
}

/// The embedded default splits the SQLite file into one writer and
/// read-only readers: 64 clients writing at once all get 201 (no "database
/// is locked"), reads go to the readers, and the health JSON shows both.
#[tokio::test]
async fn concurrent_writes_on_the_default_sqlite_all_succeed() {
    let svc = Arc::new(Launch::sqlite().start());
    let clients: Vec<_> = (0..64)
        .map(|client| {
            let svc = Arc::clone(&svc);
            tokio::spawn(async move {
                let mut failed = Vec::new();
                for i in 0..10 {
                    let name = format!("{client}-{i}");
                    let response = svc.post("/items", json!({ "name": name })).await;
                    let status = response.status().as_u16();
                    let body: Value = response.json().await.unwrap_or_default();
                    // Creates are written in batches: each answer must be
                    // its own row, and that row must read back as posted.
                    if status != 201 || body["name"] != json!(name) {
                        failed.push(format!("{status} {body}"));
                    } else {
                        let id = body["id"].as_i64().unwrap_or_default();
                        let stored: Value = svc
                            .get(&format!("/items/{id}"))
                            .await
                            .json()
                            .await
                            .unwrap_or_default();
                        if stored["name"] != json!(name) {
                            failed.push(format!("item {id} posted as {name}, stored as {stored}"));
                        }
                    }
                    let read = svc.get("/items?limit=5").await;
                    if read.status().as_u16() != 200 {
                        failed.push(read.text().await.unwrap_or_default());
                    }
                }
                failed
            })
        })
        .collect();
    let mut failed = Vec::new();
    for client in clients {
        failed.extend(client.await.unwrap());
    }
    assert!(
        failed.is_empty(),
        "{} failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(3)]
    );
    let items: Value = svc.get("/items?limit=1000").await.json().await.unwrap();
    assert_eq!(items.as_array().map(Vec::len), Some(640));
    let (code, body) = svc.health().await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["pool_size"], 1, "one writer: {body}");
    assert_eq!(body["readers"]["pool_size"], 5, "{body}");
    assert!(
        body["readers"]["totals"]["acquired"].as_u64() >= Some(640),
        "{body}"
    );
    assert!(!svc.output().contains("database is locked"));
}
